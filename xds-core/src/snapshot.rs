//! Versioned, immutable xDS snapshots and the differences between them.
//!
//! A [`Snapshot`] holds, for each [`ResourceType`], an ordered persistent map from resource name
//! to a reference-counted [`Resource`]. A resource carries its protobuf encoding (produced once,
//! when it was compiled) and a [`Version`] that is a hash of those bytes. A type's version is
//! derived from its resources' names and versions, and the snapshot's version from the type
//! versions, so equal content always means equal versions, in any process.
//!
//! This module does not compile anything (see [`crate::compile`]) and does not serve anything
//! (that is `xdsc-server`'s job); it only holds and compares results.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdMap;

use crate::model::ObjectKey;
pub use crate::resource_type::ResourceType;

/// A 128-bit content version: a hash of canonical bytes, printed as 32 lowercase hex digits.
///
/// Versions are never derived from counters, clocks or seeds, so the same content has the same
/// version in every process and on every replica.
///
/// ```
/// use xdsc_core::snapshot::Version;
/// let v = Version::of_bytes(b"hello");
/// assert_eq!(v, Version::of_bytes(b"hello"));
/// assert_ne!(v, Version::of_bytes(b"hello!"));
/// assert_eq!(v.to_string().len(), 32);
/// assert_eq!(v.to_string().parse::<Version>().unwrap(), v);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(u128);

impl Version {
    /// The version of the empty set (no resources of a type).
    pub const EMPTY: Version = Version(0);

    /// The version of some canonical bytes (XXH3, 128 bits).
    pub fn of_bytes(bytes: &[u8]) -> Version {
        Version(xxhash_rust::xxh3::xxh3_128(bytes))
    }

    /// The raw 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The version of a set of named resource versions, derived exactly as a type version is:
    /// the set of every resource of a type has the type's version. Order does not matter.
    /// To keep a set's version up to date as members come and go, use [`VersionSet`].
    ///
    /// ```
    /// use xdsc_core::snapshot::Version;
    /// let (a, b) = (Version::of_bytes(b"a"), Version::of_bytes(b"b"));
    /// assert_eq!(Version::of_set([("x", a), ("y", b)]), Version::of_set([("y", b), ("x", a)]));
    /// assert_ne!(Version::of_set([("x", a), ("y", b)]), Version::of_set([("x", b), ("y", a)]));
    /// assert_eq!(Version::of_set(std::iter::empty::<(&str, Version)>()), Version::EMPTY);
    /// ```
    pub fn of_set<'a>(items: impl IntoIterator<Item = (&'a str, Version)>) -> Version {
        items.into_iter().collect::<VersionSet>().version()
    }
}

/// The version of a set of named resources, updated in constant time as members are added
/// and removed: the wrapping sum of one hash per member (of its name and version), so the
/// order of the updates does not matter, and the set of every resource of a type has the
/// type's version ([`Resources::version`]).
///
/// The server uses it for the version of what one client should hold (a named subscription,
/// or a type with removed resources kept back), updated from the snapshot diff instead of
/// re-summed over every member.
///
/// ```
/// use xdsc_core::snapshot::{Version, VersionSet};
/// let (a, b) = (Version::of_bytes(b"a"), Version::of_bytes(b"b"));
/// let mut set = VersionSet::default();
/// set.insert("x", a);
/// set.insert("y", b);
/// assert_eq!(set.version(), Version::of_set([("y", b), ("x", a)]));
/// set.remove("x", a);
/// assert_eq!(set, [("y", b)].into_iter().collect());
/// set.remove("y", b);
/// assert_eq!(set.version(), Version::EMPTY);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VersionSet(u128);

impl VersionSet {
    /// The empty set, whose version is [`Version::EMPTY`].
    pub const EMPTY: VersionSet = VersionSet(0);

    /// Adds a member. Adding a name twice (even with the same version) counts it twice:
    /// replace a member by removing its old version first.
    pub fn insert(&mut self, name: &str, version: Version) {
        self.0 = self.0.wrapping_add(member(name, version));
    }

    /// Removes a member, given the version it was added with.
    pub fn remove(&mut self, name: &str, version: Version) {
        self.0 = self.0.wrapping_sub(member(name, version));
    }

    /// The set's version.
    pub const fn version(self) -> Version {
        Version(self.0)
    }
}

impl<'a> FromIterator<(&'a str, Version)> for VersionSet {
    fn from_iter<I: IntoIterator<Item = (&'a str, Version)>>(items: I) -> VersionSet {
        let mut set = VersionSet::EMPTY;
        for (name, version) in items {
            set.insert(name, version);
        }
        set
    }
}

