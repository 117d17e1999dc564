//! The compiler: model in, snapshot and diagnostics out, incrementally.
//!
//! [`Compiled`] is an immutable compilation result: the model, the [`Snapshot`] built from it,
//! the diagnostics, and the indexes that make the next compilation incremental. Applying a
//! batch of changes ([`Compiled::apply`]) returns a new result that rebuilds only the
//! resources depending on the changed objects; every other resource is the same allocation
//! (`Arc::ptr_eq`) as before. A full compile ([`Compiled::new`]) is the same code applied to
//! an empty result, so incremental and full compiles cannot drift apart.
//!
//! # What depends on what
//!
//! | resource | built from | also depends on (availability only) |
//! |---|---|---|
//! | cluster `c` | Cluster `c` | its CA secret |
//! | endpoints `c` | Endpoints `c` | cluster `c` (no cluster, no endpoints) |
//! | listener `l` | Listener `l` | its certificate secrets, TCP route clusters, other listeners on its address |
//! | routes `r` | every VirtualHost attached to `r` | the listeners naming route configuration `r` (by default, listener `r`), the clusters routes forward to, other hosts' domains on `r` |
//! | secret `s` | Secret `s` | |
//! | any type, name `n` | the raw resource of that type named `n`, unless a compiled object claims `n` | the secrets, clusters and route configurations it names over ADS |
//!
//! A route configuration is assembled from per-virtual-host encodings: changing one route
//! re-encodes one virtual host and copies the others' bytes. An HTTP listener serves the route
//! configuration named after it unless it names another (`route_config`); listeners naming the
//! same one share it, and a virtual host's `listeners` are route configuration names.
//!
//! # Route precedence
//!
//! Within a virtual host (unless its `route_order` is `as_written`, which keeps the order
//! written), routes are ordered, whatever their order in the object: exact paths
//! first, then regular expressions, then prefixes, longer first (for equal prefixes, a
//! segment-wise `path_prefix` before a plain `prefix`); then routes with a method match, then
//! more header matches first, then more query matches (the Gateway API's HTTPRoute order);
//! then by name. A route whose match equals an earlier one's never matches; it is reported and
//! left out.
//!
//! # Conflicts
//!
//! Two virtual hosts claiming one domain on a listener: the one whose name sorts first keeps
//! it; the other is reported and serves its remaining domains. Two listeners on one address
//! and port: the one whose name sorts first is served, the other is reported and left out.
//!
//! # Raw Envoy resources
//!
//! A raw resource ([`model::Raw`], kinds `EnvoyCluster`, `EnvoyClusterLoadAssignment`,
//! `EnvoyListener`, `EnvoyRouteConfiguration`, `EnvoySecret`) is decoded against the
//! descriptor pool when it changes (unknown fields, an `Any` of an unknown type or that does
//! not decode: an error at the field, and it is left out), re-encoded canonically and served
//! under its own name, beside compiled resources of its type. A compiled object of the same
//! type and name wins (for a route configuration: virtual hosts attached to it); the raw one is
//! an error naming both. What it refers to over ADS is read and checked as compiled references
//! are, with the same edges for incremental rebuilds: its SDS secrets must exist and hold the
//! right kind (else it is left out); a cluster named by its routes or TCP proxies that does not
//! exist is a warning and the resource is served as written (Envoy answers 503); an EDS
//! cluster's load assignment (its service name, else its name) is a raw
//! `ClusterLoadAssignment`, else the `Endpoints` object of that name, else empty; a raw
//! listener's RDS route configuration is a raw one or the compiled one of that name (served
//! empty, with a warning, when nothing provides it); a raw listener's address conflicts with
//! other listeners' as compiled ones do. A raw route configuration is served whether or not a
//! listener names it.
//!
//! # What is left out
//!
//! An object that fails validation produces no resource (for virtual hosts, a route that fails
//! is left out and the rest served). A reference to a missing or invalid object is reported;
//! a route whose backends are all unavailable answers 503 (500 when every weight is 0). A
//! forward's `error_weight` keeps its share: it becomes a weighted-cluster entry naming
//! [`ERROR_CLUSTER`], which never exists, with `cluster_not_found_response_code` 500 (no CDS
//! or EDS resource; without usable backends the route answers 500 directly). A TLS
//! filter chain whose secret is missing is dropped, a cluster whose CA secret is missing is
//! left out. Resources are never sent half-formed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use imbl::OrdMap;
use prost::{Message, Name};

use crate::diagnostic::Diags;
use crate::model::{self, Change, Kind, Model, Object, ObjectKey};
use crate::snapshot::{Resource, ResourceType, Snapshot};

mod index;
mod raw;
mod raw_slots;
mod translate;
pub(crate) mod typed;
pub(crate) mod validate;

