//! The context units are computed in: what the translation has read and may read.
//!
//! [`World`] is the inputs with the indexes of who refers to whom ([`Facts`]) and the
//! Ingress-wide decisions ([`Global`]); [`Cx`] is the one door through which a unit reads
//! it, recording each read as a [`Dep`]; [`UnitKey`] names the units and [`Output`] is what
//! one produced. The per-kind translations (`crate::translate::*`) and the
//! [`Translator`](crate::translator::Translator) both import from here, so dependencies point
//! one way: `objects` ← `context` ← `translate::*` ← `translator`.
//!
//! Not here: what any kind means (the `translate` submodules), and how units are kept,
//! indexed and recomputed (`translator`).
//!
//! # Adding an edge
//!
//! A new "who refers to whom" edge is a [`Dep`] variant, an index in [`Facts`] (kept by
//! `Translator::change_input`) and a [`Cx`] method here that reads through it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::networking::v1::{IngressBackend, IngressTLS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use xdsc_core::diagnostic::{Problem, ToFieldPath};
use xdsc_core::model;

use crate::objects::{Diagnostic, Inputs, KubeKind, KubeObject, ObjectRef, Options, Severity};
use crate::status::{Condition, Scope, StatusPart};

/// The inputs and the derived facts units read.
#[derive(Clone, Debug, Default)]
pub(crate) struct World {
    pub(crate) options: Options,
    pub(crate) inputs: Inputs,
    pub(crate) facts: Facts,
    /// The Ingress decisions every host needs (which Ingresses are taken, TLS hosts, the
    /// default backend): the output of the [`UnitKey::IngressGlobal`] unit.
    pub(crate) ingress: Global,
    /// Per Envoy port of HTTP(S) Gateway listeners, what its hosts' virtual hosts read: the
    /// output of the [`UnitKey::GatewayPort`] units.
    pub(crate) gateway_hosts: BTreeMap<u16, PortHosts>,
}

/// What the [`UnitKey::GatewayPort`] unit of an HTTP or HTTPS port decides for the virtual
/// hosts of the port, each built by its own [`UnitKey::GatewayHost`] unit: the port-wide
/// facts, and per host the routes attached for it. A change to one route's rules changes
/// neither, so it recomputes only the hosts that read the route.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PortHosts {
    pub(crate) head: PortHead,
    /// Per host, the HTTP and gRPC routes attached for it, oldest first.
    pub(crate) hosts: BTreeMap<String, Vec<HostRoute>>,
}

/// The port-wide facts every virtual host of a Gateway port reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PortHead {
    /// Whether the port terminates TLS (HTTPS listeners).
    pub(crate) https: bool,
    /// The Gateway listener port (for redirects without a port).
    pub(crate) port: i32,
    /// The hostnames of the served listeners (none: any host), for listener isolation.
    pub(crate) hostnames: Vec<Option<String>>,
    /// The Gateways of the served listeners (provenance).
    pub(crate) gateways: Vec<ObjectRef>,
    /// The wildcard hosts (and `*`) of the port: the hosts whose rules others fall back to.
    pub(crate) wildcards: Vec<String>,
}

/// A route attached for one host of a Gateway port.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HostRoute {
    pub(crate) route: ObjectRef,
    /// The hostnames of the listeners it attaches to the host through.
    pub(crate) via: BTreeSet<Option<String>>,
}

/// The facts that differ between two [`PortHosts`] of `port`, and the hosts that appeared
/// or went.
pub(crate) fn port_hosts_changes(
    port: u16,
    old: Option<&PortHosts>,
    new: Option<&PortHosts>,
) -> (Vec<Dep>, Vec<String>) {
    let mut deps = Vec::new();
    if old.map(|o| &o.head) != new.map(|n| &n.head) {
        deps.push(Dep::GatewayHead(port));
    }
    let hosts = |p: Option<&PortHosts>| p.map(|p| p.hosts.keys().cloned().collect::<Vec<_>>());
    let all: BTreeSet<String> = hosts(old).into_iter().chain(hosts(new)).flatten().collect();
    let mut moved = Vec::new();
    for h in all {
        let (was, now) = (
            old.and_then(|o| o.hosts.get(&h)),
            new.and_then(|n| n.hosts.get(&h)),
        );
        if was != now {
            if was.is_none() || now.is_none() {
                moved.push(h.clone());
            }
            deps.push(Dep::GatewayHost(port, h));
        }
    }
    (deps, moved)
}

