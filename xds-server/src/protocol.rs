//! The per-stream xDS protocol as a pure state machine.
//!
//! A [`Stream`] holds what one Envoy stream has subscribed to, what it holds (acknowledged, or
//! declared when it reconnected), the response awaiting acknowledgement per type, and the
//! newest snapshot. Requests and snapshots go in ([`Stream::on_request`],
//! [`Stream::on_delta_request`], [`Stream::on_snapshot`]); responses to send and events to
//! record come out ([`Step`]). There is no I/O, no clock and no async here: the gRPC service only
//! moves events in and actions out, so every protocol rule is tested without a network.
//!
//! Rules implemented (xDS protocol, v3):
//! - At most one unacknowledged response per type; newer snapshots coalesce while waiting.
//! - ACK: the response nonce matches and there is no error detail. NACK: it matches and there
//!   is an error detail; the rejected content is recorded and not sent again; the next
//!   different content is. Requests with a stale nonce do not acknowledge anything.
//! - State of the world: clusters and listeners (and wildcard subscriptions) are sent in full;
//!   other types send the subscribed resources that changed. A reconnecting client presenting
//!   the version it holds receives nothing if that is still the content.
//! - Delta: per-resource versions, `initial_resource_versions` on reconnect, subscribe and
//!   unsubscribe, removals, and a removal notice for subscribed names that do not exist.
//! - Aggregated streams push make-before-break: clusters, then endpoints, then listeners,
//!   then routes. Endpoints go out as soon as Envoy asks for them (it asks only for clusters
//!   it has, and holds its acknowledgement of new clusters until their endpoints arrive);
//!   listeners and routes wait until clusters and endpoints are acknowledged and current.
//!   Clusters that left the snapshot stay with the client until its listeners and routes are
//!   current, so no request is routed to a missing cluster. Secrets are not ordered (Envoy
//!   waits for them while warming).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use xdsc_core::model::ObjectKey;
use xdsc_core::snapshot::{Resource, ResourceType, Resources, Snapshot, Version, VersionSet};

mod holding;
mod requested;
mod shared;

pub use holding::Names;
use holding::{Held, Holding};
pub use requested::RequestNames;
pub(crate) use requested::{KEY as NAME_KEY, put_entry};
pub use shared::Shared;

/// Which protocol variant a stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// State of the world (`StreamAggregatedResources`, `Stream*`).
    Sotw,
    /// Incremental (`DeltaAggregatedResources`, `Delta*`).
    Delta,
}

/// Limits that protect the server from one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most resource names one stream may subscribe to, over all types.
    pub max_subscribed_names: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_subscribed_names: 100_000,
        }
    }
}

/// A request, in the form the state machine needs (both variants).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The type URL.
    pub type_url: String,
    /// State of the world: the version the client holds (empty on first contact).
    pub version_info: String,
    /// State of the world: the complete set of names subscribed (empty: wildcard on first
    /// request for any type, `*` explicitly).
    pub resource_names: RequestNames,
    /// Delta: names added to the subscription.
    pub subscribe: Vec<String>,
    /// Delta: names removed from the subscription.
    pub unsubscribe: Vec<String>,
    /// Delta: the versions the client already holds (on a new stream).
    pub initial_versions: Vec<(String, String)>,
    /// The nonce of the response this request answers (empty on first contact).
    pub response_nonce: String,
    /// Envoy's error detail when it rejects the response (a NACK).
    pub error: Option<String>,
}

/// A response to send: assembled by the service from the resources' pre-encoded bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The type.
    pub resource_type: ResourceType,
    /// The nonce the client will echo.
    pub nonce: String,
    /// State of the world `version_info` / delta `system_version_info`.
    pub version_info: String,
    /// The resources, in name order.
    pub resources: Entries,
    /// Delta only: names the client must forget.
    pub removed: Vec<Arc<str>>,
}

impl Response {
    /// The total size of the resources' encoded bytes.
    pub fn resource_bytes(&self) -> usize {
        self.resources.bytes()
    }
}

/// The resources of a response, in name order: every resource of the snapshot's map of the
/// type (the map itself, shared: a wildcard stream's response lists no resource of its own),
/// or a list of them.
///
/// ```
/// use std::sync::Arc;
/// use xdsc_core::snapshot::{Resource, ResourceType, Snapshot};
/// use xdsc_server::protocol::Entries;
/// let s = Snapshot::default()
///     .with(Resource::new(ResourceType::Cluster, "a", vec![1, 2], vec![]))
///     .with(Resource::new(ResourceType::Cluster, "b", vec![3], vec![]));
/// let whole = Entries::Whole(s.resources(ResourceType::Cluster).clone());
/// let listed = Entries::from(vec![Arc::clone(s.get(ResourceType::Cluster, "a").unwrap())]);
/// assert_eq!((whole.len(), whole.bytes()), (2, 3));
/// assert_eq!(listed.iter().map(|r| r.name()).collect::<Vec<_>>(), ["a"]);
/// ```
#[derive(Clone, Debug)]
pub enum Entries {
    /// All the resources of the map.
    Whole(Resources),
    /// These, in name order.
    List(Vec<Arc<Resource>>),
}

impl Entries {
    /// How many there are.
    pub fn len(&self) -> usize {
        match self {
            Entries::Whole(map) => map.len(),
            Entries::List(list) => list.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resources in name order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &Arc<Resource>> + '_> {
        match self {
            Entries::Whole(map) => Box::new(map.iter()),
            Entries::List(list) => Box::new(list.iter()),
        }
    }

    /// The sum of their encoded sizes (kept by the map for a whole one).
    pub fn bytes(&self) -> usize {
        match self {
            Entries::Whole(map) => map.bytes(),
            Entries::List(list) => list.iter().map(|r| r.body().len()).sum(),
        }
    }

    /// Whether one of them is named `name`.
    fn contains(&self, name: &str) -> bool {
        match self {
            Entries::Whole(map) => map.contains(name),
            Entries::List(list) => list.binary_search_by(|r| r.name().cmp(name)).is_ok(),
        }
    }

    /// As a list (a copy of the map's members for a whole one).
    pub fn to_vec(&self) -> Vec<Arc<Resource>> {
        match self {
            Entries::Whole(map) => map.iter().cloned().collect(),
            Entries::List(list) => list.clone(),
        }
    }
}

impl From<Vec<Arc<Resource>>> for Entries {
    fn from(list: Vec<Arc<Resource>>) -> Self {
        Entries::List(list)
    }
}

impl Default for Entries {
    fn default() -> Self {
        Entries::List(Vec::new())
    }
}

/// The same resources, however they are held.
impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// A rejected response, as recorded for metrics and the debug endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    /// The type.
    pub resource_type: ResourceType,
    /// The version that was rejected.
    pub version_info: String,
    /// Envoy's error detail.
    pub detail: String,
    /// The resources in the rejected response.
    pub resources: Vec<Arc<str>>,
    /// The model objects the rejected resources were built from.
    pub provenance: Vec<ObjectKey>,
}

