//! Gateways (of our GatewayClasses) into listeners, and the HTTPRoutes attached to them into
//! virtual hosts; the semantics are in the parent module's docs.
//!
//! One unit per Gateway ([`gateway`]): a route change recomputes the Gateways it names
//! (found through the index of `parentRefs`), not every Gateway.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use xdsc_core::diagnostic::ToFieldPath;
use xdsc_core::model;

use super::backends::PortRef;
use super::gateway::{self, Gateway, HttpRoute};
use super::{Cx, KubeObject, ObjectRef, age_key, check_host, host_in_name, prefix_match};
use crate::status::{Condition, ParentRef, Scope, StatusPart, reason};

/// A Gateway listener that routes may attach to.
struct Attachable<'a> {
    gateway: &'a ObjectRef,
    /// Its index in the Gateway's listeners.
    index: usize,
    listener: &'a gateway::Listener,
    /// The model listener it is served on.
    model_listener: String,
}

/// One route match of one rule of one HTTPRoute, on one virtual host, before ranking.
struct Entry<'a> {
    order: (usize, usize, usize),
    route_id: &'a ObjectRef,
    route: model::Route,
}

#[derive(Default)]
struct Vhost<'a> {
    listener: String,
    host: String,
    entries: Vec<Entry<'a>>,
    sources: BTreeSet<ObjectRef>,
}

/// The Gateways an HTTPRoute's `parentRefs` name (the index from Gateway to routes).
pub(crate) fn parent_gateways(id: &ObjectRef, route: &HttpRoute) -> BTreeSet<ObjectRef> {
    let route_ns = id.namespace.as_deref().unwrap_or("default");
    route
        .spec
        .parent_refs
        .iter()
        .filter(|p| is_gateway_ref(p))
        .map(|p| gateway_ref(route_ns, p))
        .collect()
}

fn is_gateway_ref(parent: &gateway::ParentReference) -> bool {
    parent
        .group
        .as_deref()
        .is_none_or(|g| g == "gateway.networking.k8s.io")
        && parent.kind.as_deref().is_none_or(|k| k == "Gateway")
}

fn gateway_ref(route_ns: &str, parent: &gateway::ParentReference) -> ObjectRef {
    let namespace = parent.namespace.as_deref().unwrap_or(route_ns);
    ObjectRef::new("Gateway", Some(namespace), &parent.name)
}

fn parent_status_ref(gw: &ObjectRef, parent: &gateway::ParentReference) -> ParentRef {
    ParentRef {
        namespace: gw.namespace.clone().unwrap_or_default(),
        name: gw.name.clone(),
        section_name: parent.section_name.clone(),
        port: parent.port,
    }
}

