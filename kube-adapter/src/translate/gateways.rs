//! Gateways (of our GatewayClasses), their listeners and the routes attached to them
//! (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute) into model listeners and virtual hosts, and the
//! status of all of them; the semantics are in the parent module's docs.
//!
//! Four kinds of unit:
//!
//! - [`port`]: one per Envoy port that some Gateway listener uses. It reads the Gateways on
//!   that port (an index), resolves conflicts between their listeners, and emits the one
//!   model listener of the port (`k8s:gateway:PORT`) with the TCP routes (TLS passthrough,
//!   beside HTTPS or alone, and TCP) of the routes attached to its listeners, and for HTTP
//!   and HTTPS which routes each host takes: listeners of several Gateways on one port are
//!   merged.
//! - [`host`]: one per host of an HTTP(S) port, its virtual host, from what the port unit
//!   decided for it (the routes attached for the host, the listeners' hostnames) and the
//!   rules of those routes.
//! - [`gateway`]: one per Gateway, status only: the Gateway's conditions, each listener's
//!   (`Accepted`, `Programmed`, `ResolvedRefs`, `Conflicted`, `supportedKinds`,
//!   `attachedRoutes`) and the `Accepted` condition of every route parent naming it.
//! - [`route_object`]: one per route, its own checks and its `ResolvedRefs` per parent.
//!
//! A route change recomputes its own unit, the Gateways it names, their ports and the hosts
//! that hold its rules (a change to its rules alone: only those hosts' virtual hosts); a
//! Service change the units that read it. Both the port and the Gateway unit decide attachment with
//! the same functions, so they cannot disagree.
//!
//! Not here: what an HTTP or gRPC rule becomes ([`super::httproute`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use xdsc_core::diagnostic::ToFieldPath;
use xdsc_core::model;

use super::httproute::{self, match_key};
use super::shared::{age_key, check_host, host_in_name, is_core};
use crate::context::{Cx, HostRoute, PortHead, PortHosts};
use crate::objects::gateway::{
    self, Gateway, GrpcRoute, HttpRoute, ParentReference, TcpRoute, TlsRoute,
};
use crate::objects::{KubeKind, KubeObject, ObjectRef};
use crate::status::{Condition, ParentRef, Scope, StatusPart, reason};

/// What a listener speaks, as far as routes and the model listener go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Http,
    Https,
    TlsPassthrough,
    Tcp,
}

impl Family {
    /// The route kinds a listener of this family takes.
    fn kinds(self) -> &'static [KubeKind] {
        match self {
            Family::Http | Family::Https => &[KubeKind::HttpRoute, KubeKind::GrpcRoute],
            Family::TlsPassthrough => &[KubeKind::TlsRoute],
            Family::Tcp => &[KubeKind::TcpRoute],
        }
    }

    fn model(self) -> model::ListenerProtocol {
        match self {
            Family::Http => model::ListenerProtocol::Http,
            Family::Https => model::ListenerProtocol::Https,
            Family::TlsPassthrough => model::ListenerProtocol::TlsPassthrough,
            Family::Tcp => model::ListenerProtocol::Tcp,
        }
    }
}

