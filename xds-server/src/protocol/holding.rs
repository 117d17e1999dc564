//! What one stream's client holds of a type, and the names it subscribed to, sharing
//! structure with the snapshots.
//!
//! A [`Holding`] is a reference to a snapshot's map of the type (the version the client was
//! last found to hold exactly) plus the few names where the client differs from it: after a
//! wildcard client acknowledges a type, what it holds is that version's map, not a copy, and
//! a change of one resource adds one entry until the client holds the newer version and
//! [`Holding::rebase`] points it there. [`Names`] does the same for subscriptions: a list of
//! names equal to the keys of a map the stream already holds (Envoy subscribes to the
//! endpoints of exactly the clusters it was sent) is that map.
//!
//! Nothing here decides what to send; that is [`super::Stream`]'s planning.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use xdsc_core::snapshot::{Resource, Resources, Version};

/// One resource the client holds: its version, and the resource when the server sent it
/// (a delta client declares versions it holds from an earlier stream without them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) version: Version,
    pub(crate) resource: Option<Arc<Resource>>,
}

impl Held {
    pub(crate) fn of(r: &Arc<Resource>) -> Held {
        Held {
            version: r.version(),
            resource: Some(r.clone()),
        }
    }
}

/// What the client holds of one type: `base` (a snapshot's map, shared) with `diff` applied.
#[derive(Clone, Debug, Default)]
pub(crate) struct Holding {
    base: Resources,
    /// Names held differently from `base`: `Some`, held at that version (instead of or
    /// besides the base); `None`, a base name not held. No entry repeats the base.
    diff: BTreeMap<Arc<str>, Option<Held>>,
    len: usize,
}

impl Holding {
    /// Holding exactly the resources of `map`.
    pub(crate) fn of(map: &Resources) -> Holding {
        Holding {
            base: map.clone(),
            diff: BTreeMap::new(),
            len: map.len(),
        }
    }

