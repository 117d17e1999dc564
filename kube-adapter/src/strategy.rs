//! Proptest strategies (feature `proptest`): Kubernetes objects of every supported kind,
//! drawn from a small universe of names so that they refer to each other (Ingresses and
//! routes of every kind to Services that may or may not exist, in their namespace or another
//! that a ReferenceGrant may open, EndpointSlices to Services by label, listeners to Secrets,
//! Gateways to classes and to ports other Gateways use, Namespaces selected by labels), and
//! sequences of batches of upserts and deletes over them.
//!
//! Made for the property "incremental equals full": any sequence of batches applied to a
//! [`crate::translator::Translator`] ends where a translation of the final set starts. The
//! objects are valid and invalid alike (bad hosts, missing ports, unsupported protocols,
//! conflicts), since diagnostics must match too.
//!
//! Not here: realistic sizes (see the benches' generators).

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::objects::{KubeKind, KubeObject, Options};
use crate::translator::ObjectChange;

const NAMESPACES: &[&str] = &["a", "b"];
const SERVICES: &[&str] = &["s0", "s1", "s2", "s3"];
const SECRETS: &[&str] = &["t0", "t1"];
const HOSTS: &[&str] = &["x.com", "*.x.com", "y.x.com", "z.com", "Bad_Host"];
const TIMES: &[&str] = &["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"];

/// The options the strategies are made for: the default controllers, with Ingress status
/// addresses and a publish Service (`a/s0`), so that status depends on a Service too.
///
/// ```
/// let o = xdsc_kube::strategy::options();
/// assert_eq!(o.publish_service.unwrap().to_string(), "Service a/s0");
/// ```
pub fn options() -> Options {
    Options {
        ingress_status_addresses: vec!["10.0.0.1".into(), "lb.example.com".into()],
        publish_service: Some(KubeKind::Service.id(Some("a"), "s0")),
        ..Options::default()
    }
}

fn pick(items: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(items).prop_map(str::to_owned)
}

fn meta(name: String, namespace: Option<String>, created: Option<String>) -> Value {
    let mut m = json!({"name": name});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    if let Some(t) = created {
        m["creationTimestamp"] = json!(t);
    }
    m
}

fn parse(v: Value) -> KubeObject {
    // The values below are built to fit the schemas; a failure is a bug in this file.
    KubeObject::from_value(v).unwrap_or_else(|e| panic!("strategy made a bad manifest: {e}"))
}

fn service() -> impl Strategy<Value = KubeObject> {
    let port = prop_oneof![
        Just(json!({"name": "http", "port": 80})),
        Just(json!({"name": "grpc", "port": 81, "appProtocol": "kubernetes.io/h2c"})),
        Just(json!({"port": 82})),
    ];
    (
        pick(NAMESPACES),
        pick(SERVICES),
        proptest::collection::vec(port, 0..3),
        prop::bool::weighted(0.1),
        prop::option::of(pick(&["10.1.1.1", "10.1.1.2"])),
    )
        .prop_map(|(ns, name, ports, external, lb)| {
            let mut spec = json!({"ports": ports});
            if external {
                spec["type"] = json!("ExternalName");
            }
            let mut v = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": meta(name, Some(ns), None), "spec": spec});
            if let Some(ip) = lb {
                v["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
            }
            parse(v)
        })
}

fn slice() -> impl Strategy<Value = KubeObject> {
    let endpoint = (
        pick(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(pick(&["z1", "z2"])),
    )
        .prop_map(|(ip, ready, terminating, zone)| {
            let mut e = json!({"addresses": [ip], "conditions": {}});
            if let Some(r) = ready {
                e["conditions"]["ready"] = json!(r);
            }
            if let Some(t) = terminating {
                e["conditions"]["terminating"] = json!(t);
                e["conditions"]["serving"] = json!(true);
            }
            if let Some(z) = zone {
                e["zone"] = json!(z);
            }
            e
        });
    let port = prop_oneof![
        Just(json!({"name": "http", "port": 8080})),
        Just(json!({"name": "grpc", "port": 9090})),
        Just(json!({"port": 7070})),
    ];
    (
        pick(NAMESPACES),
        pick(&["e0", "e1", "e2"]),
        prop::option::of(pick(SERVICES)),
        prop::bool::weighted(0.1),
        proptest::collection::vec(port, 0..3),
        proptest::collection::vec(endpoint, 0..3),
    )
        .prop_map(|(ns, name, svc, fqdn, ports, endpoints)| {
            let mut m = meta(name, Some(ns), None);
            if let Some(s) = svc {
                m["labels"] = json!({"kubernetes.io/service-name": s});
            }
            parse(
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": m, "addressType": if fqdn { "FQDN" } else { "IPv4" },
                "ports": ports, "endpoints": endpoints}),
            )
        })
}

