//! The server-wide bound on large responses in flight.
//!
//! A stream in its initial sync is sent several MiB at 10,000 services. Responses are written
//! chunk by chunk from shared bytes (`wire::Frames`), so the memory of a sync in flight is what
//! HTTP/2 buffers, not a copy of the response; the bound keeps a thousand Envoys connecting at
//! once from all being fed at the same time, so that the first ones finish early rather than
//! all finishing late, and bounds what HTTP/2 buffers server-wide. A stream must hold a *sync
//! permit* to send a response of at least [`SyncLimits::large_response_bytes`]; there are
//! [`SyncLimits::concurrent`] permits, handed out first come, first served.
//!
//! A stream keeps its permit while any of its responses awaits acknowledgement, and needs no
//! second one: Envoy withholds its acknowledgement of clusters until their endpoints arrive,
//! so a stream waiting for a second permit while holding one could deadlock. It gives the
//! permit back when nothing of its own is unacknowledged, when it ends, or after
//! [`SyncLimits::hold`], so a client that stops reading holds a permit for a bounded time and
//! never blocks the others for good (its own memory stays bounded: one unacknowledged
//! response per type). Small responses, such as one changed endpoint, never wait.
//!
//! The end of a wave of large responses is also when the memory they used is given back:
//! once every permit is back and none has been taken for [`SyncLimits::release_after`],
//! [`Budget::release_after_waves`] has every runtime worker empty its allocator cache and
//! then asks the allocator to return its freed pages to the operating system
//! ([`crate::memory::release_freed_memory_on`]). Without it jemalloc keeps them: it purges as
//! it allocates, and idle streams do not allocate, so the peak of an initial sync stayed
//! resident; and a thread's cache is only emptied by that thread, so idle workers kept about
//! 16 KiB per stream cached (BENCHMARKS.md, issue 13). Small responses take no permit, so the
//! one-endpoint change path never triggers a release.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// How long no permit must have been taken for a wave to be over, when releasing freed
/// memory is off ([`SyncLimits::release_after`] `None`): the shared bodies still go then.
const QUIET: Duration = Duration::from_secs(1);

/// How many streams may be sending large responses at once, server-wide.
///
/// ```
/// use xdsc_server::SyncLimits;
/// let l = SyncLimits::default();
/// assert!(l.concurrent >= 1 && l.large_response_bytes > 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncLimits {
    /// How many streams may hold a sync permit at once (at least 1).
    pub concurrent: usize,
    /// Responses whose resources total at least this many bytes need a permit.
    pub large_response_bytes: usize,
    /// The longest a stream keeps its permit; after that it is given back even if the client
    /// has not acknowledged (it is slow or has stopped reading).
    pub hold: Duration,
    /// Once every permit has been given back and none taken for this long, the memory freed
    /// since is returned to the operating system (on jemalloc; `None`: never).
    pub release_after: Option<Duration>,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            concurrent: 32,
            large_response_bytes: 64 << 10,
            hold: Duration::from_secs(10),
            release_after: Some(Duration::from_secs(1)),
        }
    }
}

/// The permits, shared by every stream of a server.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    limits: SyncLimits,
    permits: Arc<Semaphore>,
    waves: Arc<Waves>,
}

/// What the release of memory after a wave of large responses waits on.
#[derive(Debug, Default)]
struct Waves {
    /// Permits handed out so far: unchanged over a wait means no wave began meanwhile.
    taken: AtomicU64,
    /// Notified when the last permit out is given back.
    over: Notify,
}

