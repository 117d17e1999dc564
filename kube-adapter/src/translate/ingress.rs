//! Ingresses (and IngressClasses) into the Ingress listeners and virtual hosts; the
//! semantics are in the parent module's docs.
//!
//! Three kinds of unit: [`global`] (which Ingresses are taken, TLS, the default backend, the
//! listeners), [`object`] (one Ingress's own checks and status) and [`host`] (one host's
//! virtual host). A path change in one Ingress recomputes the hosts of that Ingress only.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use xdsc_core::diagnostic::{FieldPath, Key, ToFieldPath};
use xdsc_core::model;

use super::backends::PortRef;
use super::shared::{check_host, host_in_name, prefix_match};
use crate::context::{Age, Cx, Global, Head, age, source_with};
use crate::objects::{KubeKind, KubeObject, ObjectRef};
use crate::status::{LoadBalancerAddress, StatusPart};

/// The HTTP and HTTPS listener names.
pub(super) const HTTP_LISTENER: &str = "k8s:ingress-http";
/// See [`HTTP_LISTENER`].
pub(super) const HTTPS_LISTENER: &str = "k8s:ingress-https";
const DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const DEFAULT_ROUTE: &str = "~default-backend";

/// Annotation prefixes of other controllers that change routing: reported, then ignored.
const FOREIGN_ANNOTATIONS: &[&str] = &[
    "nginx.ingress.kubernetes.io/",
    "nginx.org/",
    "traefik.ingress.kubernetes.io/",
    "haproxy.org/",
    "haproxy.router.openshift.io/",
    "alb.ingress.kubernetes.io/",
    "ingress.kubernetes.io/",
    "projectcontour.io/",
    "konghq.com/",
    "kubernetes.io/ingress.allow-http",
    "kubernetes.io/ingress.global-static-ip-name",
    "appgw.ingress.kubernetes.io/",
    "ingress.gcp.kubernetes.io/",
];

/// What the Ingress-wide decisions read of `ing`.
pub(crate) fn head(ing: &Ingress, origin: Option<String>) -> Head {
    let spec = ing.spec.as_ref();
    Head {
        class: class_of(ing).map(|(c, _)| c),
        tls: spec.and_then(|s| s.tls.clone()).unwrap_or_default(),
        default_backend: spec.and_then(|s| s.default_backend.clone()),
        created: ing.metadata.creation_timestamp.clone(),
        origin,
    }
}

/// An Ingress's class and the field that names it.
fn class_of(ing: &Ingress) -> Option<(String, FieldPath)> {
    if let Some(c) = ing.spec.as_ref().and_then(|s| s.ingress_class_name.clone()) {
        return Some((c, ("spec", "ingressClassName").to_field_path()));
    }
    let annotations = ing.metadata.annotations.as_ref();
    let field = ("metadata", "annotations", Key(CLASS_ANNOTATION));
    annotations
        .and_then(|a| a.get(CLASS_ANNOTATION).cloned())
        .map(|c| (c, field.to_field_path()))
}

/// The valid, lowercased hosts of an Ingress's rules (`*` for a rule without a host).
pub(crate) fn hosts(ing: &Ingress) -> BTreeSet<String> {
    ing.spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .filter_map(|r| rule_host(r.host.as_deref()))
        .collect()
}

fn rule_host(host: Option<&str>) -> Option<String> {
    match host.filter(|h| !h.is_empty()) {
        None => Some("*".to_owned()),
        Some(h) => check_host(h),
    }
}

/// The Ingress-wide unit: which Ingresses are taken, TLS, the default backend, and the two
/// Ingress listeners.
pub(crate) fn global(cx: &mut Cx<'_>) {
    let heads = cx.ingress_heads();
    let (ours, default_class, any_class) = classes(cx);
    let mut taken: Vec<(&ObjectRef, &Head)> = heads
        .iter()
        .filter(|(_, h)| match &h.class {
            Some(c) => ours.contains(c),
            None => {
                default_class || (!any_class && cx.options.take_unclassed_ingress_without_classes)
            }
        })
        .collect();
    taken.sort_by_cached_key(|(id, h)| age(h.created.as_ref(), id));
    if taken.is_empty() {
        cx.set_ingress_global(Global::default());
        return;
    }
    let tls = tls(cx, &taken);
    let mut default_backend: Option<(ObjectRef, model::Route)> = None;
    for &(id, head) in &taken {
        let Some(b) = &head.default_backend else {
            continue;
        };
        // Only the winner's backend is resolved: a loser's Service is not needed.
        match &default_backend {
            Some((winner, _)) => cx.error(
                id,
                ("spec", "defaultBackend"),
                format_args!("the default backend is also set by {winner}, which takes precedence"),
            ),
            None => {
                let name = DEFAULT_ROUTE.into();
                let path = model::PathMatch::default();
                let route = route(cx, id, &("spec", "defaultBackend"), name, path, b);
                default_backend = Some((id.clone(), route));
            }
        }
    }
    let mut provenance: Vec<model::Source> = taken
        .iter()
        .map(|(id, h)| source_with(id, h.origin.as_deref()))
        .collect();
    provenance.sort();
    provenance.dedup();
    let https = !tls.entries.is_empty();
    let mut http = model::Listener::new(HTTP_LISTENER, cx.options.ingress_http_port);
    http.provenance = provenance.clone();
    cx.emit(http);
    if https {
        let mut l = model::Listener::new(HTTPS_LISTENER, cx.options.ingress_https_port);
        l.protocol = model::ListenerProtocol::Https;
        l.tls = tls.entries;
        l.provenance = provenance;
        cx.emit(l);
    }
    cx.set_ingress_global(Global {
        taken: taken
            .iter()
            .map(|(id, h)| ((*id).clone(), age(h.created.as_ref(), id)))
            .collect(),
        tls_hosts: tls.hosts,
        tls_all: tls.all_hosts,
        default_backend,
        https,
    });
}