fn secret() -> impl Strategy<Value = KubeObject> {
    (
        pick(NAMESPACES),
        pick(SECRETS),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.85),
        pick(&["A", "B"]),
    )
        .prop_map(|(ns, name, tls, complete, version)| {
            let mut data = json!({"tls.crt": format!("CERT {version}")});
            if complete {
                data["tls.key"] = json!(format!("KEY {version}"));
            }
            parse(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": meta(name, Some(ns), None),
                "type": if tls { "kubernetes.io/tls" } else { "Opaque" },
                "stringData": data}))
        })
}

fn ingress_class() -> impl Strategy<Value = KubeObject> {
    (pick(&["xdsc", "other"]), any::<bool>(), any::<bool>()).prop_map(|(name, ours, default)| {
        let controller = if ours {
            "xdsc.dev/ingress-controller"
        } else {
            "example.com/other"
        };
        let mut m = meta(name, None, None);
        if default {
            m["annotations"] = json!({"ingressclass.kubernetes.io/is-default-class": "true"});
        }
        parse(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": m, "spec": {"controller": controller}}),
        )
    })
}

fn backend() -> impl Strategy<Value = Value> {
    (
        pick(SERVICES),
        prop_oneof![
            Just(json!({"number": 80})),
            Just(json!({"number": 81})),
            Just(json!({"number": 99})),
            Just(json!({"name": "http"})),
        ],
    )
        .prop_map(|(s, port)| json!({"service": {"name": s, "port": port}}))
}

fn ingress() -> impl Strategy<Value = KubeObject> {
    let path = (
        pick(&["/", "/a", "/a/", "/a/b", "x"]),
        pick(&["Prefix", "Exact", "ImplementationSpecific", "Bogus"]),
        backend(),
    )
        .prop_map(|(p, t, b)| json!({"path": p, "pathType": t, "backend": b}));
    let rule = (
        prop::option::of(pick(HOSTS)),
        proptest::collection::vec(path, 0..3),
    )
        .prop_map(|(host, paths)| {
            let mut r = json!({"http": {"paths": paths}});
            if let Some(h) = host {
                r["host"] = json!(h);
            }
            r
        });
    let tls = (proptest::collection::vec(pick(HOSTS), 0..2), pick(SECRETS))
        .prop_map(|(hosts, s)| json!({"hosts": hosts, "secretName": s}));
    (
        (
            pick(NAMESPACES),
            pick(&["i0", "i1", "i2"]),
            prop::option::of(pick(TIMES)),
        ),
        prop::option::of(pick(&["xdsc", "other", "missing"])),
        prop::bool::weighted(0.1),
        proptest::collection::vec(rule, 0..3),
        proptest::collection::vec(tls, 0..2),
        prop::option::of(backend()),
    )
        .prop_map(
            |((ns, name, created), class, foreign, rules, tls, default)| {
                let mut m = meta(name, Some(ns), created);
                if foreign {
                    m["annotations"] = json!({"nginx.ingress.kubernetes.io/rewrite-target": "/"});
                }
                let mut spec = json!({"rules": rules, "tls": tls});
                if let Some(c) = class {
                    spec["ingressClassName"] = json!(c);
                }
                if let Some(b) = default {
                    spec["defaultBackend"] = b;
                }
                parse(
                    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": m, "spec": spec}),
                )
            },
        )
}

