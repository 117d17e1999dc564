//! Publishing snapshots per fleet: each fleet is a latest-wins cell (a `watch` channel), so a
//! slow stream never holds back a fast one and no queue of stale snapshots builds up.
//! A stream whose fleet has no snapshot watches `default` until its own fleet's first
//! snapshot is published, and then switches (see [`Publisher::fleets_added`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use xdsc_core::snapshot::Snapshot;

use crate::metrics::Metrics;

/// The fleet a node gets when its own fleet has no snapshot.
pub const DEFAULT_FLEET: &str = "default";

/// The handle an embedder publishes snapshots through. Cheap to clone.
///
/// ```
/// use xdsc_core::snapshot::Snapshot;
/// use xdsc_server::Publisher;
/// let p = Publisher::new();
/// assert!(!p.is_ready());
/// p.publish("default", Snapshot::default());
/// assert!(p.is_ready());
/// assert_eq!(p.fleets(), ["default"]);
/// ```
#[derive(Clone, Default)]
pub struct Publisher {
    cells: Arc<Mutex<BTreeMap<String, watch::Sender<Arc<Snapshot>>>>>,
    ready: Arc<AtomicBool>,
    /// Counts fleets added, so that streams on the `default` fallback notice their own.
    added: Arc<watch::Sender<u64>>,
    pub(crate) metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("fleets", &self.fleets())
            .finish()
    }
}

impl Publisher {
    /// A publisher with no fleets.
    pub fn new() -> Publisher {
        Publisher::default()
    }

    /// The metrics of every server serving this publisher's snapshots (the same as
    /// [`crate::XdsServer::metrics`]), for a program that hands the server over to `serve`.
    ///
    /// ```
    /// let p = xdsc_server::Publisher::new();
    /// p.publish("default", xdsc_core::snapshot::Snapshot::default());
    /// assert!(p.metrics().render().contains("xdsc_response_bodies_encoded_total 0"));
    /// ```
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Publishes a snapshot for a fleet, replacing any older one not yet sent. Streams of the
    /// fleet receive what differs from what their Envoy holds.
    pub fn publish(&self, fleet: &str, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        self.metrics.record_publish(fleet);
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        match cells.get(fleet) {
            Some(tx) => {
                tx.send_replace(snapshot);
            }
            None => {
                cells.insert(fleet.to_owned(), watch::channel(snapshot).0);
                self.added.send_modify(|n| *n += 1);
            }
        }
        self.ready.store(true, Ordering::Release);
    }

    /// Whether anything has been published yet (the server's readiness).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The fleets with a snapshot, in order.
    pub fn fleets(&self) -> Vec<String> {
        self.cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// The newest snapshot of a fleet.
    pub fn snapshot(&self, fleet: &str) -> Option<Arc<Snapshot>> {
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        cells.get(fleet).map(|tx| tx.borrow().clone())
    }

    /// Changes whenever a fleet gets its first snapshot.
    pub(crate) fn fleets_added(&self) -> watch::Receiver<u64> {
        self.added.subscribe()
    }

    /// Whether `fleet` has a snapshot of its own.
    pub(crate) fn has_fleet(&self, fleet: &str) -> bool {
        self.cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(fleet)
    }

    /// The cell a stream of `fleet` watches: the fleet's own, else the default fleet's (made
    /// empty if nothing was published yet). Returns the fleet actually watched.
    pub(crate) fn watch(&self, fleet: &str) -> (String, watch::Receiver<Arc<Snapshot>>) {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = cells.get(fleet) {
            return (fleet.to_owned(), tx.subscribe());
        }
        let tx = cells
            .entry(DEFAULT_FLEET.to_owned())
            .or_insert_with(|| watch::channel(Arc::new(Snapshot::default())).0);
        (DEFAULT_FLEET.to_owned(), tx.subscribe())
    }
}