/// Our IngressClasses, whether one of them is the default, whether any class exists.
fn classes(cx: &mut Cx<'_>) -> (BTreeSet<String>, bool, bool) {
    let mut ours = BTreeSet::new();
    let mut default_class = false;
    let mut any_class = false;
    let controller = cx.options.ingress_controller.clone();
    for (id, o) in cx.of_kind(KubeKind::IngressClass) {
        let KubeObject::IngressClass(c) = o else {
            continue;
        };
        any_class = true;
        if c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(controller.as_str()) {
            ours.insert(id.name.clone());
            let annotations = c.metadata.annotations.as_ref();
            if annotations
                .and_then(|a| a.get(DEFAULT_CLASS))
                .map(String::as_str)
                == Some("true")
            {
                default_class = true;
            }
        }
    }
    (ours, default_class, any_class)
}

/// One Ingress's own checks: its class exists, its annotations, its hosts; and its status.
pub(crate) fn object(cx: &mut Cx<'_>, id: &ObjectRef) {
    let Some(KubeObject::Ingress(ing)) = cx.get(id) else {
        return;
    };
    if let Some((class, field)) = class_of(ing)
        && cx.get(&KubeKind::IngressClass.id(None, &class)).is_none()
    {
        cx.warn(
            id,
            &field,
            format_args!("IngressClass {class:?} does not exist; not served"),
        );
    }
    let global = cx.ingress_global();
    if global.taken(cx, id).is_none() {
        return;
    }
    annotations(cx, id, ing);
    for (r, rule) in ing
        .spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .enumerate()
    {
        if let Some(h) = rule.host.as_deref().filter(|h| !h.is_empty())
            && check_host(h).is_none()
        {
            cx.error(
                id,
                ("spec", "rules", r, "host"),
                format_args!("{h:?} is not a host name or a *. wildcard"),
            );
        }
    }
    let mut addresses: Vec<LoadBalancerAddress> = cx
        .options
        .ingress_status_addresses
        .iter()
        .map(|a| address(a))
        .collect();
    if let Some(svc) = cx.options.publish_service.clone()
        && let Some(KubeObject::Service(s)) = cx.get(&svc)
    {
        let lb = s.status.as_ref().and_then(|s| s.load_balancer.as_ref());
        for i in lb.and_then(|l| l.ingress.as_ref()).into_iter().flatten() {
            addresses.push(LoadBalancerAddress {
                ip: i.ip.clone(),
                hostname: i.hostname.clone(),
            });
        }
    }
    cx.status(id, StatusPart::LoadBalancer(addresses));
}

/// A configured status address: an IP address, else a host name.
fn address(a: &str) -> LoadBalancerAddress {
    if a.parse::<std::net::IpAddr>().is_ok() {
        LoadBalancerAddress {
            ip: Some(a.to_owned()),
            hostname: None,
        }
    } else {
        LoadBalancerAddress {
            ip: None,
            hostname: Some(a.to_owned()),
        }
    }
}