impl fmt::Debug for VersionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionSet({})", self.version())
    }
}

/// Names up to this long are hashed from a buffer on the stack; longer ones are streamed.
const SHORT_NAME: usize = 256 - 17;

/// The contribution of one named resource to its set's version: XXH3-128 of the name, a zero
/// byte and the version's 16 little-endian bytes. Runs for every change of every stream, so
/// it does not allocate.
fn member(name: &str, version: Version) -> u128 {
    let version = version.0.to_le_bytes();
    if name.len() <= SHORT_NAME {
        let mut buf = [0u8; SHORT_NAME + 17];
        let n = name.len();
        buf[..n].copy_from_slice(name.as_bytes());
        // buf[n] is the zero separator already.
        buf[n + 1..n + 17].copy_from_slice(&version);
        xxhash_rust::xxh3::xxh3_128(&buf[..n + 17])
    } else {
        let mut h = xxhash_rust::xxh3::Xxh3Default::new();
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(&version);
        h.digest128()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

/// The error of parsing a [`Version`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a version (32 hex digits): {0:?}")]
pub struct ParseVersionError(String);

impl std::str::FromStr for Version {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(ParseVersionError(s.to_owned()));
        }
        u128::from_str_radix(s, 16)
            .map(Version)
            .map_err(|_| ParseVersionError(s.to_owned()))
    }
}

/// One compiled xDS resource: its name, encoded protobuf bytes, content version and provenance.
///
/// Resources are immutable and shared (`Arc`) by every snapshot that holds them: a resource
/// that did not change between two snapshots is the same allocation in both.
#[derive(Clone, PartialEq, Eq)]
pub struct Resource {
    name: Arc<str>,
    resource_type: ResourceType,
    body: Bytes,
    version: Version,
    provenance: Arc<[ObjectKey]>,
}

impl Resource {
    /// A resource from its canonical encoding. The version is computed from `body`.
    ///
    /// ```
    /// use xdsc_core::snapshot::{Resource, ResourceType, Version};
    /// let r = Resource::new(ResourceType::Cluster, "web", vec![10, 3, b'w', b'e', b'b'], vec![]);
    /// assert_eq!(r.version(), Version::of_bytes(&[10, 3, b'w', b'e', b'b']));
    /// ```
    pub fn new(
        resource_type: ResourceType,
        name: impl Into<Arc<str>>,
        body: impl Into<Bytes>,
        provenance: impl Into<Arc<[ObjectKey]>>,
    ) -> Resource {
        let body = body.into();
        Resource {
            name: name.into(),
            resource_type,
            version: Version::of_bytes(&body),
            body,
            provenance: provenance.into(),
        }
    }

    /// The resource name (what Envoy subscribes to).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resource name as a shared string.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The xDS type of this resource.
    pub fn resource_type(&self) -> ResourceType {
        self.resource_type
    }

    /// The canonical protobuf encoding of the resource message (not wrapped in `Any`).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The content version: a hash of [`Resource::body`].
    pub fn version(&self) -> Version {
        self.version
    }

    /// The model objects this resource was built from, in order. Their own provenance (the
    /// Kubernetes object or file a model object came from) is on the objects, see
    /// [`crate::model::Source`].
    pub fn provenance(&self) -> &[ObjectKey] {
        &self.provenance
    }

    /// The resource wrapped in a protobuf `Any`, as it goes into a discovery response.
    /// The bytes are shared, not copied.
    pub fn to_any(&self) -> envoy_types::pb::google::protobuf::Any {
        envoy_types::pb::google::protobuf::Any {
            type_url: self.resource_type.type_url().to_owned(),
            value: self.body.to_vec(),
        }
    }
}

impl fmt::Debug for Resource {
    // The body may hold private keys (secrets); never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("type", &self.resource_type)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("bytes", &self.body.len())
            .finish()
    }
}

/// All resources of one type in a snapshot, ordered by name, with the type's version.
#[derive(Clone, Default)]
pub struct Resources {
    map: OrdMap<Arc<str>, Arc<Resource>>,
    set: VersionSet,
    /// The sum of the resources' encoded sizes.
    bytes: usize,
}

impl Resources {
    /// The resource of that name, if any.
    pub fn get(&self, name: &str) -> Option<&Arc<Resource>> {
        self.map.get(name)
    }