/// A route of any kind.
#[derive(Clone, Copy)]
pub(crate) enum AnyRoute<'a> {
    Http(&'a HttpRoute),
    Grpc(&'a GrpcRoute),
    Tls(&'a TlsRoute),
    Tcp(&'a TcpRoute),
}

impl<'a> AnyRoute<'a> {
    pub(crate) fn of(o: &'a KubeObject) -> Option<AnyRoute<'a>> {
        Some(match o {
            KubeObject::HttpRoute(r) => AnyRoute::Http(r),
            KubeObject::GrpcRoute(r) => AnyRoute::Grpc(r),
            KubeObject::TlsRoute(r) => AnyRoute::Tls(r),
            KubeObject::TcpRoute(r) => AnyRoute::Tcp(r),
            _ => return None,
        })
    }

    fn kind(self) -> KubeKind {
        match self {
            AnyRoute::Http(_) => KubeKind::HttpRoute,
            AnyRoute::Grpc(_) => KubeKind::GrpcRoute,
            AnyRoute::Tls(_) => KubeKind::TlsRoute,
            AnyRoute::Tcp(_) => KubeKind::TcpRoute,
        }
    }

    fn metadata(self) -> &'a ObjectMeta {
        match self {
            AnyRoute::Http(r) => &r.metadata,
            AnyRoute::Grpc(r) => &r.metadata,
            AnyRoute::Tls(r) => &r.metadata,
            AnyRoute::Tcp(r) => &r.metadata,
        }
    }

    fn parent_refs(self) -> &'a [ParentReference] {
        match self {
            AnyRoute::Http(r) => &r.spec.parent_refs,
            AnyRoute::Grpc(r) => &r.spec.parent_refs,
            AnyRoute::Tls(r) => &r.spec.parent_refs,
            AnyRoute::Tcp(r) => &r.spec.parent_refs,
        }
    }

    /// The route's hostnames (SNI names for TLSRoute); TCPRoute has none.
    fn hostnames(self) -> &'a [String] {
        match self {
            AnyRoute::Http(r) => &r.spec.hostnames,
            AnyRoute::Grpc(r) => &r.spec.hostnames,
            AnyRoute::Tls(r) => &r.spec.hostnames,
            AnyRoute::Tcp(_) => &[],
        }
    }
}

/// The Gateways a route's `parentRefs` name (the index from Gateway to routes).
pub(crate) fn parent_gateways(id: &ObjectRef, route: &KubeObject) -> BTreeSet<ObjectRef> {
    let Some(route) = AnyRoute::of(route) else {
        return BTreeSet::new();
    };
    let route_ns = id.namespace.as_deref().unwrap_or("default");
    route
        .parent_refs()
        .iter()
        .filter(|p| is_gateway_ref(p))
        .map(|p| gateway_ref(route_ns, p))
        .collect()
}

/// The Envoy ports of a Gateway's listeners (the index from port to Gateways).
pub(crate) fn gateway_ports(g: &Gateway, privileged_port_offset: u16) -> BTreeSet<u16> {
    g.spec
        .listeners
        .iter()
        .filter_map(|l| envoy_port(l.port, privileged_port_offset))
        .collect()
}

/// The Envoy port of a Gateway listener port: below 1024, offset.
fn envoy_port(port: i32, offset: u16) -> Option<u16> {
    let p = u16::try_from(port).ok().filter(|p| *p != 0)?;
    if p < 1024 {
        p.checked_add(offset)
    } else {
        Some(p)
    }
}

fn is_gateway_ref(parent: &ParentReference) -> bool {
    parent.group.as_deref().is_none_or(|g| g == gateway::GROUP)
        && parent
            .kind
            .as_deref()
            .is_none_or(|k| k == KubeKind::Gateway.as_str())
}

fn gateway_ref(route_ns: &str, parent: &ParentReference) -> ObjectRef {
    let namespace = parent.namespace.as_deref().unwrap_or(route_ns);
    KubeKind::Gateway.id(Some(namespace), &parent.name)
}

fn parent_status_ref(gw: &ObjectRef, parent: &ParentReference) -> ParentRef {
    ParentRef {
        namespace: gw.namespace.clone().unwrap_or_default(),
        name: gw.name.clone(),
        section_name: parent.section_name.clone(),
        port: parent.port,
    }
}

/// Whether a GatewayClass is ours.
fn ours(cx: &mut Cx<'_>, class: &str) -> bool {
    let id = KubeKind::GatewayClass.id(None, class);
    matches!(cx.get(&id), Some(KubeObject::GatewayClass(c)) if c.spec.controller_name == cx.options.gateway_controller)
}

/// The unit of a GatewayClass: `Accepted` when it is ours.
pub(crate) fn gateway_class(cx: &mut Cx<'_>, id: &ObjectRef) {
    if ours(cx, &id.name) {
        cx.condition(
            id,
            Scope::Object,
            Condition::new(reason::ACCEPTED, true, reason::ACCEPTED, "handled by xdsc"),
        );
    }
}

/// One Gateway listener, checked on its own and then against the other listeners of its
/// port.
pub(crate) struct Checked<'a> {
    gateway: ObjectRef,
    index: usize,
    listener: &'a gateway::Listener,
    /// The Envoy port and family, when the listener can be served.
    served: Option<(u16, Family)>,
    /// The valid, lowercased hostname (none for TCP).
    hostname: Option<String>,
    /// The route kinds it takes (`supportedKinds`).
    kinds: Vec<KubeKind>,
    /// HTTPS: the model secret of its certificate.
    secret: Option<String>,
    /// Why it is not accepted.
    not_accepted: Option<(&'static str, String)>,
    /// Why its references do not resolve.
    unresolved: Option<(&'static str, String)>,
    /// Why it conflicts with an earlier listener on its port.
    conflict: Option<(&'static str, String)>,
}

impl Checked<'_> {
    /// Served: valid and not in conflict.
    fn live(&self) -> bool {
        self.served.is_some() && self.conflict.is_none()
    }

    fn family(&self) -> Option<Family> {
        self.served.map(|(_, f)| f)
    }
}

/// Checks one listener on its own: protocol, port, hostname, route kinds, certificate.
fn check_listener<'a>(
    cx: &mut Cx<'a>,
    id: &ObjectRef,
    i: usize,
    l: &'a gateway::Listener,
) -> Checked<'a> {
    let field = ("spec", "listeners", i);
    let mut out = Checked {
        gateway: id.clone(),
        index: i,
        listener: l,
        served: None,
        hostname: None,
        kinds: Vec::new(),
        secret: None,
        not_accepted: None,
        unresolved: None,
        conflict: None,
    };
    let mode = l.tls.as_ref().and_then(|t| t.mode.as_deref());
    let family = match (l.protocol.as_str(), mode) {
        ("HTTP", _) => Family::Http,
        ("HTTPS", None | Some("Terminate")) => Family::Https,
        ("TLS", Some("Passthrough")) => Family::TlsPassthrough,
        ("TCP", _) => Family::Tcp,
        (protocol, mode) => {
            let what = match (protocol, mode) {
                ("HTTPS", Some(m)) => {
                    format!("protocol HTTPS with TLS mode {m:?} is not supported")
                }
                ("TLS", m) => format!(
                    "protocol TLS with TLS mode {:?} is not supported (only Passthrough)",
                    m.unwrap_or("Terminate")
                ),
                (p, _) => format!("protocol {p:?} is not supported"),
            };
            cx.error(
                id,
                (field, "protocol"),
                format!("{what}; listener not served"),
            );
            out.not_accepted = Some((reason::UNSUPPORTED_PROTOCOL, what));
            return out;
        }
    };
    // Route kinds: the family's, or those of `allowedRoutes.kinds` the family takes.
    let asked = l
        .allowed_routes
        .as_ref()
        .map(|a| a.kinds.as_slice())
        .unwrap_or(&[]);
    if asked.is_empty() {
        out.kinds = family.kinds().to_vec();
    }
    for (k, rk) in asked.iter().enumerate() {
        let group_ok = rk.group.as_deref().is_none_or(|g| g == gateway::GROUP);
        match family.kinds().iter().find(|kind| kind.as_str() == rk.kind) {
            Some(kind) if group_ok => {
                if !out.kinds.contains(kind) {
                    out.kinds.push(*kind);
                }
            }
            _ => {
                let message = format!(
                    "route kind {:?} is not supported on a {} listener",
                    rk.kind, l.protocol
                );
                cx.error(id, (field, "allowedRoutes", "kinds", k), &message);
                out.unresolved = Some((reason::INVALID_ROUTE_KINDS, message));
            }
        }
    }
    let Some(port) = envoy_port(l.port, cx.options.privileged_port_offset) else {
        let message = format!("port {} is not a port Envoy can bind", l.port);
        cx.error(id, (field, "port"), &message);
        out.not_accepted = Some((reason::PORT_UNAVAILABLE, message));
        return out;
    };
    if family != Family::Tcp {
        match l.hostname.as_deref() {
            None | Some("") => {}
            Some(h) => match check_host(h) {
                Some(h) => out.hostname = Some(h),
                None => {
                    let message = format!("{h:?} is not a host name or a *. wildcard");
                    cx.error(id, (field, "hostname"), &message);
                    out.not_accepted = Some((reason::INVALID, message));
                    return out;
                }
            },
        }
    }
    if family == Family::Https {
        match certificate(cx, id, &field, l) {
            Ok(secret) => out.secret = Some(secret),
            Err(problem) => {
                out.unresolved = Some(problem);
                return out;
            }
        }
    }
    out.served = Some((port, family));
    out
}