fn namespace() -> impl Strategy<Value = KubeObject> {
    (pick(NAMESPACES), prop::option::of(pick(&["x", "y"]))).prop_map(|(name, team)| {
        let mut m = meta(name, None, None);
        if let Some(t) = team {
            m["labels"] = json!({"team": t});
        }
        parse(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": m}))
    })
}

fn gateway_class() -> impl Strategy<Value = KubeObject> {
    (pick(&["gc", "gc2"]), any::<bool>()).prop_map(|(name, ours)| {
        let controller = if ours {
            "xdsc.dev/gateway-controller"
        } else {
            "example.com/other"
        };
        parse(
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": meta(name, None, None), "spec": {"controllerName": controller}}),
        )
    })
}

fn gateway() -> impl Strategy<Value = KubeObject> {
    let kinds = proptest::collection::vec(
        pick(&["HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "FooRoute"]),
        0..2,
    );
    let listener = (
        (
            pick(&["l0", "l1", "l2"]),
            // 80 and 10080 are one Envoy port (the privileged-port offset).
            proptest::sample::select(&[80, 8080, 443, 10080][..]),
            pick(&["HTTP", "HTTPS", "TCP", "TLS", "UDP"]),
            prop::option::of(pick(HOSTS)),
        ),
        (
            pick(SECRETS),
            prop::option::of(pick(NAMESPACES)),
            pick(&["Same", "All", "Selector", "Bogus"]),
            kinds,
            prop::bool::weighted(0.8),
        ),
    )
        .prop_map(
            |((name, port, protocol, host), (secret, secret_ns, from, kinds, passthrough))| {
                let mut l = json!({"name": name, "port": port, "protocol": protocol,
                "allowedRoutes": {"namespaces": {"from": from}}});
                if from == "Selector" {
                    l["allowedRoutes"]["namespaces"]["selector"] =
                        json!({"matchLabels": {"team": "x"}});
                }
                if !kinds.is_empty() {
                    let kinds: Vec<Value> = kinds.iter().map(|k| json!({"kind": k})).collect();
                    l["allowedRoutes"]["kinds"] = json!(kinds);
                }
                if let Some(h) = host {
                    l["hostname"] = json!(h);
                }
                if protocol == "HTTPS" {
                    let mut cert = json!({"name": secret});
                    if let Some(ns) = secret_ns {
                        cert["namespace"] = json!(ns);
                    }
                    l["tls"] = json!({"certificateRefs": [cert]});
                }
                if protocol == "TLS" {
                    let mode = if passthrough {
                        "Passthrough"
                    } else {
                        "Terminate"
                    };
                    l["tls"] = json!({"mode": mode});
                }
                l
            },
        );
    (
        pick(NAMESPACES),
        pick(&["g0", "g1"]),
        pick(&["gc", "gc2", "missing"]),
        proptest::collection::vec(listener, 0..3),
        prop::option::of(pick(TIMES)),
    )
        .prop_map(|(ns, name, class, listeners, created)| {
            parse(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": meta(name, Some(ns), created),
                "spec": {"gatewayClassName": class, "listeners": listeners}}),
            )
        })
}

fn parent_ref() -> impl Strategy<Value = Value> {
    (
        pick(&["g0", "g1"]),
        prop::option::of(pick(NAMESPACES)),
        prop::option::of(pick(&["l0", "l1"])),
        prop::option::of(proptest::sample::select(&[80, 443][..])),
    )
        .prop_map(|(g, ns, section, port)| {
            let mut p = json!({"name": g});
            if let Some(n) = ns {
                p["namespace"] = json!(n);
            }
            if let Some(s) = section {
                p["sectionName"] = json!(s);
            }
            if let Some(port) = port {
                p["port"] = json!(port);
            }
            p
        })
}

/// A backend reference: a Service port, sometimes in another namespace (which needs a
/// ReferenceGrant) or of a kind that is not a Service.
fn backend_ref() -> impl Strategy<Value = Value> {
    (
        pick(SERVICES),
        proptest::sample::select(&[80, 81, 99][..]),
        prop::option::of(0..3i32),
        prop::option::of(pick(&["a", "b", "elsewhere"])),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(s, port, weight, ns, bucket)| {
            let mut b = json!({"name": s, "port": port});
            if let Some(w) = weight {
                b["weight"] = json!(w);
            }
            if let Some(n) = ns {
                b["namespace"] = json!(n);
            }
            if bucket {
                b["group"] = json!("example.com");
                b["kind"] = json!("Bucket");
            }
            b
        })
}

fn route_meta() -> impl Strategy<Value = (String, String, Option<String>)> {
    (
        pick(NAMESPACES),
        pick(&["r0", "r1", "r2"]),
        prop::option::of(pick(TIMES)),
    )
}

fn http_route() -> impl Strategy<Value = KubeObject> {
    let matches = (
        pick(&["PathPrefix", "Exact", "RegularExpression"]),
        pick(&["/", "/a", "/a/b"]),
        prop::option::of(pick(&["GET", "POST"])),
    )
        .prop_map(|(t, v, method)| {
            let mut m = json!({"path": {"type": t, "value": v}});
            if let Some(x) = method {
                m["method"] = json!(x);
            }
            m
        });
    let rule = (
        proptest::collection::vec(matches, 0..2),
        proptest::collection::vec(backend_ref(), 0..3),
        prop::option::of(pick(&["https", "/", "/x"])),
    )
        .prop_map(|(matches, backends, redirect)| {
            let mut r = json!({"matches": matches, "backendRefs": backends});
            match redirect.as_deref() {
                Some("https") => {
                    r["filters"] = json!([{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]);
                }
                Some(prefix) => {
                    r["filters"] = json!([{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": prefix}}}]);
                }
                None => {}
            }
            r
        });
    (
        route_meta(),
        proptest::collection::vec(parent_ref(), 0..3),
        proptest::collection::vec(pick(HOSTS), 0..2),
        proptest::collection::vec(rule, 0..3),
    )
        .prop_map(|((ns, name, created), parents, hostnames, rules)| {
            parse(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": meta(name, Some(ns), created),
                "spec": {"parentRefs": parents, "hostnames": hostnames, "rules": rules}}),
            )
        })
}

fn grpc_route() -> impl Strategy<Value = KubeObject> {
    let matches = (
        pick(&["Exact", "RegularExpression"]),
        prop::option::of(pick(&["svc.A", "svc.B"])),
        prop::option::of(pick(&["Get", "Put"])),
        prop::option::of(pick(&["v1", "v2"])),
    )
        .prop_map(|(t, service, method, header)| {
            let mut m = json!({});
            if service.is_some() || method.is_some() {
                m["method"] = json!({"type": t, "service": service, "method": method});
            }
            if let Some(h) = header {
                m["headers"] = json!([{"name": "version", "value": h}]);
            }
            m
        });
    let rule = (
        proptest::collection::vec(matches, 0..2),
        proptest::collection::vec(backend_ref(), 0..3),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(matches, backends, header)| {
            let mut r = json!({"matches": matches, "backendRefs": backends});
            if header {
                r["filters"] = json!([{"type": "RequestHeaderModifier",
                    "requestHeaderModifier": {"set": [{"name": "x-grpc", "value": "1"}]}}]);
            }
            r
        });
    (
        route_meta(),
        proptest::collection::vec(parent_ref(), 0..3),
        proptest::collection::vec(pick(HOSTS), 0..2),
        proptest::collection::vec(rule, 0..2),
    )
        .prop_map(|((ns, name, created), parents, hostnames, rules)| {
            parse(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
                "metadata": meta(name, Some(ns), created),
                "spec": {"parentRefs": parents, "hostnames": hostnames, "rules": rules}}),
            )
        })
}

fn stream_route() -> impl Strategy<Value = KubeObject> {
    (
        route_meta(),
        prop::bool::ANY,
        pick(&["v1", "v1alpha2", "v1alpha3"]),
        proptest::collection::vec(parent_ref(), 0..3),
        proptest::collection::vec(pick(HOSTS), 0..2),
        proptest::collection::vec(backend_ref(), 0..3),
    )
        .prop_map(
            |((ns, name, created), tls, version, parents, hostnames, backends)| {
                let (kind, version) = if tls {
                    ("TLSRoute", version.as_str())
                } else {
                    ("TCPRoute", "v1alpha2")
                };
                let mut spec = json!({"parentRefs": parents, "rules": [{"backendRefs": backends}]});
                if tls {
                    spec["hostnames"] = json!(hostnames);
                }
                parse(
                    json!({"apiVersion": format!("gateway.networking.k8s.io/{version}"), "kind": kind,
                    "metadata": meta(name, Some(ns), created), "spec": spec}),
                )
            },
        )
}

fn reference_grant() -> impl Strategy<Value = KubeObject> {
    let from = (
        pick(&["HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "Gateway"]),
        pick(NAMESPACES),
    )
        .prop_map(|(kind, ns)| json!({"group": "gateway.networking.k8s.io", "kind": kind, "namespace": ns}));
    let to = (
        pick(&["Service", "Service", "Secret"]),
        prop::option::of(pick(&["s0", "s1", "t0"])),
    )
        .prop_map(|(kind, name)| {
            let mut to = json!({"group": "", "kind": kind});
            if let Some(n) = name {
                to["name"] = json!(n);
            }
            to
        });
    (
        pick(NAMESPACES),
        pick(&["rg0", "rg1"]),
        proptest::collection::vec(from, 1..4),
        proptest::collection::vec(to, 1..3),
    )
        .prop_map(|(ns, name, from, to)| {
            parse(
                json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                "metadata": meta(name, Some(ns), None), "spec": {"from": from, "to": to}}),
            )
        })
}

/// Which objects a strategy draws: every supported kind, or the ones one part of the
/// translation reads (so that a test aimed at that part finds its cases sooner).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Every supported kind.
    All,
    /// Ingresses and what they read: IngressClasses, Services, EndpointSlices, Secrets.
    Ingress,
    /// The Gateway API kinds and what they read: Services, EndpointSlices, Secrets,
    /// Namespaces.
    Gateway,
    /// HTTP Gateways that take routes from every namespace, and HTTPRoutes to them that
    /// share a few hostnames: one route of a host changes while the others stay, which the
    /// wide [`Mix::Gateway`] universe seldom draws.
    GatewayHosts,
}