use index::{Dirty, Index, address_key, get, link, vhost_clusters};
use raw::CheckedRaw;
use translate::SecretState;
use validate::CheckedVhost;

pub use crate::diagnostic::{Diagnostic, Problem, Severity};
pub use translate::ERROR_CLUSTER;

/// Where a set of diagnostics came from, so a rebuild replaces exactly its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum DiagKey {
    /// Building the resource of an object (or validating a virtual host).
    Object(ObjectKey),
    /// Building a virtual host's part of a listener's route configuration.
    Piece(Arc<str>, Arc<str>),
    /// Assembling a listener's route configuration.
    Routes(Arc<str>),
    /// Decoding and checking a raw Envoy resource.
    Raw(ObjectKey),
}

/// An immutable compilation result: model, snapshot, diagnostics, and what is needed to apply
/// the next changes incrementally. Cloning is cheap.
///
/// ```
/// use xdsc_core::compile::Compiled;
/// use xdsc_core::model::{Change, Cluster, Endpoint, Endpoints, Listener, Locality, Model, Object, Route, VirtualHost};
/// use xdsc_core::snapshot::ResourceType;
///
/// let mut vh = VirtualHost::new("web", ["http"], ["example.com"]);
/// vh.routes.push(Route::forward_prefix("all", "/", "web"));
/// let model = Model::from_objects([
///     Object::Listener(Listener::new("http", 8080)),
///     Object::VirtualHost(vh),
///     Object::Cluster(Cluster::new("web")),
/// ]);
/// let first = Compiled::new(&model);
/// assert!(first.diagnostics().is_empty());
/// assert_eq!(first.snapshot().len(), 4); // cluster, endpoints, listener, routes
///
/// // One endpoint appears: only the endpoints resource changes.
/// let eps = Endpoints {
///     name: "web".into(),
///     localities: vec![Locality {
///         endpoints: vec![Endpoint { address: "10.0.0.1".into(), port: 80, weight: 1, health: Default::default() }],
///         ..Default::default()
///     }],
///     provenance: vec![],
/// };
/// let second = first.apply([Change::upsert(eps)]);
/// let diff = first.snapshot().diff(second.snapshot());
/// assert_eq!(diff.changed_types().collect::<Vec<_>>(), [ResourceType::Endpoint]);
/// assert!(std::sync::Arc::ptr_eq(
///     first.snapshot().get(ResourceType::Route, "http").unwrap(),
///     second.snapshot().get(ResourceType::Route, "http").unwrap(),
/// ));
/// ```
#[derive(Clone, Default)]
pub struct Compiled {
    model: Model,
    snapshot: Snapshot,
    index: Index,
    vhosts: OrdMap<Arc<str>, Arc<CheckedVhost>>,
    raws: OrdMap<ObjectKey, Arc<CheckedRaw>>,
    pieces: OrdMap<(Arc<str>, Arc<str>), Bytes>,
    diags: OrdMap<DiagKey, Arc<[Diagnostic]>>,
    stats: Stats,
}

/// What the compile that produced a [`Compiled`] did: how many objects it found changed and
/// how many resources (and virtual-host pieces of route configurations) it rebuilt. Counts,
/// not times, so that tests and embedders' metrics can guard the incremental cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Model objects that differed from the previous model.
    pub objects_changed: usize,
    /// Resources built (whether or not their bytes changed), plus virtual-host pieces.
    pub resources_built: usize,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("objects", &self.model.len())
            .field("snapshot", &self.snapshot)
            .field("diagnostics", &self.diags.len())
            .finish()
    }
}

impl Compiled {
    /// Compiles a whole model.
    ///
    /// This is [`Compiled::apply`] of every object to an empty result, minus rebuilding the
    /// model map: the same indexing and rebuild code runs.
    pub fn new(model: &Model) -> Compiled {
        let mut out = Compiled {
            model: model.clone(),
            ..Compiled::default()
        };
        let mut dirty = Dirty::default();
        for o in model.objects() {
            out.object_changed(&o.key(), None, Some(o), &mut dirty);
        }
        out.stats = Stats {
            objects_changed: model.len(),
            resources_built: 0,
        };
        out.rebuild(dirty);
        out
    }

