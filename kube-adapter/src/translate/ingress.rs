//! Ingresses (and IngressClasses) into the Ingress listeners and virtual hosts; the
//! semantics are in the parent module's docs.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use xdsc_core::diagnostic::{Key, ToFieldPath};
use xdsc_core::model;

use super::backends::PortRef;
use super::{Cx, KubeObject, ObjectRef, age_key, check_host, host_in_name, prefix_match};

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

pub(super) fn translate(cx: &mut Cx<'_>) {
    let taken = taken(cx);
    if taken.is_empty() {
        return;
    }
    let tls = tls(cx, &taken);
    // Claims in age order: the first claim of a (host, path) wins.
    let mut winners: BTreeMap<(String, model::PathMatch), &ObjectRef> = BTreeMap::new();
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    let mut default_backend: Option<(&ObjectRef, model::Route)> = None;
    for &(id, ing) in &taken {
        annotations(cx, id, ing);
        let spec = ing.spec.clone().unwrap_or_default();
        if let Some(b) = &spec.default_backend {
            // Only the winner's backend is resolved: a loser's Service is not needed.
            match &default_backend {
                Some((winner, _)) => cx.error(
                    id,
                    ("spec", "defaultBackend"),
                    format_args!(
                        "the default backend is also set by {winner}, which takes precedence"
                    ),
                ),
                None => {
                    let name = DEFAULT_ROUTE.into();
                    let path = model::PathMatch::default();
                    let route = route(cx, id, &("spec", "defaultBackend"), name, path, b);
                    default_backend = Some((id, route));
                }
            }
        }
        for (r, rule) in spec.rules.iter().flatten().enumerate() {
            let field = ("spec", "rules", r);
            let host = match rule.host.as_deref().filter(|h| !h.is_empty()) {
                None => "*".to_owned(),
                Some(h) => match check_host(h) {
                    Some(h) => h,
                    None => {
                        cx.error(
                            id,
                            (field, "host"),
                            format_args!("{h:?} is not a host name or a *. wildcard"),
                        );
                        continue;
                    }
                },
            };
            let entry = hosts.entry(host.clone()).or_default();
            entry.sources.insert(id.clone());
            entry.https |= tls.serves(id, &host);
            for (p, path) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
                let field = (field, "http", "paths", p);
                let Some(matches) =
                    path_match(cx, id, &field, path.path.as_deref(), &path.path_type)
                else {
                    continue;
                };
                let key = (host.clone(), matches.clone());
                if let Some(winner) = winners.get(&key) {
                    let shown = path.path.as_deref().unwrap_or("/");
                    let message = format!(
                        "path {shown:?} ({}) on host {host:?} is also claimed by {winner}, \
                         which takes precedence",
                        path.path_type
                    );
                    cx.error(id, field, message);
                    continue;
                }
                winners.insert(key, id);
                let name = format!("{}:r{r}:p{p}", id.qualified_name());
                let backend_field = (field, "backend");
                let route = route(cx, id, &backend_field, name, matches, &path.backend);
                entry.routes.push(route);
            }
        }
    }
    let mut all_sources: BTreeSet<ObjectRef> = taken.iter().map(|(id, _)| (*id).clone()).collect();
    if let Some((id, _)) = &default_backend {
        let any = hosts.entry("*".into()).or_default();
        any.sources.insert((*id).clone());
        all_sources.insert((*id).clone());
    }
    let https = !tls.entries.is_empty();
    if let Some(any) = hosts.get_mut("*") {
        any.https = https;
    }
    one_label_wildcards(&mut hosts);
    for (host, mut h) in hosts {
        let mut routes = h.routes;
        if let Some((owner, default)) = &default_backend
            && !routes
                .iter()
                .any(|r| r.matches == model::RouteMatch::default())
        {
            routes.push(default.clone());
            h.sources.insert((*owner).clone());
        }
        let mut listeners = vec![HTTP_LISTENER.to_owned()];
        if https && h.https {
            listeners.push(HTTPS_LISTENER.to_owned());
        }
        let mut vh = model::VirtualHost::new(
            format!("k8s:ingress:{}", host_in_name(&host)),
            listeners,
            [host],
        );
        vh.routes = routes;
        vh.provenance = cx.sources(&h.sources);
        cx.emit(vh);
    }
    let provenance = cx.sources(&all_sources);
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
}