/// The indexes of who refers to whom, kept from the objects' own fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct Facts {
    /// EndpointSlices by (namespace, `kubernetes.io/service-name` label).
    pub(crate) slices: BTreeMap<(String, String), BTreeSet<ObjectRef>>,
    /// Ingresses by the (valid, lowercased) hosts of their rules; `*` for rules without one.
    pub(crate) hosts: BTreeMap<String, BTreeSet<ObjectRef>>,
    /// Routes (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute) by the Gateways their `parentRefs`
    /// name.
    pub(crate) gateway_routes: BTreeMap<ObjectRef, BTreeSet<ObjectRef>>,
    /// Gateways by the Envoy ports of their listeners.
    pub(crate) port_gateways: BTreeMap<u16, BTreeSet<ObjectRef>>,
    /// ReferenceGrants by namespace.
    pub(crate) grants: BTreeMap<String, BTreeSet<ObjectRef>>,
    /// What the Ingress-wide decisions read of each Ingress.
    pub(crate) heads: BTreeMap<ObjectRef, Head>,
}

/// Something a unit read. A change to it recomputes the unit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dep {
    /// One object, by identity (present or not).
    Object(ObjectRef),
    /// Every object of a kind (only for small kinds: IngressClass).
    Kind(KubeKind),
    /// The set of EndpointSlices labelled for a Service: (namespace, service name).
    Slices(String, String),
    /// The set of Ingresses with a rule for a host.
    HostIngresses(String),
    /// The set of routes naming a Gateway in their `parentRefs`.
    GatewayRoutes(ObjectRef),
    /// The set of Gateways with a listener on an Envoy port.
    PortGateways(u16),
    /// The set of ReferenceGrants in a namespace.
    Grants(String),
    /// The Ingress-wide fields of every Ingress ([`Head`]).
    IngressHeads,
    /// Derived: whether (and how old) an Ingress is taken.
    Taken(ObjectRef),
    /// Derived: whether a host has an Ingress certificate.
    TlsHost(String),
    /// Derived: whether an Ingress has a certificate without hosts.
    TlsAll(ObjectRef),
    /// Derived: the Ingress default backend.
    DefaultBackend,
    /// Derived: whether the Ingress HTTPS listener exists.
    Https,
    /// Derived: the port-wide facts of a Gateway port's virtual hosts ([`PortHead`]).
    GatewayHead(u16),
    /// Derived: the routes attached for one host of a Gateway port.
    GatewayHost(u16, String),
}

/// The kinds of [`Dep`], so that a test can drop one kind of edge and see the property
/// test fail.
#[cfg(feature = "proptest")]
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepKind {
    /// [`Dep::Object`].
    Object,
    /// [`Dep::Slices`].
    Slices,
    /// [`Dep::HostIngresses`].
    HostIngresses,
    /// [`Dep::GatewayRoutes`].
    GatewayRoutes,
    /// [`Dep::TlsHost`].
    TlsHost,
    /// [`Dep::PortGateways`].
    PortGateways,
    /// [`Dep::Grants`].
    Grants,
    /// [`Dep::GatewayHead`] and [`Dep::GatewayHost`].
    GatewayHosts,
}

#[cfg(feature = "proptest")]
impl Dep {
    /// The kind of edge, for the dropped-edge tests.
    pub(crate) fn kind(&self) -> Option<DepKind> {
        Some(match self {
            Dep::Object(_) => DepKind::Object,
            Dep::Slices(..) => DepKind::Slices,
            Dep::HostIngresses(_) => DepKind::HostIngresses,
            Dep::GatewayRoutes(_) => DepKind::GatewayRoutes,
            Dep::TlsHost(_) => DepKind::TlsHost,
            Dep::PortGateways(_) => DepKind::PortGateways,
            Dep::Grants(_) => DepKind::Grants,
            Dep::GatewayHead(_) | Dep::GatewayHost(..) => DepKind::GatewayHosts,
            _ => return None,
        })
    }
}