/// Whether a GatewayClass is ours.
fn ours(cx: &mut Cx<'_>, class: &str) -> bool {
    let id = ObjectRef::new("GatewayClass", None, class);
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

/// The unit of an HTTPRoute's own checks: parents that do not exist.
pub(crate) fn route_object(cx: &mut Cx<'_>, id: &ObjectRef) {
    let Some(KubeObject::HttpRoute(route)) = cx.get(id) else {
        return;
    };
    let route_ns = id.namespace.as_deref().unwrap_or("default");
    for (k, parent) in route.spec.parent_refs.iter().enumerate() {
        if !is_gateway_ref(parent) {
            continue;
        }
        let gw = gateway_ref(route_ns, parent);
        if cx.get(&gw).is_none() {
            cx.warn(
                id,
                ("spec", "parentRefs", k),
                format_args!("{gw} does not exist"),
            );
        }
    }
}

/// The unit of one Gateway (of our class): its listeners, the virtual hosts of the routes
/// attached to it, and the status of the Gateway, its listeners and those routes' parents.
pub(crate) fn gateway(cx: &mut Cx<'_>, id: &ObjectRef) {
    let Some(KubeObject::Gateway(g)) = cx.get(id) else {
        return;
    };
    if !ours(cx, &g.spec.gateway_class_name) {
        return;
    }
    let mut attachable = Vec::new();
    listeners(cx, id, g, &mut attachable);
    // Routes, oldest first: the rank of a route's rules breaks ties in the core's order.
    let mut routes: Vec<(&ObjectRef, &HttpRoute)> = cx
        .gateway_routes(id)
        .into_iter()
        .filter_map(|(rid, o)| match o {
            KubeObject::HttpRoute(r) => Some((rid, &**r)),
            _ => None,
        })
        .collect();
    routes.sort_by(|a, b| age_key(&a.1.metadata, a.0).cmp(&age_key(&b.1.metadata, b.0)));
    let mut attached_per_listener: BTreeMap<String, u32> = BTreeMap::new();
    let mut vhosts: BTreeMap<String, Vhost<'_>> = BTreeMap::new();
    for (age, &(rid, route)) in routes.iter().enumerate() {
        let route_ns = rid.namespace.as_deref().unwrap_or("default");
        let mut attached = Vec::new();
        let mut parents = Vec::new();
        for (k, parent) in route.spec.parent_refs.iter().enumerate() {
            if !is_gateway_ref(parent) || gateway_ref(route_ns, parent) != *id {
                continue;
            }
            let (pairs, outcome) = attach(cx, rid, route, k, parent, id, &attachable);
            for name in &outcome.listeners {
                *attached_per_listener.entry(name.clone()).or_default() += 1;
            }
            parents.push((parent_status_ref(id, parent), outcome));
            attached.extend(pairs);
        }
        attached.sort();
        attached.dedup();
        cx.ref_problems.clear();
        let rules: Vec<Vec<(usize, model::Route)>> = if attached.is_empty() {
            Vec::new()
        } else {
            route
                .spec
                .rules
                .iter()
                .enumerate()
                .map(|(r, rule)| rule_routes(cx, rid, r, rule))
                .collect()
        };
        let resolved = match cx.ref_problems.first() {
            None => Condition::new(
                reason::RESOLVED_REFS,
                true,
                reason::RESOLVED_REFS,
                "all references resolved",
            ),
            Some((why, message)) => {
                Condition::new(reason::RESOLVED_REFS, false, why, message.clone())
            }
        };
        for (parent, outcome) in parents {
            cx.condition(rid, Scope::Parent(parent.clone()), outcome.accepted);
            cx.condition(rid, Scope::Parent(parent), resolved.clone());
        }
        for (listener, host) in attached {
            let key = format!("{listener}:{}", host_in_name(&host));
            let vh = vhosts.entry(key).or_insert_with(|| Vhost {
                listener: listener.clone(),
                host: host.clone(),
                ..Vhost::default()
            });
            vh.sources.insert(rid.clone());
            for (r, rule) in rules.iter().enumerate() {
                for (m, route) in rule {
                    vh.entries.push(Entry {
                        order: (age, r, *m),
                        route_id: rid,
                        route: route.clone(),
                    });
                }
            }
        }
    }
    for a in &attachable {
        let n = attached_per_listener
            .get(&a.listener.name)
            .copied()
            .unwrap_or(0);
        cx.status(id, StatusPart::AttachedRoutes(a.listener.name.clone(), n));
    }
    for (name, vh) in vhosts {
        let mut entries = vh.entries;
        entries.sort_by_key(|e| e.order);
        // The same match twice: the first (oldest route, then name, rule, match) takes it.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        entries.retain(|e| {
            let (_, r, m) = e.order;
            let key = match_key(&e.route.matches);
            match seen.get(&key) {
                Some(winner) => {
                    let message = format!(
                        "on host {:?}, {winner} has the same match and takes precedence; \
                         never used",
                        vh.host
                    );
                    cx.warn(e.route_id, ("spec", "rules", r, "matches", m), message);
                    false
                }
                None => {
                    seen.insert(key, format!("{} rule {r} match {m}", e.route_id));
                    true
                }
            }
        });
        let width = entries.len().to_string().len().max(4);
        let routes = entries
            .into_iter()
            .enumerate()
            .map(|(rank, e)| {
                let (_, r, m) = e.order;
                let mut route = e.route;
                route.name = format!("{rank:0width$}:{}:r{r}:m{m}", e.route_id.qualified_name());
                route
            })
            .collect::<Vec<_>>();
        let served_by = attachable.iter().find(|a| a.model_listener == vh.listener);
        let mut routes: Vec<model::Route> = routes;
        if let Some(a) = served_by {
            listener_port_redirects(&mut routes, a.listener);
        }
        let mut v = model::VirtualHost::new(name, [vh.listener.clone()], [vh.host]);
        v.routes = routes;
        let gateway = served_by.map(|a| a.gateway.clone());
        v.provenance = cx.sources(vh.sources.iter().chain(gateway.as_ref()));
        cx.emit(v);
    }
}