impl Budget {
    pub(crate) fn new(limits: SyncLimits) -> Budget {
        let concurrent = limits.concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            limits: SyncLimits {
                concurrent,
                ..limits
            },
            permits: Arc::new(Semaphore::new(concurrent)),
            waves: Arc::default(),
        }
    }

    /// Whether no permit is out (and so none is waited for: a waiter gets a permit as soon as
    /// one is given back).
    fn idle(&self) -> bool {
        self.permits.available_permits() == self.limits.concurrent
    }

    /// After each wave of large responses (once the last permit is back and none has been
    /// taken for [`SyncLimits::release_after`], or [`QUIET`] when releasing is off), lets go
    /// of the wave's shared bodies and returns freed memory to the operating system.
    /// Never completes: the server drops it when it stops.
    pub(crate) async fn release_after_waves(
        self,
        metrics: Arc<Metrics>,
        bodies: Arc<crate::wire::Bodies>,
    ) {
        self.release_after_waves_with(metrics, crate::memory::release_after_wave, move || {
            bodies.let_go()
        })
        .await
    }

    /// [`Budget::release_after_waves`] with `release` doing the releasing (on a blocking
    /// thread) and saying how many bytes went (`None`: nothing to release with), and
    /// `let_go` run first.
    async fn release_after_waves_with(
        self,
        metrics: Arc<Metrics>,
        release: fn() -> Option<u64>,
        let_go: impl Fn(),
    ) {
        let releasing = self.limits.release_after.is_some();
        let after = self.limits.release_after.unwrap_or(QUIET);
        // The wave last released after (none yet).
        let mut released = 0;
        loop {
            self.waves.over.notified().await;
            // Quiet for `after`: no permit out now, none taken since the wait began.
            loop {
                let taken = self.waves.taken.load(Ordering::Relaxed);
                tokio::time::sleep(after).await;
                if self.idle() && self.waves.taken.load(Ordering::Relaxed) == taken {
                    break;
                }
            }
            // A wave that ended while the last release waited was released with it.
            let taken = self.waves.taken.load(Ordering::Relaxed);
            if taken == released {
                continue;
            }
            released = taken;
            let_go();
            if !releasing {
                continue;
            }
            let freed = tokio::task::spawn_blocking(release).await;
            if let Ok(Some(bytes)) = freed {
                metrics.memory_released(bytes);
                tracing::debug!(
                    released_mib = bytes / (1 << 20),
                    "a wave of large responses is over: freed memory returned to the OS"
                );
            }
        }
    }

    pub(crate) fn limits(&self) -> SyncLimits {
        self.limits
    }

    /// Whether a response with this many resource bytes needs a permit.
    pub(crate) fn is_large(&self, bytes: usize) -> bool {
        bytes >= self.limits.large_response_bytes
    }
}

/// One stream's permit, if it holds one.
pub(crate) struct Permit {
    held: Option<Held>,
    metrics: Arc<Metrics>,
}

/// A permit held: the permit, when it must be given back (`None`: a hold too long to
/// represent), and the budget it is from (to say when the last one is back).
struct Held {
    permit: OwnedSemaphorePermit,
    deadline: Option<Instant>,
    budget: Budget,
}

impl Permit {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Permit {
        Permit {
            held: None,
            metrics,
        }
    }

    /// Waits for a permit unless this stream already holds one.
    pub(crate) async fn acquire(&mut self, budget: &Budget) {
        if self.held.is_some() {
            return;
        }
        self.metrics.sync_waiting.inc();
        let permit = budget.permits.clone().acquire_owned().await;
        self.metrics.sync_waiting.dec();
        // The semaphore is never closed; if it were, sending without a permit is the fallback.
        if let Ok(permit) = permit {
            self.metrics.sync_held.inc();
            budget.waves.taken.fetch_add(1, Ordering::Relaxed);
            self.held = Some(Held {
                permit,
                deadline: Instant::now().checked_add(budget.limits.hold),
                budget: budget.clone(),
            });
        }
    }

    /// Gives the permit back, if held.
    pub(crate) fn release(&mut self) {
        if let Some(held) = self.held.take() {
            let Held { permit, budget, .. } = held;
            drop(permit);
            self.metrics.sync_held.dec();
            if budget.idle() {
                budget.waves.over.notify_one();
            }
        }
    }