    /// What the compile that produced this result did (see [`Stats`]).
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Compiles `model` as a whole new state, incrementally from this result: the changes are
    /// what differs between the two models ([`Model::changes_to`]), so when `model` was derived
    /// from this result's model (by [`Model::apply`], or by an earlier `update`) only the
    /// differing parts of the maps are visited, and only the resources depending on the objects
    /// that differ are rebuilt. The result holds `model` itself, sharing its structure.
    ///
    /// ```
    /// use xdsc_core::compile::Compiled;
    /// use xdsc_core::model::{Change, Cluster, Endpoint, Endpoints, Model, Object};
    ///
    /// let v1 = Model::from_objects((0..100).map(|i| Object::Cluster(Cluster::new(format!("c{i}")))));
    /// let first = Compiled::new(&v1);
    /// // The embedder's next whole model, derived from the last one.
    /// let v2 = v1.apply([Change::upsert(Endpoints::new("c7", [Endpoint::new("10.0.0.7", 80)]))]);
    /// let second = first.update(&v2);
    /// assert_eq!(second.stats().objects_changed, 1);
    /// assert_eq!(second.stats().resources_built, 1); // the endpoints of c7
    /// assert_eq!(second.snapshot(), Compiled::new(&v2).snapshot());
    /// ```
    pub fn update(&self, model: &Model) -> Compiled {
        let changes: Vec<Change> = self.model.changes_to(model).collect();
        let mut next = self.apply(changes);
        next.model = model.clone();
        next
    }