/// An output that is recomputed on its own. The order of the variants is the order units
/// are recomputed in: the Ingress-wide unit first (hosts read what it decides), the
/// demand-driven units (which only read objects) last, once every user has said what it
/// uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum UnitKey {
    /// Which Ingresses are taken, TLS, the default backend, the Ingress listeners.
    IngressGlobal,
    /// One Ingress's own checks (class, annotations, hosts) and its status.
    Ingress(ObjectRef),
    /// The virtual host of one Ingress host (`*` for rules without a host).
    IngressHost(String),
    /// A GatewayClass's status.
    GatewayClass(ObjectRef),
    /// A Gateway's status, its listeners' and its routes' `Accepted` per parent.
    Gateway(ObjectRef),
    /// The model listener of one Envoy port of Gateway listeners (of one or more Gateways),
    /// its TCP routes, and which routes each host of an HTTP(S) port takes ([`PortHosts`]).
    GatewayPort(u16),
    /// The virtual host of one host of an HTTP(S) Gateway port.
    GatewayHost(u16, String),
    /// A route's own checks (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute) and `ResolvedRefs`.
    Route(ObjectRef),
    /// The Cluster of a Service port (by port number; `true`: its HTTP/2 sibling for gRPC),
    /// while some route uses it.
    Cluster(ObjectRef, i32, bool),
    /// The Endpoints of a Service port (as [`UnitKey::Cluster`]), while some route uses it.
    Endpoints(ObjectRef, i32, bool),
    /// The model Secret of a TLS Secret, while some listener uses it.
    Secret(ObjectRef),
}

impl UnitKey {
    /// The unit's kind, as counted in `Work::units`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            UnitKey::IngressGlobal => "IngressGlobal",
            UnitKey::Ingress(_) => "Ingress",
            UnitKey::IngressHost(_) => "IngressHost",
            UnitKey::GatewayClass(_) => "GatewayClass",
            UnitKey::Gateway(_) => "Gateway",
            UnitKey::GatewayPort(_) => "GatewayPort",
            UnitKey::GatewayHost(..) => "GatewayHost",
            UnitKey::Route(_) => "Route",
            UnitKey::Cluster(..) => "Cluster",
            UnitKey::Endpoints(..) => "Endpoints",
            UnitKey::Secret(_) => "Secret",
        }
    }
}

/// What one unit produced.
#[derive(Clone, Debug, Default)]
pub(crate) struct Output {
    pub(crate) objects: BTreeMap<model::ObjectKey, model::Object>,
    pub(crate) diagnostics: BTreeSet<Diagnostic>,
    /// Demand-driven units this one needs.
    pub(crate) uses: BTreeSet<UnitKey>,
    pub(crate) status: BTreeMap<ObjectRef, Vec<StatusPart>>,
    /// The Ingress-wide decisions (only from [`UnitKey::IngressGlobal`]).
    pub(crate) ingress: Option<Global>,
    /// What the hosts of a Gateway port read (only from [`UnitKey::GatewayPort`]).
    pub(crate) gateway_hosts: Option<PortHosts>,
}