    /// Whether a resource of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The resources in name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Resource>> + '_ {
        self.map.values()
    }

    /// The resource names in order.
    pub fn names(&self) -> impl DoubleEndedIterator<Item = &Arc<str>> + '_ {
        self.map.keys()
    }

    /// How many resources there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The sum of the resources' encoded sizes ([`Resource::body`]), kept as they are
    /// inserted and removed: what a response of all of them carries, without visiting each.
    ///
    /// ```
    /// use xdsc_core::snapshot::{Resource, ResourceType, Snapshot};
    /// let s = Snapshot::default()
    ///     .with(Resource::new(ResourceType::Cluster, "a", vec![1, 2], vec![]))
    ///     .with(Resource::new(ResourceType::Cluster, "b", vec![3], vec![]));
    /// assert_eq!(s.resources(ResourceType::Cluster).bytes(), 3);
    /// ```
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The type version: derived from every resource's name and version, independent of the
    /// order they were inserted in. [`Version::EMPTY`] when there are no resources.
    pub fn version(&self) -> Version {
        self.set.version()
    }

    /// The set of every resource's name and version, whose version is [`Resources::version`]:
    /// what a client holding all of them holds, without hashing each member again.
    ///
    /// ```
    /// use xdsc_core::snapshot::{Resource, ResourceType, Snapshot, VersionSet};
    /// let s = Snapshot::default().with(Resource::new(ResourceType::Cluster, "a", vec![1], vec![]));
    /// let clusters = s.resources(ResourceType::Cluster);
    /// let summed: VersionSet = clusters.iter().map(|r| (r.name(), r.version())).collect();
    /// assert_eq!(clusters.version_set(), summed);
    /// ```
    pub fn version_set(&self) -> VersionSet {
        self.set
    }

    /// Inserts or replaces a resource. Returns the previous one under that name.
    pub(crate) fn insert(&mut self, resource: Arc<Resource>) -> Option<Arc<Resource>> {
        self.set.insert(&resource.name, resource.version);
        self.bytes += resource.body.len();
        let old = self.map.insert(resource.name.clone(), resource);
        if let Some(old) = &old {
            self.set.remove(&old.name, old.version);
            self.bytes -= old.body.len();
        }
        old
    }

    /// Removes a resource by name. Returns it if it was there.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Arc<Resource>> {
        let old = self.map.remove(name)?;
        self.set.remove(&old.name, old.version);
        self.bytes -= old.body.len();
        Some(old)
    }

    /// Whether two maps are the same allocation (no change at all), in constant time.
    ///
    /// ```
    /// use xdsc_core::snapshot::{Resource, ResourceType, Snapshot};
    /// let s = Snapshot::default().with(Resource::new(ResourceType::Cluster, "a", vec![], vec![]));
    /// let t = ResourceType::Cluster;
    /// assert!(s.resources(t).same(s.clone().resources(t)));
    /// ```
    pub fn same(&self, other: &Resources) -> bool {
        self.map.ptr_eq(&other.map)
    }

    /// What differs from `self` (older) to `newer`, in name order: each name with its
    /// resource in each (`None` where it is absent). Subtrees the two share are skipped by
    /// pointer, so two versions of a type a few changes apart compare in
    /// O(changes × log(resources)).
    ///
    /// ```
    /// use xdsc_core::snapshot::{Resource, ResourceType, Snapshot};
    /// let t = ResourceType::Cluster;
    /// let a = Snapshot::default().with(Resource::new(t, "a", vec![1], vec![]));
    /// let b = a.clone().with(Resource::new(t, "b", vec![2], vec![]));
    /// let changes: Vec<_> = a.resources(t).changes(b.resources(t)).collect();
    /// assert_eq!(changes.len(), 1);
    /// assert_eq!((&**changes[0].0, changes[0].1.is_none()), ("b", true));
    /// ```
    pub fn changes<'a>(
        &'a self,
        newer: &'a Resources,
    ) -> impl Iterator<
        Item = (
            &'a Arc<str>,
            Option<&'a Arc<Resource>>,
            Option<&'a Arc<Resource>>,
        ),
    > + 'a {
        self.map.diff(&newer.map).filter_map(|item| match item {
            imbl::ordmap::DiffItem::Add(name, r) => Some((name, None, Some(r))),
            imbl::ordmap::DiffItem::Remove(name, r) => Some((name, Some(r), None)),
            imbl::ordmap::DiffItem::Update { old, new } => {
                (old.1.version != new.1.version).then_some((old.0, Some(old.1), Some(new.1)))
            }
        })
    }
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("len", &self.len())
            .field("version", &self.version())
            .finish()
    }
}

impl PartialEq for Resources {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set && (self.same(other) || self.map == other.map)
    }
}

impl Eq for Resources {}