/// Something that happened on the stream, for metrics and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A response was acknowledged.
    Ack {
        /// The type.
        resource_type: ResourceType,
        /// The version acknowledged.
        version_info: String,
    },
    /// A response was rejected.
    Nack(Nack),
    /// A request carried a nonce that is not the latest for its type; it acknowledged nothing.
    StaleNonce {
        /// The type.
        resource_type: ResourceType,
    },
}

/// Why a request is refused; the service ends the stream with a matching gRPC status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The type URL is not one xdsc serves.
    #[error("unknown type URL {0:?}")]
    UnknownType(String),
    /// A per-type service received another type.
    #[error("this service serves {expected}, not {got:?}")]
    WrongType {
        /// The type the service serves.
        expected: ResourceType,
        /// The type URL received.
        got: String,
    },
    /// Too many names subscribed.
    #[error("subscribed to {count} resource names, more than the limit of {limit}")]
    TooManyNames {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// What a step produced.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Responses to send, in order.
    pub responses: Vec<Response>,
    /// Events to record.
    pub events: Vec<Event>,
}

#[derive(Clone, Debug)]
struct Pending {
    nonce: String,
    version_info: String,
    /// Sent resources.
    sent: Sent,
    /// A state-of-the-world response that replaces everything the client holds.
    full: bool,
    /// The content key, for never resending rejected content.
    key: String,
    /// The snapshot the response was planned at, while the subscription has not changed
    /// since: once it is acknowledged, the type has nothing to send at that snapshot.
    base: Option<Arc<Snapshot>>,
    /// The set the client holds once it acknowledges.
    desired: VersionSet,
    /// The snapshot the response was planned at.
    planned: Arc<Snapshot>,
    /// Names subscribed to or unsubscribed from since it was planned, as in
    /// [`Clean::resubscribed`]: they become the clean state's once it is acknowledged.
    resubscribed: BTreeMap<Arc<str>, bool>,
}

/// What a pending response sent.
#[derive(Clone, Debug)]
enum Sent {
    /// Each resource sent; `None` is a delta removal.
    List(Vec<(Arc<str>, Option<Arc<Resource>>)>),
    /// Every resource of the snapshot's map of the type and no removal (an initial sync):
    /// the map itself, shared, rather than a list of 10,000 per stream at 10,000 services.
    Whole(Resources),
}

impl Sent {
    /// Each resource sent, `None` a delta removal.
    fn into_list(self) -> Vec<(Arc<str>, Option<Arc<Resource>>)> {
        match self {
            Sent::List(list) => list,
            Sent::Whole(map) => map
                .iter()
                .map(|r| (r.name_arc().clone(), Some(r.clone())))
                .collect(),
        }
    }
}

/// Where planning of a type can start from the snapshot diff: with the current subscription
/// and what the client holds, the type had nothing to send at `snapshot`, and the client was
/// to hold the set of version `desired`. Only names that changed since then are checked.
#[derive(Clone, Debug)]
struct Clean {
    snapshot: Arc<Snapshot>,
    desired: VersionSet,
    /// Names the client subscribed to or unsubscribed from since (Envoy subscribes to the
    /// endpoints of each new cluster by name: a delta subscribe, or one more name in a state of
    /// the world request), with whether each was subscribed at `snapshot`: they are checked
    /// too, so a new cluster's endpoints cost O(changes), not a plan of every subscribed name.
    resubscribed: BTreeMap<Arc<str>, bool>,
}

/// How many names a client may subscribe to or unsubscribe from between two acknowledgements
/// before planning starts again from the full set.
const MAX_RESUBSCRIBED: usize = 4096;

/// What a stream knows about one type.
#[derive(Clone, Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: Names,
    held: Holding,
    told_absent: BTreeSet<Arc<str>>,
    pending: Option<Pending>,
    rejected: Option<String>,
    acked_version: Option<String>,
    last_nack: Option<Nack>,
    /// The snapshot type version at which this type was last found settled (nothing pending,
    /// nothing to send, and, for endpoints and routes, covering what the client holds of the
    /// type before). Cleared whenever the subscription, what the client holds, or the
    /// pending response changes; a snapshot whose type version is unchanged then costs O(1).
    settled_at: Option<Version>,
    /// Set by an acknowledgement; cleared when the subscription or what the client holds
    /// changes any other way.
    clean: Option<Clean>,
    /// State of the world: the last request's names as it listed them, when there were many
    /// ([`Listed`]).
    listed: Option<Listed>,
}

/// A state-of-the-world request's `resource_names` entries, by a 128-bit hash of their
/// bytes, and whether they named `*`. After a request, the subscription is the names it
/// listed; a request with the same entries lists the same names, in the same order. Envoy
/// lists its endpoint names in its own order (the order its watches were made in, newest
/// first, not sorted), and repeats that order in every acknowledgement: comparing the hash
/// of the bytes needs neither a walk of the names nor a sort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listed {
    hash: u128,
    star: bool,
}

/// Requests listing fewer names are compared name by name: a hash costs more than the walk.
pub(crate) const LISTED_MIN: usize = 64;

impl TypeState {
    /// The client subscribed to or unsubscribed from `names`: records, for the clean
    /// state and the pending response's base, whether each was subscribed before, so that
    /// planning from them checks these names too. False when there are too many to record.
    fn resubscribe<'a>(&mut self, names: impl Iterator<Item = &'a str> + Clone) -> bool {
        let mut bases: Vec<&mut BTreeMap<Arc<str>, bool>> = Vec::new();
        if let Some(c) = self.clean.as_mut() {
            bases.push(&mut c.resubscribed);
        }
        if let Some(p) = self.pending.as_mut().filter(|p| p.base.is_some()) {
            bases.push(&mut p.resubscribed);
        }
        for base in bases {
            for n in names.clone() {
                if !base.contains_key(n) {
                    if base.len() >= MAX_RESUBSCRIBED {
                        return false;
                    }
                    base.insert(Arc::from(n), self.names.contains(n));
                }
            }
        }
        true
    }

    /// The subscription or what the client holds changed other than by an acknowledgement:
    /// the next plan starts from the full set.
    fn forget_clean(&mut self) {
        self.clean = None;
        if let Some(p) = &mut self.pending {
            p.base = None;
        }
    }
}

/// A stream's state of each type it was asked for, one slot per type, each state allocated
/// when its type is first requested. (A `BTreeMap` of them allocated a leaf of eleven
/// states, 6.4 KiB, for the five there can be: a tenth of an idle stream's memory.)
#[derive(Clone, Debug, Default)]
struct Types([Option<Box<TypeState>>; ResourceType::ALL.len()]);

impl Types {
    fn get(&self, t: &ResourceType) -> Option<&TypeState> {
        self.0[*t as usize].as_deref()
    }

