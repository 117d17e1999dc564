//! Where watch events wait for the next batch: one slot per object, the newest state of an
//! object replacing an older one still waiting, so what waits is bounded by the number of
//! objects, never by the event rate; and the hold-off and maximum delay that cut batches.
//!
//! Not here: what a batch does ([`crate::controller`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use xdsc_kube::translate::{KubeObject, ObjectRef};
use xdsc_kube::translator::ObjectChange;

/// How batches are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Quiet time after the last event before a batch is taken (default 100 ms).
    pub hold_off: Duration,
    /// The longest the first event of a batch waits (default 1 s), however busy the watches.
    pub max_delay: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            hold_off: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

#[derive(Default)]
struct State {
    pending: BTreeMap<ObjectRef, Option<KubeObject>>,
    first: Option<Instant>,
    last: Option<Instant>,
    received: u64,
    coalesced: u64,
}

/// One batch: the newest change of each object, sorted by object.
#[derive(Debug, Default)]
pub struct Batch {
    /// The changes.
    pub changes: Vec<ObjectChange>,
    /// Events received for this batch.
    pub received: u64,
    /// Events replaced by a newer state of their object before the batch was taken.
    pub coalesced: u64,
}

/// The per-object slots and their timing.
///
/// ```
/// use xdsc_kube::translate::{KubeObject, ObjectRef};
/// let inbox = xdsc_kube_controller::inbox::Inbox::default();
/// let svc = |port: u16| KubeObject::from_value(serde_json::json!({
///     "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
///     "spec": {"ports": [{"port": port}]},
/// })).unwrap();
/// inbox.upsert(svc(80));
/// inbox.upsert(svc(81)); // replaces the first: one slot per object
/// assert_eq!(inbox.len(), 1);
/// let batch = inbox.take();
/// assert_eq!((batch.changes.len(), batch.received, batch.coalesced), (1, 2, 1));
/// ```
#[derive(Default)]
pub struct Inbox {
    state: Mutex<State>,
    notify: Notify,
}

impl Inbox {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, id: ObjectRef, object: Option<KubeObject>) {
        let now = Instant::now();
        {
            let mut s = self.state();
            s.received += 1;
            if s.pending.insert(id, object).is_some() {
                s.coalesced += 1;
            }
            s.first.get_or_insert(now);
            s.last = Some(now);
        }
        self.notify.notify_one();
    }

    /// The object's newest state.
    pub fn upsert(&self, object: KubeObject) {
        self.put(object.id(), Some(object));
    }

    /// The object is gone.
    pub fn delete(&self, id: ObjectRef) {
        self.put(id, None);
    }

    /// Objects waiting.
    pub fn len(&self) -> usize {
        self.state().pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes what waits now.
    pub fn take(&self) -> Batch {
        let mut s = self.state();
        let pending = std::mem::take(&mut s.pending);
        let batch = Batch {
            changes: pending
                .into_iter()
                .map(|(id, o)| match o {
                    Some(object) => ObjectChange::upsert(object, None),
                    None => ObjectChange::Delete(id),
                })
                .collect(),
            received: s.received,
            coalesced: s.coalesced,
        };
        *s = State::default();
        batch
    }

    /// Waits for a change, then until no event came for the hold-off or the maximum delay
    /// passed since the first, and takes the batch.
    pub async fn next_batch(&self, timing: Timing) -> Batch {
        loop {
            let due = {
                let s = self.state();
                match (s.first, s.last) {
                    (Some(first), Some(last)) => {
                        Some((last + timing.hold_off).min(first + timing.max_delay))
                    }
                    _ => None,
                }
            };
            match due {
                None => self.notify.notified().await,
                Some(due) if due <= Instant::now() => return self.take(),
                Some(due) => {
                    let _ = tokio::time::timeout_at(due, self.notify.notified()).await;
                }
            }
        }
    }

    /// Resolves when something is waiting.
    pub async fn wait_nonempty(&self) {
        while self.is_empty() {
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> KubeObject {
        KubeObject::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        }))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_of_events_is_cut_at_the_maximum_delay() {
        let inbox = std::sync::Arc::new(Inbox::default());
        let timing = Timing {
            hold_off: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        let feeder = {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    inbox.upsert(svc(&format!("s{}", i % 7)));
                    tokio::time::sleep(Duration::from_millis(45)).await;
                }
            })
        };
        let start = tokio::time::Instant::now();
        let batch = inbox.next_batch(timing).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_millis(1100),
            "{took:?}"
        );
        assert_eq!(batch.changes.len(), 7, "one change per object");
        assert_eq!(batch.received, 23, "events at 0, 45, ... 990 ms");
        assert_eq!(batch.coalesced, 16);
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_hold_off_cuts_the_batch_and_deletes_replace_upserts() {
        let inbox = Inbox::default();
        inbox.upsert(svc("a"));
        inbox.delete(svc("a").id());
        let start = tokio::time::Instant::now();
        let batch = inbox.next_batch(Timing::default()).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(batch.changes, vec![ObjectChange::Delete(svc("a").id())]);
        assert!(inbox.is_empty());
    }
}