/// An immutable, versioned set of xDS resources of every type.
///
/// Cloning is cheap (persistent maps); two snapshots compiled from models that share objects
/// share the resources built from them.
///
/// ```
/// use xdsc_core::snapshot::{ResourceType, Snapshot, Version};
/// let empty = Snapshot::default();
/// assert!(empty.resources(ResourceType::Cluster).is_empty());
/// assert_eq!(empty.resources(ResourceType::Cluster).version(), Version::EMPTY);
/// assert_eq!(empty.version(), Snapshot::default().version());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    types: [Resources; 5],
}

impl Snapshot {
    /// The resources of one type.
    pub fn resources(&self, resource_type: ResourceType) -> &Resources {
        &self.types[resource_type.index()]
    }

    /// The snapshot with `resource` added, replacing any of the same type and name. For
    /// embedders that build some resources themselves (for example filters xdsc does not
    /// model); xdsc does not validate them.
    ///
    /// ```
    /// use xdsc_core::snapshot::{Resource, ResourceType, Snapshot};
    /// let s = Snapshot::default().with(Resource::new(ResourceType::Cluster, "custom", vec![10, 1, b'x'], vec![]));
    /// assert!(s.get(ResourceType::Cluster, "custom").is_some());
    /// ```
    pub fn with(mut self, resource: Resource) -> Snapshot {
        let t = resource.resource_type();
        self.resources_mut(t).insert(Arc::new(resource));
        self
    }

    pub(crate) fn resources_mut(&mut self, resource_type: ResourceType) -> &mut Resources {
        &mut self.types[resource_type.index()]
    }

    /// One resource by type and name.
    pub fn get(&self, resource_type: ResourceType, name: &str) -> Option<&Arc<Resource>> {
        self.resources(resource_type).get(name)
    }

    /// The snapshot version: a hash of the five type versions.
    pub fn version(&self) -> Version {
        let mut buf = [0u8; 16 * 5];
        for (i, t) in self.types.iter().enumerate() {
            buf[i * 16..(i + 1) * 16].copy_from_slice(&t.set.0.to_le_bytes());
        }
        Version::of_bytes(&buf)
    }

    /// Every resource of every type, types in make-before-break order, names in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Resource>> + '_ {
        self.types.iter().flat_map(|t| t.iter())
    }

    /// The total number of resources.
    pub fn len(&self) -> usize {
        self.types.iter().map(Resources::len).sum()
    }

    /// Whether the snapshot holds no resources at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What changed from `self` (older) to `newer`, per type. Types whose version did not
    /// change are skipped in constant time; within a changed type, subtrees the two snapshots
    /// share are compared by pointer.
    ///
    /// ```
    /// use xdsc_core::snapshot::Snapshot;
    /// let a = Snapshot::default();
    /// assert!(a.diff(&a.clone()).is_empty());
    /// ```
    pub fn diff(&self, newer: &Snapshot) -> SnapshotDiff {
        let mut out = SnapshotDiff::default();
        for t in ResourceType::ALL {
            let (old, new) = (self.resources(t), newer.resources(t));
            if old.set == new.set && (old.same(new) || old.map.len() == new.map.len()) {
                // Equal type versions: content hashes of every (name, version) pair agree.
                continue;
            }
            let d = &mut out.types[t.index()];
            for (name, before, after) in old.changes(new) {
                match (before, after) {
                    (None, _) => d.added.push(name.clone()),
                    (_, None) => d.removed.push(name.clone()),
                    _ => d.changed.push(name.clone()),
                }
            }
        }
        out
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Snapshot");
        s.field("version", &self.version());
        for t in ResourceType::ALL {
            s.field(t.short_name(), self.resources(t));
        }
        s.finish()
    }
}

/// The names added, changed and removed in one resource type between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeDiff {
    /// Names present only in the newer snapshot, in order.
    pub added: Vec<Arc<str>>,
    /// Names present in both whose version differs, in order.
    pub changed: Vec<Arc<str>>,
    /// Names present only in the older snapshot, in order.
    pub removed: Vec<Arc<str>>,
}

impl TypeDiff {
    /// Whether nothing changed in this type.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The per-type difference between two snapshots, see [`Snapshot::diff`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    types: [TypeDiff; 5],
}

impl SnapshotDiff {
    /// The difference in one type.
    pub fn get(&self, resource_type: ResourceType) -> &TypeDiff {
        &self.types[resource_type.index()]
    }

    /// Whether nothing changed in any type.
    pub fn is_empty(&self) -> bool {
        self.types.iter().all(TypeDiff::is_empty)
    }