    /// Holding exactly `resources` (sorted by name, as a plan lists them).
    pub(crate) fn from_sorted(resources: impl IntoIterator<Item = (Arc<str>, Held)>) -> Holding {
        let diff: BTreeMap<Arc<str>, Option<Held>> =
            resources.into_iter().map(|(n, h)| (n, Some(h))).collect();
        Holding {
            len: diff.len(),
            base: Resources::default(),
            diff,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The map this holding is exactly, when it has no differences from it.
    pub(crate) fn exact(&self) -> Option<&Resources> {
        self.diff.is_empty().then_some(&self.base)
    }

    /// Whether this holds exactly `map` (in constant time: only when it is that map itself).
    pub(crate) fn is_exactly(&self, map: &Resources) -> bool {
        self.diff.is_empty() && self.base.same(map)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The version held of `name`, if any.
    pub(crate) fn version(&self, name: &str) -> Option<Version> {
        match self.diff.get(name) {
            Some(held) => held.as_ref().map(|h| h.version),
            None => self.base.get(name).map(|r| r.version()),
        }
    }

    /// The resource held under `name`, when the server sent it.
    pub(crate) fn resource(&self, name: &str) -> Option<&Arc<Resource>> {
        match self.diff.get(name) {
            Some(held) => held.as_ref().and_then(|h| h.resource.as_ref()),
            None => self.base.get(name),
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.version(name).is_some()
    }

    /// The names held, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &Arc<str>> + '_ {
        let mut base = self.base.names().peekable();
        let mut diff = self.diff.iter().peekable();
        std::iter::from_fn(move || {
            loop {
                let order = match (base.peek(), diff.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(b), Some((d, _))) => b.as_ref().cmp(d.as_ref()),
                };
                match order {
                    Ordering::Less => return base.next(),
                    Ordering::Equal => {
                        base.next();
                        if let Some((name, Some(_))) = diff.next() {
                            return Some(name);
                        }
                    }
                    Ordering::Greater => {
                        if let Some((name, Some(_))) = diff.next() {
                            return Some(name);
                        }
                    }
                }
            }
        })
    }

    pub(crate) fn insert(&mut self, name: Arc<str>, held: Held) {
        if !self.contains(&name) {
            self.len += 1;
        }
        if self
            .base
            .get(&name)
            .is_some_and(|r| r.version() == held.version)
        {
            self.diff.remove(&name);
        } else {
            self.diff.insert(name, Some(held));
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        if !self.contains(name) {
            return;
        }
        self.len -= 1;
        match self.base.get(name) {
            Some(r) => {
                self.diff.insert(r.name_arc().clone(), None);
            }
            None => {
                self.diff.remove(name);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = Holding::default();
    }

    /// Keeps only the names that are also in `names` (in order), in one walk of both: no
    /// lookup per name (an endpoint subscription of 10,000 clusters changed by one).
    pub(crate) fn retain_within<'a>(&mut self, names: impl Iterator<Item = &'a Arc<str>>) {
        let mut names = names.peekable();
        let mut gone = Vec::new();
        for held in self.names() {
            #[cfg(test)]
            walked::one();
            while names.next_if(|n| n.as_ref() < held.as_ref()).is_some() {}
            if names.peek().is_none_or(|n| n.as_ref() != held.as_ref()) {
                gone.push(held.clone());
            }
        }
        for n in gone {
            self.remove(&n);
        }
    }

    /// Keeps only the names `keep` accepts.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<Arc<str>> = self.names().filter(|n| !keep(n)).cloned().collect();
        for n in gone {
            self.remove(&n);
        }
    }

    /// The resources held under names `map` lacks (the server sent them earlier), in
    /// O(differences from the base + changes from the base to `map`).
    pub(crate) fn outside(&self, map: &Resources) -> Vec<Arc<Resource>> {
        let mut out: Vec<Arc<Resource>> = self
            .diff
            .iter()
            .filter(|(name, _)| !map.contains(name))
            .filter_map(|(_, held)| held.as_ref()?.resource.clone())
            .collect();
        for (name, base, newer) in self.base.changes(map) {
            if newer.is_none()
                && !self.diff.contains_key(&**name)
                && let Some(r) = base
            {
                out.push(r.clone());
            }
        }
        out
    }

    /// The names whose holding may differ from `map`: every other name of `map` is held at
    /// its version there, and nothing else is held. O(differences), not O(names).
    pub(crate) fn suspects<'a>(&'a self, map: &'a Resources) -> Vec<&'a Arc<str>> {
        let mut out: Vec<&Arc<str>> = self.diff.keys().collect();
        out.extend(self.base.changes(map).map(|(name, _, _)| name));
        out
    }

    /// Whether this holds exactly `map` and nothing else, in O(changes between the base and
    /// `map`); if so, holds `map` itself from now on, dropping the differences.
    pub(crate) fn rebase(&mut self, map: &Resources) -> bool {
        if self.base.same(map) {
            return self.diff.is_empty();
        }
        if self.len != map.len() {
            return false;
        }
        let mut count = 0;
        for (name, _, newer) in self.base.changes(map) {
            count += 1;
            if count > self.diff.len() {
                return false;
            }
            let agrees = match (self.diff.get(&**name), newer) {
                (Some(Some(h)), Some(r)) => h.version == r.version(),
                (Some(None), None) => true,
                _ => false,
            };
            if !agrees {
                return false;
            }
        }
        if count != self.diff.len() {
            return false;
        }
        *self = Holding::of(map);
        true
    }
}

/// The names a client subscribed to of one type: its own set, or the keys of a map the
/// stream holds (shared). Cloning is O(1) either way.
#[derive(Clone, Debug)]
pub enum Names {
    /// A set of the stream's own.
    Own(Arc<std::collections::BTreeSet<Arc<str>>>),
    /// The names of these resources.
    Keys(Resources),
}

impl Default for Names {
    fn default() -> Self {
        Names::Own(Arc::default())
    }
}

impl PartialEq for Names {
    fn eq(&self, other: &Names) -> bool {
        if self.len() != other.len() {
            return false;
        }
        match (self, other) {
            (Names::Keys(a), Names::Keys(b)) => key_changes(a, b).next().is_none(),
            _ => self.iter().eq(other.iter()),
        }
    }
}

/// The names in exactly one of two maps, in order: by their diff, which skips the subtrees
/// they share, so two versions of a map a few names apart (the cluster maps before and
/// after a Service is added) compare in O(changes), not O(names).
fn key_changes<'a>(a: &'a Resources, b: &'a Resources) -> impl Iterator<Item = &'a Arc<str>> {
    a.changes(b)
        .filter(|(_, old, new)| old.is_some() != new.is_some())
        .map(|(name, _, _)| name)
}

impl Eq for Names {}

impl Names {
    /// How many names.
    pub fn len(&self) -> usize {
        match self {
            Names::Own(s) => s.len(),
            Names::Keys(m) => m.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` is one of them.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Names::Own(s) => s.contains(name),
            Names::Keys(m) => m.contains(name),
        }
    }

    /// The names, in order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &Arc<str>> + '_> {
        let names: Box<dyn Iterator<Item = &Arc<str>> + '_> = match self {
            Names::Own(s) => Box::new(s.iter()),
            Names::Keys(m) => Box::new(m.names()),
        };
        #[cfg(test)]
        let names = Box::new(names.inspect(|_| walked::one()));
        names
    }

    /// The names in exactly one of `self` and `other`, in order: in one walk of both, or
    /// by the diff of the two maps when both are a map's keys.
    pub(crate) fn symmetric_difference<'a>(&'a self, other: &'a Names) -> Vec<&'a Arc<str>> {
        if let (Names::Keys(a), Names::Keys(b)) = (self, other) {
            return key_changes(a, b).collect();
        }
        let (mut a, mut b) = (self.iter().peekable(), other.iter().peekable());
        let mut out = Vec::new();
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.cmp(y) {
                    std::cmp::Ordering::Less => out.extend(a.next()),
                    std::cmp::Ordering::Greater => out.extend(b.next()),
                    std::cmp::Ordering::Equal => {
                        a.next();
                        b.next();
                    }
                },
                (Some(_), None) => out.extend(a.next()),
                (None, Some(_)) => out.extend(b.next()),
                (None, None) => return out,
            }
        }
    }

    /// The stream's own set, to change (copied from shared keys first).
    pub(crate) fn own(&mut self) -> &mut std::collections::BTreeSet<Arc<str>> {
        if let Names::Keys(m) = self {
            *self = Names::Own(Arc::new(m.names().cloned().collect()));
        }
        match self {
            Names::Own(s) => Arc::make_mut(s),
            Names::Keys(_) => unreachable!("made own above"),
        }
    }

    /// Whether these are exactly the names of `map`.
    pub(crate) fn equals_keys(&self, map: &Resources) -> bool {
        match self {
            Names::Keys(m) if m.same(map) => true,
            _ => self.len() == map.len() && self.iter().eq(map.names()),
        }
    }

    /// Shares `map`'s keys when they are exactly these names.
    pub(crate) fn share(&mut self, map: &Resources) {
        if !matches!(self, Names::Keys(m) if m.same(map)) && self.equals_keys(map) {
            *self = Names::Keys(map.clone());
        }
    }

    /// The keys of the first of `like` that are exactly `names` (in any order, a repeated
    /// name counted once), shared: one walk of the sorted names against each map of their
    /// number, no name looked up.
    pub(crate) fn keys_of(names: &[&str], like: &[Resources]) -> Option<Names> {
        if names.is_empty() || !like.iter().any(|c| c.len() <= names.len()) {
            return None;
        }
        let mut sorted = names.to_vec();
        if !sorted.is_sorted() {
            sorted.sort_unstable();
        }
        sorted.dedup();
        like.iter()
            .find(|c| c.len() == sorted.len() && sorted.iter().copied().eq(c.names().map(|n| &**n)))
            .map(|c| Names::Keys(c.clone()))
    }

    /// Adds `adds`, then removes `removes` (a delta request's subscribe and unsubscribe),
    /// sharing the keys of one of `like` when the result is exactly those.
    ///
    /// Shared keys that become another map's keys by the change (a cluster added, and its
    /// endpoints subscribed) move to that map in O(changes between the two maps + names
    /// changed), without a copy; otherwise the set is the stream's own, names interned from
    /// `like` where they are keys there, and compared with each of `like` whose size it has.
    pub(crate) fn update(&mut self, adds: &[&str], removes: &[&str], like: &[Resources]) {
        // A first subscription (Envoy's to the endpoints of every cluster it was sent): no
        // set built, no name looked up.
        if self.is_empty()
            && removes.is_empty()
            && let Some(keys) = Names::keys_of(adds, like)
        {
            *self = keys;
            return;
        }
        if let Names::Keys(m) = self
            && let Some(c) = like.iter().find(|c| keys_after(m, adds, removes, c))
        {
            *self = Names::Keys(c.clone());
            return;
        }
        if adds.is_empty() && removes.is_empty() {
            return;
        }
        let own = self.own();
        for a in adds {
            if !own.contains(*a) {
                let name = like
                    .iter()
                    .find_map(|c| c.get(a))
                    .map_or_else(|| Arc::from(*a), |r| r.name_arc().clone());
                own.insert(name);
            }
        }
        for r in removes {
            own.remove(*r);
        }
        for c in like {
            if self.len() == c.len() {
                self.share(c);
                if matches!(self, Names::Keys(_)) {
                    return;
                }
            }
        }
    }
}

/// Whether the keys of `m`, with `adds` added and then `removes` removed, are exactly the
/// keys of `c`, in O(changes from `m` to `c` + names changed), skipping what the two maps
/// share.
fn keys_after(m: &Resources, adds: &[&str], removes: &[&str], c: &Resources) -> bool {
    fn sorted<'a>(v: &[&'a str]) -> Vec<&'a str> {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    }
    let (adds, removes) = (sorted(adds), sorted(removes));
    let has = |v: &[&str], n: &str| v.binary_search(&n).is_ok();
    if adds.iter().any(|a| !has(&removes, a) && !c.contains(a))
        || removes.iter().any(|r| c.contains(r))
    {
        return false;
    }
    // Every name that differs between the maps must be made to agree by the change.
    m.changes(c).all(|(name, old, new)| match (old, new) {
        (None, Some(_)) => has(&adds, name) && !has(&removes, name),
        (Some(_), None) => has(&removes, name),
        _ => !has(&removes, name),
    })
}

/// How many names this thread's walks of subscriptions and holdings visited (for tests that
/// count what a change costs).
#[cfg(test)]
pub(crate) mod walked {
    use std::cell::Cell;

    thread_local!(static WALKED: Cell<usize> = const { Cell::new(0) });

    pub(crate) fn one() {
        WALKED.with(|w| w.set(w.get() + 1));
    }

    /// The count since the last call.
    pub(crate) fn take() -> usize {
        WALKED.with(|w| w.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use xdsc_core::snapshot::{ResourceType, Snapshot};

    use super::*;

    fn snap(items: &[(&str, u8)]) -> Snapshot {
        items.iter().fold(Snapshot::default(), |s, (n, c)| {
            s.with(Resource::new(ResourceType::Cluster, *n, vec![*c], vec![]))
        })
    }

    fn map(s: &Snapshot) -> &Resources {
        s.resources(ResourceType::Cluster)
    }

    #[test]
    fn differences_from_the_base_and_a_rebase_onto_the_newer_map() {
        let v1 = snap(&[("a", 1), ("b", 1), ("c", 1)]);
        let v2 = snap(&[("a", 1), ("b", 2), ("d", 1)]);
        let mut h = Holding::of(map(&v1));
        assert!(h.is_exactly(map(&v1)));
        assert!(!h.rebase(map(&v2)), "b, c and d differ");
        h.insert(
            Arc::from("b"),
            Held::of(v2.get(ResourceType::Cluster, "b").unwrap()),
        );
        h.remove("c");
        assert_eq!(h.names().map(|n| &**n).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h.outside(map(&v2)).len(), 0);
        assert!(!h.rebase(map(&v2)), "d is not held yet");
        h.insert(
            Arc::from("d"),
            Held::of(v2.get(ResourceType::Cluster, "d").unwrap()),
        );
        assert_eq!(
            h.suspects(map(&v2)).len(),
            3 + 3,
            "b, c, d twice: diff and changes"
        );
        assert!(h.rebase(map(&v2)));
        assert!(h.is_exactly(map(&v2)));
        assert_eq!(h.len(), 3);
        // Re-inserting what the base holds is no difference.
        h.insert(
            Arc::from("a"),
            Held::of(v2.get(ResourceType::Cluster, "a").unwrap()),
        );
        assert!(h.is_exactly(map(&v2)));
        // A name outside the map with its resource, as a kept-back cluster is.
        let gone = v1.get(ResourceType::Cluster, "c").unwrap().clone();
        h.insert(Arc::from("c"), Held::of(&gone));
        assert_eq!(h.outside(map(&v2)), [gone]);
        h.retain(|n| n != "c");
        assert!(h.is_exactly(map(&v2)));
    }

    /// `retain_within` keeps what `retain` with a lookup per name keeps, for holdings with
    /// names in the base, added and removed, against name lists before, among and after them.
    #[test]
    fn retain_within_a_sorted_list_keeps_what_a_lookup_keeps() {
        let s = snap(&[("b", 1), ("d", 1), ("f", 1), ("h", 1)]);
        let lists: [&[&str]; 6] = [
            &[],
            &["a", "z"],
            &["b", "f"],
            &["c", "d", "e", "h"],
            &["a", "b", "c", "d", "e", "f", "g", "h", "i"],
            &["g"],
        ];
        for list in lists {
            let mut h = Holding::of(map(&s));
            h.remove("d");
            h.insert(
                Arc::from("e"),
                Held::of(s.get(ResourceType::Cluster, "f").unwrap()),
            );
            h.insert(
                Arc::from("g"),
                Held::of(s.get(ResourceType::Cluster, "f").unwrap()),
            );
            let mut looked_up = h.clone();
            let names: Vec<Arc<str>> = list.iter().map(|n| Arc::from(*n)).collect();
            h.retain_within(names.iter());
            looked_up.retain(|n| list.contains(&n));
            let kept = |h: &Holding| h.names().map(|n| n.to_string()).collect::<Vec<_>>();
            assert_eq!(kept(&h), kept(&looked_up), "{list:?}");
            assert_eq!(h.len(), looked_up.len(), "{list:?}");
        }
    }

    #[test]
    fn names_share_the_keys_of_a_map_they_equal() {
        let s = snap(&[("a", 1), ("b", 1)]);
        let mut names = Names::Own(Arc::new(["a", "b"].map(Arc::from).into_iter().collect()));
        names.share(map(&s));
        assert!(matches!(names, Names::Keys(_)));
        names.own().insert(Arc::from("c"));
        assert!(matches!(names, Names::Own(_)));
        assert_eq!(names.len(), 3);
        assert!(!names.equals_keys(map(&s)));
    }

    #[test]
    fn a_delta_change_moves_shared_keys_to_the_map_it_equals() {
        let v1 = snap(&[("a", 1), ("b", 1)]);
        let v2 = v1
            .clone()
            .with(Resource::new(ResourceType::Cluster, "c", vec![1], vec![]));
        let v3 = snap(&[("a", 2), ("c", 1)]);
        let like = [map(&v2).clone(), map(&v3).clone()];
        let mut names = Names::default();
        names.update(&["b", "a"], &[], &[map(&v1).clone()]);
        assert!(
            matches!(&names, Names::Keys(m) if m.same(map(&v1))),
            "{names:?}"
        );
        // One cluster added, its endpoints subscribed: the newer map's keys, not a copy.
        names.update(&["c"], &[], &like);
        assert!(
            matches!(&names, Names::Keys(m) if m.same(map(&v2))),
            "{names:?}"
        );
        // One removed: the keys of the map without it.
        names.update(&[], &["b"], &like[1..]);
        assert!(
            matches!(&names, Names::Keys(m) if m.same(map(&v3))),
            "{names:?}"
        );
        // A name that no map has: the stream's own set, with the same names.
        names.update(&["z"], &[], &like);
        assert!(matches!(names, Names::Own(_)));
        assert_eq!(
            names.iter().map(|n| &**n).collect::<Vec<_>>(),
            ["a", "c", "z"]
        );
        // And back.
        names.update(&[], &["z"], &like);
        assert!(
            matches!(&names, Names::Keys(m) if m.same(map(&v3))),
            "{names:?}"
        );
        // Subscribing to what is already there and removing what is not is no change.
        names.update(&["a"], &["q"], &like[1..]);
        assert!(
            matches!(&names, Names::Keys(m) if m.same(map(&v3))),
            "{names:?}"
        );
        names.update(&["a"], &["a"], &like[1..]);
        assert_eq!(names.iter().map(|n| &**n).collect::<Vec<_>>(), ["c"]);
    }
}