/// An HTTP Gateway of our class on port 80 (the class is drawn as ours), routes from every
/// namespace, with no hostname or a wildcard one.
fn shared_port_gateway() -> impl Strategy<Value = KubeObject> {
    (
        pick(&["g0", "g1"]),
        prop::option::of(pick(&["*.x.com", "a.x.com"])),
    )
        .prop_map(|(name, host)| {
            let mut l = json!({"name": "l0", "port": 80, "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "All"}}});
            if let Some(h) = host {
                l["hostname"] = json!(h);
            }
            parse(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": meta(name, Some("a".into()), None),
                "spec": {"gatewayClassName": "gc", "listeners": [l]}}),
            )
        })
}

/// An HTTPRoute to `g0` or `g1` for some of two hostnames, one rule of a path prefix.
fn shared_host_route() -> impl Strategy<Value = KubeObject> {
    (
        (pick(NAMESPACES), pick(&["r0", "r1", "r2", "r3", "r4"])),
        prop::option::of(pick(TIMES)),
        pick(&["g0", "g1"]),
        proptest::collection::vec(pick(&["a.x.com", "b.x.com"]), 0..3),
        pick(&["/", "/a", "/b"]),
        pick(SERVICES),
    )
        .prop_map(|((ns, name), created, parent, hostnames, path, backend)| {
            parse(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": meta(name, Some(ns), created),
                "spec": {"parentRefs": [{"name": parent, "namespace": "a"}], "hostnames": hostnames,
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                        "backendRefs": [{"name": backend, "namespace": "a", "port": 80}]}]}}),
            )
        })
}