    /// The types that changed, in make-before-break order.
    pub fn changed_types(&self) -> impl Iterator<Item = ResourceType> + '_ {
        ResourceType::ALL
            .into_iter()
            .filter(|t| !self.get(*t).is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(t: ResourceType, name: &str, body: &[u8]) -> Arc<Resource> {
        Arc::new(Resource::new(t, name, body.to_vec(), Vec::new()))
    }

    #[test]
    fn type_version_is_order_independent_and_reverts() {
        let mut a = Resources::default();
        a.insert(res(ResourceType::Cluster, "x", b"1"));
        a.insert(res(ResourceType::Cluster, "y", b"2"));
        let mut b = Resources::default();
        b.insert(res(ResourceType::Cluster, "y", b"2"));
        b.insert(res(ResourceType::Cluster, "x", b"1"));
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), Version::EMPTY);
        assert_eq!(
            a.version(),
            Version::of_set(a.iter().map(|r| (r.name(), r.version())))
        );

        // Swapping bodies between names changes the version.
        let mut c = Resources::default();
        c.insert(res(ResourceType::Cluster, "x", b"2"));
        c.insert(res(ResourceType::Cluster, "y", b"1"));
        assert_ne!(a.version(), c.version());

        // Replace then restore gives the original version back; removing all gives EMPTY.
        let before = a.version();
        a.insert(res(ResourceType::Cluster, "x", b"changed"));
        assert_ne!(a.version(), before);
        a.insert(res(ResourceType::Cluster, "x", b"1"));
        assert_eq!(a.version(), before);
        a.remove("x");
        a.remove("y");
        assert_eq!(a.version(), Version::EMPTY);
        assert!(a.remove("nope").is_none());
    }

    #[test]
    fn diff_reports_added_changed_removed() {
        let mut old = Snapshot::default();
        let r = old.resources_mut(ResourceType::Route);
        r.insert(res(ResourceType::Route, "keep", b"k"));
        r.insert(res(ResourceType::Route, "change", b"c1"));
        r.insert(res(ResourceType::Route, "drop", b"d"));
        let mut new = old.clone();
        let r = new.resources_mut(ResourceType::Route);
        r.insert(res(ResourceType::Route, "change", b"c2"));
        r.remove("drop");
        r.insert(res(ResourceType::Route, "add", b"a"));
        // Re-inserting identical content is not a change.
        r.insert(res(ResourceType::Route, "keep", b"k"));

        let d = old.diff(&new);
        let t = d.get(ResourceType::Route);
        assert_eq!(t.added, vec![Arc::from("add")]);
        assert_eq!(t.changed, vec![Arc::from("change")]);
        assert_eq!(t.removed, vec![Arc::from("drop")]);
        assert_eq!(
            d.changed_types().collect::<Vec<_>>(),
            vec![ResourceType::Route]
        );
        assert_ne!(old.version(), new.version());
        assert!(new.diff(&new.clone()).is_empty());
    }

    #[test]
    fn a_member_hashes_name_zero_and_version_however_long_the_name() {
        let v = Version::of_bytes(b"content");
        for len in [0, 1, SHORT_NAME - 1, SHORT_NAME, SHORT_NAME + 1, 4096] {
            let name = "n".repeat(len);
            let mut bytes = name.as_bytes().to_vec();
            bytes.push(0);
            bytes.extend_from_slice(&v.as_u128().to_le_bytes());
            assert_eq!(
                member(&name, v),
                xxhash_rust::xxh3::xxh3_128(&bytes),
                "name of {len} bytes"
            );
        }
    }

    #[test]
    fn a_version_set_updated_member_by_member_equals_the_type_version() {
        let mut r = Resources::default();
        let mut set = VersionSet::EMPTY;
        for (name, body) in [("a", b"1"), ("b", b"2"), ("c", b"3")] {
            let res = res(ResourceType::Route, name, body);
            set.insert(name, res.version());
            r.insert(res);
        }
        assert_eq!(set.version(), r.version());
        let old = r.remove("b").unwrap();
        set.remove("b", old.version());
        assert_eq!(set.version(), r.version());
        assert_eq!(set, r.iter().map(|x| (x.name(), x.version())).collect());
        // The byte count follows replacements and removals too.
        r.insert(res(ResourceType::Route, "a", b"longer"));
        assert_eq!(r.bytes(), r.iter().map(|x| x.body().len()).sum::<usize>());
        assert_eq!(r.bytes(), "longer".len() + 1);
    }

    #[test]
    fn type_urls_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_type_url(t.type_url()), Some(t));
            assert!(t.type_url().ends_with(t.message_name()));
        }
    }
}
