//! Requests aimed at a model, for properties of the route oracle ([`crate::oracle`]): models
//! whose routes can be reached, requests that hit (and narrowly miss) their matches, and the
//! labelling that lets the oracle be compared with Envoy.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::{CLUSTERS, TEST_CERT, TEST_KEY, virtual_host};
use crate::model::*;

/// Concrete hosts for a domain: itself, or instances of its wildcard.
fn instances(domain: &str) -> Vec<String> {
    if domain == "*" {
        return vec!["anything.test".to_owned()];
    }
    if let Some(rest) = domain.strip_prefix('*') {
        return vec![format!("x{rest}"), format!("a.b{rest}")];
    }
    if let Some(rest) = domain.strip_suffix('*') {
        return vec![format!("{rest}org"), format!("{rest}x.y")];
    }
    vec![domain.to_owned()]
}

/// A value that a string match accepts (and, for regexes, a plausible one).
fn accepted(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(s) => s.clone(),
        StringMatch::Prefix(s) => format!("{s}x"),
        StringMatch::Regex(_) | StringMatch::Present => "1".to_owned(),
    }
}

/// Paths a path match accepts, and near misses.
fn aimed_paths(m: &PathMatch) -> Vec<String> {
    match m {
        PathMatch::Prefix(p) => vec![p.clone(), format!("{p}/x"), format!("{p}x")],
        PathMatch::PathPrefix(p) => {
            let p = p.trim_end_matches('/');
            vec![
                // Never empty: "/" when the prefix is "/".
                if p.is_empty() {
                    "/".to_owned()
                } else {
                    p.to_owned()
                },
                format!("{p}/"),
                format!("{p}/sub"),
                format!("{p}x"),
            ]
        }
        PathMatch::Exact(p) => vec![p.clone(), format!("{p}/"), p.to_uppercase()],
        PathMatch::Regex(_) => vec!["/123".to_owned(), "/a/b".to_owned(), "/x/z".to_owned()],
    }
}

