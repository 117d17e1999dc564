//! Watch-stream activity, seen from inside the Kubernetes client: a tower layer that notes,
//! per URL path, when a watch stream opened and when it last received bytes.
//!
//! kube-runtime's watcher consumes bookmarks and reconnects without telling its caller, so
//! from its events alone an idle healthy watch and a dead one look the same. Bytes on the
//! stream (every event and every bookmark) are the API server's proof of life; this layer
//! records them, and [`crate::health`] shows the age of the last ones and treats a stream
//! that opened again after an error as healthy again.
//!
//! Not here: interpreting the bytes (the watcher does), or any other request.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

#[derive(Debug, Default)]
struct PathStats {
    open: AtomicUsize,
    /// Nanoseconds after the epoch, plus one (0: never).
    opened: AtomicU64,
    last: AtomicU64,
}

/// The activity of the watch streams, by URL path. Cheap to clone.
///
/// ```
/// use std::time::{Duration, Instant};
/// let a = xdsc_kube_controller::activity::Activity::default();
/// let before = Instant::now();
/// assert!(a.idle_for("/api/v1/services", Instant::now()).is_none());
/// assert!(!a.opened_since("/api/v1/services", before));
/// ```
#[derive(Clone, Debug)]
pub struct Activity {
    epoch: Instant,
    paths: Arc<Mutex<BTreeMap<String, Arc<PathStats>>>>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            epoch: Instant::now(),
            paths: Arc::default(),
        }
    }
}

impl Activity {
    fn stats(&self, path: &str) -> Option<Arc<PathStats>> {
        self.paths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    fn stamp(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX) + 1
    }

    fn open(&self, path: String) -> StreamGuard {
        let stats = Arc::clone(
            self.paths
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(path)
                .or_default(),
        );
        let now = self.stamp(Instant::now());
        stats.open.fetch_add(1, Ordering::SeqCst);
        stats.opened.store(now, Ordering::SeqCst);
        stats.last.store(now, Ordering::SeqCst);
        StreamGuard {
            stats,
            activity: self.clone(),
        }
    }

    /// How long ago the watch streams of `path` last received bytes (or opened).
    pub fn idle_for(&self, path: &str, now: Instant) -> Option<Duration> {
        let last = self.stats(path)?.last.load(Ordering::SeqCst);
        (last > 0).then(|| Duration::from_nanos(self.stamp(now).saturating_sub(last)))
    }

    /// Whether a watch stream of `path` opened after `t` (and is open now).
    pub fn opened_since(&self, path: &str, t: Instant) -> bool {
        self.stats(path).is_some_and(|s| {
            s.open.load(Ordering::SeqCst) > 0 && s.opened.load(Ordering::SeqCst) > self.stamp(t)
        })
    }

    /// How many watch streams of `path` are open.
    pub fn open_streams(&self, path: &str) -> usize {
        self.stats(path)
            .map_or(0, |s| s.open.load(Ordering::SeqCst))
    }

    /// The tower layer that records into this registry.
    pub fn layer(&self) -> ActivityLayer {
        ActivityLayer(self.clone())
    }
}

/// Counts one open stream while alive.
struct StreamGuard {
    stats: Arc<PathStats>,
    activity: Activity,
}

impl StreamGuard {
    fn touch(&self) {
        self.stats
            .last
            .store(self.activity.stamp(Instant::now()), Ordering::SeqCst);
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The layer for `kube::client::ClientBuilder::with_layer`.
#[derive(Clone, Debug)]
pub struct ActivityLayer(Activity);

impl<S> tower::Layer<S> for ActivityLayer {
    type Service = ActivityService<S>;

    fn layer(&self, inner: S) -> ActivityService<S> {
        ActivityService {
            inner,
            activity: self.0.clone(),
        }
    }
}

/// The service [`ActivityLayer`] makes.
#[derive(Clone, Debug)]
pub struct ActivityService<S> {
    inner: S,
    activity: Activity,
}

fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

impl<S, ReqBody, B> tower::Service<Request<ReqBody>> for ActivityService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Body,
{
    type Response = Response<Observed<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let watch = is_watch(req.uri().query()).then(|| req.uri().path().to_owned());
        let activity = self.activity.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            let guard = match watch {
                Some(path) if response.status().is_success() => Some(activity.open(path)),
                _ => None,
            };
            Ok(response.map(|inner| Observed {
                inner: Box::pin(inner),
                guard,
            }))
        })
    }
}

/// A response body that notes every frame of a watch stream.
pub struct Observed<B> {
    inner: Pin<Box<B>>,
    guard: Option<StreamGuard>,
}

impl<B: Body> Body for Observed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                if let Some(g) = &self.guard {
                    g.touch();
                }
            }
            Poll::Ready(None | Some(Err(_))) => self.guard = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watch_queries_are_watches() {
        assert!(is_watch(Some("watch=true&resourceVersion=5")));
        assert!(is_watch(Some("allowWatchBookmarks=true&watch=true")));
        assert!(!is_watch(Some("limit=500")));
        assert!(!is_watch(Some("watchful=true")));
        assert!(!is_watch(None));
    }

    #[test]
    fn a_stream_counts_while_open_and_touches_on_frames() {
        let a = Activity::default();
        let before = Instant::now();
        let g = a.open("/api/v1/services".into());
        assert_eq!(a.open_streams("/api/v1/services"), 1);
        assert!(a.opened_since("/api/v1/services", before));
        std::thread::sleep(Duration::from_millis(20));
        let later = Instant::now();
        assert!(a.idle_for("/api/v1/services", later).unwrap() >= Duration::from_millis(20));
        g.touch();
        assert!(
            a.idle_for("/api/v1/services", Instant::now()).unwrap() < Duration::from_millis(20)
        );
        assert!(
            !a.opened_since("/api/v1/services", later),
            "opened before `later`"
        );
        drop(g);
        assert_eq!(a.open_streams("/api/v1/services"), 0);
        assert!(!a.opened_since("/api/v1/services", before), "closed");
    }
}
