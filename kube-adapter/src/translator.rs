//! The incremental translator: Kubernetes object upserts and deletes in, model changes,
//! diagnostics that appeared or cleared, and statuses that changed out.
//!
//! [`Translator`] holds every Kubernetes object it was given and the output of the last
//! translation, cut into *units*: one per output that can be recomputed on its own (the
//! Ingress listeners, one Ingress host's virtual host, one Gateway's status, one Gateway
//! port's listener, one host of that port's virtual host, the Cluster of one Service port,
//! its Endpoints, one TLS Secret, ...). A
//! unit reads its inputs only through a recording context, so the translator knows what
//! each unit read (a `Dep`): an object, the EndpointSlices of a Service, the Ingresses
//! of a host, the HTTPRoutes naming a Gateway, a derived fact such as "this Ingress is
//! taken". Applying a batch dirties the deps the changed objects touch, recomputes the
//! units that read them and nothing else, and compares each recomputed unit's output with
//! its previous one: only model objects whose value changed are returned.
//!
//! The one-shot [`crate::translate::full`] is a translator given every object at once,
//! so the two cannot drift; a property test (`tests/incremental.rs`) checks that any
//! sequence of batches ends where a translation of the final set starts.
//!
//! Not here: what the translation means (the `translate` module and its submodules), I/O,
//! batching in time, and deciding what to serve (the source runtime in `xdsc-server`).
//!
//! # Adding a kind or an edge
//!
//! A kind that produces output gets a `UnitKey` variant (and a line in
//! `Translator::root_units`); one that is only read needs nothing, since reads by
//! identity (`Dep::Object`) are tracked for every kind. A new "who refers to whom" edge is
//! a `Dep` variant, an index kept in `Facts` and a `Cx` method that reads through it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use xdsc_core::model;

#[cfg(feature = "proptest")]
pub use crate::context::DepKind;
use crate::context::{
    Cx, Dep, Output, PortHosts, UnitKey, World, global_changes, port_hosts_changes,
};
use crate::objects::{Diagnostic, Inputs, KubeKind, KubeObject, ObjectRef, Options};
use crate::status::{ObjectStatus, StatusPart};
use crate::translate::{backends, gateways, ingress};

/// One change to the set of Kubernetes objects.
///
/// ```
/// use xdsc_kube::translate::{KubeObject, ObjectRef};
/// use xdsc_kube::translator::ObjectChange;
/// let svc = KubeObject::from_value(serde_json::json!({
///     "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
/// })).unwrap();
/// let up = ObjectChange::upsert(svc, Some("web.yaml:1".into()));
/// assert_eq!(up.id().to_string(), "Service default/web");
/// let down = ObjectChange::Delete(ObjectRef::new("Service", Some("default"), "web"));
/// assert_eq!(down.id(), up.id());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectChange {
    /// Adds or replaces the object with this identity.
    Upsert {
        /// The object.
        object: KubeObject,
        /// Where it was read (`file.yaml:12:1`), shown in provenance and diagnostics.
        origin: Option<String>,
    },
    /// Removes the object (nothing happens if it is not there).
    Delete(ObjectRef),
}

impl ObjectChange {
    /// An upsert.
    pub fn upsert(object: KubeObject, origin: Option<String>) -> ObjectChange {
        ObjectChange::Upsert { object, origin }
    }

    /// The identity of the object changed.
    pub fn id(&self) -> ObjectRef {
        match self {
            ObjectChange::Upsert { object, .. } => object.id(),
            ObjectChange::Delete(id) => id.clone(),
        }
    }
}

/// The model objects, diagnostics and statuses of a translation.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Translation {
    /// Model objects, sorted by key (kind, then name).
    pub objects: Vec<model::Object>,
    /// Diagnostics, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// The computed status of each object that has one (see [`crate::status`]).
    pub statuses: BTreeMap<ObjectRef, ObjectStatus>,
}