/// Any supported object, from the small universe of names above.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let o = xdsc_kube::strategy::object().new_tree(&mut runner).unwrap().current();
/// assert!(!o.id().name.is_empty());
/// ```
pub fn object() -> impl Strategy<Value = KubeObject> {
    object_of(Mix::All)
}

/// An object of the kinds of a [`Mix`].
pub fn object_of(mix: Mix) -> BoxedStrategy<KubeObject> {
    let (ing, gw) = match mix {
        Mix::All => (true, true),
        Mix::Ingress => (true, false),
        Mix::Gateway => (false, true),
        Mix::GatewayHosts => {
            return proptest::strategy::Union::new_weighted(vec![
                (1, service().boxed()),
                (1, gateway_class().boxed()),
                (2, shared_port_gateway().boxed()),
                (6, shared_host_route().boxed()),
            ])
            .boxed();
        }
    };
    let mut options: Vec<(u32, BoxedStrategy<KubeObject>)> = vec![
        (4, service().boxed()),
        (4, slice().boxed()),
        (3, secret().boxed()),
        (1, namespace().boxed()),
    ];
    if ing {
        options.push((1, ingress_class().boxed()));
        options.push((6, ingress().boxed()));
    }
    if gw {
        options.push((1, gateway_class().boxed()));
        options.push((3, gateway().boxed()));
        options.push((3, http_route().boxed()));
        options.push((2, grpc_route().boxed()));
        options.push((2, stream_route().boxed()));
        options.push((2, reference_grant().boxed()));
    }
    proptest::strategy::Union::new_weighted(options).boxed()
}