/// The virtual host of one Ingress host: the rules of every taken Ingress for it, merged
/// (oldest first), the default backend, and for `*.x` the rules without a host.
pub(crate) fn host(cx: &mut Cx<'_>, host: &str) {
    let global = cx.ingress_global();
    let mut entry = host_entry(cx, global, host);
    if host == "*" {
        if let Some((owner, _)) = global.default_backend(cx) {
            entry
                .get_or_insert_with(Host::default)
                .sources
                .insert(owner.clone());
        }
        if let Some(e) = &mut entry {
            e.https = global.https(cx);
        }
    }
    let Some(mut h) = entry else {
        return;
    };
    if let Some(suffix) = host.strip_prefix("*.") {
        let any = host_entry(cx, global, "*").unwrap_or_default();
        one_label_wildcard(&mut h, suffix, any);
    }
    let mut routes = h.routes;
    if let Some((owner, default)) = global.default_backend(cx)
        && !routes
            .iter()
            .any(|r| r.matches == model::RouteMatch::default())
    {
        routes.push(default.clone());
        h.sources.insert(owner.clone());
    }
    let mut listeners = vec![HTTP_LISTENER.to_owned()];
    if global.https(cx) && h.https {
        listeners.push(HTTPS_LISTENER.to_owned());
    }
    let mut vh = model::VirtualHost::new(
        format!("k8s:ingress:{}", host_in_name(host)),
        listeners,
        [host.to_owned()],
    );
    vh.routes = routes;
    vh.provenance = cx.sources(&h.sources);
    cx.emit(vh);
}

/// The routes of the taken Ingresses' rules for `host`, oldest Ingress first; `None` when
/// no taken Ingress has a rule for it.
fn host_entry(cx: &mut Cx<'_>, global: &Global, host: &str) -> Option<Host> {
    let mut ingresses: Vec<(Age, &ObjectRef, &Ingress)> = Vec::new();
    for (id, o) in cx.host_ingresses(host) {
        if let (KubeObject::Ingress(ing), Some(age)) = (o, global.taken(cx, id)) {
            ingresses.push((age.clone(), id, ing));
        }
    }
    if ingresses.is_empty() {
        return None;
    }
    ingresses.sort_by(|a, b| a.0.cmp(&b.0));
    let mut entry = Host::default();
    // Claims in age order: the first claim of a path wins.
    let mut winners: BTreeMap<model::PathMatch, &ObjectRef> = BTreeMap::new();
    for (_, id, ing) in ingresses {
        for (r, rule) in ing
            .spec
            .iter()
            .flat_map(|s| s.rules.iter().flatten())
            .enumerate()
        {
            if rule_host(rule.host.as_deref()).as_deref() != Some(host) {
                continue;
            }
            let field = ("spec", "rules", r);
            entry.sources.insert(id.clone());
            entry.https |= global.serves(cx, id, host);
            for (p, path) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
                let field = (field, "http", "paths", p);
                let Some(matches) =
                    path_match(cx, id, &field, path.path.as_deref(), &path.path_type)
                else {
                    continue;
                };
                if let Some(winner) = winners.get(&matches) {
                    let shown = path.path.as_deref().unwrap_or("/");
                    let message = format!(
                        "path {shown:?} ({}) on host {host:?} is also claimed by {winner}, \
                         which takes precedence",
                        path.path_type
                    );
                    cx.error(id, field, message);
                    continue;
                }
                winners.insert(matches.clone(), id);
                let name = format!("{}:r{r}:p{p}", id.qualified_name());
                let backend_field = (field, "backend");
                let route = route(cx, id, &backend_field, name, matches, &path.backend);
                entry.routes.push(route);
            }
        }
    }
    Some(entry)
}

#[derive(Default)]
struct Host {
    routes: Vec<model::Route>,
    sources: BTreeSet<ObjectRef>,
    https: bool,
}

/// Restricts a `*.x` host's routes to one label with an `:authority` match, and copies
/// the host-less routes in with that match inverted (see the module docs).
fn one_label_wildcard(h: &mut Host, suffix: &str, any: Host) {
    let header = model::HeaderMatch {
        name: ":authority".into(),
        value: model::StringMatch::Regex(format!("(?i)[^.]+\\.{}", suffix.replace('.', "\\."))),
        invert: false,
    };
    for r in &mut h.routes {
        r.matches.headers.push(header.clone());
    }
    for mut r in any.routes.iter().cloned() {
        r.matches.headers.push(model::HeaderMatch {
            invert: true,
            ..header.clone()
        });
        h.routes.push(r);
    }
    if !any.routes.is_empty() {
        h.sources.extend(any.sources);
    }
}

/// The model path match of an Ingress path.
fn path_match(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    path: Option<&str>,
    path_type: &str,
) -> Option<model::PathMatch> {
    let path = path.filter(|p| !p.is_empty()).unwrap_or("/");
    if !path.starts_with('/') {
        cx.error(
            id,
            (field, "path"),
            format_args!("{path:?} must start with /"),
        );
        return None;
    }
    match path_type {
        "Exact" => Some(model::PathMatch::Exact(path.to_owned())),
        "Prefix" | "ImplementationSpecific" => Some(prefix_match(path)),
        other => {
            cx.error(
                id,
                (field, "pathType"),
                format_args!(
                    "{other:?} is not a path type (Exact, Prefix, ImplementationSpecific)"
                ),
            );
            None
        }
    }
}