/// A redirect with neither scheme nor port goes to the Gateway listener's port (left out of
/// `Location` when it is the listener protocol's well-known port), as the spec says.
fn listener_port_redirects(routes: &mut [model::Route], listener: &gateway::Listener) {
    let well_known = if listener.protocol == "HTTPS" {
        443
    } else {
        80
    };
    let Some(port) = u16::try_from(listener.port)
        .ok()
        .filter(|p| *p != well_known)
    else {
        return;
    };
    for rd in routes.iter_mut().filter_map(|r| r.redirect.as_mut()) {
        if rd.scheme.is_none() && rd.port.is_none() {
            rd.port = Some(port);
        }
    }
}

/// What makes two matches the same: path, and headers, query parameters and methods in any
/// order (header names case-insensitively).
fn match_key(m: &model::RouteMatch) -> String {
    let mut m = m.clone();
    for h in &mut m.headers {
        h.name.make_ascii_lowercase();
    }
    let json = |v: &model::StringMatch| serde_json::to_string(v).unwrap_or_default();
    m.headers
        .sort_by_cached_key(|h| (h.name.clone(), json(&h.value), h.invert));
    m.query
        .sort_by_cached_key(|q| (q.name.clone(), json(&q.value)));
    m.methods.sort();
    serde_json::to_string(&m).unwrap_or_default()
}

/// The Envoy port of a Gateway listener port.
fn envoy_port(cx: &Cx<'_>, port: i32) -> Option<u16> {
    let p = u16::try_from(port).ok().filter(|p| *p != 0)?;
    if p < 1024 {
        p.checked_add(cx.options.privileged_port_offset)
    } else {
        Some(p)
    }
}

/// Emits the model listeners of a Gateway (one per port) and records what routes may attach.
fn listeners<'a>(
    cx: &mut Cx<'_>,
    id: &'a ObjectRef,
    g: &'a Gateway,
    out: &mut Vec<Attachable<'a>>,
) {
    let namespace = id.namespace.as_deref().unwrap_or("default");
    let mut by_port: BTreeMap<i32, (model::Listener, BTreeSet<Option<String>>)> = BTreeMap::new();
    let mut served = 0;
    for (i, l) in g.spec.listeners.iter().enumerate() {
        let field = ("spec", "listeners", i);
        let problems = cx.listener_problems.len();
        let ok = listener(cx, id, &field, namespace, i, l, &mut by_port, out);
        let scope = || Scope::Listener(l.name.clone());
        cx.status(
            id,
            StatusPart::SupportedKinds(l.name.clone(), vec!["HTTPRoute".into()]),
        );
        let problem = cx.listener_problems.get(problems).cloned();
        let (accepted, refs) = match &problem {
            Some((why, m)) if *why == reason::INVALID_CERTIFICATE_REF => {
                (None, Some((*why, m.clone())))
            }
            Some((why, m)) => (Some((*why, m.clone())), None),
            None => (None, None),
        };
        let cond = |t: &str, p: &Option<(&str, String)>, good: &str| match p {
            Some((why, m)) => Condition::new(t, false, why, m.clone()),
            None => Condition::new(t, true, good, ""),
        };
        cx.condition(
            id,
            scope(),
            cond(reason::ACCEPTED, &accepted, reason::ACCEPTED),
        );
        cx.condition(
            id,
            scope(),
            cond(reason::RESOLVED_REFS, &refs, reason::RESOLVED_REFS),
        );
        let programmed = if ok {
            None
        } else {
            Some((reason::INVALID, "not served".to_owned()))
        };
        cx.condition(
            id,
            scope(),
            cond(reason::PROGRAMMED, &programmed, reason::PROGRAMMED),
        );
        served += usize::from(ok);
    }
    let all = served == g.spec.listeners.len();
    cx.condition(
        id,
        Scope::Object,
        Condition::new(
            reason::ACCEPTED,
            served > 0 || g.spec.listeners.is_empty(),
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
            served > 0,
            if served > 0 {
                reason::PROGRAMMED
            } else {
                reason::INVALID
            },
            "",
        ),
    );
    let source = cx.source(id);
    for (_, (mut ml, _)) in by_port {
        if ml.protocol == model::ListenerProtocol::Https && ml.tls.is_empty() {
            continue;
        }
        ml.tls.sort_by(|a, b| a.hosts.cmp(&b.hosts));
        ml.provenance = vec![source.clone()];
        cx.emit(ml);
    }
}