/// One change: mostly upserts (with one of a few origins, so provenance changes too), some
/// deletes (of an identity from the same universe).
pub fn change() -> impl Strategy<Value = ObjectChange> {
    change_of(Mix::All)
}

/// A change of an object of a [`Mix`].
pub fn change_of(mix: Mix) -> impl Strategy<Value = ObjectChange> {
    prop_oneof![
        4 => (object_of(mix), prop::option::of(pick(&["f.yaml:1:1", "g.yaml:3:1"])))
            .prop_map(|(o, origin)| ObjectChange::upsert(o, origin)),
        1 => object_of(mix).prop_map(|o| ObjectChange::Delete(o.id())),
    ]
}

/// A sequence of batches: a first, larger one (a first load or list), then smaller ones
/// (edits or watch events).
pub fn batches() -> impl Strategy<Value = Vec<Vec<ObjectChange>>> {
    batches_of(Mix::All)
}

/// [`batches`] of the objects of a [`Mix`].
pub fn batches_of(mix: Mix) -> impl Strategy<Value = Vec<Vec<ObjectChange>>> {
    (
        proptest::collection::vec(change_of(mix), 0..30),
        proptest::collection::vec(proptest::collection::vec(change_of(mix), 1..4), 0..12),
    )
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
}

/// The multi-tenant shape of the Ambassador/Gloo stress test, deterministic: our default
/// IngressClass, and per tenant a Namespace `tenant-NNN`, `services` Services (`svc-SS`,
/// port 80 named `http`) each with an EndpointSlice of 3 ready endpoints, one TLS Secret
/// `tls` and one Ingress `web` for host `tNNN.example.com` with `paths` paths (`/svc-SS`, to
/// the first `paths` Services) and a TLS entry for its host. `tenants(200, 60, 20)` is the
/// 200-tenant shape: 12,000 Services, 200 Secrets, 4,000 Ingress paths.
///
/// ```
/// let objects = xdsc_kube::strategy::tenants(2, 3, 2);
/// assert_eq!(objects.len(), 1 + 2 * (1 + 3 + 3 + 1 + 1));
/// ```
pub fn tenants(tenants: usize, services: usize, paths: usize) -> Vec<KubeObject> {
    let mut out = vec![parse(ingress_class_manifest())];
    for t in 0..tenants {
        out.extend(tenant_manifests(t, services, paths).into_iter().map(parse));
    }
    out
}

/// The IngressClass of [`tenants`]: ours, the default.
pub fn ingress_class_manifest() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "xdsc", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "xdsc.dev/ingress-controller"}})
}