/// What one [`Translator::apply`] changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TranslationDelta {
    /// Upserts and deletes of model objects, sorted by key: feed them as they are to
    /// `xdsc_core::compile::Compiled::apply`. An object recomputed to the same value is not
    /// here.
    pub changes: Vec<model::Change>,
    /// Diagnostics that were not there before the batch, sorted.
    pub diagnostics_added: Vec<Diagnostic>,
    /// Diagnostics that the batch cleared, sorted.
    pub diagnostics_removed: Vec<Diagnostic>,
    /// Objects whose computed status changed, with the new status (`None`: the translation
    /// no longer has a status for it, e.g. it was deleted or is not ours any more). Sorted.
    pub statuses: Vec<(ObjectRef, Option<ObjectStatus>)>,
    /// What the batch cost.
    pub work: Work,
}

impl TranslationDelta {
    /// Whether the batch changed nothing visible.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.diagnostics_added.is_empty()
            && self.diagnostics_removed.is_empty()
            && self.statuses.is_empty()
    }
}

/// The work a batch did, counted (not timed), for tests and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Units recomputed, by unit kind (`"Endpoints"`, `"IngressHost"`, ...).
    pub units: BTreeMap<&'static str, usize>,
    /// Model objects produced by the recomputed units, by model kind (whether or not their
    /// value changed).
    pub objects: BTreeMap<model::Kind, usize>,
}

/// The stateful, incremental translation. Pure: no I/O, clock, randomness or async.
///
/// ```
/// use xdsc_kube::translate::{KubeObject, Options};
/// use xdsc_kube::translator::{ObjectChange, Translator};
/// let parse = |v| KubeObject::from_value(v).unwrap();
/// let mut t = Translator::new(Options::default());
/// let first = t.apply([
///     ObjectChange::upsert(parse(serde_json::json!({
///         "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
///         "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
///     })), None),
/// ]);
/// assert_eq!(first.changes.len(), 2); // the HTTP listener and the catch-all virtual host
/// assert_eq!(first.diagnostics_added[0].problem.to_string(), "service default/web does not exist");
///
/// // The Service arrives: its cluster and endpoints appear, the error clears, and the
/// // listener, which did not change, is not sent again.
/// let second = t.apply([ObjectChange::upsert(parse(serde_json::json!({
///     "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
///     "spec": {"ports": [{"port": 80}]},
/// })), None)]);
/// let keys: Vec<String> = second.changes.iter().map(|c| match c {
///     xdsc_core::model::Change::Upsert(o) => o.key().to_string(),
///     xdsc_core::model::Change::Delete(k) => format!("-{k}"),
/// }).collect();
/// assert_eq!(keys, ["Cluster/k8s:default/web:80", "Endpoints/k8s:default/web:80"]);
/// assert_eq!(second.diagnostics_removed.len(), 1);
/// assert!(second.diagnostics_added.is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct Translator {
    world: World,
    units: BTreeMap<UnitKey, Unit>,
    /// Which units read each dep: the reverse index a change is looked up in.
    readers: BTreeMap<Dep, BTreeSet<UnitKey>>,
    /// How many units use each demand-driven unit (a Service port's Cluster, a Secret).
    users: BTreeMap<UnitKey, usize>,
    /// Every model object, with the unit that produced it.
    model: BTreeMap<model::ObjectKey, (UnitKey, Arc<model::Object>)>,
    /// Every diagnostic, with the units that report it (a diagnostic can come from two
    /// units: the `*` host's rules are also read by every `*.x` host).
    diagnostics: BTreeMap<Diagnostic, BTreeSet<UnitKey>>,
    /// Status contributions, per object and unit.
    status_parts: BTreeMap<ObjectRef, BTreeMap<UnitKey, Vec<StatusPart>>>,
    /// Assembled statuses.
    statuses: BTreeMap<ObjectRef, ObjectStatus>,
    started: bool,
    #[cfg(feature = "proptest")]
    dropped: Option<DepKind>,
}

#[derive(Clone, Debug)]
struct Unit {
    deps: BTreeSet<Dep>,
    objects: BTreeMap<model::ObjectKey, Arc<model::Object>>,
    diagnostics: BTreeSet<Diagnostic>,
    uses: BTreeSet<UnitKey>,
    status: BTreeMap<ObjectRef, Vec<StatusPart>>,
}