    fn get_mut(&mut self, t: &ResourceType) -> Option<&mut TypeState> {
        self.0[*t as usize].as_deref_mut()
    }

    fn contains_key(&self, t: &ResourceType) -> bool {
        self.0[*t as usize].is_some()
    }

    /// The state of `t`, made empty if the type had none.
    fn or_default(&mut self, t: ResourceType) -> &mut TypeState {
        self.0[t as usize].get_or_insert_default()
    }

    /// The types with a state and their states, in [`ResourceType::ALL`] order.
    fn iter(&self) -> impl Iterator<Item = (&ResourceType, &TypeState)> {
        // `ALL` is in declaration order, so a type's slot is its discriminant.
        ResourceType::ALL
            .iter()
            .zip(&self.0)
            .filter_map(|(t, st)| Some((t, st.as_deref()?)))
    }

    fn keys(&self) -> impl Iterator<Item = &ResourceType> {
        self.iter().map(|(t, _)| t)
    }

    fn values(&self) -> impl Iterator<Item = &TypeState> {
        self.iter().map(|(_, st)| st)
    }
}

/// Tests read a type's state as they read a map's.
#[cfg(test)]
impl std::ops::Index<&ResourceType> for Types {
    type Output = TypeState;
    fn index(&self, t: &ResourceType) -> &TypeState {
        self.get(t).expect("a state of the type")
    }
}

/// What a type would send now.
struct Plan {
    version_info: String,
    /// The set whose version `version_info` is.
    desired: VersionSet,
    resources: Entries,
    removed: Vec<Arc<str>>,
    full: bool,
    key: String,
    /// Whether removed clusters are kept back in it.
    kept: bool,
}

/// A read-only view of one type of a stream, for the debug endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeStatus {
    /// The type.
    pub resource_type: ResourceType,
    /// Whether the subscription is a wildcard.
    pub wildcard: bool,
    /// The names explicitly subscribed (shared with the stream's state, not copied).
    pub names: Names,
    /// The version of the response awaiting acknowledgement.
    pub pending_version: Option<String>,
    /// The last acknowledged version.
    pub acked_version: Option<String>,
    /// The last rejection of this type, if any; kept after later acknowledgements as history.
    pub last_nack: Option<Nack>,
}

/// One xDS stream's protocol state.
#[derive(Clone, Debug)]
pub struct Stream {
    variant: Variant,
    /// `Some(t)` for a per-type service; `None` for an aggregated stream.
    only: Option<ResourceType>,
    limits: Limits,
    nonce: u64,
    snapshot: Arc<Snapshot>,
    types: Types,
    /// Plan from the snapshot diff where possible (off only to test it against full planning).
    diff_planning: bool,
    /// What this stream shares with the server's other streams.
    shared: Shared,
    /// Tests count what planning costs: the resources visited by full plans and by walks of
    /// everything a client holds (the costs that grow with the snapshot, not the change).
    #[cfg(test)]
    visited: std::cell::Cell<usize>,
    /// Tests count the requests of many names ([`LISTED_MIN`]) whose names were compared
    /// with the subscription name by name.
    #[cfg(test)]
    walked: std::cell::Cell<usize>,
    /// Tests count the requests of many names whose names were sorted to find a map.
    #[cfg(test)]
    sorted: std::cell::Cell<usize>,
}

/// The resources of `map` a type state subscribes to (`all`: every one), as a list.
fn subscribed(map: &Resources, st: &TypeState, all: bool) -> Vec<Arc<Resource>> {
    if all {
        map.iter().cloned().collect()
    } else {
        st.names
            .iter()
            .filter_map(|n| map.get(n).cloned())
            .collect()
    }
}

/// The key of a delta response's content: never resend what was rejected. The sets of
/// what it sends and removes, as set versions (a 128-bit hash each): an initial sync's key
/// was a string of every name and version, 600 KB per type per stream at 10,000 services.
fn delta_key(version_info: &str, resources: &Entries, removed: &[Arc<str>]) -> String {
    let sent: VersionSet = match resources {
        Entries::Whole(map) => map.version_set(),
        Entries::List(list) => list.iter().map(|r| (r.name(), r.version())).collect(),
    };
    delta_key_of(version_info, sent, removed)
}

/// [`delta_key`] of resources whose set is `sent`.
fn delta_key_of(version_info: &str, sent: VersionSet, removed: &[Arc<str>]) -> String {
    let gone: VersionSet = removed.iter().map(|n| (&**n, Version::EMPTY)).collect();
    format!("{version_info} {} {}", sent.version(), gone.version())
}

/// Whether `names` are exactly the keys of `map`. Names sharing another map's keys (Envoy's
/// endpoint subscription holds the cluster map's, compared with the endpoint map) compare by
/// the two maps' sums ([`Shared::same_keys`]); anything else by one walk of both.
fn names_are_keys(shared: &Shared, names: &Names, map: &Resources) -> bool {
    match names {
        Names::Keys(m) if !m.same(map) => shared
            .same_keys(m, map)
            .unwrap_or_else(|| names.equals_keys(map)),
        _ => names.equals_keys(map),
    }
}

/// Whether `requested` names `*`, and whether its other names are exactly `names`, in any
/// order, in one walk of the request: names listed in order are compared as they are read,
/// each with the next of `names`, without allocating; only names out of order are collected
/// and sorted. (A request that repeats the previous one's list is known by its hash first,
/// [`Listed`].)
fn lists(names: &Names, requested: &RequestNames) -> (bool, bool) {
    /// Whether `*` is listed, how many others are, and whether they are the first of `held`,
    /// in order.
    fn walk<'a>(
        mut held: impl Iterator<Item = &'a Arc<str>>,
        requested: &'a RequestNames,
    ) -> (bool, usize, bool) {
        let (mut star, mut count, mut in_step) = (false, 0, true);
        for n in requested.raw() {
            if n == b"*" {
                star = true;
                continue;
            }
            count += 1;
            in_step = in_step && held.next().is_some_and(|h| h.as_bytes() == n);
        }
        (star, count, in_step)
    }
    let (star, count, in_step) = match names {
        Names::Own(set) => walk(set.iter(), requested),
        Names::Keys(map) => walk(map.names(), requested),
    };
    if count != names.len() || in_step {
        return (star, count == names.len());
    }
    let mut sorted: Vec<&[u8]> = requested.raw().filter(|n| *n != b"*").collect();
    sorted.sort_unstable();
    (
        star,
        sorted.into_iter().eq(names.iter().map(|n| n.as_bytes())),
    )
}

/// Types whose state-of-the-world responses carry the complete set.
fn full_state(t: ResourceType) -> bool {
    matches!(t, ResourceType::Cluster | ResourceType::Listener)
}

/// The make-before-break chain of an aggregated stream.
const ORDER: [ResourceType; 4] = [
    ResourceType::Cluster,
    ResourceType::Endpoint,
    ResourceType::Listener,
    ResourceType::Route,
];