/// One Gateway listener into its port's model listener; whether it is served.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of one Gateway's listener loop"
)]
fn listener<'a>(
    cx: &mut Cx<'_>,
    id: &'a ObjectRef,
    field: &dyn ToFieldPath,
    namespace: &str,
    i: usize,
    l: &'a gateway::Listener,
    by_port: &mut BTreeMap<i32, (model::Listener, BTreeSet<Option<String>>)>,
    out: &mut Vec<Attachable<'a>>,
) -> bool {
    {
        let https = match l.protocol.as_str() {
            "HTTP" => false,
            "HTTPS" => true,
            other => {
                cx.error(
                    id,
                    (field, "protocol"),
                    format_args!("protocol {other:?} is not supported; listener not served"),
                );
                cx.listener_problem(
                    reason::UNSUPPORTED_PROTOCOL,
                    format!("protocol {other:?} is not supported"),
                );
                return false;
            }
        };
        let Some(port) = envoy_port(cx, l.port) else {
            cx.error(
                id,
                (field, "port"),
                format_args!("port {} is not a port Envoy can bind", l.port),
            );
            cx.listener_problem(
                reason::INVALID,
                format!("port {} is not a port Envoy can bind", l.port),
            );
            return false;
        };
        let hostname = match l.hostname.as_deref() {
            None | Some("") => None,
            Some(h) => match check_host(h) {
                Some(h) => Some(h),
                None => {
                    cx.error(
                        id,
                        (field, "hostname"),
                        format_args!("{h:?} is not a host name or a *. wildcard"),
                    );
                    cx.listener_problem(
                        reason::INVALID,
                        format!("{h:?} is not a host name or a *. wildcard"),
                    );
                    return false;
                }
            },
        };
        let model_listener = format!("k8s:gateway:{}:{}", id.qualified_name(), l.port);
        let (ml, hosts) = by_port.entry(l.port).or_insert_with(|| {
            let mut ml = model::Listener::new(model_listener.clone(), port);
            if https {
                ml.protocol = model::ListenerProtocol::Https;
            }
            (ml, BTreeSet::new())
        });
        if (ml.protocol == model::ListenerProtocol::Https) != https {
            cx.error(
                id,
                (field, "protocol"),
                format_args!(
                    "port {} is also used with another protocol; listener not served",
                    l.port
                ),
            );
            cx.listener_problem(
                reason::CONFLICTED,
                "another listener on the port has another protocol".into(),
            );
            return false;
        }
        if !hosts.insert(hostname.clone()) {
            cx.error(
                id,
                (field, "hostname"),
                format_args!(
                    "another listener on port {} has the same hostname; listener not served",
                    l.port
                ),
            );
            cx.listener_problem(
                reason::CONFLICTED,
                "another listener on the port has the same hostname".into(),
            );
            return false;
        }
        if https {
            let Some(secret) = certificate(cx, id, field, namespace, l) else {
                cx.listener_problem(
                    reason::INVALID_CERTIFICATE_REF,
                    "the certificate does not resolve".into(),
                );
                return false;
            };
            ml.tls.push(model::ListenerTls {
                hosts: hostname.iter().cloned().collect(),
                secret,
            });
        }
        out.push(Attachable {
            gateway: id,
            index: i,
            listener: l,
            model_listener,
        });
    }
    true
}

/// Whether a reference's group and kind (defaulted when absent) name this core kind.
fn is_core(group: Option<&str>, kind: Option<&str>, expected: &str) -> bool {
    group.unwrap_or("").is_empty() && kind.unwrap_or(expected) == expected
}