/// The context of one unit of the translation: every read of an input goes through it and
/// is recorded as a [`Dep`], so the translator knows what to recompute when that input
/// changes. A unit function must not reach the inputs any other way.
pub(crate) struct Cx<'a> {
    world: &'a World,
    pub(crate) options: &'a Options,
    out: Output,
    deps: BTreeSet<Dep>,
    /// Valid clusters this unit forwards to.
    pub(crate) clusters: BTreeSet<String>,
    /// Why references did not resolve (status reason, message), newest last.
    pub(crate) ref_problems: Vec<(&'static str, String)>,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(world: &'a World) -> Cx<'a> {
        Cx {
            world,
            options: &world.options,
            out: Output::default(),
            deps: BTreeSet::new(),
            clusters: BTreeSet::new(),
            ref_problems: Vec::new(),
        }
    }

    pub(crate) fn ref_problem(&mut self, reason: &'static str, message: impl Into<String>) {
        self.ref_problems.push((reason, message.into()));
    }

    pub(crate) fn finish(self) -> (Output, BTreeSet<Dep>) {
        (self.out, self.deps)
    }

    pub(crate) fn depend(&mut self, dep: Dep) {
        self.deps.insert(dep);
    }

    /// One object by identity.
    pub(crate) fn get(&mut self, id: &ObjectRef) -> Option<&'a KubeObject> {
        self.deps.insert(Dep::Object(id.clone()));
        self.world.inputs.get(id)
    }

    /// Every object of a (small) kind.
    pub(crate) fn of_kind(
        &mut self,
        kind: KubeKind,
    ) -> impl Iterator<Item = (&'a ObjectRef, &'a KubeObject)> + 'a {
        self.deps.insert(Dep::Kind(kind));
        self.world.inputs.of_kind(kind)
    }

    /// Members of an index set, each read as an object.
    fn members(
        &mut self,
        dep: Dep,
        set: Option<&'a BTreeSet<ObjectRef>>,
    ) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        self.deps.insert(dep);
        set.into_iter()
            .flatten()
            .filter_map(|id| self.get(id).map(|o| (id, o)))
            .collect()
    }

    /// The routes (of every kind) whose `parentRefs` name a Gateway.
    pub(crate) fn gateway_routes(
        &mut self,
        gateway: &ObjectRef,
    ) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        let set = self.world.facts.gateway_routes.get(gateway);
        self.members(Dep::GatewayRoutes(gateway.clone()), set)
    }

    /// The Gateways with a listener on an Envoy port.
    pub(crate) fn port_gateways(&mut self, port: u16) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        let set = self.world.facts.port_gateways.get(&port);
        self.members(Dep::PortGateways(port), set)
    }

    /// The ReferenceGrants in a namespace.
    pub(crate) fn grants(&mut self, namespace: &str) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        let set = self.world.facts.grants.get(namespace);
        self.members(Dep::Grants(namespace.to_owned()), set)
    }

    /// The EndpointSlices labelled for a Service.
    pub(crate) fn slices(
        &mut self,
        namespace: &str,
        service: &str,
    ) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        let key = (namespace.to_owned(), service.to_owned());
        let set = self.world.facts.slices.get(&key);
        self.members(Dep::Slices(key.0, key.1), set)
    }

    /// The Ingresses with a rule for a host.
    pub(crate) fn host_ingresses(&mut self, host: &str) -> Vec<(&'a ObjectRef, &'a KubeObject)> {
        let set = self.world.facts.hosts.get(host);
        self.members(Dep::HostIngresses(host.to_owned()), set)
    }

    /// The Ingress-wide fields of every Ingress.
    pub(crate) fn ingress_heads(&mut self) -> &'a BTreeMap<ObjectRef, Head> {
        self.deps.insert(Dep::IngressHeads);
        &self.world.facts.heads
    }

    /// The Ingress-wide decisions; read them through [`Global`]'s methods, which
    /// record what was read.
    pub(crate) fn ingress_global(&self) -> &'a Global {
        &self.world.ingress
    }

    /// Reports a problem with `object`, an object this unit read. `field` is built only
    /// here (see [`ToFieldPath`]).
    fn report(
        &mut self,
        severity: Severity,
        object: &ObjectRef,
        field: impl ToFieldPath,
        message: impl fmt::Display,
    ) {
        self.out.diagnostics.insert(Diagnostic::new(
            object.clone(),
            severity,
            field,
            Problem::Invalid(message.to_string()),
        ));
    }

    pub(crate) fn error(
        &mut self,
        object: &ObjectRef,
        field: impl ToFieldPath,
        message: impl fmt::Display,
    ) {
        self.report(Severity::Error, object, field, message);
    }

    pub(crate) fn warn(
        &mut self,
        object: &ObjectRef,
        field: impl ToFieldPath,
        message: impl fmt::Display,
    ) {
        self.report(Severity::Warning, object, field, message);
    }

    /// The provenance entry of an object (read, so that a new origin updates it).
    pub(crate) fn source(&mut self, object: &ObjectRef) -> model::Source {
        self.deps.insert(Dep::Object(object.clone()));
        source_with(object, self.world.inputs.origin(object))
    }

    /// Sorted, deduplicated provenance of several objects.
    pub(crate) fn sources<'r>(
        &mut self,
        objects: impl IntoIterator<Item = &'r ObjectRef>,
    ) -> Vec<model::Source> {
        let mut out: Vec<model::Source> = objects.into_iter().map(|o| self.source(o)).collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn emit(&mut self, object: impl Into<model::Object>) {
        let object = object.into();
        self.out.objects.insert(object.key(), object);
    }

    /// This unit needs a demand-driven unit (a Service port's Cluster, a Secret).
    pub(crate) fn use_unit(&mut self, unit: UnitKey) {
        self.out.uses.insert(unit);
    }

    /// A part of an object's status.
    pub(crate) fn status(&mut self, object: &ObjectRef, part: StatusPart) {
        self.out
            .status
            .entry(object.clone())
            .or_default()
            .push(part);
    }

    /// A condition of an object's status.
    pub(crate) fn condition(&mut self, object: &ObjectRef, scope: Scope, condition: Condition) {
        self.status(object, StatusPart::Condition(scope, condition));
    }

    pub(crate) fn set_ingress_global(&mut self, global: Global) {
        self.out.ingress = Some(global);
    }

    pub(crate) fn set_gateway_hosts(&mut self, hosts: PortHosts) {
        self.out.gateway_hosts = Some(hosts);
    }

    /// The port-wide facts of a Gateway port's virtual hosts.
    pub(crate) fn gateway_head(&mut self, port: u16) -> Option<&'a PortHead> {
        self.deps.insert(Dep::GatewayHead(port));
        self.world.gateway_hosts.get(&port).map(|p| &p.head)
    }

    /// The routes attached for one host of a Gateway port, oldest first.
    pub(crate) fn gateway_host(&mut self, port: u16, host: &str) -> &'a [HostRoute] {
        self.deps.insert(Dep::GatewayHost(port, host.to_owned()));
        self.world
            .gateway_hosts
            .get(&port)
            .and_then(|p| p.hosts.get(host))
            .map_or(&[][..], Vec::as_slice)
    }
}