impl Stream {
    /// A new stream. `only` restricts it to one type (the per-type services); `None` is an
    /// aggregated (ADS) stream.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use xdsc_core::snapshot::Snapshot;
    /// use xdsc_server::protocol::{Limits, Stream, Variant};
    /// let s = Stream::new(Variant::Sotw, None, Limits::default(), Arc::new(Snapshot::default()));
    /// assert!(s.status().is_empty());
    /// ```
    pub fn new(
        variant: Variant,
        only: Option<ResourceType>,
        limits: Limits,
        snapshot: Arc<Snapshot>,
    ) -> Stream {
        Stream {
            variant,
            only,
            limits,
            nonce: 0,
            snapshot,
            types: Types::default(),
            diff_planning: true,
            shared: Shared::default(),
            #[cfg(test)]
            visited: std::cell::Cell::new(0),
            #[cfg(test)]
            walked: std::cell::Cell::new(0),
            #[cfg(test)]
            sorted: std::cell::Cell::new(0),
        }
    }

    /// The same stream, sharing `shared` with the other streams given it (a server gives
    /// all of its streams one), instead of a [`Shared`] of its own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use xdsc_core::snapshot::Snapshot;
    /// use xdsc_server::protocol::{Limits, Shared, Stream, Variant};
    /// let s = Stream::new(Variant::Sotw, None, Limits::default(), Arc::new(Snapshot::default()))
    ///     .with_shared(Shared::default());
    /// assert!(s.status().is_empty());
    /// ```
    pub fn with_shared(mut self, shared: Shared) -> Stream {
        self.shared = shared;
        self
    }

    /// Counts `n` resources visited by a plan or walk that grows with the snapshot (tests).
    fn visit(&self, n: usize) {
        #[cfg(test)]
        self.visited.set(self.visited.get() + n);
        let _ = n;
    }

    /// The same stream planning every type from the full set (the reference the diff-based
    /// planning is tested against).
    #[cfg(test)]
    fn without_diff_planning(mut self) -> Stream {
        self.diff_planning = false;
        self
    }

    /// The protocol variant.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The newest snapshot this stream knows.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Whether any response of this stream awaits acknowledgement.
    pub fn awaiting_ack(&self) -> bool {
        self.types.values().any(|st| st.pending.is_some())
    }

    /// A newer snapshot was published: send what the client lacks, as the rules allow.
    pub fn on_snapshot(&mut self, snapshot: Arc<Snapshot>) -> Step {
        self.snapshot = snapshot;
        Step {
            responses: self.pump(),
            events: Vec::new(),
        }
    }

    fn type_of(&self, url: &str) -> Result<ResourceType, ProtocolError> {
        let t = ResourceType::from_type_url(url)
            .ok_or_else(|| ProtocolError::UnknownType(url.to_owned()))?;
        match self.only {
            Some(expected) if expected != t => Err(ProtocolError::WrongType {
                expected,
                got: url.to_owned(),
            }),
            _ => Ok(t),
        }
    }

    fn check_limits(&self) -> Result<(), ProtocolError> {
        let count: usize = self.types.values().map(|s| s.names.len()).sum();
        if count > self.limits.max_subscribed_names {
            return Err(ProtocolError::TooManyNames {
                count,
                limit: self.limits.max_subscribed_names,
            });
        }
        Ok(())
    }

    /// Maps whose keys a subscription of type `t` may equal, to share them: for endpoints
    /// (Envoy subscribes to those of exactly the clusters it was sent), the clusters the
    /// client holds when it holds a map exactly, the clusters of the pending response's
    /// snapshot (Envoy asks for their endpoints before it acknowledges them), and the current
    /// snapshot's clusters.
    fn parent_maps(&self, t: ResourceType) -> Vec<Resources> {
        let mut out: Vec<Resources> = Vec::new();
        if t != ResourceType::Endpoint {
            return out;
        }
        let st = self.types.get(&ResourceType::Cluster);
        let candidates = [
            st.and_then(|st| st.held.exact()),
            st.and_then(|st| st.pending.as_ref())
                .map(|p| p.planned.resources(ResourceType::Cluster)),
            Some(self.snapshot.resources(ResourceType::Cluster)),
        ];
        for m in candidates.into_iter().flatten() {
            if !out.iter().any(|o| o.same(m)) {
                out.push(m.clone());
            }
        }
        out
    }

    /// The names of a state-of-the-world request (`*` left out), sharing the keys of one of
    /// [`Self::parent_maps`] when the request lists exactly those.
    fn names_of(&self, t: ResourceType, requested: &RequestNames) -> Names {
        let like = self.parent_maps(t);
        // In any order (Envoy's request after a new cluster lists them in its own): a map's
        // keys by the sum of the names' hashes, without sorting them.
        if requested.len() >= LISTED_MIN {
            let (sum, count) = shared::names_sum(requested.raw().filter(|n| *n != b"*"));
            if let Some(map) = like
                .iter()
                .find(|m| self.shared.sums_to_keys(sum, count, m))
            {
                return Names::Keys(map.clone());
            }
        }
        #[cfg(test)]
        self.sorted
            .set(self.sorted.get() + usize::from(requested.len() >= LISTED_MIN));
        let wanted: Vec<&str> = requested.iter().filter(|n| *n != "*").collect();
        Names::keys_of(&wanted, &like)
            .unwrap_or_else(|| Names::Own(Arc::new(wanted.into_iter().map(Arc::from).collect())))
    }