/// The manifests of tenant `t` of [`tenants`]: the Namespace, the Services, their
/// EndpointSlices, the Secret, the Ingress, in that order.
pub fn tenant_manifests(t: usize, services: usize, paths: usize) -> Vec<Value> {
    let ns = tenant_namespace(t);
    let mut out = vec![json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"tenant": format!("t{t:03}")}}})];
    for s in 0..services {
        out.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{s:02}"), "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
    }
    out.extend((0..services).map(|s| tenant_slice_manifest(t, s, 0)));
    out.push(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "tls", "namespace": ns}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": format!("-----BEGIN CERTIFICATE-----\nt{t:03}\n-----END CERTIFICATE-----\n"),
            "tls.key": format!("-----BEGIN PRIVATE KEY-----\nt{t:03}\n-----END PRIVATE KEY-----\n")}}));
    let host = format!("t{t:03}.example.com");
    let paths: Vec<Value> = (0..paths.min(services))
        .map(|s| {
            json!({"path": format!("/svc-{s:02}"), "pathType": "Prefix",
            "backend": {"service": {"name": format!("svc-{s:02}"), "port": {"number": 80}}}})
        })
        .collect();
    out.push(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": ns, "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"tls": [{"hosts": [host], "secretName": "tls"}],
            "rules": [{"host": host, "http": {"paths": paths}}]}}),
    );
    out
}

/// [`tenants`] as a folder of files, as `xdsc-file` reads it: `class.json` (the
/// IngressClass) and per tenant `tNNN/tenant.json` (Namespace, Secret, Ingress),
/// `tNNN/services.json` (its Services) and `tNNN/endpoints.json` (its EndpointSlices), each
/// file a list of manifests (its path and its JSON text).
///
/// ```
/// let files = xdsc_kube::strategy::tenant_files(2, 3, 2);
/// assert_eq!(files.len(), 1 + 2 * 3);
/// assert_eq!(files[3].0, "t000/endpoints.json");
/// ```
pub fn tenant_files(tenants: usize, services: usize, paths: usize) -> Vec<(String, String)> {
    let json = |v: &[&Value]| serde_json::to_string_pretty(v).unwrap_or_default();
    let mut out = vec![("class.json".to_owned(), json(&[&ingress_class_manifest()]))];
    for t in 0..tenants {
        let all = tenant_manifests(t, services, paths);
        let of = |kinds: &[&str]| -> String {
            let docs: Vec<&Value> = (all.iter())
                .filter(|v| kinds.contains(&v["kind"].as_str().unwrap_or("")))
                .collect();
            json(&docs)
        };
        out.push((
            format!("t{t:03}/tenant.json"),
            of(&["Namespace", "Secret", "Ingress"]),
        ));
        out.push((format!("t{t:03}/services.json"), of(&["Service"])));
        out.push((format!("t{t:03}/endpoints.json"), of(&["EndpointSlice"])));
    }
    out
}

/// The namespace of tenant `t` in [`tenants`].
pub fn tenant_namespace(t: usize) -> String {
    format!("tenant-{t:03}")
}

/// The EndpointSlice of tenant `t`'s Service `s` in [`tenants`], at `version` (each
/// version moves one of its three endpoints to another address).
pub fn tenant_slice(t: usize, s: usize, version: usize) -> KubeObject {
    parse(tenant_slice_manifest(t, s, version))
}

/// The manifest of [`tenant_slice`].
pub fn tenant_slice_manifest(t: usize, s: usize, version: usize) -> Value {
    let n = t * 1000 + s * 10;
    let ip = |e: usize| {
        let last = if e == 0 { 100 + version % 100 } else { e };
        format!("10.{}.{}.{last}", n / 256 % 256, n % 256)
    };
    let endpoints: Vec<Value> = (0..3)
        .map(|e| json!({"addresses": [ip(e)], "conditions": {"ready": true}, "zone": format!("z{}", e % 2)}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{s:02}-abcde"), "namespace": tenant_namespace(t),
            "labels": {"kubernetes.io/service-name": format!("svc-{s:02}")}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints})
}