/// The model secret of an HTTPS listener's first certificate.
fn certificate(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    namespace: &str,
    l: &gateway::Listener,
) -> Option<String> {
    let tls = l.tls.clone().unwrap_or_default();
    if tls.mode.as_deref().is_some_and(|m| m != "Terminate") {
        cx.error(
            id,
            (field, "tls", "mode"),
            "only Terminate is supported for HTTPS; listener not served",
        );
        return None;
    }
    let Some(cert) = tls.certificate_refs.first() else {
        cx.error(
            id,
            (field, "tls", "certificateRefs"),
            "no certificate; listener not served",
        );
        return None;
    };
    if tls.certificate_refs.len() > 1 {
        cx.warn(
            id,
            (field, "tls", "certificateRefs"),
            "only the first certificate is served",
        );
    }
    let field = (field, "tls", "certificateRefs", 0usize);
    if !is_core(cert.group.as_deref(), cert.kind.as_deref(), "Secret") {
        cx.error(
            id,
            field,
            "only core Secrets are supported; listener not served",
        );
        return None;
    }
    if cert.namespace.as_deref().is_some_and(|n| n != namespace) {
        let message = "a Secret in another namespace needs a ReferenceGrant, which is not \
                       supported; listener not served";
        cx.error(id, field, message);
        return None;
    }
    cx.tls_secret(id, &field, namespace, &cert.name)
}

/// What a parent reference attached: the listeners (by name) and the route's `Accepted`
/// condition for that parent.
struct AttachOutcome {
    listeners: Vec<String>,
    accepted: Condition,
}