    /// A state-of-the-world request.
    pub fn on_request(&mut self, req: Request) -> Result<Step, ProtocolError> {
        let t = self.type_of(&req.type_url)?;
        let first = !self.types.contains_key(&t);
        self.unsettle(t);
        let st = self.types.or_default(t);
        let hash = (req.resource_names.len() >= LISTED_MIN).then(|| req.resource_names.hash());
        let (star, same) = match st.listed {
            Some(l) if Some(l.hash) == hash => (l.star, true),
            _ => {
                #[cfg(test)]
                self.walked
                    .set(self.walked.get() + usize::from(hash.is_some()));
                lists(&st.names, &req.resource_names)
            }
        };
        let wildcard = star || (req.resource_names.is_empty() && (first || st.wildcard));
        // An acknowledgement repeats the subscription (Envoy's EDS ACK lists every cluster):
        // the same names keep the set the stream has, without building a new one.
        let unchanged = !first && wildcard == st.wildcard && same;
        let names = if unchanged {
            st.names.clone()
        } else {
            self.names_of(t, &req.resource_names)
        };
        let st = self.types.or_default(t);
        // A named subscription of endpoints or routes, before and after: the names it gained
        // or dropped (Envoy's EDS request after a cluster is added lists one more). Two
        // versions of the cluster map's keys compare by their diff, in O(changes).
        let changed: Option<Vec<Arc<str>>> =
            (!unchanged && !first && !wildcard && !st.wildcard && !full_state(t)).then(|| {
                st.names
                    .symmetric_difference(&names)
                    .into_iter()
                    .cloned()
                    .collect()
            });
        // Such a subscription keeps its diff-planning bases, which check the changed names
        // too.
        let mut by_name = false;
        let differs = match &changed {
            Some(c) => !c.is_empty(),
            None => wildcard != st.wildcard || names != st.names,
        };
        if !unchanged && differs {
            by_name = changed
                .as_ref()
                .is_some_and(|c| st.resubscribe(c.iter().map(|n| &**n)));
            if !by_name {
                st.forget_clean();
            }
        }
        st.wildcard = wildcard;
        if !unchanged && !full_state(t) && !st.wildcard {
            // Forget what the client holds of names it no longer wants, so that a later
            // subscription sends them again.
            let before = st.held.len();
            match &changed {
                // Subscribed by name before too: it holds only names of that subscription,
                // so the names to forget are among those dropped from it.
                Some(changed) => {
                    for n in changed.iter().filter(|n| !names.contains(n)) {
                        st.held.remove(n);
                    }
                    debug_assert!(st.held.names().all(|n| names.contains(n)));
                }
                None => st.held.retain_within(names.iter()),
            }
            if st.held.len() != before && !by_name {
                st.forget_clean();
            }
        }
        st.names = names;
        st.listed = hash.map(|hash| Listed { hash, star });
        self.check_limits()?;
        let mut events = Vec::new();
        if req.response_nonce.is_empty() {
            if !req.version_info.is_empty() {
                // Reconnect: if the client's version is the current content, it holds it.
                if let Some((desired, _)) = self.desired(t, false)
                    && desired
                        .iter()
                        .map(|r| (r.name(), r.version()))
                        .collect::<VersionSet>()
                        .version()
                        .to_string()
                        == req.version_info
                {
                    let st = self.types.or_default(t);
                    st.forget_clean();
                    st.held = Holding::from_sorted(
                        desired.iter().map(|r| (r.name_arc().clone(), Held::of(r))),
                    );
                    st.held.rebase(self.snapshot.resources(t));
                    st.acked_version = Some(req.version_info.clone());
                }
            }
        } else {
            self.acknowledge(t, &req.response_nonce, req.error, &mut events);
        }
        Ok(Step {
            responses: self.pump(),
            events,
        })
    }

    /// A delta request.
    pub fn on_delta_request(&mut self, req: Request) -> Result<Step, ProtocolError> {
        let t = self.type_of(&req.type_url)?;
        let first = !self.types.contains_key(&t);
        self.unsettle(t);
        let parents = self.parent_maps(t);
        let st = self.types.or_default(t);
        if !req.subscribe.is_empty() || !req.unsubscribe.is_empty() {
            // A named subscription of endpoints or routes that changes by name keeps its
            // diff-planning bases, which check the changed names too.
            let by_name = !first
                && !st.wildcard
                && !full_state(t)
                && !req
                    .subscribe
                    .iter()
                    .chain(&req.unsubscribe)
                    .any(|n| n == "*");
            let changed = req.subscribe.iter().chain(&req.unsubscribe);
            if !(by_name && st.resubscribe(changed.map(String::as_str))) {
                st.forget_clean();
            }
        }
        if first {
            st.wildcard = req.subscribe.is_empty() || req.subscribe.iter().any(|n| n == "*");
            for (name, version) in &req.initial_versions {
                if let Ok(v) = version.parse::<Version>() {
                    st.held.insert(
                        Arc::from(name.as_str()),
                        Held {
                            version: v,
                            resource: None,
                        },
                    );
                }
            }
        }
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for n in &req.subscribe {
            if n == "*" {
                st.wildcard = true;
            } else {
                st.told_absent.remove(n.as_str());
                adds.push(n.as_str());
            }
        }
        // Unsubscribing from the wildcard forgets what the client holds beyond its names
        // (after this request's changes to them; a name unsubscribed later in it is not held
        // either way).
        let mut unstar = false;
        for n in &req.unsubscribe {
            if n == "*" {
                st.wildcard = false;
                unstar = true;
            } else {
                removes.push(n.as_str());
                st.told_absent.remove(n.as_str());
                if !st.wildcard {
                    st.held.remove(n.as_str());
                }
            }
        }
        // A first subscription to many names in the client's order (Envoy's to the endpoints
        // of every cluster it was sent): a map's keys by the sum of the names' hashes, without
        // sorting them, as `names_of` finds them for state of the world.
        let summed = (st.names.is_empty() && removes.is_empty() && adds.len() >= LISTED_MIN)
            .then(|| shared::names_sum(adds.iter().map(|n| n.as_bytes())))
            .and_then(|(sum, count)| {
                parents
                    .iter()
                    .find(|m| self.shared.sums_to_keys(sum, count, m))
            });
        match summed {
            Some(map) => st.names = Names::Keys(map.clone()),
            None => st.names.update(&adds, &removes, &parents),
        }
        if unstar {
            let names = st.names.clone();
            st.held.retain(|k| names.contains(k));
        }
        self.check_limits()?;
        let mut events = Vec::new();
        if !req.response_nonce.is_empty() {
            self.acknowledge(t, &req.response_nonce, req.error, &mut events);
        }
        Ok(Step {
            responses: self.pump(),
            events,
        })
    }

