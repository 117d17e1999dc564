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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::metrics::Metrics;

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
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            concurrent: 32,
            large_response_bytes: 64 << 10,
            hold: Duration::from_secs(10),
        }
    }
}

/// The permits, shared by every stream of a server.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    limits: SyncLimits,
    permits: Arc<Semaphore>,
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
    /// The permit and when it must be given back (`None`: a hold too long to represent).
    held: Option<(OwnedSemaphorePermit, Option<Instant>)>,
    metrics: Arc<Metrics>,
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
            self.held = Some((permit, Instant::now().checked_add(budget.limits.hold)));
        }
    }

    /// Gives the permit back, if held.
    pub(crate) fn release(&mut self) {
        if self.held.take().is_some() {
            self.metrics.sync_held.dec();
        }
    }

    /// Completes when the held permit's time is up; never while none is held.
    pub(crate) async fn expired(&self) {
        match &self.held {
            Some((_, Some(deadline))) => tokio::time::sleep_until(*deadline).await,
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
}