/// The model secret of an HTTPS listener's first certificate, or why there is none.
fn certificate(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    l: &gateway::Listener,
) -> Result<String, (&'static str, String)> {
    let invalid = |m: &str| (reason::INVALID_CERTIFICATE_REF, m.to_owned());
    let namespace = id.namespace.as_deref().unwrap_or("default");
    let tls = l.tls.clone().unwrap_or_default();
    let Some(cert) = tls.certificate_refs.first() else {
        let message = "no certificate; listener not served";
        cx.error(id, (field, "tls", "certificateRefs"), message);
        return Err(invalid(message));
    };
    if tls.certificate_refs.len() > 1 {
        cx.warn(
            id,
            (field, "tls", "certificateRefs"),
            "only the first certificate is served",
        );
    }
    let field = (field, "tls", "certificateRefs", 0usize);
    if !is_core(
        cert.group.as_deref(),
        cert.kind.as_deref(),
        KubeKind::Secret,
    ) {
        let message = "only core Secrets are supported; listener not served";
        cx.error(id, field, message);
        return Err(invalid(message));
    }
    let cert_ns = cert.namespace.as_deref().unwrap_or(namespace);
    if cert_ns != namespace && !cx.granted(id, KubeKind::Secret, cert_ns, &cert.name) {
        let message = format!(
            "secret {cert_ns}/{} is in another namespace and no ReferenceGrant there allows \
             it; listener not served",
            cert.name
        );
        cx.error(id, field, &message);
        return Err((reason::REF_NOT_PERMITTED, message));
    }
    cx.tls_secret(id, &field, cert_ns, &cert.name)
        .ok_or_else(|| invalid(&format!("secret {cert_ns}/{} is not usable", cert.name)))
}

/// Why two listeners on one Envoy port cannot be served together, if they cannot: HTTP,
/// TCP and the TLS family (HTTPS and TLS passthrough, told apart by SNI) do not share a port
/// (`ProtocolConflict`); within the TLS family a hostname is either terminated or passed
/// through (the same hostname on HTTPS and TLS is `ProtocolConflict`); listeners of one
/// protocol need distinct hostnames (`HostnameConflict`; a TCP listener takes the whole port).
fn clash(a: &Checked<'_>, b: &Checked<'_>) -> Option<&'static str> {
    let class = |f: Family| match f {
        Family::Http => 0,
        Family::Https | Family::TlsPassthrough => 1,
        Family::Tcp => 2,
    };
    let (fa, fb) = (a.family()?, b.family()?);
    if class(fa) != class(fb) {
        return Some(reason::PROTOCOL_CONFLICT);
    }
    if a.hostname != b.hostname {
        return None;
    }
    Some(if fa == fb {
        reason::HOSTNAME_CONFLICT
    } else {
        reason::PROTOCOL_CONFLICT
    })
}

/// Every listener of our Gateways on an Envoy port, checked, in precedence order (oldest
/// Gateway first, then namespace and name, then listener order), with conflicts marked (see
/// [`clash`]): a listener that clashes with a served one of an older Gateway is conflicted
/// (the older one is served); listeners of one Gateway that clash with each other are all
/// conflicted, as the spec asks of listeners that are not distinct.
fn port_listeners<'a>(cx: &mut Cx<'a>, port: u16) -> Vec<Checked<'a>> {
    let mut gateways: Vec<(&'a ObjectRef, &'a Gateway)> = Vec::new();
    for (gid, o) in cx.port_gateways(port) {
        if let KubeObject::Gateway(g) = o
            && ours(cx, &g.spec.gateway_class_name)
        {
            gateways.push((gid, g));
        }
    }
    gateways.sort_by(|a, b| age_key(&a.1.metadata, a.0).cmp(&age_key(&b.1.metadata, b.0)));
    let mut out = Vec::new();
    for (gid, g) in gateways {
        for (i, l) in g.spec.listeners.iter().enumerate() {
            if envoy_port(l.port, cx.options.privileged_port_offset) != Some(port) {
                continue;
            }
            let c = check_listener(cx, gid, i, l);
            if c.served.is_some() {
                out.push(c);
            }
        }
    }
    // Gateway by Gateway (`out` holds each one's listeners together, oldest Gateway first):
    // first against the served listeners of older Gateways, then among its own.
    let mut start = 0;
    while start < out.len() {
        let end = start + out[start..].partition_point(|c| c.gateway == out[start].gateway);
        for n in start..end {
            let earlier = out[..start].iter().filter(|e| e.conflict.is_none());
            let found = earlier.filter_map(|e| conflict_with(e, &out[n])).next();
            mark(cx, &mut out[n], found);
        }
        let left: Vec<usize> = (start..end)
            .filter(|n| out[*n].conflict.is_none())
            .collect();
        let mut found: BTreeMap<usize, (&'static str, String)> = BTreeMap::new();
        for (k, &i) in left.iter().enumerate() {
            for &j in &left[k + 1..] {
                if let (Some(cj), Some(ci)) = (
                    conflict_with(&out[i], &out[j]),
                    conflict_with(&out[j], &out[i]),
                ) {
                    found.entry(j).or_insert(cj);
                    found.entry(i).or_insert(ci);
                }
            }
        }
        for (n, c) in found {
            mark(cx, &mut out[n], Some(c));
        }
        start = end;
    }
    out
}

/// Why listener `c` conflicts with `e`, if it does, with a message naming `e`.
fn conflict_with(e: &Checked<'_>, c: &Checked<'_>) -> Option<(&'static str, String)> {
    let why = clash(e, c)?;
    let who = format!("listener {:?} of {}", e.listener.name, e.gateway);
    let message = if why == reason::HOSTNAME_CONFLICT {
        format!("{who} has the same hostname on the port")
    } else if e.family() == c.family() || e.hostname != c.hostname {
        format!("{who} uses the port with another protocol")
    } else {
        format!("{who} has the same hostname on the port with another protocol")
    };
    Some((why, message))
}