/// The state before a batch of everything the batch touched, to report only real changes.
#[derive(Default)]
struct Before {
    objects: BTreeMap<model::ObjectKey, Option<Arc<model::Object>>>,
    diagnostics: BTreeMap<Diagnostic, bool>,
    statuses: BTreeSet<ObjectRef>,
    old_statuses: BTreeMap<ObjectRef, Option<ObjectStatus>>,
}

impl Default for Translator {
    fn default() -> Self {
        Translator::new(Options::default())
    }
}

impl Translator {
    /// An empty translator.
    pub fn new(options: Options) -> Translator {
        Translator {
            world: World {
                options,
                ..World::default()
            },
            units: BTreeMap::new(),
            readers: BTreeMap::new(),
            users: BTreeMap::new(),
            model: BTreeMap::new(),
            diagnostics: BTreeMap::new(),
            status_parts: BTreeMap::new(),
            statuses: BTreeMap::new(),
            started: false,
            #[cfg(feature = "proptest")]
            dropped: None,
        }
    }

    /// The options translated with.
    pub fn options(&self) -> &Options {
        &self.world.options
    }

    /// Every Kubernetes object held.
    pub fn inputs(&self) -> &Inputs {
        &self.world.inputs
    }

    /// Every model object of the translation, by key.
    pub fn objects(&self) -> impl Iterator<Item = &Arc<model::Object>> + '_ {
        self.model.values().map(|(_, o)| o)
    }

    /// Every diagnostic of the translation, sorted.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> + '_ {
        self.diagnostics.keys()
    }

    /// Every computed status, by object.
    pub fn statuses(&self) -> &BTreeMap<ObjectRef, ObjectStatus> {
        &self.statuses
    }

    /// The translation as a one-shot [`Translation`] (sorted objects and diagnostics).
    pub fn translation(&self) -> Translation {
        Translation {
            objects: self.objects().map(|o| (**o).clone()).collect(),
            diagnostics: self.diagnostics().cloned().collect(),
            statuses: self.statuses.clone(),
        }
    }

    /// The Kubernetes objects whose state the diagnostic depends on: those read by the
    /// units that report it. A source that holds back a change because of a new error
    /// finds here which changed objects may have caused it (a deleted Service, for an
    /// error on the Ingress that refers to it).
    ///
    /// ```
    /// use xdsc_kube::translate::{KubeObject, ObjectRef, Options};
    /// use xdsc_kube::translator::{ObjectChange, Translator};
    /// let mut t = Translator::new(Options::default());
    /// t.apply([ObjectChange::upsert(KubeObject::from_value(serde_json::json!({
    ///     "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
    ///     "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
    ///         "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]},
    /// })).unwrap(), None)]);
    /// let d = t.diagnostics().next().unwrap().clone();
    /// assert!(t.causes(&d).contains(&ObjectRef::new("Service", Some("default"), "api")));
    /// ```
    pub fn causes(&self, diagnostic: &Diagnostic) -> BTreeSet<ObjectRef> {
        let mut out = BTreeSet::new();
        for unit in self.diagnostics.get(diagnostic).into_iter().flatten() {
            for dep in self.units.get(unit).map(|u| &u.deps).into_iter().flatten() {
                if let Dep::Object(id) = dep {
                    out.insert(id.clone());
                }
            }
        }
        out
    }

    /// The objects of `kind` that some unit reads by identity, held or not, sorted: what
    /// the translation refers to now. The controller keeps the data of only the Secrets
    /// listed here, and reads a Secret when it appears here.
    ///
    /// ```
    /// use xdsc_kube::translate::{KubeKind, KubeObject, ObjectRef, Options};
    /// use xdsc_kube::translator::{ObjectChange, Translator};
    /// let mut t = Translator::new(Options::default());
    /// t.apply([ObjectChange::upsert(KubeObject::from_value(serde_json::json!({
    ///     "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
    ///     "spec": {"tls": [{"hosts": ["a.example"], "secretName": "a-cert"}],
    ///         "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    /// })).unwrap(), None)]);
    /// let secrets: Vec<_> = t.referenced(KubeKind::Secret).cloned().collect();
    /// assert_eq!(secrets, [ObjectRef::new("Secret", Some("default"), "a-cert")]);
    /// ```
    pub fn referenced(&self, kind: KubeKind) -> impl Iterator<Item = &ObjectRef> + '_ {
        let lo = Dep::Object(kind.id(None, ""));
        self.readers
            .range(lo..)
            .map_while(move |(dep, _)| match dep {
                Dep::Object(id) if id.kind == kind => Some(id),
                _ => None,
            })
    }

    /// Drops every dep of one kind from the index (a broken translator), for the test that
    /// shows the property test catches a missing edge.
    #[cfg(feature = "proptest")]
    #[doc(hidden)]
    pub fn drop_edges_for_test(&mut self, kind: DepKind) {
        self.dropped = Some(kind);
    }

    /// Applies a batch of upserts and deletes (when one object appears twice, its last
    /// change counts) and returns what changed. Cost: the units that read what the batch
    /// changed, not the whole set.
    pub fn apply(&mut self, batch: impl IntoIterator<Item = ObjectChange>) -> TranslationDelta {
        let mut latest: BTreeMap<ObjectRef, ObjectChange> = BTreeMap::new();
        for c in batch {
            latest.insert(c.id(), c);
        }
        let mut dirty: BTreeSet<Dep> = BTreeSet::new();
        let mut queue: BTreeSet<UnitKey> = BTreeSet::new();
        if !self.started {
            self.started = true;
            queue.insert(UnitKey::IngressGlobal);
            queue.insert(UnitKey::IngressHost("*".into()));
        }
        for (id, change) in latest {
            self.change_input(id, change, &mut dirty, &mut queue);
        }
        for dep in &dirty {
            if let Some(r) = self.readers.get(dep) {
                queue.extend(r.iter().cloned());
            }
        }
        let mut before = Before::default();
        let mut work = Work::default();
        while let Some(unit) = queue.pop_first() {
            self.recompute(unit, &mut queue, &mut before, &mut work);
        }
        self.finish(before, work)
    }

    /// Puts one change into the inputs and the indexes; records the deps it dirties and the
    /// units it creates or removes.
    fn change_input(
        &mut self,
        id: ObjectRef,
        change: ObjectChange,
        dirty: &mut BTreeSet<Dep>,
        queue: &mut BTreeSet<UnitKey>,
    ) {
        let old = match change {
            ObjectChange::Upsert { object, origin } => {
                let same = self.world.inputs.get(&id) == Some(&object)
                    && self.world.inputs.origin(&id) == origin.as_deref();
                if same {
                    return;
                }
                self.world.inputs.insert(object, origin)
            }
            ObjectChange::Delete(_) => match self.world.inputs.remove(&id) {
                Some(old) => Some(old),
                None => return,
            },
        };
        dirty.insert(Dep::Object(id.clone()));
        let new = self.world.inputs.get(&id).cloned();
        let Some(kind) = new.as_ref().or(old.as_ref()).map(KubeObject::kube_kind) else {
            return;
        };
        dirty.insert(Dep::Kind(kind));
        let origin = self.world.inputs.origin(&id).map(str::to_owned);
        let facts = &mut self.world.facts;
        match kind {
            KubeKind::EndpointSlice => {
                let label = |o: &Option<KubeObject>| match o {
                    Some(KubeObject::EndpointSlice(s)) => backends::service_of(s)
                        .map(|svc| (id.namespace.clone().unwrap_or_default(), svc.to_owned())),
                    _ => None,
                };
                let (was, now) = (label(&old), label(&new));
                let (was, now) = (was.into_iter().collect(), now.into_iter().collect());
                for (ns, svc) in reindex(&mut facts.slices, &was, &now, &id).0 {
                    dirty.insert(Dep::Slices(ns, svc));
                }
            }
            KubeKind::Ingress => {
                let hosts = |o: &Option<KubeObject>| match o {
                    Some(KubeObject::Ingress(i)) => ingress::hosts(i),
                    _ => BTreeSet::new(),
                };
                let (was, now) = (hosts(&old), hosts(&new));
                let (moved, appeared_or_emptied) = reindex(&mut facts.hosts, &was, &now, &id);
                dirty.extend(moved.into_iter().map(Dep::HostIngresses));
                for h in appeared_or_emptied.into_iter().filter(|h| h != "*") {
                    queue.insert(UnitKey::IngressHost(h));
                }
                let head = match &new {
                    Some(KubeObject::Ingress(i)) => Some(ingress::head(i, origin)),
                    _ => None,
                };
                if facts.heads.get(&id) != head.as_ref() {
                    dirty.insert(Dep::IngressHeads);
                    match head {
                        Some(h) => facts.heads.insert(id.clone(), h),
                        None => facts.heads.remove(&id),
                    };
                }
                queue.insert(UnitKey::Ingress(id));
            }
            KubeKind::HttpRoute | KubeKind::GrpcRoute | KubeKind::TlsRoute | KubeKind::TcpRoute => {
                let parents = |o: &Option<KubeObject>| match o {
                    Some(r) => gateways::parent_gateways(&id, r),
                    None => BTreeSet::new(),
                };
                let (was, now) = (parents(&old), parents(&new));
                let moved = reindex(&mut facts.gateway_routes, &was, &now, &id).0;
                dirty.extend(moved.into_iter().map(Dep::GatewayRoutes));
                queue.insert(UnitKey::Route(id));
            }
            KubeKind::Gateway => {
                let offset = self.world.options.privileged_port_offset;
                let ports = |o: &Option<KubeObject>| match o {
                    Some(KubeObject::Gateway(g)) => gateways::gateway_ports(g, offset),
                    _ => BTreeSet::new(),
                };
                let (was, now) = (ports(&old), ports(&new));
                let (moved, appeared_or_emptied) =
                    reindex(&mut facts.port_gateways, &was, &now, &id);
                dirty.extend(moved.into_iter().map(Dep::PortGateways));
                queue.extend(appeared_or_emptied.into_iter().map(UnitKey::GatewayPort));
                queue.insert(UnitKey::Gateway(id));
            }
            KubeKind::GatewayClass => {
                queue.insert(UnitKey::GatewayClass(id));
            }
            KubeKind::ReferenceGrant => {
                let ns = |o: &Option<KubeObject>| {
                    o.as_ref()
                        .map(|_| id.namespace.clone().unwrap_or_default())
                        .into_iter()
                        .collect::<BTreeSet<String>>()
                };
                let (was, now) = (ns(&old), ns(&new));
                reindex(&mut facts.grants, &was, &now, &id);
                // A grant read by identity is enough for changes of one that stays; one that
                // appears or goes dirties its namespace's set.
                if was != now {
                    dirty.extend(was.union(&now).cloned().map(Dep::Grants));
                }
            }
            KubeKind::IngressClass | KubeKind::Service | KubeKind::Secret | KubeKind::Namespace => {
            }
        }
    }

    /// Whether a unit should exist now.
    fn exists(&self, unit: &UnitKey) -> bool {
        let has = |id: &ObjectRef| self.world.inputs.get(id).is_some();
        match unit {
            UnitKey::IngressGlobal => true,
            UnitKey::IngressHost(h) => h == "*" || self.world.facts.hosts.contains_key(h),
            UnitKey::GatewayPort(p) => self.world.facts.port_gateways.contains_key(p),
            UnitKey::GatewayHost(p, h) => self
                .world
                .gateway_hosts
                .get(p)
                .is_some_and(|ph| ph.hosts.contains_key(h)),
            UnitKey::Ingress(id)
            | UnitKey::GatewayClass(id)
            | UnitKey::Gateway(id)
            | UnitKey::Route(id) => has(id),
            UnitKey::Cluster(..) | UnitKey::Endpoints(..) | UnitKey::Secret(_) => {
                self.users.get(unit).is_some_and(|n| *n > 0)
            }
        }
    }

    /// The root units of the current inputs (every unit that exists without being used).
    #[cfg(test)]
    fn root_units(&self) -> BTreeSet<UnitKey> {
        let mut out = BTreeSet::from([UnitKey::IngressGlobal, UnitKey::IngressHost("*".into())]);
        for h in self.world.facts.hosts.keys() {
            out.insert(UnitKey::IngressHost(h.clone()));
        }
        for p in self.world.facts.port_gateways.keys() {
            out.insert(UnitKey::GatewayPort(*p));
        }
        for (p, ph) in &self.world.gateway_hosts {
            for h in ph.hosts.keys() {
                out.insert(UnitKey::GatewayHost(*p, h.clone()));
            }
        }
        for (id, o) in self.world.inputs.iter() {
            match o.kube_kind() {
                KubeKind::Ingress => out.insert(UnitKey::Ingress(id.clone())),
                KubeKind::GatewayClass => out.insert(UnitKey::GatewayClass(id.clone())),
                KubeKind::Gateway => out.insert(UnitKey::Gateway(id.clone())),
                KubeKind::HttpRoute
                | KubeKind::GrpcRoute
                | KubeKind::TlsRoute
                | KubeKind::TcpRoute => out.insert(UnitKey::Route(id.clone())),
                _ => false,
            };
        }
        out
    }

    fn compute(&self, unit: &UnitKey) -> (Output, BTreeSet<Dep>) {
        let mut cx = Cx::new(&self.world);
        match unit {
            UnitKey::IngressGlobal => ingress::global(&mut cx),
            UnitKey::Ingress(id) => ingress::object(&mut cx, id),
            UnitKey::IngressHost(h) => ingress::host(&mut cx, h),
            UnitKey::GatewayClass(id) => gateways::gateway_class(&mut cx, id),
            UnitKey::Gateway(id) => gateways::gateway(&mut cx, id),
            UnitKey::GatewayPort(p) => gateways::port(&mut cx, *p),
            UnitKey::GatewayHost(p, h) => gateways::host(&mut cx, *p, h),
            UnitKey::Route(id) => gateways::route_object(&mut cx, id),
            UnitKey::Cluster(svc, port, h2) => backends::cluster(&mut cx, svc, *port, *h2),
            UnitKey::Endpoints(svc, port, h2) => backends::endpoints(&mut cx, svc, *port, *h2),
            UnitKey::Secret(id) => backends::secret(&mut cx, id),
        }
        cx.finish()
    }

    fn recompute(
        &mut self,
        key: UnitKey,
        queue: &mut BTreeSet<UnitKey>,
        before: &mut Before,
        work: &mut Work,
    ) {
        let old = self.units.remove(&key);
        let (mut output, deps) = if self.exists(&key) {
            *work.units.entry(key.kind()).or_default() += 1;
            let (mut output, deps) = self.compute(&key);
            for k in output.objects.keys() {
                *work.objects.entry(k.kind).or_default() += 1;
            }
            if let Some(global) = output.ingress.take() {
                let changed = global_changes(&self.world.ingress, &global);
                self.world.ingress = global;
                for dep in changed {
                    if let Some(r) = self.readers.get(&dep) {
                        queue.extend(r.iter().cloned());
                    }
                }
            }
            (Some(output), deps)
        } else {
            (None, BTreeSet::new())
        };
        if let UnitKey::GatewayPort(p) = &key {
            let hosts = output.as_mut().and_then(|o| o.gateway_hosts.take());
            self.set_gateway_hosts(*p, hosts, queue);
        }
        #[cfg(feature = "proptest")]
        let deps = {
            let mut deps = deps;
            if let Some(kind) = self.dropped {
                deps.retain(|d| d.kind() != Some(kind));
            }
            deps
        };
        let empty = Unit {
            deps: BTreeSet::new(),
            objects: BTreeMap::new(),
            diagnostics: BTreeSet::new(),
            uses: BTreeSet::new(),
            status: BTreeMap::new(),
        };
        let old = old.unwrap_or_else(|| empty.clone());
        // The index.
        for d in old.deps.difference(&deps) {
            if let Some(r) = self.readers.get_mut(d) {
                r.remove(&key);
                if r.is_empty() {
                    self.readers.remove(d);
                }
            }
        }
        for d in deps.difference(&old.deps) {
            self.readers
                .entry(d.clone())
                .or_default()
                .insert(key.clone());
        }
        let Some(output) = output else {
            self.retract(&key, old, before, queue);
            return;
        };
        // Model objects: keep the old allocation where the value is the same.
        let mut objects = BTreeMap::new();
        for (k, o) in output.objects {
            match old.objects.get(&k) {
                Some(prev) if **prev == o => {
                    objects.insert(k, Arc::clone(prev));
                }
                _ => {
                    let o = Arc::new(o);
                    self.touch_object(&k, before);
                    self.model.insert(k.clone(), (key.clone(), Arc::clone(&o)));
                    objects.insert(k, o);
                }
            }
        }
        for k in old.objects.keys().filter(|k| !objects.contains_key(*k)) {
            self.touch_object(k, before);
            if self.model.get(k).is_some_and(|(owner, _)| *owner == key) {
                self.model.remove(k);
            }
        }
        self.swap_diagnostics(&key, &old.diagnostics, &output.diagnostics, before);
        self.swap_uses(&old.uses, &output.uses, queue);
        self.swap_status(&key, &old.status, &output.status, before);
        self.units.insert(
            key,
            Unit {
                deps,
                objects,
                diagnostics: output.diagnostics,
                uses: output.uses,
                status: output.status,
            },
        );
    }

    /// Keeps what a Gateway port's unit decided for its hosts; queues the hosts whose facts
    /// changed (their readers) and those that appeared or went (their units).
    fn set_gateway_hosts(
        &mut self,
        port: u16,
        new: Option<PortHosts>,
        queue: &mut BTreeSet<UnitKey>,
    ) {
        let old = self.world.gateway_hosts.remove(&port);
        let (changed, moved) = port_hosts_changes(port, old.as_ref(), new.as_ref());
        for dep in changed {
            if let Some(r) = self.readers.get(&dep) {
                queue.extend(r.iter().cloned());
            }
        }
        queue.extend(moved.into_iter().map(|h| UnitKey::GatewayHost(port, h)));
        if let Some(new) = new {
            self.world.gateway_hosts.insert(port, new);
        }
    }

    fn retract(
        &mut self,
        key: &UnitKey,
        old: Unit,
        before: &mut Before,
        queue: &mut BTreeSet<UnitKey>,
    ) {
        for k in old.objects.keys() {
            self.touch_object(k, before);
            if self.model.get(k).is_some_and(|(owner, _)| owner == key) {
                self.model.remove(k);
            }
        }
        self.swap_diagnostics(key, &old.diagnostics, &BTreeSet::new(), before);
        self.swap_uses(&old.uses, &BTreeSet::new(), queue);
        self.swap_status(key, &old.status, &BTreeMap::new(), before);
    }

    fn touch_object(&self, k: &model::ObjectKey, before: &mut Before) {
        before
            .objects
            .entry(k.clone())
            .or_insert_with(|| self.model.get(k).map(|(_, o)| Arc::clone(o)));
    }

    fn swap_diagnostics(
        &mut self,
        key: &UnitKey,
        old: &BTreeSet<Diagnostic>,
        new: &BTreeSet<Diagnostic>,
        before: &mut Before,
    ) {
        for d in old.difference(new) {
            before.diagnostics.entry(d.clone()).or_insert(true);
            if let Some(units) = self.diagnostics.get_mut(d) {
                units.remove(key);
                if units.is_empty() {
                    self.diagnostics.remove(d);
                }
            }
        }
        for d in new.difference(old) {
            let units = self.diagnostics.entry(d.clone()).or_default();
            before
                .diagnostics
                .entry(d.clone())
                .or_insert(!units.is_empty());
            units.insert(key.clone());
        }
    }

    fn swap_uses(
        &mut self,
        old: &BTreeSet<UnitKey>,
        new: &BTreeSet<UnitKey>,
        queue: &mut BTreeSet<UnitKey>,
    ) {
        for u in old.difference(new) {
            if let Some(n) = self.users.get_mut(u) {
                *n -= 1;
                if *n == 0 {
                    self.users.remove(u);
                    queue.insert(u.clone());
                }
            }
        }
        for u in new.difference(old) {
            let n = self.users.entry(u.clone()).or_default();
            *n += 1;
            if *n == 1 {
                queue.insert(u.clone());
            }
        }
    }

    fn swap_status(
        &mut self,
        key: &UnitKey,
        old: &BTreeMap<ObjectRef, Vec<StatusPart>>,
        new: &BTreeMap<ObjectRef, Vec<StatusPart>>,
        before: &mut Before,
    ) {
        for (id, parts) in old {
            if new.get(id) != Some(parts) {
                self.touch_status(id, before);
                if let Some(by_unit) = self.status_parts.get_mut(id) {
                    by_unit.remove(key);
                    if by_unit.is_empty() {
                        self.status_parts.remove(id);
                    }
                }
            }
        }
        for (id, parts) in new {
            if old.get(id) != Some(parts) {
                self.touch_status(id, before);
                self.status_parts
                    .entry(id.clone())
                    .or_default()
                    .insert(key.clone(), parts.clone());
            }
        }
    }

    fn touch_status(&self, id: &ObjectRef, before: &mut Before) {
        if before.statuses.insert(id.clone()) {
            before
                .old_statuses
                .insert(id.clone(), self.statuses.get(id).cloned());
        }
    }

    fn finish(&mut self, before: Before, work: Work) -> TranslationDelta {
        let mut delta = TranslationDelta {
            work,
            ..TranslationDelta::default()
        };
        for (k, was) in before.objects {
            let now = self.model.get(&k).map(|(_, o)| o);
            match (was, now) {
                (Some(_), None) => delta.changes.push(model::Change::Delete(k)),
                (was, Some(now)) if was.as_ref().is_none_or(|w| **w != **now) => {
                    delta.changes.push(model::Change::Upsert(Arc::clone(now)));
                }
                _ => {}
            }
        }
        for (d, was) in before.diagnostics {
            match (was, self.diagnostics.contains_key(&d)) {
                (false, true) => delta.diagnostics_added.push(d),
                (true, false) => delta.diagnostics_removed.push(d),
                _ => {}
            }
        }
        for id in before.statuses {
            let parts = self.status_parts.get(&id);
            let generation = self
                .world
                .inputs
                .get(&id)
                .and_then(|o| o.metadata().generation);
            let now = parts.map(|p| ObjectStatus::assemble(generation, p.values().flatten()));
            match &now {
                Some(s) => self.statuses.insert(id.clone(), s.clone()),
                None => self.statuses.remove(&id),
            };
            if before.old_statuses.get(&id).cloned().flatten() != now {
                delta.statuses.push((id, now));
            }
        }
        delta
    }
}

/// Moves `id` from the sets under the keys `was` to the sets under the keys `now`. Returns
/// the keys whose set changed, and those whose set appeared or became empty (and is gone).
fn reindex<K: Ord + Clone>(
    index: &mut BTreeMap<K, BTreeSet<ObjectRef>>,
    was: &BTreeSet<K>,
    now: &BTreeSet<K>,
    id: &ObjectRef,
) -> (Vec<K>, Vec<K>) {
    let mut bounds = Vec::new();
    for k in was.difference(now) {
        if let Some(set) = index.get_mut(k) {
            set.remove(id);
            if set.is_empty() {
                index.remove(k);
                bounds.push(k.clone());
            }
        }
    }
    for k in now.difference(was) {
        let set = index.entry(k.clone()).or_default();
        if set.is_empty() {
            bounds.push(k.clone());
        }
        set.insert(id.clone());
    }
    (was.symmetric_difference(now).cloned().collect(), bounds)
}

#[cfg(test)]
mod tests;
