//! What the streams of one server share: sums that every stream would otherwise compute
//! for itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use xdsc_core::snapshot::{Resources, Version};

/// How many maps' sums are kept: the current cluster and endpoint maps and the few before
/// them that streams may still hold while a change goes out (32 bytes each).
const KEPT: usize = 8;

/// Maps with fewer names are compared name by name: a lock costs more than such a walk.
const SMALL: usize = 64;

/// What the streams of one server share, so that the work many of them repeat is done once.
///
/// Envoy subscribes to endpoints by cluster name, and over state of the world every endpoint
/// request lists every cluster it holds (10,000 names at 10,000 services), in an order of
/// its own. A stream's subscription is then the keys of a cluster map it shares with the
/// snapshot. When the list changes (a cluster added or removed), the stream finds the map
/// whose keys the request lists by an order-independent sum of the names' hashes
/// ([`names_sum`]), summed here once per map version for all streams, instead of sorting
/// 10,000 names. (A repeated list is known by each stream's hash of the last one.)
///
/// A [`Stream`](super::Stream) made with [`Stream::new`](super::Stream::new) has one of its
/// own; the server hands every stream the same one ([`Stream::with_shared`](super::Stream::with_shared)).
/// Cloning is O(1) and the clones share. It keeps 32 bytes per map, for a few maps.
///
/// ```
/// use std::sync::Arc;
/// use xdsc_core::snapshot::Snapshot;
/// use xdsc_server::protocol::{Limits, Shared, Stream, Variant};
/// let shared = Shared::default();
/// let snapshot = Arc::new(Snapshot::default());
/// let a = Stream::new(Variant::Sotw, None, Limits::default(), snapshot.clone())
///     .with_shared(shared.clone());
/// let b = Stream::new(Variant::Sotw, None, Limits::default(), snapshot)
///     .with_shared(shared);
/// # let _ = (a, b);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Shared(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Per map (its version and size), the [`names_sum`] of its names, newest first.
    sums: Mutex<VecDeque<(Version, usize, u128)>>,
    /// How many maps were summed, and how many requests matched one (tests count them).
    #[cfg(test)]
    summed: std::sync::atomic::AtomicUsize,
    #[cfg(test)]
    matched: std::sync::atomic::AtomicUsize,
    #[cfg(test)]
    compared: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// The [`names_sum`] of `map`'s names, summed once per map version (a version is of
    /// every name and resource version, so maps of one version have the same names). `None`
    /// for small maps.
    fn sum(&self, map: &Resources) -> Option<u128> {
        // A resource named `*` would read as a wildcard in a request: never by sums.
        if map.len() < SMALL || map.contains("*") {
            return None;
        }
        let key = (map.version(), map.len());
        {
            let mut kept = self.0.sums.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = kept.iter().position(|(v, n, _)| (*v, *n) == key) {
                let entry = kept.remove(i)?;
                kept.push_front(entry);
                return Some(entry.2);
            }
        }
        // Summed without the lock (10,000 hashes at 10,000 services), so that other streams'
        // look-ups do not wait on it; a stream summing the same new map at the same time
        // only repeats the work.
        let (sum, _) = names_sum(map.names().map(|n| n.as_bytes()));
        #[cfg(test)]
        self.0
            .summed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut kept = self.0.sums.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.iter().any(|(v, n, _)| (*v, *n) == key) {
            return Some(sum);
        }
        kept.push_front((key.0, key.1, sum));
        kept.truncate(KEPT);
        Some(sum)
    }

    /// Whether names (`count` of them, none `*`, whose [`names_sum`] is `sum`) are the names
    /// of `map`, in any order, each once, by the sums alone: one hash per name of the
    /// request and no sort. `false` also when that cannot be told this way (a small map), so
    /// callers sort the names then.
    ///
    /// Two lists of different names with the same count and sum are taken for the same
    /// names only if their 128-bit hashes collide. A client that crafted such a list
    /// affects only its own stream, which is then sent every resource of the map, as if it
    /// had named them all.
    pub(crate) fn sums_to_keys(&self, sum: u128, count: usize, map: &Resources) -> bool {
        let matched = count == map.len() && self.sum(map) == Some(sum);
        #[cfg(test)]
        self.0
            .matched
            .fetch_add(usize::from(matched), std::sync::atomic::Ordering::Relaxed);
        matched
    }

    /// Whether maps `a` and `b` (of two types: the clusters whose names an endpoint
    /// subscription shares, and the endpoints) have the same names, by their sums: once per
    /// map version, not a walk of both. `None` when that cannot be told this way (a small
    /// map), so callers walk them then. The same caveat as [`Shared::sums_to_keys`]: only a
    /// 128-bit collision makes different names equal.
    pub(crate) fn same_keys(&self, a: &Resources, b: &Resources) -> Option<bool> {
        if a.len() != b.len() {
            return Some(false);
        }
        let same = self.sum(a)? == self.sum(b)?;
        #[cfg(test)]
        self.0
            .compared
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(same)
    }

    /// How many pairs of maps were compared by their sums.
    #[cfg(test)]
    pub(crate) fn compared(&self) -> usize {
        self.0.compared.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many maps were summed.
    #[cfg(test)]
    pub(crate) fn summed(&self) -> usize {
        self.0.summed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many requests matched a map.
    #[cfg(test)]
    pub(crate) fn matched(&self) -> usize {
        self.0.matched.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The order-independent sum of a list of names, the wrapping sum of each name's 128-bit
/// xxh3 hash, and how many there are. Equal for the same names in any order; a name listed
/// twice counts twice.
pub(crate) fn names_sum<'a>(names: impl Iterator<Item = &'a [u8]>) -> (u128, usize) {
    names.fold((0, 0), |(sum, count), n| {
        (sum.wrapping_add(xxhash_rust::xxh3::xxh3_128(n)), count + 1)
    })
}

#[cfg(test)]
mod tests {
    use xdsc_core::snapshot::{Resource, ResourceType, Snapshot};

    use super::*;
    use crate::protocol::RequestNames;

    fn clusters(n: usize) -> Snapshot {
        (0..n).fold(Snapshot::default(), |s, i| {
            s.with(Resource::new(
                ResourceType::Cluster,
                format!("c{i:05}"),
                vec![1],
                vec![],
            ))
        })
    }

    #[test]
    fn a_map_is_summed_once_and_matches_its_names_in_any_order() {
        let shared = Shared::default();
        let s = clusters(100);
        let map = s.resources(ResourceType::Cluster);
        let matches = |names: &RequestNames| {
            let (sum, count) = names_sum(names.raw());
            shared.sums_to_keys(sum, count, map)
        };
        let listed: RequestNames = map.names().map(|n| &**n).collect();
        for _ in 0..3 {
            assert!(matches(&listed));
        }
        let reversed: RequestNames = map.names().rev().map(|n| &**n).collect();
        assert!(matches(&reversed));
        let fewer: RequestNames = map.names().skip(1).map(|n| &**n).collect();
        assert!(!matches(&fewer));
        let other: RequestNames = map
            .names()
            .map(|n| if &**n == "c00050" { "c99999" } else { &**n })
            .collect();
        assert!(!matches(&other));
        // One name twice in place of another: as many names, not the same.
        let twice: RequestNames = map
            .names()
            .map(|n| if &**n == "c00050" { "c00051" } else { &**n })
            .collect();
        assert!(!matches(&twice));
        assert_eq!(shared.summed(), 1, "one map, one sum");
    }

    #[test]
    fn a_few_versions_are_kept_and_small_maps_are_not() {
        let shared = Shared::default();
        let snaps: Vec<Snapshot> = (100..100 + KEPT + 1).map(clusters).collect();
        for s in &snaps {
            shared.sum(s.resources(ResourceType::Cluster));
        }
        assert_eq!(shared.summed(), KEPT + 1);
        // The newest KEPT are still there; the oldest was let go.
        for s in snaps.iter().rev().take(KEPT) {
            shared.sum(s.resources(ResourceType::Cluster));
        }
        assert_eq!(shared.summed(), KEPT + 1);
        shared.sum(snaps[0].resources(ResourceType::Cluster));
        assert_eq!(shared.summed(), KEPT + 2);
        let small = clusters(SMALL - 1);
        assert_eq!(shared.sum(small.resources(ResourceType::Cluster)), None);
    }
}