/// Marks a listener conflicted (and reports it), when it is.
fn mark(cx: &mut Cx<'_>, c: &mut Checked<'_>, conflict: Option<(&'static str, String)>) {
    if let Some((why, message)) = conflict {
        cx.error(
            &c.gateway,
            ("spec", "listeners", c.index),
            format!("{message}; listener not served"),
        );
        c.conflict = Some((why, message));
    }
}

/// One Gateway's listeners, checked and with the conflicts of their ports.
fn gateway_listeners<'a>(cx: &mut Cx<'a>, id: &ObjectRef, g: &'a Gateway) -> Vec<Checked<'a>> {
    let mut own: Vec<Checked<'a>> = g
        .spec
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| check_listener(cx, id, i, l))
        .collect();
    let ports: BTreeSet<u16> = own
        .iter()
        .filter_map(|c| c.served.map(|(p, _)| p))
        .collect();
    for port in ports {
        for c in port_listeners(cx, port) {
            if c.gateway == *id
                && let Some(o) = own.get_mut(c.index)
            {
                o.conflict = c.conflict;
            }
        }
    }
    own
}

/// What one parent reference attaches: for each listener (an index into the listeners
/// given) the hosts, and the route's `Accepted` condition for that parent.
struct Attached {
    /// Listeners the route attaches to (`attachedRoutes`: by `parentRefs`, `allowedRoutes`
    /// and kind, whatever the hostnames).
    listeners: Vec<usize>,
    /// Of those, the hosts each serves the route for (route hostnames intersected).
    hosts: Vec<(usize, Vec<String>)>,
    accepted: Condition,
}

/// A route attached on a port, with the (listener, hosts) pairs it takes there.
type OnPort<'r, 'a> = (&'r ObjectRef, AnyRoute<'a>, Vec<(usize, Vec<String>)>);

/// Attaches a route through one parent reference to the given listeners of Gateway `gw`.
/// `report`: whether to report why it does not attach (the Gateway unit, which sees every
/// listener, does; a port unit sees some).
#[allow(
    clippy::too_many_arguments,
    reason = "the route, the reference and the listeners it is matched against"
)]
fn attach(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    route: AnyRoute<'_>,
    field: &dyn ToFieldPath,
    parent: &ParentReference,
    gw: &ObjectRef,
    listeners: &[&Checked<'_>],
    report: bool,
) -> Attached {
    let route_ns = id.namespace.as_deref().unwrap_or("default");
    let mut named = false;
    let mut out = Attached {
        listeners: Vec::new(),
        hosts: Vec::new(),
        accepted: Condition::new(reason::ACCEPTED, true, reason::ACCEPTED, ""),
    };
    for (n, c) in listeners.iter().enumerate() {
        if c.gateway != *gw
            || parent
                .section_name
                .as_deref()
                .is_some_and(|s| s != c.listener.name)
            || parent.port.is_some_and(|p| p != c.listener.port)
        {
            continue;
        }
        named = true;
        if !c.kinds.contains(&route.kind()) || !namespace_allowed(cx, c, route_ns) {
            continue;
        }
        out.listeners.push(n);
        let hosts = hostnames(cx, id, route, c.hostname.as_deref());
        if !hosts.is_empty() {
            out.hosts.push((n, hosts));
        }
    }
    let (why, message) = if !named {
        (
            reason::NO_MATCHING_PARENT,
            format!("{gw} has no listener that the parent reference names (sectionName, port)"),
        )
    } else if out.listeners.is_empty() {
        (
            reason::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no listener of {gw} admits a {} from namespace {route_ns:?} (allowedRoutes)",
                route.kind()
            ),
        )
    } else if out.hosts.is_empty() {
        (
            reason::NO_MATCHING_LISTENER_HOSTNAME,
            format!("no hostname of the route intersects the hostnames of the listeners of {gw}"),
        )
    } else {
        return out;
    };
    if report {
        cx.error(id, field, format!("{message}; not attached"));
    }
    out.accepted = Condition::new(reason::ACCEPTED, false, why, message);
    out
}

