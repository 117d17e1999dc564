//! What the streams of one server share: encodings that every stream would otherwise
//! compute for itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use xdsc_core::snapshot::{Resources, Version};

use super::requested::put_entry;

/// How many maps' key lists are kept: the current cluster map and the few before it that
/// streams may still hold while a change goes out.
const KEPT: usize = 4;

/// Maps with fewer names are compared name by name: a lock costs more than such a walk.
const SMALL: usize = 64;

/// What the streams of one server share, so that the work many of them repeat is done once.
///
/// Envoy subscribes to endpoints by cluster name, and over state of the world every endpoint
/// request lists every cluster it holds (10,000 names at 10,000 services). A stream's
/// subscription is then the keys of a cluster map it shares with the snapshot. Here the keys
/// of such a map are encoded once, as a request lists them in order, so a request that lists
/// exactly them is recognised, and decoded, by one comparison of bytes instead of a walk of
/// 10,000 names. (Real Envoy lists them in an order of its own; what makes its repeated
/// acknowledgements cheap is each stream knowing the hash of the list it last received.)
///
/// A [`Stream`](super::Stream) made with [`Stream::new`](super::Stream::new) has one of its
/// own; the server hands every stream the same one ([`Stream::with_shared`](super::Stream::with_shared)).
/// Cloning is O(1) and the clones share. What it keeps is a few maps' names, encoded
/// (about 140 KiB at 10,000 services each), not per stream.
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
    /// Per map (its version and size), its names as `resource_names` entries and their
    /// [`names_sum`], newest first.
    keys: Mutex<VecDeque<(Version, usize, Bytes, u128)>>,
    /// How many key lists were encoded, and how many requests matched one (tests count
    /// them).
    #[cfg(test)]
    encoded: std::sync::atomic::AtomicUsize,
    #[cfg(test)]
    matched: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// The names of `map`, in order, as canonical `resource_names` entries: the bytes a
    /// request that lists exactly them, in order, carries. `None` for small maps. Encoded
    /// once per map version (a version is of every name and resource version, so maps of
    /// one version have the same names).
    pub(crate) fn keys(&self, map: &Resources) -> Option<Bytes> {
        self.list(map).map(|(bytes, _)| bytes)
    }

    /// [`Shared::keys`] and the [`names_sum`] of the map's names, encoded and summed once
    /// per map version.
    fn list(&self, map: &Resources) -> Option<(Bytes, u128)> {
        // A resource named `*` would read as a wildcard in a request: never by bytes.
        if map.len() < SMALL || map.contains("*") {
            return None;
        }
        let key = (map.version(), map.len());
        let mut kept = self.0.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = kept.iter().position(|(v, n, ..)| (*v, *n) == key) {
            let entry = kept.remove(i)?;
            let list = (entry.2.clone(), entry.3);
            kept.push_front(entry);
            return Some(list);
        }
        let mut out = BytesMut::with_capacity(map.names().map(|n| n.len() + 3).sum());
        for n in map.names() {
            put_entry(n.as_bytes(), &mut out);
        }
        let bytes = out.freeze();
        let (sum, _) = names_sum(map.names().map(|n| n.as_bytes()));
        #[cfg(test)]
        self.0
            .encoded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        kept.push_front((key.0, key.1, bytes.clone(), sum));
        kept.truncate(KEPT);
        Some((bytes, sum))
    }

    /// Whether `names` (`count` of them, none `*`, whose [`names_sum`] is `sum`) are the
    /// names of `map`, in any order, each once, by the sums alone: one hash per name of the
    /// request and no sort (Envoy lists a new subscription in an order of its own). `false`
    /// also when that cannot be told this way (a small map), so callers sort the names then.
    ///
    /// Two lists of different names with the same count and sum are taken for the same
    /// names only if their 128-bit hashes collide. A client that crafted such a list
    /// affects only its own stream, which is then sent every resource of the map, as if it
    /// had named them all.
    pub(crate) fn sums_to_keys(&self, sum: u128, count: usize, map: &Resources) -> bool {
        count == map.len() && self.list(map).is_some_and(|(_, s)| s == sum)
    }

    /// Whether `entries` (a request's `resource_names`, canonical) list exactly the names of
    /// `map`, in order, by one comparison of bytes; `false` also when that cannot be told
    /// this way (a small map, names out of order), so callers walk the names then.
    pub(crate) fn lists_keys(&self, entries: &[u8], count: usize, map: &Resources) -> bool {
        let matched = count == map.len() && self.keys(map).is_some_and(|k| k == entries);
        #[cfg(test)]
        self.0
            .matched
            .fetch_add(usize::from(matched), std::sync::atomic::Ordering::Relaxed);
        matched
    }

    /// The key lists kept, newest first, each with its number of names: what the request
    /// decoder tries a request's names against before it reads them one by one.
    pub(crate) fn kept(&self) -> Vec<(usize, Bytes)> {
        let kept = self.0.keys.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter().map(|(_, n, b, _)| (*n, b.clone())).collect()
    }

    /// Keeps `entries`, `count` canonical `resource_names` entries of UTF-8 names, as if
    /// they were a map's keys (tests of the decoder).
    #[cfg(test)]
    pub(crate) fn keep(&self, entries: Bytes, count: usize) {
        let mut kept = self.0.keys.lock().unwrap_or_else(PoisonError::into_inner);
        kept.push_front((Version::EMPTY, count, entries, 0));
        kept.truncate(KEPT);
    }

    /// How many key lists were encoded.
    #[cfg(test)]
    pub(crate) fn encoded(&self) -> usize {
        self.0.encoded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many requests matched a key list.
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
    fn a_map_is_encoded_once_and_compares_as_requests_list_it() {
        let shared = Shared::default();
        let s = clusters(100);
        let map = s.resources(ResourceType::Cluster);
        let listed: RequestNames = map.names().map(|n| &**n).collect();
        for _ in 0..3 {
            assert!(shared.lists_keys(listed.encoded(), listed.len(), map));
        }
        assert_eq!(shared.encoded(), 1);
        let reversed: RequestNames = map.names().rev().map(|n| &**n).collect();
        assert!(!shared.lists_keys(reversed.encoded(), reversed.len(), map));
        let fewer: RequestNames = map.names().skip(1).map(|n| &**n).collect();
        assert!(!shared.lists_keys(fewer.encoded(), fewer.len(), map));
        // Another name of the same length in place of one.
        let other: RequestNames = map
            .names()
            .map(|n| if &**n == "c00050" { "c99999" } else { &**n })
            .collect();
        assert!(!shared.lists_keys(other.encoded(), other.len(), map));
        assert_eq!(shared.encoded(), 1, "one map, one encoding");
        // By sums: any order, but the same names once each.
        let sum = |names: &RequestNames| names_sum(names.raw()).0;
        assert!(shared.sums_to_keys(sum(&reversed), reversed.len(), map));
        assert!(shared.sums_to_keys(sum(&listed), listed.len(), map));
        assert!(!shared.sums_to_keys(sum(&other), other.len(), map));
        assert!(!shared.sums_to_keys(sum(&fewer), fewer.len(), map));
        // One name twice in place of another: as many names, not the same.
        let twice: RequestNames = map
            .names()
            .map(|n| if &**n == "c00050" { "c00051" } else { &**n })
            .collect();
        assert!(!shared.sums_to_keys(sum(&twice), twice.len(), map));
        assert_eq!(shared.encoded(), 1);
    }

    #[test]
    fn a_few_versions_are_kept_and_small_maps_are_not() {
        let shared = Shared::default();
        let snaps: Vec<Snapshot> = (100..100 + KEPT + 1).map(clusters).collect();
        for s in &snaps {
            shared.keys(s.resources(ResourceType::Cluster));
        }
        assert_eq!(shared.encoded(), KEPT + 1);
        // The newest KEPT are still there; the oldest was let go.
        for s in snaps.iter().rev().take(KEPT) {
            shared.keys(s.resources(ResourceType::Cluster));
        }
        assert_eq!(shared.encoded(), KEPT + 1);
        shared.keys(snaps[0].resources(ResourceType::Cluster));
        assert_eq!(shared.encoded(), KEPT + 2);
        let small = clusters(SMALL - 1);
        assert_eq!(shared.keys(small.resources(ResourceType::Cluster)), None);
    }
}