    /// The model this result was compiled from.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Every diagnostic, ordered by object, then severity, then field; without duplicates.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let set: BTreeSet<&Diagnostic> = self.diags.values().flat_map(|d| d.iter()).collect();
        set.into_iter().cloned().collect()
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diags
            .values()
            .flat_map(|d| d.iter())
            .any(|d| d.severity == Severity::Error)
    }

    /// The sources (files, Kubernetes objects) a resource was built from: the provenance of
    /// each model object it was built from, or the object itself when it has none.
    ///
    /// ```
    /// use xdsc_core::compile::Compiled;
    /// use xdsc_core::model::{Cluster, Model, Object, Source};
    /// use xdsc_core::snapshot::ResourceType;
    /// let mut c = Cluster::new("web");
    /// c.provenance.push(Source { kind: "Service".into(), namespace: Some("shop".into()), name: "web".into(), origin: Some("svc.yaml:3".into()) });
    /// let out = Compiled::new(&Model::from_objects([Object::Cluster(c)]));
    /// let r = out.snapshot().get(ResourceType::Cluster, "web").unwrap();
    /// assert_eq!(out.sources(r)[0].to_string(), "Service shop/web (svc.yaml:3)");
    /// ```
    pub fn sources(&self, resource: &Resource) -> Vec<model::Source> {
        let mut out = Vec::new();
        for key in resource.provenance() {
            match self.model.get(key) {
                Some(o) if !o.provenance().is_empty() => out.extend(o.provenance().iter().cloned()),
                _ => out.push(model::Source {
                    kind: key.kind.to_string(),
                    namespace: None,
                    name: key.name.to_string(),
                    origin: None,
                }),
            }
        }
        out
    }

    /// Applies a batch of changes and compiles incrementally. For several changes to one
    /// object, the last wins. `self` is unchanged.
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>) -> Compiled {
        let mut batch: BTreeMap<ObjectKey, Option<Arc<Object>>> = BTreeMap::new();
        for change in changes {
            match change {
                Change::Upsert(o) => batch.insert(o.key(), Some(o)),
                Change::Delete(k) => batch.insert(k, None),
            };
        }
        let mut next = self.clone();
        next.stats = Stats::default();
        let mut dirty = Dirty::default();
        let mut model_changes = Vec::new();
        let mut changed = Vec::new();
        for (key, new) in batch {
            let old = self.model.get(&key).cloned();
            let same = match (&old, &new) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            model_changes.push(match &new {
                Some(o) => Change::Upsert(o.clone()),
                None => Change::Delete(key.clone()),
            });
            changed.push((key, old, new));
        }
        if model_changes.is_empty() {
            return next;
        }
        next.stats.objects_changed = model_changes.len();
        // The indexes are updated against the new model (a raw resource's standing depends on
        // whether a compiled object has its name).
        next.model = next.model.apply(model_changes);
        for (key, old, new) in changed {
            next.object_changed(&key, old.as_deref(), new.as_deref(), &mut dirty);
        }
        next.rebuild(dirty);
        next
    }

    /// Updates the indexes for one changed object and marks what depends on it.
    fn object_changed(
        &mut self,
        key: &ObjectKey,
        old: Option<&Object>,
        new: Option<&Object>,
        dirty: &mut Dirty,
    ) {
        let name = &key.name;
        if let Some(t) = key.kind.raw_type() {
            self.raw_changed(key, t, new, dirty);
            return;
        }
        match key.kind {
            Kind::Secret => {
                dirty.secrets.insert(name.clone());
            }
            Kind::Endpoints => {
                dirty.endpoints.insert(name.clone());
            }
            Kind::Cluster => {
                for (o, add) in [(old, false), (new, true)] {
                    if let Some(Object::Cluster(c)) = o
                        && let Some(ca) = c.tls.as_ref().and_then(|t| t.ca_secret.as_deref())
                    {
                        link(&mut self.index.secret_clusters, ca, name, add);
                    }
                }
                dirty.clusters.insert(name.clone());
            }
            Kind::Listener => {
                // A raw listener's address counts only while no compiled listener has its name.
                let raw_address = self
                    .raw(Kind::EnvoyListener, name)
                    .and_then(|(_, r)| r.refs.address.clone());
                if let Some(a) = &raw_address
                    && old.is_none()
                {
                    self.link_address(a, name, false, dirty);
                }
                for (o, add) in [(old, false), (new, true)] {
                    let Some(Object::Listener(l)) = o else {
                        continue;
                    };
                    // Listeners sharing the address before and after the change may win or lose it.
                    if let Some(addr) = address_key(l) {
                        dirty
                            .listeners
                            .extend(get(&self.index.addresses, &addr).cloned());
                        link(&mut self.index.addresses, &addr, name, add);
                        dirty
                            .listeners
                            .extend(get(&self.index.addresses, &addr).cloned());
                    }
                    for t in &l.tls {
                        link(&mut self.index.secret_listeners, &t.secret, name, add);
                    }
                    for r in &l.tcp_routes {
                        for b in &r.backends {
                            link(&mut self.index.cluster_listeners, &b.cluster, name, add);
                        }
                    }
                    let rc: Arc<str> = Arc::from(l.route_config_name());
                    link(&mut self.index.route_listeners, &rc, name, add);
                    dirty.routes.insert(rc);
                }
                if let Some(a) = &raw_address
                    && new.is_none()
                {
                    self.link_address(a, name, true, dirty);
                }
                dirty.listeners.insert(name.clone());
                dirty.routes.insert(name.clone());
            }
            Kind::VirtualHost => {
                let checked_new = match new {
                    Some(Object::VirtualHost(v)) => {
                        let mut d = Diags::new(key.clone());
                        let checked = validate::check_vhost(v, &mut d);
                        self.set_diags(DiagKey::Object(key.clone()), d.finish());
                        Some(Arc::new(checked))
                    }
                    _ => {
                        self.set_diags(DiagKey::Object(key.clone()), Vec::new());
                        None
                    }
                };
                let checked_old = self.vhosts.get(name).cloned();
                for (o, checked, add) in
                    [(old, checked_old, false), (new, checked_new.clone(), true)]
                {
                    let Some(Object::VirtualHost(v)) = o else {
                        continue;
                    };
                    for c in vhost_clusters(v) {
                        link(&mut self.index.cluster_vhosts, c, name, add);
                    }
                    for l in &v.listeners {
                        let l: Arc<str> = Arc::from(l.as_str());
                        link(&mut self.index.listener_vhosts, &l, name, add);
                        dirty.pieces.insert((l.clone(), name.clone()));
                        let Some(checked) = &checked else { continue };
                        for dom in &checked.domains {
                            let k = (l.clone(), dom.clone());
                            let mut set = self.index.domains.get(&k).cloned().unwrap_or_default();
                            // The previous and the next owner of the domain both change.
                            dirty
                                .pieces
                                .extend(set.iter().map(|w| (l.clone(), w.clone())));
                            if add {
                                set.insert(name.clone());
                            } else {
                                set.remove(name);
                            }
                            dirty
                                .pieces
                                .extend(set.iter().map(|w| (l.clone(), w.clone())));
                            if set.is_empty() {
                                self.index.domains.remove(&k);
                            } else {
                                self.index.domains.insert(k, set);
                            }
                        }
                    }
                }
                match checked_new {
                    Some(c) => self.vhosts.insert(name.clone(), c),
                    None => self.vhosts.remove(name),
                };
            }
            _ => {}
        }
    }

    /// Adds or removes a listener binding an address; the listeners binding it before and
    /// after may win or lose it.
    fn link_address(&mut self, address: &str, name: &Arc<str>, add: bool, dirty: &mut Dirty) {
        dirty
            .listeners
            .extend(get(&self.index.addresses, address).cloned());
        link(&mut self.index.addresses, address, name, add);
        dirty
            .listeners
            .extend(get(&self.index.addresses, address).cloned());
    }

    /// The key of the listener (compiled, else raw) of this name.
    fn listener_key(&self, name: &Arc<str>) -> ObjectKey {
        let key = ObjectKey::new(Kind::Listener, name.clone());
        if self.model.get(&key).is_some() {
            key
        } else {
            ObjectKey::new(Kind::EnvoyListener, name.clone())
        }
    }

    fn set_diags(&mut self, key: DiagKey, list: Vec<Diagnostic>) {
        if list.is_empty() {
            self.diags.remove(&key);
        } else {
            self.diags.insert(key, list.into());
        }
    }

    /// Inserts a resource unless an identical one is already there (then the old allocation
    /// stays); removes it when `body` is `None`. Returns whether presence changed.
    fn put(
        &mut self,
        t: ResourceType,
        name: &Arc<str>,
        body: Option<Bytes>,
        provenance: Vec<ObjectKey>,
    ) -> bool {
        let resources = self.snapshot.resources_mut(t);
        match body {
            None => resources.remove(name).is_some(),
            Some(body) => {
                if let Some(old) = resources.get(name)
                    && *old.body() == body
                    && old.provenance() == provenance.as_slice()
                {
                    return false;
                }
                resources
                    .insert(Arc::new(Resource::new(t, name.clone(), body, provenance)))
                    .is_none()
            }
        }
    }

    fn secret_state(&self, name: &str) -> SecretState {
        if !self.snapshot.resources(ResourceType::Secret).contains(name) {
            return SecretState::Missing;
        }
        match self
            .model
            .get(&ObjectKey::new(Kind::Secret, name))
            .map(|o| &**o)
        {
            Some(Object::Secret(s)) if s.tls_certificate.is_some() => SecretState::TlsCertificate,
            Some(Object::Secret(_)) => SecretState::ValidationContext,
            _ => self
                .raws
                .get(&ObjectKey::new(Kind::EnvoySecret, name))
                .and_then(|c| c.refs.secret)
                .unwrap_or(SecretState::Missing),
        }
    }

    fn has_cluster(&self, name: &str) -> bool {
        self.snapshot
            .resources(ResourceType::Cluster)
            .contains(name)
    }

    /// Whether the served resource of this type and name was built from an object of `kind`.
    fn served_as(&self, t: ResourceType, name: &str, kind: Kind) -> bool {
        self.snapshot
            .get(t, name)
            .is_some_and(|r| r.provenance().first().is_some_and(|k| k.kind == kind))
    }

    /// The served clusters whose endpoints are load assignment `name`: the compiled cluster of
    /// that name, and raw EDS clusters naming it as their service.
    fn endpoint_users(&self, name: &Arc<str>) -> Vec<ObjectKey> {
        let mut out = Vec::new();
        if self.served_as(ResourceType::Cluster, name, Kind::Cluster) {
            out.push(ObjectKey::new(Kind::Cluster, name.clone()));
        }
        for c in get(&self.index.eds_clusters, name) {
            if self.served_as(ResourceType::Cluster, c, Kind::EnvoyCluster) {
                out.push(ObjectKey::new(Kind::EnvoyCluster, c.clone()));
            }
        }
        out
    }

    fn rebuild(&mut self, mut dirty: Dirty) {
        for s in std::mem::take(&mut dirty.secrets) {
            self.build_secret(&s);
            dirty
                .clusters
                .extend(get(&self.index.secret_clusters, &s).cloned());
            dirty
                .listeners
                .extend(get(&self.index.secret_listeners, &s).cloned());
        }
        for c in std::mem::take(&mut dirty.clusters) {
            if self.build_cluster(&c) {
                // Availability changed: routes and TCP proxies naming it change.
                for v in get(&self.index.cluster_vhosts, &c) {
                    if let Some(Object::VirtualHost(vh)) = self
                        .model
                        .get(&ObjectKey::new(Kind::VirtualHost, v.clone()))
                        .map(|o| &**o)
                    {
                        dirty.pieces.extend(
                            vh.listeners
                                .iter()
                                .map(|l| (Arc::from(l.as_str()), v.clone())),
                        );
                    }
                }
                dirty
                    .listeners
                    .extend(get(&self.index.cluster_listeners, &c).cloned());
                dirty
                    .routes
                    .extend(get(&self.index.cluster_routes, &c).cloned());
            }
            // Whether a raw cluster is served can change without the slot's presence changing
            // (a compiled cluster of its name came or went).
            if let Some((_, r)) = self.raw(Kind::EnvoyCluster, &c)
                && let Some(e) = &r.refs.eds_service
            {
                dirty.endpoints.insert(Arc::from(e.as_str()));
            }
            dirty.endpoints.insert(c);
        }
        for c in std::mem::take(&mut dirty.endpoints) {
            self.build_endpoints(&c);
        }
        for (l, v) in std::mem::take(&mut dirty.pieces) {
            self.build_piece(&l, &v);
            dirty.routes.insert(l);
        }
        for l in std::mem::take(&mut dirty.listeners) {
            if self.build_listener(&l) {
                // A deleted listener's route configuration was marked when it changed.
                if let Some(Object::Listener(x)) = self
                    .model
                    .get(&ObjectKey::new(Kind::Listener, l.clone()))
                    .map(|o| &**o)
                {
                    dirty.routes.insert(Arc::from(x.route_config_name()));
                }
            }
            if let Some((_, r)) = self.raw(Kind::EnvoyListener, &l) {
                dirty.routes.extend(
                    r.refs
                        .route_configs
                        .iter()
                        .map(|(_, rc)| Arc::from(rc.as_str())),
                );
            }
        }
        for l in std::mem::take(&mut dirty.routes) {
            self.build_routes(&l);
        }
    }

    fn build_secret(&mut self, name: &Arc<str>) -> bool {
        self.stats.resources_built += 1;
        let key = ObjectKey::new(Kind::Secret, name.clone());
        let mut d = Diags::new(key.clone());
        let compiled = match self.model.get(&key).map(|o| &**o) {
            Some(Object::Secret(s)) => Some(
                named(&s.name, &mut d)
                    .then(|| translate::secret(s, &mut d))
                    .flatten()
                    .map(|m| encode(&m)),
            ),
            _ => None,
        };
        let (body, from) = self.compiled_or_raw(&key, Kind::EnvoySecret, "secret", compiled);
        self.set_diags(DiagKey::Object(key), d.finish());
        self.put(ResourceType::Secret, name, body, vec![from])
    }

    fn build_cluster(&mut self, name: &Arc<str>) -> bool {
        self.stats.resources_built += 1;
        let key = ObjectKey::new(Kind::Cluster, name.clone());
        let mut d = Diags::new(key.clone());
        let compiled = match self.model.get(&key).map(|o| &**o) {
            Some(Object::Cluster(c)) => Some(
                named(&c.name, &mut d)
                    .then(|| translate::cluster(c, &|s| self.secret_state(s), &mut d))
                    .flatten()
                    .map(|m| encode(&m)),
            ),
            _ => None,
        };
        let (body, from) = self.compiled_or_raw(&key, Kind::EnvoyCluster, "cluster", compiled);
        self.set_diags(DiagKey::Object(key), d.finish());
        self.put(ResourceType::Cluster, name, body, vec![from])
    }

    fn build_endpoints(&mut self, name: &Arc<str>) {
        self.stats.resources_built += 1;
        let key = ObjectKey::new(Kind::Endpoints, name.clone());
        let mut d = Diags::new(key.clone());
        let model = self.model.get(&key).cloned();
        let object = match model.as_deref() {
            Some(Object::Endpoints(e)) => Some(e),
            _ => None,
        };
        let raw = self.raw(Kind::EnvoyClusterLoadAssignment, name);
        let users = self.endpoint_users(name);
        let dangling = Problem::Dangling(ObjectKey::new(Kind::Cluster, name.clone()));
        let mut provenance = users.clone();
        if provenance.is_empty() {
            provenance.push(ObjectKey::new(Kind::Cluster, name.clone()));
        }
        let body = match (&raw, object) {
            // A raw load assignment no compiled Endpoints object claims, if it checked.
            (Some((r, c)), None) => {
                let mut rd = Diags::new(r.clone());
                if users.is_empty() {
                    rd.warn(("resource", "cluster_name"), dangling.clone());
                }
                self.set_diags(DiagKey::Object(r.clone()), rd.finish());
                if c.body.is_some() {
                    provenance.push(r.clone());
                }
                c.body.clone().filter(|_| !users.is_empty())
            }
            _ => {
                if let Some((r, _)) = &raw {
                    self.raw_conflict(r, "load assignment", key.clone());
                }
                None
            }
        };
        let body = match body {
            Some(b) => Some(b),
            None if !users.is_empty() => {
                let cla = translate::endpoints(name, object, &mut d);
                if object.is_some() {
                    provenance.push(key.clone());
                }
                Some(encode(&cla))
            }
            None => {
                if object.is_some() {
                    d.warn("name", dangling);
                }
                None
            }
        };
        self.set_diags(DiagKey::Object(key), d.finish());
        self.put(ResourceType::Endpoint, name, body, provenance);
    }

    fn build_listener(&mut self, name: &Arc<str>) -> bool {
        self.stats.resources_built += 1;
        let key = ObjectKey::new(Kind::Listener, name.clone());
        let mut d = Diags::new(key.clone());
        let raw = self.raw(Kind::EnvoyListener, name);
        let model = self.model.get(&key).cloned();
        let mut from = key.clone();
        let body = match (model.as_deref(), raw) {
            (Some(Object::Listener(_)), Some((r, _))) => {
                self.raw_conflict(&r, "listener", key.clone());
                None
            }
            (_, Some((r, c))) => {
                let owner = c.refs.address.as_ref().and_then(|a| {
                    self.index
                        .addresses
                        .get(a.as_str())
                        .and_then(|s| s.keys().next().cloned())
                        .filter(|o| o != name)
                        .map(|o| (a.clone(), o))
                });
                from = r.clone();
                let body = self.raw_body(&r, &c);
                if let Some((addr, owner)) = owner {
                    let mut rd = Diags::new(r.clone());
                    rd.error(
                        ("resource", "address"),
                        Problem::Conflict {
                            what: format!("address {addr}"),
                            winner: self.listener_key(&owner),
                        },
                    );
                    let mut list = self
                        .diags
                        .get(&DiagKey::Object(r.clone()))
                        .map(|l| l.to_vec())
                        .unwrap_or_default();
                    list.extend(rd.finish());
                    self.set_diags(DiagKey::Object(r.clone()), list);
                    None
                } else {
                    body
                }
            }
            _ => None,
        };
        let body = match model.as_deref() {
            Some(Object::Listener(l)) if named(&l.name, &mut d) => {
                let owner = address_key(l)
                    .and_then(|a| {
                        self.index
                            .addresses
                            .get(a.as_str())
                            .and_then(|s| s.keys().next().cloned())
                    })
                    .filter(|o| o != name);
                let ctx = translate::ListenerContext {
                    secret: &|s| self.secret_state(s),
                    cluster: &|c| self.has_cluster(c),
                    address_owner: owner.as_deref(),
                };
                translate::listener(l, &ctx, &mut d).map(|m| encode(&m))
            }
            _ => body,
        };
        self.set_diags(DiagKey::Object(key), d.finish());
        self.put(ResourceType::Listener, name, body, vec![from])
    }

    /// Encodes virtual host `v`'s part of listener `l`'s route configuration.
    fn build_piece(&mut self, l: &Arc<str>, v: &Arc<str>) {
        self.stats.resources_built += 1;
        let key = (l.clone(), v.clone());
        let vkey = ObjectKey::new(Kind::VirtualHost, v.clone());
        let mut d = Diags::new(vkey.clone());
        let object = match self.model.get(&vkey).map(|o| &**o) {
            Some(Object::VirtualHost(vh)) if vh.listeners.iter().any(|x| **x == **l) => Some(vh),
            _ => None,
        };
        let piece = match (object, self.vhosts.get(v)) {
            (Some(vh), Some(checked)) if checked.valid => {
                let mut owned = Vec::new();
                for dom in &checked.domains {
                    let owner = self
                        .index
                        .domains
                        .get(&(l.clone(), dom.clone()))
                        .and_then(|s| s.iter().next());
                    match owner {
                        Some(o) if o != v => d.warn(
                            "domains",
                            Problem::Conflict {
                                what: format!("domain {dom:?} on listener {l:?}"),
                                winner: ObjectKey::new(Kind::VirtualHost, o.clone()),
                            },
                        ),
                        _ => owned.push(dom.clone()),
                    }
                }
                if owned.is_empty() {
                    None
                } else {
                    let msg = translate::virtual_host(
                        vh,
                        checked,
                        owned,
                        &|c| self.has_cluster(c),
                        &mut d,
                    );
                    Some(encode(&msg))
                }
            }
            _ => None,
        };
        self.set_diags(DiagKey::Piece(l.clone(), v.clone()), d.finish());
        match piece {
            Some(p) => self.pieces.insert(key, p),
            None => self.pieces.remove(&key),
        };
    }

    /// Assembles route configuration `l` from its virtual hosts' pieces, if an http or https
    /// listener that is served names it.
    fn build_routes(&mut self, l: &Arc<str>) {
        self.stats.resources_built += 1;
        // A raw route configuration of this name serves it, unless virtual hosts attach to it.
        if let Some((r, c)) = self.raw(Kind::EnvoyRouteConfiguration, l) {
            let first_vhost = get(&self.index.listener_vhosts, l).next().cloned();
            match first_vhost {
                Some(v) => {
                    let winner = ObjectKey::new(Kind::VirtualHost, v);
                    self.raw_conflict(&r, "route configuration", winner);
                }
                None => {
                    let body = self.raw_body(&r, &c);
                    if body.is_some() {
                        self.set_diags(DiagKey::Routes(l.clone()), Vec::new());
                        self.put(ResourceType::Route, l, body, vec![r]);
                        return;
                    }
                }
            }
        }
        let raw_users: Vec<Arc<str>> = get(&self.index.raw_route_listeners, l)
            .filter(|n| self.served_as(ResourceType::Listener, n, Kind::EnvoyListener))
            .cloned()
            .collect();
        let users: Vec<&model::Listener> = get(&self.index.route_listeners, l)
            .filter_map(
                |n| match self.model.get(&ObjectKey::new(Kind::Listener, n.clone())) {
                    Some(o) => match &**o {
                        Object::Listener(x) => Some(x),
                        _ => None,
                    },
                    None => None,
                },
            )
            .collect();
        let is_http = |x: &model::Listener| {
            matches!(
                x.protocol,
                model::ListenerProtocol::Http | model::ListenerProtocol::Https
            )
        };
        let http = users.iter().any(|x| is_http(x));
        let listeners = self.snapshot.resources(ResourceType::Listener);
        let served = !raw_users.is_empty()
            || users
                .iter()
                .any(|x| is_http(x) && listeners.contains(x.name.as_str()));
        // The listeners' part of the provenance; the default (one listener named `l`) reads
        // as before.
        let mut provenance: Vec<ObjectKey> = users
            .iter()
            .filter(|x| is_http(x))
            .map(|x| ObjectKey::new(Kind::Listener, x.name.as_str()))
            .collect();
        provenance.extend(
            raw_users
                .iter()
                .map(|n| ObjectKey::new(Kind::EnvoyListener, n.clone())),
        );
        if provenance.is_empty() {
            provenance.push(ObjectKey::new(Kind::Listener, l.clone()));
        }
        let own = users.len() == 1 && *users[0].name == **l;
        let renamed = match self.model.get(&ObjectKey::new(Kind::Listener, l.clone())) {
            Some(o) => match &**o {
                Object::Listener(x) if x.route_config_name() != &**l => {
                    Some(x.route_config_name().to_owned())
                }
                _ => None,
            },
            None => None,
        };
        let mut diags = Vec::new();
        let mut body = None;
        if get(&self.index.listener_vhosts, l).next().is_none() {
            // A raw listener naming a route configuration nothing provides is served an
            // empty one (every request answers 404), and told.
            let missing =
                Problem::Dangling(ObjectKey::new(Kind::EnvoyRouteConfiguration, l.clone()));
            for n in &raw_users {
                if let Some((_, c)) = self.raw(Kind::EnvoyListener, n) {
                    for (at, _) in c.refs.route_configs.iter().filter(|(_, rc)| **rc == **l) {
                        let key = ObjectKey::new(Kind::EnvoyListener, n.clone());
                        diags.push(Diagnostic::new(
                            key,
                            Severity::Warning,
                            at.clone(),
                            missing.clone(),
                        ));
                    }
                }
            }
        }
        if served {
            // RouteConfiguration: field 1 name, field 2 repeated VirtualHost, in field order:
            // exactly what prost emits for the same message.
            let lo = (l.clone(), Arc::<str>::from(""));
            let pieces: Vec<(&Arc<str>, &Bytes)> = self
                .pieces
                .range(lo..)
                .take_while(|((pl, _), _)| pl == l)
                .map(|((_, v), b)| (v, b))
                .collect();
            let size: usize = pieces.iter().map(|(_, b)| b.len() + 6).sum::<usize>() + l.len() + 6;
            let name = envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
                name: l.to_string(),
                ..Default::default()
            };
            let mut buf = BytesMut::with_capacity(size);
            buf.put_slice(&name.encode_to_vec());
            provenance.reserve(pieces.len());
            for (v, piece) in pieces {
                prost::encoding::encode_key(
                    2,
                    prost::encoding::WireType::LengthDelimited,
                    &mut buf,
                );
                prost::encoding::encode_varint(piece.len() as u64, &mut buf);
                buf.put_slice(piece);
                provenance.push(ObjectKey::new(Kind::VirtualHost, v.clone()));
            }
            body = Some(buf.freeze());
        } else {
            let why = match &renamed {
                Some(rc) if users.is_empty() => format!(
                    "listener {l:?} serves route configuration {rc:?}, not one named after it; \
                     not served there"
                ),
                _ if users.is_empty() || (own && http) => {
                    format!("listener {l:?} is missing or invalid; not served there")
                }
                _ if own => {
                    format!("listener {l:?} is not an http or https listener; not served there")
                }
                _ => format!(
                    "no valid http or https listener serves route configuration {l:?}; not \
                     served there"
                ),
            };
            for v in get(&self.index.listener_vhosts, l) {
                diags.push(Diagnostic::new(
                    ObjectKey::new(Kind::VirtualHost, v.clone()),
                    Severity::Warning,
                    "listeners",
                    Problem::invalid(why.clone()),
                ));
            }
        }
        self.set_diags(DiagKey::Routes(l.clone()), diags);
        self.put(ResourceType::Route, l, body, provenance);
    }
}

/// Checks an object's name; reports and returns false when it is unusable.
fn named(name: &str, d: &mut Diags) -> bool {
    d.check("name", validate::name(name))
}

/// The canonical encoding of a message (see [`crate::canonical`]).
fn encode<M: Message + Name>(m: &M) -> Bytes {
    Bytes::from(crate::canonical::encode(m))
}

#[cfg(test)]
mod tests;