    fn acknowledge(
        &mut self,
        t: ResourceType,
        nonce: &str,
        error: Option<String>,
        events: &mut Vec<Event>,
    ) {
        self.unsettle(t);
        let st = self.types.or_default(t);
        // Taken, not cloned: a full sync's pending response lists every resource it sent.
        let Some(pending) = st.pending.take_if(|p| p.nonce == nonce) else {
            events.push(Event::StaleNonce { resource_type: t });
            return;
        };
        // What a held copy built name by name walked (counted by tests).
        let mut walked = 0;
        match error {
            Some(detail) => {
                let sent = pending.sent.into_list();
                let mut provenance: BTreeSet<ObjectKey> = BTreeSet::new();
                for (_, r) in &sent {
                    if let Some(r) = r {
                        provenance.extend(r.provenance().iter().cloned());
                    }
                }
                let nack = Nack {
                    resource_type: t,
                    version_info: pending.version_info.clone(),
                    detail,
                    resources: sent.iter().map(|(n, _)| n.clone()).collect(),
                    provenance: provenance.into_iter().collect(),
                };
                st.rejected = Some(pending.key.clone());
                st.last_nack = Some(nack.clone());
                events.push(Event::Nack(nack));
            }
            None => {
                let all = st.wildcard || (full_state(t) && st.names.is_empty());
                // A client that now holds exactly the current or the planned map (the common
                // case: a wildcard initial sync, a change sent in full, or Envoy's endpoint
                // subscription to every cluster) holds that map itself, in O(removals) rather
                // than a held map built and compared name by name. Subscribed by name, its
                // names must be the map's keys now (none dropped since the response was sent):
                // a walk of both, so only for a response of a whole map (a sync), which cost
                // that walk anyway; a change's acknowledgement stays O(changes).
                let exact = [self.snapshot.resources(t), pending.planned.resources(t)]
                    .into_iter()
                    .find(|m| {
                        m.version() == pending.desired.version()
                            && (all
                                || (matches!(pending.sent, Sent::Whole(_))
                                    && names_are_keys(&self.shared, &st.names, m)))
                    })
                    .cloned();
                if let Some(map) = exact {
                    // A whole map removes nothing.
                    if let Sent::List(sent) = pending.sent {
                        for (name, r) in sent {
                            if r.is_none() {
                                st.told_absent.insert(name);
                            }
                        }
                    }
                    st.held = Holding::of(&map);
                } else {
                    if pending.full {
                        st.held.clear();
                    }
                    // Names the client dropped since the response was sent (in this very request,
                    // or a delta unsubscribe before it) are not held: asked for again, they go out
                    // again. A removal is applied whatever the names now: the client let it go.
                    let mut sent = pending.sent.into_list();
                    if !all {
                        sent.retain(|(name, r)| r.is_none() || st.names.contains(name));
                    }
                    walked = sent.len();
                    let subscribed = |st: &TypeState, name: &str| all || st.names.contains(name);
                    if st.held.is_empty() {
                        let mut fresh = Vec::with_capacity(sent.len());
                        for (name, r) in sent {
                            match r {
                                Some(r) => fresh.push((name, Held::of(&r))),
                                None => {
                                    if subscribed(st, &name) {
                                        st.told_absent.insert(name);
                                    }
                                }
                            }
                        }
                        st.held = Holding::from_sorted(fresh);
                    } else {
                        for (name, r) in sent {
                            match r {
                                Some(r) => st.held.insert(name, Held::of(&r)),
                                None => {
                                    st.held.remove(&name);
                                    if subscribed(st, &name) {
                                        st.told_absent.insert(name);
                                    }
                                }
                            }
                        }
                    }
                    // Holding exactly a version of the type: hold that version's map itself.
                    if !st.held.rebase(self.snapshot.resources(t)) {
                        st.held.rebase(pending.planned.resources(t));
                    }
                }
                st.clean = pending.base.map(|snapshot| Clean {
                    snapshot,
                    desired: pending.desired,
                    resubscribed: pending.resubscribed,
                });
                st.rejected = None;
                st.acked_version = Some(pending.version_info.clone());
                events.push(Event::Ack {
                    resource_type: t,
                    version_info: pending.version_info,
                });
            }
        }
        self.visit(walked);
    }

    /// The resources of type `t` the client should hold, `None` if it is not subscribed.
    /// With `defer`, clusters the client holds that left the snapshot are kept while its
    /// listeners and routes are not current.
    ///
    /// Also says whether any removed cluster is kept back.
    fn desired(&self, t: ResourceType, defer: bool) -> Option<(Entries, bool)> {
        let st = self.types.get(&t)?;
        let resources = self.snapshot.resources(t);
        let all = st.wildcard || (full_state(t) && st.names.is_empty());
        let outside = if self.keeps_removed(t, defer) {
            st.held.outside(resources)
        } else {
            Vec::new()
        };
        let kept = !outside.is_empty();
        // Names that are the map's keys (Envoy's endpoint subscription to every cluster) are
        // the map too: one walk of both, instead of a lookup per name and a list of them.
        if !kept && (all || names_are_keys(&self.shared, &st.names, resources)) {
            return Some((Entries::Whole(resources.clone()), false));
        }
        let mut out = subscribed(resources, st, all);
        if kept {
            out.extend(outside);
            out.sort_by(|a, b| a.name().cmp(b.name()));
        }
        Some((Entries::List(out), kept))
    }

    /// Whether the client's listeners and routes are acknowledged and current.
    fn routing_current(&self) -> bool {
        [ResourceType::Listener, ResourceType::Route]
            .into_iter()
            .all(|t| {
                self.covered(t)
                    && self
                        .types
                        .get(&t)
                        .is_none_or(|st| st.pending.is_none() && self.plan(t, false).is_none())
            })
    }

    /// Whether the client holds the current endpoints of every cluster it holds (`t` =
    /// endpoints), or the current route configuration of every listener it holds (`t` =
    /// routes), whether or not it has asked for them yet: Envoy subscribes to those only after
    /// it has the clusters and listeners, and the next type must wait for them.
    fn covered(&self, t: ResourceType) -> bool {
        let parent = match t {
            ResourceType::Endpoint => ResourceType::Cluster,
            ResourceType::Route => ResourceType::Listener,
            _ => return true,
        };
        let Some(parent) = self.types.get(&parent) else {
            return true;
        };
        let child = self.types.get(&t);
        // A wildcard child with nothing to send holds every resource of its type, current.
        // Asked only when planning it is cheap (from the diff); else the walk below is cheaper.
        if child.is_some_and(|c| c.wildcard && c.clean.is_some() && self.diff_planning)
            && self.plan(t, false).is_none()
        {
            return true;
        }
        // Only the names where the child's holding may differ from the current map can be
        // missing or stale.
        let map = self.snapshot.resources(t);
        if let Some(c) = child {
            let suspects = c.held.suspects(map);
            self.visit(suspects.len());
            return suspects.into_iter().all(|name| {
                !parent.held.contains(name)
                    || map
                        .get(name)
                        .is_none_or(|r| c.held.version(name) == Some(r.version()))
            });
        }
        self.visit(parent.held.len());
        parent
            .held
            .names()
            .all(|name| match self.snapshot.get(t, name) {
                None => true,
                Some(r) => child.and_then(|c| c.held.version(name)) == Some(r.version()),
            })
    }

    /// What type `t` would send now, if anything (ignoring pending and rejected state).
    ///
    /// From the snapshot diff when the type was clean at an earlier snapshot: then only the
    /// names that changed since are checked against the subscription, so a change of one
    /// resource costs O(changes), not O(subscribed names). A response that kept removed
    /// clusters back is never a base: the next plan is in full, and sends their removal.
    fn plan(&self, t: ResourceType, defer: bool) -> Option<Plan> {
        let st = self.types.get(&t)?;
        if st.settled_at == Some(self.snapshot.resources(t).version()) {
            return None;
        }
        match &st.clean {
            Some(clean) if self.diff_planning => self.plan_from(t, st, clean, defer),
            _ => self.plan_full(t, defer),
        }
    }