/// A provenance entry from an identity and origin.
pub(crate) fn source_with(object: &ObjectRef, origin: Option<&str>) -> model::Source {
    model::Source {
        kind: object.kind.clone(),
        namespace: object.namespace.clone(),
        name: object.name.clone(),
        origin: origin.map(str::to_owned),
    }
}

/// What the Ingress-wide decisions read of one Ingress: its class, TLS entries, default
/// backend, age and origin. A change elsewhere in an Ingress (its rules) leaves its head
/// unchanged, so it recomputes only the hosts it touches.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Head {
    pub(crate) class: Option<String>,
    pub(crate) tls: Vec<IngressTLS>,
    pub(crate) default_backend: Option<IngressBackend>,
    pub(crate) created: Option<Time>,
    pub(crate) origin: Option<String>,
}

/// The age order of Ingresses: (no creation time, creation time, namespace, name).
pub(crate) type Age = (bool, Option<Time>, Option<String>, String);

pub(crate) fn age(created: Option<&Time>, id: &ObjectRef) -> Age {
    (
        created.is_none(),
        created.cloned(),
        id.namespace.clone(),
        id.name.clone(),
    )
}

/// The Ingress-wide decisions: which Ingresses are taken (and their age), which hosts have
/// certificates, the default backend, whether there is an HTTPS listener. Units read it
/// through its methods, each recording the one fact read, so that a change to one fact
/// recomputes only its readers.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Global {
    pub(crate) taken: BTreeMap<ObjectRef, Age>,
    pub(crate) tls_hosts: BTreeSet<String>,
    pub(crate) tls_all: BTreeSet<ObjectRef>,
    pub(crate) default_backend: Option<(ObjectRef, model::Route)>,
    pub(crate) https: bool,
}

impl Global {
    pub(crate) fn taken(&self, cx: &mut Cx<'_>, id: &ObjectRef) -> Option<&Age> {
        cx.depend(Dep::Taken(id.clone()));
        self.taken.get(id)
    }

    /// Whether `host` of Ingress `id` is served on HTTPS.
    pub(crate) fn serves(&self, cx: &mut Cx<'_>, id: &ObjectRef, host: &str) -> bool {
        cx.depend(Dep::TlsAll(id.clone()));
        cx.depend(Dep::TlsHost(host.to_owned()));
        if self.tls_all.contains(id) || self.tls_hosts.contains(host) {
            return true;
        }
        host.split_once('.').is_some_and(|(_, parent)| {
            let wildcard = format!("*.{parent}");
            cx.depend(Dep::TlsHost(wildcard.clone()));
            self.tls_hosts.contains(&wildcard)
        })
    }

    pub(crate) fn default_backend(&self, cx: &mut Cx<'_>) -> Option<&(ObjectRef, model::Route)> {
        cx.depend(Dep::DefaultBackend);
        self.default_backend.as_ref()
    }

    pub(crate) fn https(&self, cx: &mut Cx<'_>) -> bool {
        cx.depend(Dep::Https);
        self.https
    }
}

/// The facts that differ between two [`Global`]s.
pub(crate) fn global_changes(old: &Global, new: &Global) -> Vec<Dep> {
    let mut out = Vec::new();
    let ids: BTreeSet<&ObjectRef> = old.taken.keys().chain(new.taken.keys()).collect();
    for id in ids {
        if old.taken.get(id) != new.taken.get(id) {
            out.push(Dep::Taken(id.clone()));
        }
    }
    for h in old.tls_hosts.symmetric_difference(&new.tls_hosts) {
        out.push(Dep::TlsHost(h.clone()));
    }
    for id in old.tls_all.symmetric_difference(&new.tls_all) {
        out.push(Dep::TlsAll(id.clone()));
    }
    if old.default_backend != new.default_backend {
        out.push(Dep::DefaultBackend);
    }
    if old.https != new.https {
        out.push(Dep::Https);
    }
    out
}