    /// Completes when the held permit's time is up; never while none is held.
    pub(crate) async fn expired(&self) {
        match &self.held {
            Some(Held {
                deadline: Some(deadline),
                ..
            }) => tokio::time::sleep_until(*deadline).await,
            _ => std::future::pending().await,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_permit_is_held_once_and_given_back() {
        let budget = Budget::new(SyncLimits {
            concurrent: 0, // raised to 1
            hold: Duration::MAX,
            ..SyncLimits::default()
        });
        let metrics = Arc::new(Metrics::default());
        let mut a = Permit::new(metrics.clone());
        a.acquire(&budget).await;
        a.acquire(&budget).await; // already held: does not wait for a second
        assert_eq!(metrics.sync_held.get(), 1);
        assert_eq!(budget.permits.available_permits(), 0);
        drop(a);
        assert_eq!(metrics.sync_held.get(), 0);
        assert_eq!(budget.permits.available_permits(), 1);
    }

    /// How many times the release ran (one test uses it: the counter is the test's).
    static RELEASED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    fn counted_release() -> Option<u64> {
        RELEASED.fetch_add(1, Ordering::SeqCst);
        Some(4096)
    }

    #[tokio::test(start_paused = true)]
    async fn freed_memory_is_released_once_per_wave_after_it_is_over() {
        let budget = Budget::new(SyncLimits {
            concurrent: 2,
            hold: Duration::MAX,
            release_after: Some(Duration::from_secs(1)),
            ..SyncLimits::default()
        });
        let metrics = Arc::new(Metrics::default());
        let task = tokio::spawn(budget.clone().release_after_waves_with(
            metrics.clone(),
            counted_release,
            || {},
        ));
        let released = || RELEASED.load(Ordering::SeqCst);
        let settle = |d: u64| async move {
            tokio::time::sleep(Duration::from_millis(d)).await;
            // The release runs on a blocking thread, outside the paused clock.
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        settle(5000).await;
        assert_eq!(released(), 0, "no wave, no release");

        // A wave: two streams take permits; one gives its back, the other keeps sending.
        let (mut a, mut b) = (Permit::new(metrics.clone()), Permit::new(metrics.clone()));
        a.acquire(&budget).await;
        b.acquire(&budget).await;
        a.release();
        settle(5000).await;
        assert_eq!(released(), 0, "a permit is still out: the wave is not over");
        b.release();
        settle(500).await;
        assert_eq!(released(), 0, "over, but not yet for `release_after`");
        // A stream starts its sync before the second is up: the release waits for quiet.
        a.acquire(&budget).await;
        settle(200).await;
        a.release();
        settle(900).await;
        assert_eq!(released(), 0, "quiet for 0.9 s only");
        settle(1500).await;
        assert_eq!(released(), 1, "one release for the wave");
        assert_eq!(metrics.memory_releases.get(), 1);
        assert_eq!(metrics.memory_released_bytes.get(), 4096);
        settle(10_000).await;
        assert_eq!(released(), 1, "nothing more while idle");

        // The next wave is released too.
        b.acquire(&budget).await;
        b.release();
        settle(1500).await;
        assert_eq!(released(), 2);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn with_releasing_off_a_wave_still_lets_its_shared_bodies_go() {
        let budget = Budget::new(SyncLimits {
            concurrent: 2,
            hold: Duration::MAX,
            release_after: None,
            ..SyncLimits::default()
        });
        let metrics = Arc::new(Metrics::default());
        let let_go = Arc::new(AtomicU64::new(0));
        let counted = let_go.clone();
        let task = tokio::spawn(budget.clone().release_after_waves_with(
            metrics.clone(),
            || panic!("releasing is off"),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        ));
        let mut a = Permit::new(metrics.clone());
        a.acquire(&budget).await;
        a.release();
        tokio::time::sleep(QUIET / 2).await;
        assert_eq!(
            let_go.load(Ordering::SeqCst),
            0,
            "not quiet for long enough yet"
        );
        tokio::time::sleep(QUIET).await;
        assert_eq!(let_go.load(Ordering::SeqCst), 1, "the wave is over");
        assert_eq!(metrics.memory_releases.get(), 0);
        task.abort();
    }
}