    /// [`Stream::plan`] from the names that changed since `clean`. A cluster that left the
    /// snapshot but is kept back (`defer`, while routing is not current) stays in the desired
    /// set, as in [`Stream::desired`].
    fn plan_from(
        &self,
        t: ResourceType,
        st: &TypeState,
        clean: &Clean,
        defer: bool,
    ) -> Option<Plan> {
        let (old, new) = (clean.snapshot.resources(t), self.snapshot.resources(t));
        if old.version() == new.version() && clean.resubscribed.is_empty() {
            return None;
        }
        let diff = clean.snapshot.diff(&self.snapshot);
        let d = diff.get(t);
        let mut names: Vec<&Arc<str>> = d
            .added
            .iter()
            .chain(&d.changed)
            .chain(&d.removed)
            .chain(clean.resubscribed.keys())
            .collect();
        names.sort();
        names.dedup();
        self.visit(names.len());
        let all = st.wildcard || (full_state(t) && st.names.is_empty());
        // State of the world sends clusters and listeners complete.
        let complete = self.variant == Variant::Sotw && full_state(t);
        let mut keep_removed = None;
        let mut desired = clean.desired;
        let mut resources: Vec<Arc<Resource>> = Vec::new();
        let mut removed = Vec::new();
        let mut kept: Vec<Arc<Resource>> = Vec::new();
        let mut changed = false;
        for n in names {
            let now = all || st.names.contains(n);
            // What `n` added to `clean.desired`: nothing if it was not subscribed then.
            let was = clean.resubscribed.get(n).copied().unwrap_or(now);
            let old_r = if was { old.get(n) } else { None };
            if !now {
                if let Some(o) = old_r {
                    desired.remove(n, o.version());
                }
                continue;
            }
            match new.get(n) {
                Some(r) => {
                    if let Some(o) = old_r {
                        desired.remove(n, o.version());
                    }
                    desired.insert(n, r.version());
                    if st.held.version(n) != Some(r.version()) {
                        changed = true;
                        if !complete {
                            resources.push(r.clone());
                        }
                    }
                }
                None => {
                    let held = st.held.resource(n);
                    if let Some(h) = held
                        && *keep_removed.get_or_insert_with(|| self.keeps_removed(t, defer))
                    {
                        kept.push(h.clone());
                        continue;
                    }
                    if let Some(o) = old_r {
                        desired.remove(n, o.version());
                    }
                    if complete {
                        changed |= st.held.contains(n);
                    } else if self.variant == Variant::Delta
                        && (st.held.contains(n)
                            || (st.names.contains(n) && !st.told_absent.contains(n)))
                    {
                        removed.push(n.clone());
                    }
                }
            }
        }
        let resources = if complete {
            if !changed {
                return None;
            }
            if all && kept.is_empty() {
                // The map itself: no list of every resource for this stream.
                Entries::Whole(new.clone())
            } else {
                let mut resources = subscribed(new, st, all);
                // The complete list the protocol sends (counted, as what a response costs).
                self.visit(resources.len());
                if !kept.is_empty() {
                    resources.extend(kept.iter().cloned());
                    resources.sort_by(|a, b| a.name().cmp(b.name()));
                }
                Entries::List(resources)
            }
        } else if resources.is_empty() && removed.is_empty() {
            return None;
        } else {
            Entries::List(resources)
        };
        let version_info = desired.version().to_string();
        let key = match self.variant {
            Variant::Sotw => version_info.clone(),
            Variant::Delta => delta_key(&version_info, &resources, &removed),
        };
        Some(Plan {
            version_info,
            desired,
            resources,
            removed,
            full: complete,
            key,
            kept: !kept.is_empty(),
        })
    }

    /// Whether clusters the client holds that left the snapshot are kept back now: on an
    /// aggregated stream, while its listeners and routes are not current.
    fn keeps_removed(&self, t: ResourceType, defer: bool) -> bool {
        defer && t == ResourceType::Cluster && self.only.is_none() && !self.routing_current()
    }

    /// [`Stream::plan`] from every desired resource.
    fn plan_full(&self, t: ResourceType, defer: bool) -> Option<Plan> {
        let st = self.types.get(&t)?;
        // Subscribed to every resource and holding exactly the current map: nothing to send
        // (and no removed cluster kept back: the client holds none outside the map).
        if (st.wildcard || (full_state(t) && st.names.is_empty()))
            && st.names.is_empty()
            && st.held.is_exactly(self.snapshot.resources(t))
        {
            return None;
        }
        let (desired, kept) = self.desired(t, defer)?;
        self.visit(desired.len() + st.held.len());
        // Every resource of the type, none kept back (by wildcard, or names that are the
        // map's keys): the map's own set.
        let whole = matches!(desired, Entries::Whole(_));
        let desired_set: VersionSet = if whole {
            self.snapshot.resources(t).version_set()
        } else {
            desired.iter().map(|r| (r.name(), r.version())).collect()
        };
        let version_info = desired_set.version().to_string();
        match self.variant {
            Variant::Sotw => {
                // Only clusters and listeners carry the complete state; other types send what
                // changed, wildcard or not (xDS: "grouped into responses as in delta").
                let full = full_state(t);
                let is_changed =
                    |r: &&Arc<Resource>| st.held.version(r.name()) != Some(r.version());
                let resources = if full {
                    // A complete type sends `desired` itself: if anything changed, or a name
                    // is held that is no longer desired.
                    let extra = || st.held.names().any(|k| !desired.contains(k));
                    if !desired.iter().any(|r| is_changed(&r)) && !extra() {
                        return None;
                    }
                    desired
                } else if whole && st.held.is_empty() && !desired.is_empty() {
                    // Nothing held (an initial sync): everything changed, the map itself.
                    desired
                } else {
                    let changed: Vec<Arc<Resource>> =
                        desired.iter().filter(is_changed).cloned().collect();
                    if changed.is_empty() {
                        return None;
                    }
                    Entries::List(changed)
                };
                Some(Plan {
                    key: version_info.clone(),
                    version_info,
                    desired: desired_set,
                    resources,
                    removed: Vec::new(),
                    full,
                    kept,
                })
            }
            Variant::Delta => {
                let map = self.snapshot.resources(t);
                let desired_len = desired.len();
                let (resources, mut removed) = if whole && !st.held.is_empty() {
                    // The whole map against a holding: only the names where the two may differ
                    // (`suspects`, O(differences)) can have changed or gone.
                    let mut suspects = st.held.suspects(map);
                    suspects.sort_unstable();
                    suspects.dedup();
                    let mut changed = Vec::new();
                    let mut removed = BTreeSet::new();
                    for n in suspects {
                        match map.get(n) {
                            Some(r) if st.held.version(n) != Some(r.version()) => {
                                changed.push(r.clone())
                            }
                            Some(_) => {}
                            None if st.held.contains(n) => {
                                removed.insert(n.clone());
                            }
                            None => {}
                        }
                    }
                    (Entries::List(changed), removed)
                } else if st.held.is_empty() {
                    // Nothing held (an initial sync): every desired resource, without a second
                    // list of them, and nothing to remove.
                    (desired, BTreeSet::new())
                } else {
                    let desired_names: BTreeSet<&str> = desired.iter().map(|r| r.name()).collect();
                    let removed: BTreeSet<Arc<str>> = st
                        .held
                        .names()
                        .filter(|n| !desired_names.contains(&***n))
                        .cloned()
                        .collect();
                    let changed = desired
                        .iter()
                        .filter(|r| st.held.version(r.name()) != Some(r.version()))
                        .cloned()
                        .collect();
                    (Entries::List(changed), removed)
                };
                // Subscribed names that do not exist: say so once. Names that made the whole
                // map without a wildcard are its keys (Envoy's endpoint subscription to every
                // cluster): they all exist.
                if !whole || st.wildcard {
                    for n in st.names.iter() {
                        if !map.contains(n) && !st.held.contains(n) && !st.told_absent.contains(n) {
                            removed.insert(n.clone());
                        }
                    }
                }
                if resources.is_empty() && removed.is_empty() {
                    return None;
                }
                let removed: Vec<Arc<str>> = removed.into_iter().collect();
                // Sending every desired resource (an initial sync): their set is known.
                let key = if resources.len() == desired_len {
                    delta_key_of(&version_info, desired_set, &removed)
                } else {
                    delta_key(&version_info, &resources, &removed)
                };
                Some(Plan {
                    key,
                    version_info,
                    desired: desired_set,
                    resources,
                    removed,
                    full: false,
                    kept,
                })
            }
        }
    }