/// Whether a listener's `allowedRoutes.namespaces` admits routes of `route_ns`.
fn namespace_allowed(cx: &mut Cx<'_>, c: &Checked<'_>, route_ns: &str) -> bool {
    let namespaces = c
        .listener
        .allowed_routes
        .as_ref()
        .and_then(|r| r.namespaces.as_ref());
    let from = namespaces.and_then(|n| n.from.as_deref()).unwrap_or("Same");
    let field = ("spec", "listeners", c.index, "allowedRoutes", "namespaces");
    match from {
        "All" => true,
        "Same" => c.gateway.namespace.as_deref() == Some(route_ns),
        "Selector" => {
            let Some(sel) = namespaces.and_then(|n| n.selector.as_ref()) else {
                cx.error(
                    &c.gateway,
                    (field, "selector"),
                    "from: Selector needs a selector; no route attaches",
                );
                return false;
            };
            let ns = KubeKind::Namespace.id(None, route_ns);
            let labels = match cx.get(&ns) {
                Some(KubeObject::Namespace(n)) => n.metadata.labels.clone().unwrap_or_default(),
                _ => BTreeMap::new(),
            };
            selects(sel, &labels)
        }
        _ => {
            cx.error(
                &c.gateway,
                (field, "from"),
                format_args!("{from:?} is not supported; no route attaches"),
            );
            false
        }
    }
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects these labels.
fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or(&[]);
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// The route's hostnames intersected with a listener's (`*` for any host).
fn hostnames(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    route: AnyRoute<'_>,
    listener: Option<&str>,
) -> Vec<String> {
    let mut route_hosts = Vec::new();
    for (i, h) in route.hostnames().iter().enumerate() {
        match check_host(h) {
            Some(h) => route_hosts.push(h),
            None => cx.error(
                id,
                ("spec", "hostnames", i),
                format_args!("{h:?} is not a host name or a *. wildcard"),
            ),
        }
    }
    if route.hostnames().is_empty() {
        return vec![listener.unwrap_or("*").to_owned()];
    }
    let Some(l) = listener else {
        return route_hosts;
    };
    let mut out: Vec<String> = route_hosts
        .into_iter()
        .filter_map(|r| {
            if r == l || covers(l, &r) {
                Some(r)
            } else if covers(&r, l) {
                Some(l.to_owned())
            } else {
                None
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether wildcard `pattern` (`*.x`) covers `host` (one or more labels before `.x`).
fn covers(pattern: &str, host: &str) -> bool {
    pattern.strip_prefix('*').is_some_and(|suffix| {
        host.len() > suffix.len() && host.ends_with(suffix) && host != pattern
    })
}

/// The routes naming any of these Gateways, of the kinds given, oldest first: the order
/// their rules take precedence in when all else is equal.
fn routes_of<'a>(
    cx: &mut Cx<'a>,
    gateways: &[&ObjectRef],
    kinds: &[KubeKind],
) -> Vec<(&'a ObjectRef, AnyRoute<'a>)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for gw in gateways {
        for (rid, o) in cx.gateway_routes(gw) {
            if let Some(r) = AnyRoute::of(o)
                && kinds.contains(&r.kind())
                && seen.insert(rid)
            {
                out.push((rid, r));
            }
        }
    }
    out.sort_by(|a, b| {
        age_key(a.1.metadata(), a.0)
            .cmp(&age_key(b.1.metadata(), b.0))
            .then_with(|| a.0.kind.cmp(&b.0.kind))
    });
    out
}

/// For each route (oldest first), the TCP listeners (indexes) it is the first to attach to;
/// a TCP listener forwards to one route only.
fn tcp_winners(
    cx: &mut Cx<'_>,
    routes: &[(&ObjectRef, AnyRoute<'_>)],
    listeners: &[&Checked<'_>],
) -> BTreeMap<usize, ObjectRef> {
    let mut taken: BTreeMap<usize, ObjectRef> = BTreeMap::new();
    for (rid, route) in routes {
        if !matches!(route, AnyRoute::Tcp(_)) {
            continue;
        }
        let route_ns = rid.namespace.as_deref().unwrap_or("default");
        for (k, parent) in route.parent_refs().iter().enumerate() {
            if !is_gateway_ref(parent) {
                continue;
            }
            let gw = gateway_ref(route_ns, parent);
            let field = ("spec", "parentRefs", k);
            let a = attach(cx, rid, *route, &field, parent, &gw, listeners, false);
            for n in a.listeners {
                taken.entry(n).or_insert_with(|| (*rid).clone());
            }
        }
    }
    taken
}

/// The unit of one Gateway (of our class): the status of the Gateway, its listeners and the
/// `Accepted` condition of the routes that name it.
pub(crate) fn gateway(cx: &mut Cx<'_>, id: &ObjectRef) {
    let Some(KubeObject::Gateway(g)) = cx.get(id) else {
        return;
    };
    if !ours(cx, &g.spec.gateway_class_name) {
        return;
    }
    let own = gateway_listeners(cx, id, g);
    let live: Vec<&Checked<'_>> = own.iter().filter(|c| c.live()).collect();
    let routes = routes_of(
        cx,
        &[id],
        &[
            KubeKind::HttpRoute,
            KubeKind::GrpcRoute,
            KubeKind::TlsRoute,
            KubeKind::TcpRoute,
        ],
    );
    let tcp_taken = tcp_winners(cx, &routes, &live);
    let mut attached: BTreeMap<usize, u32> = BTreeMap::new();
    for (rid, route) in &routes {
        let route_ns = rid.namespace.as_deref().unwrap_or("default");
        for (k, parent) in route.parent_refs().iter().enumerate() {
            if !is_gateway_ref(parent) || gateway_ref(route_ns, parent) != *id {
                continue;
            }
            let field = ("spec", "parentRefs", k);
            let mut a = attach(cx, rid, *route, &field, parent, id, &live, true);
            for n in &a.listeners {
                *attached.entry(*n).or_default() += 1;
            }
            if matches!(route, AnyRoute::Tcp(_))
                && a.accepted.status == crate::status::ConditionStatus::True
                && a.listeners
                    .iter()
                    .all(|n| tcp_taken.get(n).is_some_and(|w| w != *rid))
            {
                let winner = a.listeners.first().and_then(|n| tcp_taken.get(n)).cloned();
                let message = format!(
                    "the listener already forwards to {}; a TCP listener takes one route",
                    winner.map(|w| w.to_string()).unwrap_or_default()
                );
                cx.error(rid, field, format!("{message}; not used"));
                a.accepted =
                    Condition::new(reason::ACCEPTED, false, reason::UNSUPPORTED_VALUE, message);
            }
            cx.condition(
                rid,
                Scope::Parent(parent_status_ref(id, parent)),
                a.accepted,
            );
        }
    }
    let mut programmed = 0;
    for c in &own {
        let name = c.listener.name.clone();
        let scope = || Scope::Listener(name.clone());
        let kinds = c.kinds.iter().map(|k| k.as_str().to_owned()).collect();
        cx.status(id, StatusPart::SupportedKinds(name.clone(), kinds));
        let n = live
            .iter()
            .position(|l| l.index == c.index)
            .and_then(|n| attached.get(&n).copied())
            .unwrap_or(0);
        cx.status(id, StatusPart::AttachedRoutes(name.clone(), n));
        let cond = |t: &str, p: &Option<(&str, String)>, good: &str| match p {
            Some((why, m)) => Condition::new(t, false, why, m.clone()),
            None => Condition::new(t, true, good, ""),
        };
        let not_accepted = c.not_accepted.clone().or_else(|| {
            c.conflict
                .as_ref()
                .map(|(_, m)| (reason::INVALID, m.clone()))
        });
        cx.condition(
            id,
            scope(),
            cond(reason::ACCEPTED, &not_accepted, reason::ACCEPTED),
        );
        cx.condition(
            id,
            scope(),
            cond(reason::RESOLVED_REFS, &c.unresolved, reason::RESOLVED_REFS),
        );
        let conflicted = match &c.conflict {
            Some((why, m)) => Condition::new(reason::CONFLICTED, true, why, m.clone()),
            None => Condition::new(reason::CONFLICTED, false, reason::NO_CONFLICTS, ""),
        };
        cx.condition(id, scope(), conflicted);
        let not_programmed = (!c.live()).then(|| (reason::INVALID, "not served".to_owned()));
        cx.condition(
            id,
            scope(),
            cond(reason::PROGRAMMED, &not_programmed, reason::PROGRAMMED),
        );
        programmed += usize::from(c.live());
    }
    let all = programmed == own.len();
    cx.condition(
        id,
        Scope::Object,
        Condition::new(
            reason::ACCEPTED,
            programmed > 0 || own.is_empty(),
            if all {
                reason::ACCEPTED
            } else {
                reason::LISTENERS_NOT_VALID
            },
            if all {
                ""
            } else {
                "some listeners are not valid"
            },
        ),
    );
    cx.condition(
        id,
        Scope::Object,
        Condition::new(
            reason::PROGRAMMED,
            programmed > 0,
            if programmed > 0 {
                reason::PROGRAMMED
            } else {
                reason::INVALID
            },
            "",
        ),
    );
}

/// The unit of a route's own checks: parents that do not exist, and per parent of ours the
/// `ResolvedRefs` condition (whether every backend reference resolves).
pub(crate) fn route_object(cx: &mut Cx<'_>, id: &ObjectRef) {
    let Some(route) = cx.get(id).and_then(AnyRoute::of) else {
        return;
    };
    let route_ns = id.namespace.as_deref().unwrap_or("default");
    let mut parents = Vec::new();
    for (k, parent) in route.parent_refs().iter().enumerate() {
        if !is_gateway_ref(parent) {
            continue;
        }
        let gw = gateway_ref(route_ns, parent);
        match cx.get(&gw) {
            None => cx.warn(
                id,
                ("spec", "parentRefs", k),
                format_args!("{gw} does not exist"),
            ),
            Some(KubeObject::Gateway(g)) if ours(cx, &g.spec.gateway_class_name) => {
                parents.push(parent_status_ref(&gw, parent));
            }
            Some(_) => {}
        }
    }
    if parents.is_empty() {
        return;
    }
    cx.ref_problems.clear();
    match route {
        AnyRoute::Http(r) => {
            for (n, rule) in r.spec.rules.iter().enumerate() {
                httproute::rule_routes(cx, id, n, rule);
            }
        }
        AnyRoute::Grpc(r) => {
            for (n, rule) in r.spec.rules.iter().enumerate() {
                httproute::grpc_rule_routes(cx, id, n, rule);
            }
        }
        AnyRoute::Tls(r) => {
            stream_backends(cx, id, &r.spec.rules);
        }
        AnyRoute::Tcp(r) => {
            stream_backends(cx, id, &r.spec.rules);
        }
    }
    let resolved = match cx.ref_problems.first() {
        None => Condition::new(
            reason::RESOLVED_REFS,
            true,
            reason::RESOLVED_REFS,
            "all references resolved",
        ),
        Some((why, message)) => Condition::new(reason::RESOLVED_REFS, false, why, message.clone()),
    };
    for p in parents {
        cx.condition(id, Scope::Parent(p), resolved.clone());
    }
}

/// The weighted clusters of a TLSRoute's or TCPRoute's rules (every rule's backends
/// together); invalid backends are reported and left out.
fn stream_backends(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    rules: &[gateway::StreamRouteRule],
) -> Vec<model::Backend> {
    let mut out = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        for (i, b) in rule.backend_refs.iter().enumerate() {
            let field = ("spec", "rules", r, "backendRefs", i);
            let weight = b.weight.unwrap_or(1).max(0) as u32;
            if let Some(cluster) = httproute::backend_cluster(cx, id, &field, &b.backend, false)
                && cx.clusters.contains(&cluster)
                && weight > 0
            {
                out.push(model::Backend { cluster, weight });
            }
        }
    }
    out
}

/// One route match of one rule of one route, on one virtual host, before ranking.
struct Entry<'a> {
    /// (the route's age within its host group, rule, match).
    order: (usize, usize, usize),
    route_id: &'a ObjectRef,
    route: &'a model::Route,
}

/// The unit of one Envoy port of Gateway listeners: the model listener and what the routes
/// attached to its listeners serve on it.
pub(crate) fn port(cx: &mut Cx<'_>, port: u16) {
    let view = port_listeners(cx, port);
    let live: Vec<&Checked<'_>> = view.iter().filter(|c| c.live()).collect();
    let Some(family) = live.first().and_then(|c| c.family()) else {
        return;
    };
    let mut gateways: Vec<&ObjectRef> = live.iter().map(|c| &c.gateway).collect();
    gateways.sort();
    gateways.dedup();
    let name = format!("k8s:gateway:{port}");
    let mut ml = model::Listener::new(name.clone(), port);
    ml.protocol = family.model();
    ml.provenance = cx.sources(gateways.iter().copied());
    // The route kinds of every listener family on the port (HTTPS and TLS share one).
    let mut kinds: Vec<KubeKind> = Vec::new();
    for f in live.iter().filter_map(|c| c.family()) {
        for k in f.kinds() {
            if !kinds.contains(k) {
                kinds.push(*k);
            }
        }
    }
    let routes = routes_of(cx, &gateways, &kinds);
    // Per route, the (listener, hosts) it attaches to on this port.
    let mut attachments: Vec<OnPort<'_, '_>> = Vec::new();
    for (rid, route) in &routes {
        let route_ns = rid.namespace.as_deref().unwrap_or("default");
        let mut hosts = Vec::new();
        for (k, parent) in route.parent_refs().iter().enumerate() {
            if !is_gateway_ref(parent) {
                continue;
            }
            let gw = gateway_ref(route_ns, parent);
            let field = ("spec", "parentRefs", k);
            let a = attach(cx, rid, *route, &field, parent, &gw, &live, false);
            hosts.extend(a.hosts);
        }
        hosts.sort();
        hosts.dedup();
        if !hosts.is_empty() {
            attachments.push((rid, *route, hosts));
        }
    }
    match family {
        Family::Http => port_hosts(cx, &live, &gateways, &attachments, false),
        Family::Https | Family::TlsPassthrough => {
            // One Envoy listener for both: the HTTPS listeners' hostnames terminated with
            // their certificates, the TLS listeners' passed through to their TLSRoutes, by SNI.
            for c in &live {
                if let Some(secret) = &c.secret {
                    ml.tls.push(model::ListenerTls {
                        hosts: c.hostname.iter().cloned().collect(),
                        secret: secret.clone(),
                    });
                }
            }
            ml.tls.sort_by(|a, b| a.hosts.cmp(&b.hosts));
            ml.tcp_routes = tls_routes(cx, &attachments);
            if ml.tls.is_empty() {
                ml.protocol = model::ListenerProtocol::TlsPassthrough;
                if ml.tcp_routes.is_empty() {
                    return;
                }
            } else {
                ml.protocol = model::ListenerProtocol::Https;
                port_hosts(cx, &live, &gateways, &attachments, true);
            }
        }
        Family::Tcp => {
            ml.tcp_routes = tcp_routes(cx, &live, &routes, &attachments);
            if ml.tcp_routes.is_empty() {
                return;
            }
        }
    }
    cx.emit(ml);
}

/// What the hosts of an HTTP(S) port read, decided by the port's unit: per host, the HTTP
/// and gRPC routes attached for it (oldest first) and the listeners they come through; the
/// virtual hosts themselves are built by one [`host`] unit each, so that a change to one
/// route's rules rebuilds only the hosts that hold them.
fn port_hosts(
    cx: &mut Cx<'_>,
    live: &[&Checked<'_>],
    gateways: &[&ObjectRef],
    attachments: &[OnPort<'_, '_>],
    https: bool,
) {
    let mut hosts: BTreeMap<String, Vec<HostRoute>> = BTreeMap::new();
    for (rid, route, on) in attachments {
        if !matches!(route, AnyRoute::Http(_) | AnyRoute::Grpc(_)) {
            continue;
        }
        // Per host, the hostnames of the listeners the route reaches it through.
        let mut by_host: BTreeMap<&String, BTreeSet<Option<String>>> = BTreeMap::new();
        for (n, hs) in on {
            for h in hs {
                by_host
                    .entry(h)
                    .or_default()
                    .insert(live[*n].hostname.clone());
            }
        }
        for (host, via) in by_host {
            hosts.entry(host.clone()).or_default().push(HostRoute {
                route: (*rid).clone(),
                via,
            });
        }
    }
    let head = PortHead {
        https,
        port: live.first().map_or(0, |c| c.listener.port),
        hostnames: live.iter().map(|c| c.hostname.clone()).collect(),
        gateways: gateways.iter().map(|g| (*g).clone()).collect(),
        wildcards: hosts
            .keys()
            .filter(|h| h.starts_with('*'))
            .cloned()
            .collect(),
    };
    cx.set_gateway_hosts(PortHosts { head, hosts });
}

/// A route's rules, translated: per rule, its model routes (with the index of the match
/// each comes from).
type RouteRules = Vec<Vec<(usize, model::Route)>>;

/// One HTTP or gRPC route's rules, translated (none for other kinds or a route that went).
fn route_rules<'a>(cx: &mut Cx<'a>, rid: &'a ObjectRef) -> RouteRules {
    match cx.get(rid).and_then(AnyRoute::of) {
        Some(AnyRoute::Http(r)) => r
            .spec
            .rules
            .iter()
            .enumerate()
            .map(|(n, rule)| httproute::rule_routes(cx, rid, n, rule))
            .collect(),
        Some(AnyRoute::Grpc(r)) => r
            .spec
            .rules
            .iter()
            .enumerate()
            .map(|(n, rule)| httproute::grpc_rule_routes(cx, rid, n, rule))
            .collect(),
        _ => Vec::new(),
    }
}

/// The unit of one host of an HTTP(S) Gateway port: its virtual host, from the routes the
/// port's unit attached for it (see [`port_hosts`]).
///
/// Envoy picks one virtual host per request, by its most specific domain; what the Gateway
/// API asks of a request to host `h` is put into `h`'s virtual host:
/// - listener isolation: only routes attached through the most specific listener whose
///   hostname matches `h` apply (routes of a catch-all listener do not take requests that a
///   `*.example.com` listener matches);
/// - hostname precedence: the rules of every such route whose hostname matches `h`, those
///   of the most specific hostname first (more characters in a matching non-wildcard
///   hostname, then in a matching hostname), so a rule on `*.example.com` still serves
///   `foo.example.com` for the paths `foo.example.com`'s own rules do not take.
pub(crate) fn host(cx: &mut Cx<'_>, port: u16, host: &str) {
    let Some(head) = cx.gateway_head(port) else {
        return;
    };
    let listener = format!("k8s:gateway:{port}");
    // The listeners a request to `host` goes to: those of the most specific hostname that
    // matches it (none: any host).
    let specificity = |l: Option<&str>| l.map(|l| (!l.starts_with('*'), l.len()));
    let Some(best) = head
        .hostnames
        .iter()
        .map(Option::as_deref)
        .filter(|l| l.is_none_or(|l| l == host || covers(l, host)))
        .max_by_key(|l| specificity(*l))
    else {
        return;
    };
    let isolated = |r: &HostRoute| r.via.iter().any(|v| v.as_deref() == best);
    // The host's own routes, then those of the wildcards that cover it, most specific
    // first. Only wildcard hosts (and `*`) hold rules for other hosts: a port of many exact
    // hosts costs O(hosts x wildcards), not O(hosts^2).
    let mut wider: Vec<&String> = head
        .wildcards
        .iter()
        .filter(|w| *w != host && (*w == "*" || covers(w, host)))
        .collect();
    wider.sort_by_key(|w| std::cmp::Reverse(w.len()));
    let mut groups: Vec<&[HostRoute]> = vec![cx.gateway_host(port, host)];
    for w in wider {
        groups.push(cx.gateway_host(port, w));
    }
    // Each route's rules: the host's own all translated (their problems are reported
    // here), a wider host's only where they apply.
    let mut translated: Vec<(usize, usize, &ObjectRef, RouteRules)> = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        for (age, r) in group.iter().enumerate() {
            if g > 0 && !isolated(r) {
                continue;
            }
            let rules = route_rules(cx, &r.route);
            if isolated(r) {
                translated.push((g, age, &r.route, rules));
            }
        }
    }
    let mut entries: Vec<(usize, Entry<'_>)> = Vec::new();
    let mut sources: BTreeSet<&ObjectRef> = BTreeSet::new();
    for (g, age, rid, rules) in &translated {
        sources.insert(*rid);
        for (r, rule) in rules.iter().enumerate() {
            for (m, route) in rule {
                entries.push((
                    *g,
                    Entry {
                        order: (*age, r, *m),
                        route_id: rid,
                        route,
                    },
                ));
            }
        }
    }
    if entries.is_empty() {
        // Every route for this host came through a less specific listener: the host's
        // requests are another virtual host's (a wildcard's or the catch-all's).
        return;
    }
    // Within each host group: oldest route first, then rule and match order.
    entries.sort_by_key(|(g, e)| (*g, e.order));
    // The same match twice: the first (most specific host, then oldest route, name, rule,
    // match) takes it. A less specific host's rule hidden by this host's own is expected,
    // not reported (its own virtual host reports its own duplicates).
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    entries.retain(|(g, e)| {
        let (_, r, m) = e.order;
        let key = match_key(&e.route.matches);
        match seen.get(&key) {
            Some(winner) => {
                if *g == 0 {
                    let message = format!(
                        "on host {host:?}, {winner} has the same match and takes precedence; \
                         never used"
                    );
                    cx.warn(e.route_id, ("spec", "rules", r, "matches", m), message);
                }
                false
            }
            None => {
                seen.insert(key, format!("{} rule {r} match {m}", e.route_id));
                true
            }
        }
    });
    let width = entries.len().to_string().len().max(4);
    let mut ranked: Vec<(usize, model::Route)> = entries
        .into_iter()
        .enumerate()
        .map(|(rank, (g, e))| {
            let (_, r, m) = e.order;
            let mut route = e.route.clone();
            route.name = format!("{rank:0width$}:{}:r{r}:m{m}", e.route_id.qualified_name());
            (g, route)
        })
        .collect();
    // Precedence within each host's rules; ties keep the order above (the names' ranks).
    ranked.sort_by(|(ga, a), (gb, b)| {
        (ga, a.matches.precedence(), &a.name).cmp(&(gb, b.matches.precedence(), &b.name))
    });
    let fallback = ranked.iter().any(|(g, _)| *g > 0);
    let mut routes: Vec<model::Route> = ranked.into_iter().map(|(_, r)| r).collect();
    listener_port_redirects(&mut routes, head.port, head.https);
    let mut v = model::VirtualHost::new(
        format!("{listener}:{}", host_in_name(host)),
        [listener.clone()],
        [host.to_owned()],
    );
    v.routes = routes;
    if fallback {
        // Host groups first: the core must not re-sort across them.
        v.route_order = model::RouteOrder::AsWritten;
    }
    v.provenance = cx.sources(sources.into_iter().chain(head.gateways.iter()));
    cx.emit(v);
}

/// A redirect with neither scheme nor port goes to the Gateway listener's port (left out of
/// `Location` when it is the listener protocol's well-known port), as the spec says.
fn listener_port_redirects(routes: &mut [model::Route], port: i32, https: bool) {
    let well_known = if https { 443 } else { 80 };
    let Some(port) = u16::try_from(port).ok().filter(|p| *p != well_known) else {
        return;
    };
    for rd in routes.iter_mut().filter_map(|r| r.redirect.as_mut()) {
        if rd.scheme.is_none() && rd.port.is_none() {
            rd.port = Some(port);
        }
    }
}

/// The TCP routes of the TLSRoutes attached to a TLS passthrough port: one per route, by the
/// SNI names it was given; a name already taken by an older route is left out.
fn tls_routes(cx: &mut Cx<'_>, attachments: &[OnPort<'_, '_>]) -> Vec<model::TcpRoute> {
    let mut claimed: BTreeMap<String, &ObjectRef> = BTreeMap::new();
    let mut out = Vec::new();
    for (rid, route, hosts) in attachments {
        let AnyRoute::Tls(r) = route else { continue };
        let mut sni = Vec::new();
        for host in hosts.iter().flat_map(|(_, h)| h) {
            match claimed.get(host.as_str()) {
                Some(owner) if owner != rid => cx.warn(
                    rid,
                    ("spec", "hostnames"),
                    format!("SNI name {host:?} is already routed by {owner}, which is older"),
                ),
                Some(_) => {}
                None => {
                    claimed.insert(host.clone(), rid);
                    sni.push(host.clone());
                }
            }
        }
        sni.sort();
        sni.dedup();
        if sni.is_empty() {
            continue;
        }
        let backends = stream_backends(cx, rid, &r.spec.rules);
        if backends.is_empty() {
            cx.error(
                rid,
                ("spec", "rules"),
                "no usable backend; connections are refused",
            );
            continue;
        }
        let any = sni.iter().any(|h| h == "*");
        out.push(model::TcpRoute {
            name: format!("{:04}:{}", out.len(), rid.qualified_name()),
            sni: if any { Vec::new() } else { sni },
            backends,
        });
    }
    out
}

/// The one TCP route of a TCP port: the oldest TCPRoute attached to its listener.
fn tcp_routes(
    cx: &mut Cx<'_>,
    live: &[&Checked<'_>],
    routes: &[(&ObjectRef, AnyRoute<'_>)],
    attachments: &[OnPort<'_, '_>],
) -> Vec<model::TcpRoute> {
    let winners = tcp_winners(cx, routes, live);
    let Some(winner) = winners.values().next() else {
        return Vec::new();
    };
    let Some((rid, AnyRoute::Tcp(r), _)) = attachments.iter().find(|(rid, ..)| *rid == winner)
    else {
        return Vec::new();
    };
    let backends = stream_backends(cx, rid, &r.spec.rules);
    if backends.is_empty() {
        cx.error(
            rid,
            ("spec", "rules"),
            "no usable backend; connections are refused",
        );
        return Vec::new();
    }
    vec![model::TcpRoute {
        name: rid.qualified_name(),
        sni: Vec::new(),
        backends,
    }]
}