/// A request before its host's letter case, port and SNI are chosen.
#[derive(Clone, Debug)]
struct Draft {
    listener: String,
    host: String,
    path: String,
    method: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

/// Drafts meant to reach each route of `v`, on each of its listeners, by each of its domains.
fn targets(v: &VirtualHost) -> Vec<Draft> {
    let mut out = Vec::new();
    for r in &v.routes {
        let m = &r.matches;
        let method = m
            .methods
            .first()
            .cloned()
            .unwrap_or_else(|| "GET".to_owned());
        let headers: Vec<(String, String)> = m
            .headers
            .iter()
            .filter(|h| !h.invert)
            .map(|h| (h.name.clone(), accepted(&h.value)))
            .collect();
        let query: Vec<(String, String)> = m
            .query
            .iter()
            .map(|q| (q.name.clone(), accepted(&q.value)))
            .collect();
        for listener in &v.listeners {
            for host in v.domains.iter().flat_map(|d| instances(d)) {
                for path in aimed_paths(&m.path) {
                    out.push(Draft {
                        listener: listener.clone(),
                        host: host.clone(),
                        path,
                        method: method.clone(),
                        query: query.clone(),
                        headers: headers.clone(),
                    });
                }
            }
        }
    }
    out
}

/// What requests aimed at a model draw from: drafts meant to reach one route each, and pools
/// of parts for requests that mix them.
#[derive(Clone, Debug, Default)]
struct Aims {
    targets: Vec<Draft>,
    listeners: Vec<String>,
    hosts: Vec<String>,
    server_names: Vec<String>,
    paths: Vec<String>,
    query: Vec<(String, String)>,
    methods: Vec<String>,
    headers: Vec<(String, String)>,
}

impl Aims {
    fn of(model: &Model) -> Aims {
        let mut a = Aims::default();
        for o in model.objects() {
            match o.as_ref() {
                Object::Listener(l) => {
                    a.listeners.push(l.name.clone());
                    let names = l.tls.iter().flat_map(|t| t.hosts.iter());
                    let snis = l.tcp_routes.iter().flat_map(|r| r.sni.iter());
                    for n in names.chain(snis) {
                        a.server_names.extend(instances(n));
                    }
                }
                Object::VirtualHost(v) => {
                    for d in &v.domains {
                        a.hosts.extend(instances(d));
                    }
                    a.targets.extend(targets(v));
                    for r in &v.routes {
                        let m = &r.matches;
                        a.paths.extend(aimed_paths(&m.path));
                        a.methods.extend(m.methods.iter().cloned());
                        for h in &m.headers {
                            a.headers.push((h.name.clone(), accepted(&h.value)));
                        }
                        for q in &m.query {
                            a.query.push((q.name.clone(), accepted(&q.value)));
                        }
                    }
                }
                _ => {}
            }
        }
        // Noise: what no model aims at, so that misses are exercised too.
        a.listeners.push("http".to_owned());
        a.hosts.push("unknown.test".to_owned());
        a.server_names.push("unknown.test".to_owned());
        a.paths.extend(["/", "/nope", "/a/../b"].map(str::to_owned));
        a.query.push(("q".to_owned(), "1".to_owned()));
        a.methods
            .extend(["GET", "POST", "DELETE"].map(str::to_owned));
        a.headers.push(("x-other".to_owned(), "1".to_owned()));
        for v in [
            &mut a.listeners,
            &mut a.hosts,
            &mut a.server_names,
            &mut a.paths,
            &mut a.methods,
        ] {
            v.sort();
            v.dedup();
        }
        a.query.sort();
        a.query.dedup();
        a.headers.sort();
        a.headers.dedup();
        a
    }
}

/// `v` with the deliberately invalid parts of its generated routes removed, so that they are
/// served (two routes with one name, or one match, still conflict).
fn valid_routes(mut v: VirtualHost) -> VirtualHost {
    let valid_regex = |r: &str| !matches!(r, "(" | "[a-z]{1,200}");
    for r in &mut v.routes {
        let m = &mut r.matches;
        if matches!(&m.path, PathMatch::Regex(x) if !valid_regex(x))
            || matches!(&m.path, PathMatch::Prefix(p) | PathMatch::PathPrefix(p) | PathMatch::Exact(p) if !p.starts_with('/'))
        {
            m.path = PathMatch::Prefix("/".to_owned());
        }
        let valid_value = |s: &StringMatch| !matches!(s, StringMatch::Regex(x) if !valid_regex(x));
        m.headers
            .retain(|h| !h.name.contains(' ') && valid_value(&h.value));
        m.query.retain(|q| valid_value(&q.value));
        m.methods
            .retain(|x| x.bytes().all(|b| b.is_ascii_uppercase()));
        if let Some(f) = &mut r.forward {
            f.retry = None;
            f.mirror.clear();
            f.rewrite.host = None;
            if matches!(m.path, PathMatch::Regex(_)) {
                f.rewrite.prefix = None;
            }
        }
        if let Some(rd) = &mut r.redirect {
            rd.scheme = rd.scheme.take().filter(|x| x != "ftp");
            rd.port = rd.port.filter(|p| *p != 0);
            rd.path = rd.path.take().filter(|p| p.starts_with('/'));
            rd.code = rd.code.filter(|c| *c != 200);
        }
        if let Some(d) = &mut r.direct_response
            && d.status >= 600
        {
            d.status = 503;
        }
        if r.forward.is_none() && r.redirect.is_none() && r.direct_response.is_none() {
            r.direct_response = Some(DirectResponse {
                status: 200,
                body: None,
            });
        }
        r.request_headers = HeaderModifier::default();
        r.response_headers = HeaderModifier::default();
    }
    v
}

/// A model whose listeners (`http`, `https`, `tls`, `tcp`), clusters and certificate are all
/// valid, with random virtual hosts: most requests aimed at it reach a route, so properties of
/// routing are exercised more than those of validation.
///
/// ```
/// use proptest::prelude::*;
/// use xdsc_core::compile::Compiled;
/// use xdsc_core::snapshot::ResourceType;
/// proptest!(ProptestConfig::with_cases(8), |(model in xdsc_core::strategy::routable_model())| {
///     let out = Compiled::new(&model);
///     prop_assert!(out.snapshot().get(ResourceType::Listener, "http").is_some());
/// });
/// ```
pub fn routable_model() -> impl Strategy<Value = Model> {
    vec(virtual_host().prop_map(valid_routes), 1..6).prop_map(|vhosts| {
        let listener = |name: &str, port: u16, protocol: ListenerProtocol| Listener {
            protocol,
            ..Listener::new(name, port)
        };
        let tcp_route = |name: &str, sni: &[&str], cluster: &str| TcpRoute {
            name: name.to_owned(),
            sni: sni.iter().map(|s| (*s).to_owned()).collect(),
            backends: vec![Backend {
                cluster: cluster.to_owned(),
                weight: 1,
            }],
        };
        let tls = |hosts: &[&str]| ListenerTls {
            hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            secret: "cert-a".to_owned(),
        };
        let mut objects = vec![
            Object::Listener(listener("http", 18080, ListenerProtocol::Http)),
            Object::Listener(Listener {
                tls: vec![tls(&["xdsc.test", "*.example.com"]), tls(&[])],
                ..listener("https", 18443, ListenerProtocol::Https)
            }),
            Object::Listener(Listener {
                tcp_routes: vec![
                    tcp_route("t0", &["xdsc.test"], "c0"),
                    tcp_route("t1", &["*.example.com"], "c1"),
                ],
                ..listener("tls", 18444, ListenerProtocol::TlsPassthrough)
            }),
            Object::Listener(Listener {
                tcp_routes: vec![tcp_route("t0", &[], "c2")],
                ..listener("tcp", 18445, ListenerProtocol::Tcp)
            }),
            Object::Secret(Secret {
                name: "cert-a".to_owned(),
                tls_certificate: Some(TlsCertificate {
                    certificate_chain: TEST_CERT.to_owned(),
                    private_key: TEST_KEY.to_owned(),
                }),
                validation_context: None,
                provenance: Vec::new(),
            }),
        ];
        objects.extend(
            CLUSTERS
                .iter()
                .filter(|c| **c != "missing")
                .map(|c| Object::Cluster(Cluster::new(*c))),
        );
        objects.extend(vhosts.into_iter().map(Object::VirtualHost));
        Model::from_objects(objects)
    })
}

/// Upper-cases the ASCII letters of `s` selected by the bits of `mask`.
fn mixed_case(s: &str, mask: u32) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask & (1 << (i % 32)) != 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Requests aimed at `model`: its listeners; hosts from its virtual hosts' domains, wildcards
/// instantiated, in mixed case and sometimes with a port; server names from its certificates
/// and TCP routes (or the host); paths from its route matches and their near misses; methods,
/// headers and query parameters its matches look for; plus noise that matches nothing.
///
/// ```
/// use proptest::prelude::*;
/// use xdsc_core::compile::Compiled;
/// use xdsc_core::model::{Cluster, Listener, Model, Object, Route, VirtualHost};
/// use xdsc_core::oracle::{evaluate, Action};
///
/// // "Every host in my inventory reaches its own service."
/// let inventory = [("shop.example.com", "shop"), ("blog.example.com", "blog")];
/// let mut objects = vec![Object::Listener(Listener::new("http", 8080))];
/// for (host, service) in inventory {
///     let mut vh = VirtualHost::new(service, ["http"], [host]);
///     vh.routes.push(Route::forward_prefix("all", "/", service));
///     objects.push(Object::VirtualHost(vh));
///     objects.push(Object::Cluster(Cluster::new(service)));
/// }
/// let model = Model::from_objects(objects);
/// let snapshot = Compiled::new(&model).snapshot().clone();
/// proptest!(ProptestConfig::with_cases(32), |(mut req in xdsc_core::strategy::requests(&model))| {
///     req.sni = None; // a plain HTTP listener: no TLS
///     let out = evaluate(&snapshot, &req).unwrap();
///     let host = req.host.split(':').next().unwrap().to_ascii_lowercase();
///     if let Some((_, service)) = inventory.iter().find(|(h, _)| *h == host) {
///         let reached = matches!(&out.action, Action::Forward { clusters, .. } if clusters[0].0 == *service);
///         prop_assert!(reached, "{}", out);
///     }
/// });
/// ```
pub fn requests(model: &Model) -> impl Strategy<Value = crate::oracle::Request> + use<> {
    let a = Aims::of(model);
    let noise = (
        (select(a.listeners), select(a.hosts)),
        (select(a.paths), vec(select(a.query), 0..3)),
        select(a.methods),
        vec(select(a.headers), 0..3),
    )
        .prop_map(|((listener, host), (path, query), method, headers)| Draft {
            listener,
            host,
            path,
            method,
            query,
            headers,
        });
    let drafts = if a.targets.is_empty() {
        noise.boxed()
    } else {
        prop_oneof![3 => select(a.targets), 1 => noise].boxed()
    };
    (
        drafts,
        0u32..u32::MAX,
        prop_oneof![Just(None), Just(Some(8080u16)), Just(Some(443))],
        0u8..4,
        select(a.server_names),
    )
        .prop_map(|(d, case, port, sni, server_name)| {
            let host = mixed_case(&d.host, case);
            let sni = match sni {
                0 => None,
                1 => Some(host.clone()),
                2 => Some(server_name),
                _ => Some(String::new()),
            };
            let host = match port {
                Some(p) => format!("{host}:{p}"),
                None => host,
            };
            let mut req = crate::oracle::Request::new(d.listener, host, d.path).method(d.method);
            req.sni = sni;
            for (n, v) in d.query {
                req = req.query(&n, &v);
            }
            for (i, (n, v)) in d.headers.into_iter().enumerate() {
                req = req.header(mixed_case(&n, case.rotate_left(i as u32)), v);
            }
            req
        })
}

/// The model with every route's action replaced by a 200 direct response whose body names the
/// virtual host and route (`"site/api"`), so that a real Envoy's answer identifies the route it
/// chose: the basis of a differential test of the oracle against Envoy.
///
/// ```
/// use xdsc_core::model::{Model, Object, Route, VirtualHost};
/// let mut vh = VirtualHost::new("site", ["http"], ["example.com"]);
/// vh.routes.push(Route::forward_prefix("api", "/api", "api"));
/// let labelled = xdsc_core::strategy::label_routes(&Model::from_objects([Object::VirtualHost(vh)]));
/// let Some(Object::VirtualHost(vh)) = labelled.objects().next().map(|o| o.as_ref()) else { panic!() };
/// assert_eq!(vh.routes[0].direct_response.as_ref().unwrap().body.as_deref(), Some("site/api"));
/// ```
pub fn label_routes(model: &Model) -> Model {
    let changes = model.of_kind(Kind::VirtualHost).filter_map(|o| {
        let Object::VirtualHost(v) = o.as_ref() else {
            return None;
        };
        let mut v = v.clone();
        for r in &mut v.routes {
            r.forward = None;
            r.redirect = None;
            r.direct_response = Some(DirectResponse {
                status: 200,
                body: Some(format!("{}/{}", v.name, r.name)),
            });
        }
        Some(Change::Upsert(Arc::new(Object::VirtualHost(v))))
    });
    model.apply(changes.collect::<Vec<_>>())
}