/// A route to an Ingress backend.
fn route(
    cx: &mut Cx<'_>,
    id: &ObjectRef,
    field: &dyn ToFieldPath,
    name: String,
    path: model::PathMatch,
    backend: &IngressBackend,
) -> model::Route {
    let namespace = id.namespace.as_deref().unwrap_or("default");
    let mut route = model::Route::forward_prefix(name, "/", "");
    route.matches.path = path;
    let unavailable = |mut route: model::Route| {
        route.forward = None;
        route.direct_response = Some(model::DirectResponse {
            status: 503,
            body: None,
        });
        route
    };
    let Some(svc) = &backend.service else {
        let what = if backend.resource.is_some() {
            "a resource backend is not supported; answering 503"
        } else {
            "names no service; answering 503"
        };
        cx.error(id, (field, "resource"), what);
        return unavailable(route);
    };
    let port = svc.port.clone().unwrap_or_default();
    let port_field = (field, "service", "port");
    let port = match (&port.name, port.number) {
        (Some(n), _) if !n.is_empty() => PortRef::Name(n),
        (_, Some(n)) => PortRef::Number(n),
        _ => {
            cx.error(
                id,
                port_field,
                "names no port (name or number); answering 503",
            );
            return unavailable(route);
        }
    };
    let cluster = cx.service_cluster(id, &port_field, namespace, &svc.name, port);
    route.forward = Some(model::Forward::to(cluster));
    route
}

fn annotations(cx: &mut Cx<'_>, id: &ObjectRef, ing: &Ingress) {
    for key in ing.metadata.annotations.iter().flat_map(|a| a.keys()) {
        if FOREIGN_ANNOTATIONS.iter().any(|p| key.starts_with(p)) {
            cx.error(
                id,
                ("metadata", "annotations", Key(key)),
                format_args!("unsupported annotation {key:?} ignored"),
            );
        }
    }
}

/// The HTTPS certificates, after conflicts.
struct Tls {
    entries: Vec<model::ListenerTls>,
    /// SNI hosts with a certificate.
    hosts: BTreeSet<String>,
    /// Ingresses with a certificate entry without hosts: all their hosts are served.
    all_hosts: BTreeSet<ObjectRef>,
}

fn tls(cx: &mut Cx<'_>, taken: &[(&ObjectRef, &Head)]) -> Tls {
    let mut by_secret: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut claimed: BTreeMap<String, ObjectRef> = BTreeMap::new();
    let mut default: Option<(String, ObjectRef)> = None;
    let mut all_hosts = BTreeSet::new();
    for &(id, head) in taken {
        let namespace = id.namespace.as_deref().unwrap_or("default");
        for (i, t) in head.tls.iter().enumerate() {
            let field = ("spec", "tls", i);
            let Some(secret_name) = t.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                cx.error(id, (field, "secretName"), "missing: not served on HTTPS");
                continue;
            };
            let Some(secret) = cx.tls_secret(id, &(field, "secretName"), namespace, secret_name)
            else {
                continue;
            };
            let hosts = t.hosts.clone().unwrap_or_default();
            if hosts.is_empty() {
                all_hosts.insert(id.clone());
                match &default {
                    Some((_, winner)) => cx.error(
                        id,
                        field,
                        format_args!(
                            "the default certificate is also set by {winner}, which takes \
                             precedence"
                        ),
                    ),
                    None => {
                        by_secret.entry(secret.clone()).or_default();
                        default = Some((secret, id.clone()));
                    }
                }
                continue;
            }
            for (j, h) in hosts.iter().enumerate() {
                let Some(h) = check_host(h) else {
                    cx.error(
                        id,
                        (field, "hosts", j),
                        format_args!("{h:?} is not a host name or a *. wildcard"),
                    );
                    continue;
                };
                match claimed.get(&h) {
                    Some(winner) if by_secret.get(&secret).is_none_or(|s| !s.contains(&h)) => cx
                        .error(
                            id,
                            (field, "hosts", j),
                            format_args!(
                                "TLS host {h:?} is also claimed by {winner}, which takes precedence"
                            ),
                        ),
                    Some(_) => {}
                    None => {
                        claimed.insert(h.clone(), id.clone());
                        by_secret.entry(secret.clone()).or_default().insert(h);
                    }
                }
            }
        }
    }
    let default_secret = default.map(|(s, _)| s);
    let mut entries = Vec::new();
    for (secret, hosts) in by_secret {
        if !hosts.is_empty() {
            entries.push(model::ListenerTls {
                hosts: hosts.into_iter().collect(),
                secret: secret.clone(),
            });
        }
        if default_secret.as_ref() == Some(&secret) {
            entries.push(model::ListenerTls {
                hosts: Vec::new(),
                secret,
            });
        }
    }
    Tls {
        entries,
        hosts: claimed.into_keys().collect(),
        all_hosts,
    }
}