#[derive(Default)]
struct Host {
    routes: Vec<model::Route>,
    sources: BTreeSet<ObjectRef>,
    https: bool,
}

/// Restricts each `*.x` host's routes to one label with an `:authority` match, and copies
/// the host-less routes in with that match inverted (see the module docs).
fn one_label_wildcards(hosts: &mut BTreeMap<String, Host>) {
    let any: Vec<model::Route> = hosts.get("*").map(|h| h.routes.clone()).unwrap_or_default();
    let any_sources = hosts
        .get("*")
        .map(|h| h.sources.clone())
        .unwrap_or_default();
    for (host, h) in hosts.iter_mut() {
        let Some(suffix) = host.strip_prefix("*.") else {
            continue;
        };
        let header = model::HeaderMatch {
            name: ":authority".into(),
            value: model::StringMatch::Regex(format!("(?i)[^.]+\\.{}", suffix.replace('.', "\\."))),
            invert: false,
        };
        for r in &mut h.routes {
            r.matches.headers.push(header.clone());
        }
        for r in &any {
            let mut r = r.clone();
            r.matches.headers.push(model::HeaderMatch {
                invert: true,
                ..header.clone()
            });
            h.routes.push(r);
        }
        if !any.is_empty() {
            h.sources.extend(any_sources.iter().cloned());
        }
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

/// The Ingresses taken, oldest first.
fn taken<'a>(cx: &mut Cx<'a>) -> Vec<(&'a ObjectRef, &'a Ingress)> {
    let inputs = cx.inputs;
    let mut ours = BTreeSet::new();
    let mut default_class = false;
    let mut any_class = false;
    let mut classes = BTreeSet::new();
    for (id, o) in inputs.of_kind("IngressClass") {
        let KubeObject::IngressClass(c) = o else {
            continue;
        };
        any_class = true;
        classes.insert(id.name.clone());
        let controller = c.spec.as_ref().and_then(|s| s.controller.as_deref());
        if controller == Some(cx.options.ingress_controller.as_str()) {
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
    let mut taken = Vec::new();
    for (id, o) in inputs.of_kind("Ingress") {
        let KubeObject::Ingress(ing) = o else {
            continue;
        };
        let by_field = ing.spec.as_ref().and_then(|s| s.ingress_class_name.clone());
        let by_annotation = || {
            let annotations = ing.metadata.annotations.as_ref();
            annotations.and_then(|a| a.get(CLASS_ANNOTATION).cloned())
        };
        let field = if by_field.is_some() {
            ("spec", "ingressClassName").to_field_path()
        } else {
            ("metadata", "annotations", Key(CLASS_ANNOTATION)).to_field_path()
        };
        let class = by_field.or_else(by_annotation);
        let take = match &class {
            Some(c) => {
                if !classes.contains(c) {
                    cx.warn(
                        id,
                        &field,
                        format_args!("IngressClass {c:?} does not exist; not served"),
                    );
                }
                ours.contains(c)
            }
            None => {
                default_class || (!any_class && cx.options.take_unclassed_ingress_without_classes)
            }
        };
        if take {
            taken.push((id, &**ing));
        }
    }
    taken.sort_by(|a, b| age_key(&a.1.metadata, a.0).cmp(&age_key(&b.1.metadata, b.0)));
    taken
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

impl Tls {
    /// Whether `host` of Ingress `id` is served on HTTPS.
    fn serves(&self, id: &ObjectRef, host: &str) -> bool {
        if self.all_hosts.contains(id) || self.hosts.contains(host) {
            return true;
        }
        host.split_once('.')
            .is_some_and(|(_, parent)| self.hosts.contains(&format!("*.{parent}")))
    }
}

fn tls(cx: &mut Cx<'_>, taken: &[(&ObjectRef, &Ingress)]) -> Tls {
    let mut by_secret: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut claimed: BTreeMap<String, ObjectRef> = BTreeMap::new();
    let mut default: Option<(String, ObjectRef)> = None;
    let mut all_hosts = BTreeSet::new();
    for &(id, ing) in taken {
        let namespace = id.namespace.as_deref().unwrap_or("default");
        for (i, t) in ing
            .spec
            .iter()
            .flat_map(|s| s.tls.iter().flatten())
            .enumerate()
        {
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