/// The (model listener, host) pairs a parent reference naming Gateway `gw` (ours) attaches
/// the route to.
fn attach(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    route: &HttpRoute,
    k: usize,
    parent: &gateway::ParentReference,
    gw: &ObjectRef,
    attachable: &[Attachable<'_>],
) -> (Vec<(String, String)>, AttachOutcome) {
    let field = ("spec", "parentRefs", k);
    let route_ns = id.namespace.as_deref().unwrap_or("default");
    let namespace = gw.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    let mut named_listener = false;
    let mut matched_listener = false;
    let mut listeners = Vec::new();
    for a in attachable.iter().filter(|a| a.gateway == gw) {
        if parent
            .section_name
            .as_deref()
            .is_some_and(|s| s != a.listener.name)
            || parent.port.is_some_and(|p| p != a.listener.port)
        {
            continue;
        }
        named_listener = true;
        let namespaces = a
            .listener
            .allowed_routes
            .as_ref()
            .and_then(|r| r.namespaces.as_ref());
        let from = namespaces.and_then(|n| n.from.as_deref()).unwrap_or("Same");
        let allowed = match from {
            "All" => true,
            "Same" => namespace == route_ns,
            "Selector" => {
                let ns = ObjectRef::new("Namespace", None, route_ns);
                let labels = match cx.get(&ns) {
                    Some(KubeObject::Namespace(n)) => n.metadata.labels.clone().unwrap_or_default(),
                    _ => BTreeMap::new(),
                };
                match namespaces.and_then(|n| n.selector.as_ref()) {
                    Some(sel) => selects(sel, &labels),
                    None => {
                        cx.error(
                            gw,
                            (
                                ("spec", "listeners", a.index),
                                ("allowedRoutes", "namespaces", "selector"),
                            ),
                            "from: Selector needs a selector; no route attaches",
                        );
                        false
                    }
                }
            }
            _ => {
                cx.error(
                    gw,
                    (
                        "spec",
                        "listeners",
                        a.index,
                        "allowedRoutes",
                        "namespaces",
                        "from",
                    ),
                    format_args!("{from:?} is not supported; no route attaches"),
                );
                false
            }
        };
        if !allowed {
            continue;
        }
        matched_listener = true;
        let listener_host = a.listener.hostname.as_deref().and_then(check_host);
        let before = out.len();
        for host in hostnames(cx, id, route, listener_host.as_deref()) {
            out.push((a.model_listener.clone(), host));
        }
        if out.len() > before {
            listeners.push(a.listener.name.clone());
        }
    }
    let accepted = if !matched_listener {
        cx.error(
            id,
            field,
            format_args!(
                "no listener of {gw} accepts the route (sectionName, port, allowedRoutes)"
            ),
        );
        let why = if named_listener {
            reason::NOT_ALLOWED_BY_LISTENERS
        } else {
            reason::NO_MATCHING_PARENT
        };
        Condition::new(
            reason::ACCEPTED,
            false,
            why,
            format!("no listener of {gw} accepts the route"),
        )
    } else if out.is_empty() {
        let message = format!(
            "no hostname of the route intersects the hostnames of the listeners of {gw}; \
             not attached"
        );
        cx.error(id, field, &message);
        Condition::new(
            reason::ACCEPTED,
            false,
            reason::NO_MATCHING_LISTENER_HOSTNAME,
            message,
        )
    } else {
        Condition::new(reason::ACCEPTED, true, reason::ACCEPTED, "")
    };
    out.sort();
    out.dedup();
    listeners.sort();
    listeners.dedup();
    (
        out,
        AttachOutcome {
            listeners,
            accepted,
        },
    )
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
    route: &HttpRoute,
    listener: Option<&str>,
) -> Vec<String> {
    let mut route_hosts = Vec::new();
    for (i, h) in route.spec.hostnames.iter().enumerate() {
        match check_host(h) {
            Some(h) => route_hosts.push(h),
            None => cx.error(
                id,
                ("spec", "hostnames", i),
                format_args!("{h:?} is not a host name or a *. wildcard"),
            ),
        }
    }
    if route.spec.hostnames.is_empty() {
        return vec![listener.unwrap_or("*").to_owned()];
    }
    let Some(l) = listener else {
        return route_hosts;
    };
    route_hosts
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
        .collect()
}

/// Whether wildcard `pattern` (`*.x`) covers `host` (one or more labels before `.x`).
fn covers(pattern: &str, host: &str) -> bool {
    pattern.strip_prefix('*').is_some_and(|suffix| {
        host.len() > suffix.len() && host.ends_with(suffix) && host != pattern
    })
}

/// The model routes of one rule, one per valid match with its index, unnamed (named by rank
/// later).
fn rule_routes(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    r: usize,
    rule: &gateway::HttpRouteRule,
) -> Vec<(usize, model::Route)> {
    let field = ("spec", "rules", r);
    let default_match = [gateway::HttpRouteMatch::default()];
    let matches: &[gateway::HttpRouteMatch] = if rule.matches.is_empty() {
        &default_match
    } else {
        &rule.matches
    };
    let mut out = Vec::new();
    for (m, rm) in matches.iter().enumerate() {
        let Some(matches) = route_match(cx, id, &(field, "matches", m), rm) else {
            continue;
        };
        let mut route = model::Route::forward_prefix("", "/", "");
        route.matches = matches;
        action(cx, id, &field, rule, &mut route);
        out.push((m, route));
    }
    out
}

fn route_match(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    m: &gateway::HttpRouteMatch,
) -> Option<model::RouteMatch> {
    let mut out = model::RouteMatch::default();
    let path = m.path.clone().unwrap_or_default();
    let value = path.value.unwrap_or_else(|| "/".into());
    out.path = match path.type_.as_deref().unwrap_or("PathPrefix") {
        "Exact" => model::PathMatch::Exact(value),
        "PathPrefix" => prefix_match(&value),
        "RegularExpression" => model::PathMatch::Regex(value),
        other => {
            cx.error(
                id,
                (field, "path", "type"),
                format_args!("{other:?} is not a path match type"),
            );
            return None;
        }
    };
    let value_match = |cx: &mut Cx<'_>, f: &dyn ToFieldPath, v: &gateway::ValueMatch| match v
        .type_
        .as_deref()
        .unwrap_or("Exact")
    {
        "Exact" => Some(model::StringMatch::Exact(v.value.clone())),
        "RegularExpression" => Some(model::StringMatch::Regex(v.value.clone())),
        other => {
            cx.error(id, f, format_args!("{other:?} is not a match type"));
            None
        }
    };
    for (i, h) in m.headers.iter().enumerate() {
        let value = value_match(cx, &(field, "headers", i, "type"), h)?;
        out.headers.push(model::HeaderMatch {
            name: h.name.clone(),
            value,
            invert: false,
        });
    }
    for (i, q) in m.query_params.iter().enumerate() {
        let value = value_match(cx, &(field, "queryParams", i, "type"), q)?;
        out.query.push(model::QueryMatch {
            name: q.name.clone(),
            value,
        });
    }
    out.methods.extend(m.method.clone());
    Some(out)
}

fn header_modifier(f: &gateway::HeaderFilter) -> model::HeaderModifier {
    let value = |append: bool| {
        move |h: &gateway::HeaderNameValue| model::HeaderValue {
            name: h.name.clone(),
            value: h.value.clone(),
            append,
        }
    };
    model::HeaderModifier {
        add: f
            .set
            .iter()
            .map(value(false))
            .chain(f.add.iter().map(value(true)))
            .collect(),
        remove: f.remove.clone(),
    }
}

/// Fills in the route's action from the rule's filters and backends.
fn action(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    rule: &gateway::HttpRouteRule,
    route: &mut model::Route,
) {
    let namespace = id.namespace.clone().unwrap_or_else(|| "default".into());
    let mut rewrite = model::Rewrite::default();
    let mut mirror = Vec::new();
    for (i, f) in rule.filters.iter().enumerate() {
        let field = (field, "filters", i);
        match (f.type_.as_str(), f) {
            (
                "RequestHeaderModifier",
                gateway::HttpRouteFilter {
                    request_header_modifier: Some(h),
                    ..
                },
            ) => {
                route.request_headers = header_modifier(h);
            }
            (
                "ResponseHeaderModifier",
                gateway::HttpRouteFilter {
                    response_header_modifier: Some(h),
                    ..
                },
            ) => {
                route.response_headers = header_modifier(h);
            }
            (
                "RequestRedirect",
                gateway::HttpRouteFilter {
                    request_redirect: Some(rd),
                    ..
                },
            ) => {
                route.redirect = Some(redirect(cx, id, &field, rd, &route.matches.path));
            }
            (
                "URLRewrite",
                gateway::HttpRouteFilter {
                    url_rewrite: Some(u),
                    ..
                },
            ) => {
                rewrite.host.clone_from(&u.hostname);
                if let Some(p) = &u.path {
                    match path_change(
                        cx,
                        id,
                        &(field, "urlRewrite", "path"),
                        p,
                        &route.matches.path,
                    ) {
                        Some(PathChange::Full(full)) => {
                            rewrite.regex = Some(model::RegexRewrite {
                                pattern: "^.*$".into(),
                                substitution: full,
                            });
                        }
                        Some(PathChange::Prefix(prefix)) => {
                            match (&route.matches.path, prefix.as_str()) {
                                // Replacing a prefix with `/` must not leave `//rest`.
                                (model::PathMatch::PathPrefix(p), "/") => {
                                    rewrite.regex = Some(model::RegexRewrite {
                                        pattern: format!("^{}/*", regex_escape(p)),
                                        substitution: "/".into(),
                                    });
                                }
                                // Replacing the root `/` with `/x` must give `/x/rest`.
                                (model::PathMatch::Prefix(p), _)
                                    if p == "/" && !prefix.ends_with('/') =>
                                {
                                    rewrite.regex = Some(model::RegexRewrite {
                                        pattern: "^/".into(),
                                        substitution: format!("{prefix}/"),
                                    });
                                }
                                _ => rewrite.prefix = Some(prefix),
                            }
                        }
                        None => {}
                    }
                }
            }
            (
                "RequestMirror",
                gateway::HttpRouteFilter {
                    request_mirror: Some(m),
                    ..
                },
            ) => {
                let f = (field, "requestMirror", "backendRef");
                if let Some(cluster) = backend_cluster(cx, id, &f, &namespace, &m.backend_ref) {
                    let percent = m.percent.map_or(100, |p| p.clamp(0, 100) as u32);
                    mirror.push(model::Mirror { cluster, percent });
                }
            }
            (other, _) => {
                let message = format!(
                    "filter {other:?} is not supported (or lacks its settings); the rule \
                     answers 500"
                );
                cx.error(id, field, message);
                route.forward = None;
                route.redirect = None;
                route.direct_response = Some(model::DirectResponse {
                    status: 500,
                    body: None,
                });
                return;
            }
        }
    }
    if route.redirect.is_some() {
        route.forward = None;
        return;
    }
    let mut backends = Vec::new();
    for (i, b) in rule.backend_refs.iter().enumerate() {
        let f = (field, "backendRefs", i);
        if !b.filters.is_empty() {
            cx.error(
                id,
                (f, "filters"),
                "backend filters are not supported; ignored",
            );
        }
        let weight = b.weight.unwrap_or(1).max(0) as u32;
        let cluster = backend_cluster(cx, id, &f, &namespace, &b.backend)
            .unwrap_or_else(|| format!("k8s:invalid:{}", b.backend.name));
        backends.push(model::Backend { cluster, weight });
    }
    // The spec answers 500 for requests to invalid backends; when every backend is invalid
    // (or there are none) the whole rule does. Invalid backends beside valid ones are
    // dropped by the core, their share going to the valid ones.
    if backends.iter().all(|b| !cx.clusters.contains(&b.cluster)) {
        route.forward = None;
        route.direct_response = Some(model::DirectResponse {
            status: 500,
            body: None,
        });
        return;
    }
    route.forward = Some(model::Forward {
        backends,
        rewrite,
        mirror,
        ..model::Forward::to("")
    });
}

/// The cluster of a backend reference; `None` (reported) when it is not a Service port.
fn backend_cluster(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    namespace: &str,
    b: &gateway::BackendObjectReference,
) -> Option<String> {
    if !is_core(b.group.as_deref(), b.kind.as_deref(), "Service") {
        cx.error(id, field, "only Service backends are supported");
        cx.ref_problem(reason::INVALID_KIND, "only Service backends are supported");
        return None;
    }
    if b.namespace.as_deref().is_some_and(|n| n != namespace) {
        let message =
            "a backend in another namespace needs a ReferenceGrant, which is not supported";
        cx.error(id, field, message);
        cx.ref_problem(reason::REF_NOT_PERMITTED, message);
        return None;
    }
    let Some(port) = b.port else {
        cx.error(id, (field, "port"), "a Service backend needs a port");
        return None;
    };
    Some(cx.service_cluster(id, field, namespace, &b.name, PortRef::Number(port)))
}

enum PathChange {
    Full(String),
    Prefix(String),
}

fn path_change(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    p: &gateway::PathModifier,
    path: &model::PathMatch,
) -> Option<PathChange> {
    match p.type_.as_str() {
        "ReplaceFullPath" => Some(PathChange::Full(
            p.replace_full_path.clone().unwrap_or_else(|| "/".into()),
        )),
        "ReplacePrefixMatch" => {
            if !matches!(
                path,
                model::PathMatch::PathPrefix(_) | model::PathMatch::Prefix(_)
            ) {
                cx.error(
                    id,
                    field,
                    "ReplacePrefixMatch needs a PathPrefix match; ignored",
                );
                return None;
            }
            Some(PathChange::Prefix(
                p.replace_prefix_match.clone().unwrap_or_else(|| "/".into()),
            ))
        }
        other => {
            cx.error(
                id,
                (field, "type"),
                format_args!("{other:?} is not a path modifier; ignored"),
            );
            None
        }
    }
}

fn redirect(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    rd: &gateway::RequestRedirect,
    path: &model::PathMatch,
) -> model::Redirect {
    let mut out = model::Redirect {
        scheme: rd.scheme.clone(),
        host: rd.hostname.clone(),
        code: Some(
            rd.status_code
                .map_or(302, |c| u16::try_from(c).unwrap_or(302)),
        ),
        ..model::Redirect::default()
    };
    // The port: explicit, else the scheme's well-known port; left out of `Location` when it is
    // the scheme's well-known port. Without scheme and port it is the Gateway listener's,
    // filled in per listener (`listener_port_redirects`).
    let well_known = |s: &str| match s {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let port = rd
        .port
        .and_then(|p| u16::try_from(p).ok())
        .or_else(|| rd.scheme.as_deref().and_then(well_known));
    out.port = port.filter(|p| rd.scheme.as_deref().and_then(well_known) != Some(*p));
    if let Some(p) = &rd.path {
        match path_change(cx, id, &(field, "requestRedirect", "path"), p, path) {
            Some(PathChange::Full(full)) => out.path = Some(full),
            Some(PathChange::Prefix(prefix)) => out.prefix = Some(prefix),
            None => {}
        }
    }
    out
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