    /// Whether type `t` has nothing to send, nothing awaiting acknowledgement, and covers
    /// what the client holds of the type before it.
    fn settled(&self, t: ResourceType) -> bool {
        let current = self.snapshot.resources(t).version();
        let memo = |x: ResourceType| {
            self.types
                .get(&x)
                .is_some_and(|st| st.settled_at == Some(self.snapshot.resources(x).version()))
        };
        // The memo of `t` holds while its own state and type version hold; coverage also
        // depends on the parent type, whose memo must hold too.
        let parent = match t {
            ResourceType::Endpoint => Some(ResourceType::Cluster),
            ResourceType::Route => Some(ResourceType::Listener),
            _ => None,
        };
        if self
            .types
            .get(&t)
            .is_some_and(|st| st.settled_at == Some(current))
            && parent.is_none_or(memo)
        {
            return true;
        }
        self.types
            .get(&t)
            .is_none_or(|st| st.pending.is_none() && self.plan(t, true).is_none())
            && self.covered(t)
    }

    /// Forgets that `t` (and the type whose coverage depends on it) was settled.
    fn unsettle(&mut self, t: ResourceType) {
        let child = match t {
            ResourceType::Cluster => Some(ResourceType::Endpoint),
            ResourceType::Listener => Some(ResourceType::Route),
            _ => None,
        };
        for x in std::iter::once(t).chain(child) {
            if let Some(st) = self.types.get_mut(&x) {
                st.settled_at = None;
            }
        }
    }

    /// Records which types are settled at the current snapshot, so that the next snapshot
    /// skips them in O(1) when their type version is unchanged. Clusters are recorded only
    /// when no removed cluster is being kept (their plan then does not depend on routes).
    fn remember_settled(&mut self) {
        let types: Vec<ResourceType> = self.types.keys().copied().collect();
        for t in types {
            let current = self.snapshot.resources(t).version();
            if self
                .types
                .get(&t)
                .is_some_and(|st| st.settled_at == Some(current))
            {
                continue;
            }
            let settled = self.settled(t)
                && (t != ResourceType::Cluster || self.plan(t, false).is_none())
                && (self.only.is_some()
                    || t != ResourceType::Endpoint
                    || self.settled(ResourceType::Cluster));
            if let Some(st) = self.types.get_mut(&t) {
                st.settled_at = settled.then_some(current);
            }
        }
    }

    fn try_send(&mut self, t: ResourceType) -> Option<Response> {
        let st = self.types.get(&t)?;
        if st.pending.is_some() {
            return None;
        }
        let plan = self.plan(t, true)?;
        if st.rejected.as_deref() == Some(plan.key.as_str()) {
            return None;
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let map = self.snapshot.resources(t);
        let sent = if plan.removed.is_empty()
            && plan.resources.len() == map.len()
            && plan.desired == map.version_set()
        {
            Sent::Whole(map.clone())
        } else {
            let mut sent: Vec<(Arc<str>, Option<Arc<Resource>>)> = plan
                .resources
                .iter()
                .map(|r| (r.name_arc().clone(), Some(r.clone())))
                .collect();
            sent.extend(plan.removed.iter().map(|n| (n.clone(), None)));
            Sent::List(sent)
        };
        let st = self.types.get_mut(&t)?;
        st.settled_at = None;
        st.pending = Some(Pending {
            nonce: nonce.clone(),
            version_info: plan.version_info.clone(),
            sent,
            full: plan.full,
            key: plan.key,
            base: (!plan.kept).then(|| self.snapshot.clone()),
            desired: plan.desired,
            planned: self.snapshot.clone(),
            resubscribed: BTreeMap::new(),
        });
        Some(Response {
            resource_type: t,
            nonce,
            version_info: plan.version_info,
            resources: plan.resources,
            removed: plan.removed,
        })
    }

    /// Sends what can be sent now, in make-before-break order on aggregated streams.
    ///
    /// Endpoints are never held back: Envoy asks for them only for clusters it has, and it
    /// withholds its acknowledgement of new clusters until they are warm, which needs their
    /// endpoints (waiting for that acknowledgement deadlocks until Envoy's initial-fetch
    /// timeout). Listeners wait until clusters and endpoints are acknowledged and current;
    /// routes wait for that too, and for the listeners to have been sent.
    fn pump(&mut self) -> Vec<Response> {
        let mut out = Vec::new();
        let aggregated = self.only.is_none();
        let mut clusters_and_endpoints = None;
        for t in ORDER {
            let allowed = !aggregated
                || match t {
                    ResourceType::Listener | ResourceType::Route => {
                        let ready = *clusters_and_endpoints.get_or_insert_with(|| {
                            self.settled(ResourceType::Cluster)
                                && self.settled(ResourceType::Endpoint)
                        });
                        ready
                            && (t == ResourceType::Listener
                                || self.types.get(&ResourceType::Listener).is_none_or(|st| {
                                    st.pending.is_some()
                                        || self.plan(ResourceType::Listener, true).is_none()
                                }))
                    }
                    _ => true,
                };
            if allowed && let Some(r) = self.try_send(t) {
                out.push(r);
            }
        }
        if let Some(r) = self.try_send(ResourceType::Secret) {
            out.push(r);
        }
        self.remember_settled();
        out
    }

    /// The state of every subscribed type, for the debug endpoint.
    pub fn status(&self) -> Vec<TypeStatus> {
        self.types
            .iter()
            .map(|(t, st)| TypeStatus {
                resource_type: *t,
                wildcard: st.wildcard,
                names: st.names.clone(),
                pending_version: st.pending.as_ref().map(|p| p.version_info.clone()),
                acked_version: st.acked_version.clone(),
                last_nack: st.last_nack.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
