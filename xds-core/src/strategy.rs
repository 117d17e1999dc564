//! Proptest strategies for models and change sequences (feature `proptest`).
//!
//! They generate models that exercise the compiler where it is subtle: names drawn from small
//! pools so that references sometimes resolve and sometimes dangle, domains and ports that
//! collide, invalid regular expressions, addresses and durations mixed with valid ones. Users
//! can build on them to property-test their own route generation.
//!
//! ```
//! use proptest::prelude::*;
//! use xdsc_core::compile::Compiled;
//!
//! proptest!(ProptestConfig::with_cases(8), |(model in xdsc_core::strategy::model())| {
//!     let (a, b) = (Compiled::new(&model), Compiled::new(&model));
//!     prop_assert_eq!(a.snapshot(), b.snapshot());
//! });
//! ```
//!
//! [`requests`] generates requests aimed at a model, for properties of the route oracle
//! ([`crate::oracle`]); [`label_routes`] prepares a model for comparing the oracle with Envoy.
//!
//! The secrets generated hold a real self-signed test certificate and key, made for these
//! tests only, so that Envoy accepts the rendered configuration.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use crate::model::*;

mod requests;
pub use requests::{label_routes, requests, routable_model};

/// A self-signed test certificate for `xdsc.test` and `*.example.com` (generated for these
/// tests; never use it for anything else).
pub const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBozCCAUqgAwIBAgIUaYW5a2E1K1oG0ZUj3HrM0fK6CsgwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJeGRzYy50ZXN0MCAXDTI2MTEyMjA2NTI1MloYDzIxMjYxMDI5
MDY1MjUyWjAUMRIwEAYDVQQDDAl4ZHNjLnRlc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATZJuIshFP7qka1kJS2cvyDhN0dx2+tAiOTIoUTzfRACbzHcN9+rCG5
GQ/q2jZ0Eux8xHoex4gWG/m0g4copOa0o3gwdjAdBgNVHQ4EFgQUeWS7UzD1aMYI
0PGbZdUxmbEO8twwHwYDVR0jBBgwFoAUeWS7UzD1aMYI0PGbZdUxmbEO8twwDwYD
VR0TAQH/BAUwAwEB/zAjBgNVHREEHDAaggl4ZHNjLnRlc3SCDSouZXhhbXBsZS5j
b20wCgYIKoZIzj0EAwIDRwAwRAIgBOHYuas85jCU9zwKs3nzcyBPu9Ydzmfgy+ul
TXV00EsCIHWQiDjpnx/q75WJcqzRNySZO2umXRp8Aj6LJTnRDAFG
-----END CERTIFICATE-----\n";

/// The private key of [`TEST_CERT`].
pub const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg44shNddMEfk0ua5G
MJWPC2kTegMXYAu98mxUKt7e1gqhRANCAATZJuIshFP7qka1kJS2cvyDhN0dx2+t
AiOTIoUTzfRACbzHcN9+rCG5GQ/q2jZ0Eux8xHoex4gWG/m0g4copOa0
-----END PRIVATE KEY-----\n";

const LISTENERS: &[&str] = &["http", "https", "tls", "tcp"];
/// Route configurations: the listeners' own, and one that listeners may share.
const ROUTE_CONFIGS: &[&str] = &["http", "https", "tls", "tcp", "shared"];
const CLUSTERS: &[&str] = &["c0", "c1", "c2", "c3", "c4", "missing"];
const VHOSTS: &[&str] = &["v0", "v1", "v2", "v3", "v4"];
const SECRETS: &[&str] = &["cert-a", "cert-b", "ca", "missing-secret"];
const DOMAINS: &[&str] = &[
    "a.example.com",
    "*.example.com",
    "b.test",
    "*",
    "example.*",
    "A.Example.com",
    "bad domain",
    "*.b.test",
];
const PATHS: &[&str] = &["/", "/a", "/a/b", "/api/", "/x", "/a/b/c", "nope"];
const REGEXES: &[&str] = &[
    "/a/.*",
    "/[0-9]+",
    "/(x|y)/z",
    "(",
    "[a-z]{1,200}",
    "/a\\.b",
];

fn names(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(pool).prop_map(str::to_owned)
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => (1u64..30_000).prop_map(Duration::from_millis),
        1 => Just(Duration::from_millis(0)),
    ]
}

fn string_match() -> impl Strategy<Value = StringMatch> {
    prop_oneof![
        select(&["v1", "v2", "beta"][..]).prop_map(|s| StringMatch::Exact(s.to_owned())),
        select(&["v", "b"][..]).prop_map(|s| StringMatch::Prefix(s.to_owned())),
        select(REGEXES).prop_map(|s| StringMatch::Regex(s.to_owned())),
        Just(StringMatch::Present),
    ]
}

/// A path match.
pub fn path_match() -> impl Strategy<Value = PathMatch> {
    prop_oneof![
        3 => names(PATHS).prop_map(PathMatch::Prefix),
        3 => names(PATHS).prop_map(PathMatch::PathPrefix),
        2 => names(PATHS).prop_map(PathMatch::Exact),
        1 => names(REGEXES).prop_map(PathMatch::Regex),
    ]
}

/// A route match.
pub fn route_match() -> impl Strategy<Value = RouteMatch> {
    (
        path_match(),
        vec(
            (
                select(&["x-env", "X-Tenant", "bad header"][..]),
                string_match(),
                any::<bool>(),
            ),
            0..3,
        ),
        vec((select(&["q", "debug"][..]), string_match()), 0..2),
        vec(select(&["GET", "POST", "PUT", "get"][..]), 0..3),
    )
        .prop_map(|(path, headers, query, methods)| RouteMatch {
            path,
            headers: headers
                .into_iter()
                .map(|(n, value, invert)| HeaderMatch {
                    name: n.to_owned(),
                    value,
                    invert,
                })
                .collect(),
            query: query
                .into_iter()
                .map(|(n, value)| QueryMatch {
                    name: n.to_owned(),
                    value,
                })
                .collect(),
            methods: methods.into_iter().map(str::to_owned).collect(),
        })
}

fn backends() -> impl Strategy<Value = Vec<Backend>> {
    vec(
        (names(CLUSTERS), prop_oneof![8 => 1u32..10, 1 => Just(0u32)]),
        1..4,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(cluster, weight)| Backend { cluster, weight })
            .collect()
    })
}

fn forward() -> impl Strategy<Value = Forward> {
    (
        backends(),
        option::of(duration()),
        option::of((
            vec(
                select(&["5xx", "reset", "connect-failure", "bogus"][..]),
                1..3,
            ),
            0u32..4,
            option::of(duration()),
        )),
        (
            option::of(select(&["/", "/v2", "/new/"][..])),
            option::of(select(&["rewritten.example.com", "bad host!"][..])),
        ),
        vec((names(CLUSTERS), 0u32..120), 0..2),
        vec(
            prop_oneof![
                Just(HashPolicy::SourceIp),
                Just(HashPolicy::Header("x-user".into())),
                Just(HashPolicy::Cookie("sid".into()))
            ],
            0..2,
        ),
    )
        .prop_map(
            |(backends, timeout, retry, (prefix, host), mirror, hash_policy)| Forward {
                backends,
                // Not drawn, so that the generated models stay what they were; the error
                // share has its own tests (oracle, compile, and the Gateway API translation).
                error_weight: 0,
                timeout,
                retry: retry.map(|(on, attempts, per_try_timeout)| RetryPolicy {
                    on: on.into_iter().map(str::to_owned).collect(),
                    attempts,
                    per_try_timeout,
                }),
                rewrite: Rewrite {
                    prefix: prefix.map(str::to_owned),
                    regex: None,
                    host: host.map(str::to_owned),
                },
                mirror: mirror
                    .into_iter()
                    .map(|(cluster, percent)| Mirror { cluster, percent })
                    .collect(),
                hash_policy,
            },
        )
}

fn header_modifier() -> impl Strategy<Value = HeaderModifier> {
    (
        vec(
            (
                select(&["x-added", "x-other", "host"][..]),
                select(&["1", "two"][..]),
                any::<bool>(),
            ),
            0..2,
        ),
        vec(
            select(&["x-remove", "x-other"][..]).prop_map(str::to_owned),
            0..2,
        ),
    )
        .prop_map(|(add, remove)| HeaderModifier {
            add: add
                .into_iter()
                .map(|(n, v, append)| HeaderValue {
                    name: n.to_owned(),
                    value: v.to_owned(),
                    append,
                })
                .collect(),
            remove,
        })
}

/// A Lua HTTP filter with two named source codes: a protobuf map, whose order must never show
/// in the encoding.
fn lua() -> TypedConfig {
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
    use envoy_types::pb::envoy::extensions::filters::http::lua::v3::Lua;
    let code = |s: &str| DataSource {
        specifier: Some(Specifier::InlineString(s.to_owned())),
        ..Default::default()
    };
    TypedConfig::from_message(&Lua {
        default_source_code: Some(code("function envoy_on_request(h) end")),
        source_codes: [
            ("a".to_owned(), code("function envoy_on_request(h) end")),
            ("b".to_owned(), code("function envoy_on_response(h) end")),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    })
}

fn json(v: serde_json::Value) -> TypedConfig {
    TypedConfig::Json(v)
}

/// An HTTP filter: mostly valid (given as a prost message or as Envoy JSON), sometimes of an
/// unknown type or not decoding.
pub fn http_filter() -> impl Strategy<Value = NamedExtension> {
    prop_oneof![
        3 => Just(NamedExtension::new("envoy.filters.http.lua", lua())),
        2 => Just(NamedExtension::new("envoy.filters.http.cors", json(serde_json::json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
        })))),
        2 => Just(NamedExtension::new("envoy.filters.http.buffer", json(serde_json::json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": 65536
        })))),
        1 => Just(NamedExtension::new("x.unknown", json(serde_json::json!({
            "@type": "type.googleapis.com/no.such.Filter"
        })))),
        1 => Just(NamedExtension::new("envoy.filters.http.lua", TypedConfig::Proto {
            type_url: "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua".to_owned(),
            value: bytes::Bytes::from_static(&[0x0a, 0x05, 0x01]),
        })),
    ]
}

/// Per-filter configurations of a virtual host or route: none, mostly; sometimes one with a
/// field its type does not have.
pub fn per_filter_configs() -> impl Strategy<Value = TypedConfigs> {
    prop_oneof![
        6 => Just(TypedConfigs::new()),
        2 => Just([
            ("envoy.filters.http.lua".to_owned(), json(serde_json::json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute",
                "disabled": true
            }))),
            ("envoy.filters.http.cors".to_owned(), json(serde_json::json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                "allow_methods": "GET"
            }))),
        ].into_iter().collect()),
        1 => Just([(
            "envoy.filters.http.cors".to_owned(),
            json(serde_json::json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                "no_such_field": 1
            })),
        )].into_iter().collect()),
    ]
}

/// A route with a name from `r0`..`r5` and one action (sometimes none or two: invalid).
pub fn route() -> impl Strategy<Value = Route> {
    (
        select(&["r0", "r1", "r2", "r3", "r4", "r5"][..]),
        route_match(),
        prop_oneof![
            6 => forward().prop_map(|f| (Some(f), None, None)),
            2 => (option::of(select(&["http", "https", "ftp"][..])), option::of(select(&["other.example.com"][..])), option::of(prop_oneof![Just(0u16), 1u16..9000]), option::of(select(&["/moved", "rel"][..])), option::of(select(&[301u16, 302, 308, 200][..])))
                .prop_map(|(scheme, host, port, path, code)| (None, Some(Redirect { scheme: scheme.map(str::to_owned), host: host.map(str::to_owned), port, path: path.map(str::to_owned), prefix: None, code }), None)),
            2 => (select(&[200u16, 404, 503, 700][..]), option::of(select(&["hello", "route r"][..])))
                .prop_map(|(status, body)| (None, None, Some(DirectResponse { status, body: body.map(str::to_owned) }))),
            1 => Just((None, None, None)),
        ],
        header_modifier(),
        header_modifier(),
        per_filter_configs(),
    )
        .prop_map(|(name, matches, (forward, redirect, direct_response), request_headers, response_headers, typed_per_filter_config)| Route {
            typed_per_filter_config,
            name: name.to_owned(),
            matches,
            forward,
            redirect,
            direct_response,
            request_headers,
            response_headers,
        })
}

/// A virtual host on one or two listeners.
pub fn virtual_host() -> impl Strategy<Value = VirtualHost> {
    (
        names(VHOSTS),
        vec(names(ROUTE_CONFIGS), 1..3),
        vec(names(DOMAINS), 1..3),
        vec(route(), 0..5),
        select(&[RouteOrder::Precedence, RouteOrder::AsWritten][..]),
        per_filter_configs(),
    )
        .prop_map(
            |(name, listeners, domains, routes, route_order, typed_per_filter_config)| {
                VirtualHost {
                    name,
                    listeners,
                    domains,
                    routes,
                    route_order,
                    typed_per_filter_config,
                    provenance: Vec::new(),
                }
            },
        )
}

/// A listener; its port collides with another listener's now and then, and it names another
/// route configuration (perhaps one it shares) now and then.
pub fn listener() -> impl Strategy<Value = Listener> {
    let names_rest = (
        option::of(names(ROUTE_CONFIGS)),
        option::of(select(&["ingress", "bad prefix!"][..]).prop_map(str::to_owned)),
        vec(http_filter(), 0..3),
        prop_oneof![
            4 => Just(Vec::new()),
            1 => Just(vec![NamedExtension::new("envoy.filters.listener.original_dst", json(serde_json::json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
            })))]),
        ],
    );
    let base = (
        names(LISTENERS),
        select(&[18080u16, 18443, 18444, 18445, 18446][..]),
        select(
            &[
                ListenerProtocol::Http,
                ListenerProtocol::Https,
                ListenerProtocol::TlsPassthrough,
                ListenerProtocol::Tcp,
            ][..],
        ),
        vec(
            (
                vec(
                    select(&["xdsc.test", "*.example.com", "bad name!"][..])
                        .prop_map(str::to_owned),
                    0..2,
                ),
                names(SECRETS),
            ),
            0..3,
        ),
        vec(
            (
                select(&["t0", "t1", "t2"][..]),
                vec(
                    select(&["xdsc.test", "*.example.com"][..]).prop_map(str::to_owned),
                    0..2,
                ),
                backends(),
            ),
            0..3,
        ),
        option::of(duration()),
        option::of(prop_oneof![Just(0u64), 1u64..10_000]),
        option::of(select(&["/dev/stdout", ""][..])),
        select(&["0.0.0.0", "127.0.0.1", "::", "not-an-ip"][..]),
    );
    (base, names_rest).prop_map(
        |(
            (name, port, protocol, tls, tcp, idle_timeout, max_connections, log, address),
            (route_config, stat_prefix, http_filters, listener_filters),
        )| {
            Listener {
                name,
                address: address.to_owned(),
                port,
                protocol,
                tls: tls
                    .into_iter()
                    .map(|(hosts, secret)| ListenerTls { hosts, secret })
                    .collect(),
                tcp_routes: tcp
                    .into_iter()
                    .map(|(name, sni, backends)| TcpRoute {
                        name: name.to_owned(),
                        sni,
                        backends,
                    })
                    .collect(),
                idle_timeout,
                max_connections,
                access_log: log
                    .map(|p| AccessLog {
                        path: p.to_owned(),
                        format: None,
                    })
                    .into_iter()
                    .collect(),
                stat_prefix,
                route_config,
                http_filters,
                listener_filters,
                provenance: Vec::new(),
            }
        },
    )
}

/// A cluster.
pub fn cluster() -> impl Strategy<Value = Cluster> {
    (
        names(CLUSTERS),
        select(
            &[
                LbPolicy::RoundRobin,
                LbPolicy::LeastRequest,
                LbPolicy::RingHash,
                LbPolicy::Maglev,
                LbPolicy::Random,
            ][..],
        ),
        option::of(duration()),
        select(&[UpstreamProtocol::Http1, UpstreamProtocol::Http2][..]),
        option::of((
            option::of(select(&["backend.internal"][..])),
            option::of(names(SECRETS)),
        )),
        option::of((
            option::of(select(&["/healthz", "nope"][..])),
            option::of(duration()),
        )),
        option::of((option::of(1u32..10), option::of(0u32..120))),
        option::of((option::of(1u32..1000), option::of(1u32..1000))),
    )
        .prop_map(
            |(name, lb, connect_timeout, protocol, tls, hc, od, cb)| Cluster {
                name,
                lb,
                connect_timeout,
                protocol,
                tls: tls.map(|(sni, ca)| UpstreamTls {
                    sni: sni.map(str::to_owned),
                    ca_secret: ca,
                }),
                health_check: hc.map(|(path, interval)| HealthCheck {
                    http_path: path.map(str::to_owned),
                    host: None,
                    interval,
                    timeout: None,
                    healthy_threshold: None,
                    unhealthy_threshold: None,
                }),
                outlier_detection: od.map(|(c, p)| OutlierDetection {
                    consecutive_5xx: c,
                    max_ejection_percent: p,
                    ..Default::default()
                }),
                circuit_breakers: cb.map(|(c, r)| CircuitBreakers {
                    max_connections: c,
                    max_requests: r,
                    ..Default::default()
                }),
                // Explicit HTTP/1 options: an error beside `protocol: http2`, which sets them.
                typed_extension_protocol_options: if lb == LbPolicy::Maglev {
                    [(
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
                        json(serde_json::json!({
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http_protocol_options": {}}
                        })),
                    )]
                    .into_iter()
                    .collect()
                } else {
                    TypedConfigs::new()
                },
                provenance: Vec::new(),
            },
        )
}

/// The endpoints of a cluster, over localities and priorities, with mixed health.
pub fn endpoints() -> impl Strategy<Value = Endpoints> {
    let endpoint = (
        select(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "::1", "not-an-ip"][..]),
        select(&[80u16, 8080, 0][..]),
        prop_oneof![6 => 1u32..5, 1 => Just(0u32)],
        select(&[Health::Healthy, Health::Draining, Health::Unhealthy][..]),
    )
        .prop_map(|(a, port, weight, health)| Endpoint {
            address: a.to_owned(),
            port,
            weight,
            health,
        });
    let locality = (
        select(&["", "eu"][..]),
        select(&["", "a", "b"][..]),
        select(&[0u32, 1, 3][..]),
        vec(endpoint, 0..4),
    )
        .prop_map(|(region, zone, priority, endpoints)| Locality {
            region: region.to_owned(),
            zone: zone.to_owned(),
            sub_zone: String::new(),
            priority,
            endpoints,
        });
    (names(CLUSTERS), vec(locality, 0..3)).prop_map(|(name, localities)| Endpoints {
        name,
        localities,
        provenance: Vec::new(),
    })
}

/// A secret: a certificate, a validation context, or (rarely) something invalid.
pub fn secret() -> impl Strategy<Value = Secret> {
    (names(SECRETS), 0u8..5).prop_map(|(name, shape)| {
        let cert = TlsCertificate {
            certificate_chain: TEST_CERT.to_owned(),
            private_key: TEST_KEY.to_owned(),
        };
        let ca = ValidationContext {
            trusted_ca: TEST_CERT.to_owned(),
        };
        let (tls_certificate, validation_context) = match (name.as_str(), shape) {
            (_, 0) => (None, None),
            (_, 1) => (
                Some(TlsCertificate {
                    certificate_chain: "not pem".into(),
                    private_key: TEST_KEY.to_owned(),
                }),
                None,
            ),
            ("ca", _) => (None, Some(ca)),
            _ => (Some(cert), None),
        };
        Secret {
            name,
            tls_certificate,
            validation_context,
            provenance: Vec::new(),
        }
    })
}

/// Any model object.
pub fn object() -> impl Strategy<Value = Object> {
    prop_oneof![
        1 => listener().prop_map(Object::Listener),
        2 => virtual_host().prop_map(Object::VirtualHost),
        2 => cluster().prop_map(Object::Cluster),
        1 => endpoints().prop_map(Object::Endpoints),
        1 => secret().prop_map(Object::Secret),
    ]
}

/// A list of objects (names may repeat: later ones replace earlier ones in a model).
pub fn objects() -> impl Strategy<Value = Vec<Object>> {
    vec(object(), 0..24)
}

// ---------------------------------------------------------------------------------------------
// Raw Envoy resources

/// Raw Envoy JSON decoded through the descriptor pool into the prost message, so that a raw
/// object is sometimes given as a prost message (its maps in `HashMap` order) and sometimes as
/// Envoy JSON.
fn raw_object_of<M: RawMessage>(json: serde_json::Value, as_message: bool) -> Raw<M> {
    if as_message {
        let desc = crate::descriptors::pool()
            .get_message_by_name(&M::full_name())
            .expect("resource types are in the pool");
        let dynamic = prost_reflect::DynamicMessage::deserialize(desc, json)
            .expect("generated Envoy JSON fits the message");
        let m = M::decode(prost::Message::encode_to_vec(&dynamic).as_slice())
            .expect("re-encoded message decodes");
        Raw::from_message(&m)
    } else {
        Raw::from_json(json).expect("generated Envoy JSON is named")
    }
}

const RAW_CLUSTERS: &[&str] = &["c0", "c1", "raw-a", "raw-b"];
const RAW_SERVICES: &[&str] = &["", "raw-svc", "c0"];
const RAW_ROUTE_CONFIGS: &[&str] = &["http", "shared", "raw-rc"];

fn ads_json() -> serde_json::Value {
    serde_json::json!({"ads": {}, "resource_api_version": "V3"})
}

/// A raw Envoy `Cluster`: EDS over ADS (sometimes with a service name of its own) or static,
/// with metadata in two maps (the canonical-encoding trap) and sometimes upstream TLS
/// validated with an SDS secret.
pub fn raw_cluster()
-> impl Strategy<Value = Raw<envoy_types::pb::envoy::config::cluster::v3::Cluster>> {
    (names(RAW_CLUSTERS), any::<bool>(), names(RAW_SERVICES), option::of(names(SECRETS)), any::<bool>())
        .prop_map(|(name, eds, service, ca, as_message)| {
            let mut c = serde_json::json!({
                "name": name, "connect_timeout": "1s",
                "metadata": {"filter_metadata": {
                    "b.filter": {"z": 1, "y": "two"},
                    "a.filter": {"k": true, "j": [1, 2]}
                }}
            });
            if eds {
                c["type"] = "EDS".into();
                c["eds_cluster_config"] = serde_json::json!({"eds_config": ads_json(), "service_name": service});
            } else {
                c["type"] = "STATIC".into();
                c["load_assignment"] = serde_json::json!({"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 18081}}}}
                ]}]});
            }
            if let Some(ca) = ca {
                c["transport_socket"] = serde_json::json!({"name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "common_tls_context": {"validation_context_sds_secret_config": {"name": ca, "sds_config": ads_json()}}
                }});
            }
            raw_object_of(c, as_message)
        })
}

/// A raw Envoy `ClusterLoadAssignment` for a compiled or raw cluster's name or a service name.
pub fn raw_load_assignment()
-> impl Strategy<Value = Raw<envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment>> {
    (names(&["c0", "c2", "raw-a", "raw-svc"]), vec(1u16..4, 1..3), any::<bool>()).prop_map(
        |(name, hosts, as_message)| {
            let lb: Vec<_> = hosts
                .iter()
                .map(|h| serde_json::json!({"endpoint": {"address": {"socket_address": {"address": format!("127.0.0.{h}"), "port_value": 18081}}}}))
                .collect();
            raw_object_of(serde_json::json!({"cluster_name": name, "endpoints": [{"lb_endpoints": lb}]}), as_message)
        },
    )
}

/// A raw Envoy `Listener` on the compiled listeners' ports: an HTTP connection manager
/// fetching a route configuration by RDS, or a TCP proxy; sometimes TLS with an SDS
/// certificate.
pub fn raw_listener()
-> impl Strategy<Value = Raw<envoy_types::pb::envoy::config::listener::v3::Listener>> {
    (
        names(&["http", "tcp", "raw-l", "raw-m"]),
        select(&[18080u16, 18443, 18500, 18501][..]),
        any::<bool>(),
        names(RAW_ROUTE_CONFIGS),
        names(CLUSTERS),
        option::of(names(SECRETS)),
        any::<bool>(),
    )
        .prop_map(|(name, port, http, rc, cluster, cert, as_message)| {
            let filter = if http {
                serde_json::json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    "rds": {"route_config_name": rc, "config_source": ads_json()},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
                }})
            } else {
                serde_json::json!({"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": name, "cluster": cluster
                }})
            };
            let mut chain = serde_json::json!({"filters": [filter]});
            if let Some(cert) = cert {
                chain["transport_socket"] = serde_json::json!({"name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": cert, "sds_config": ads_json()}]}
                }});
            }
            raw_object_of(serde_json::json!({
                "name": name,
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
                "filter_chains": [chain]
            }), as_message)
        })
}

/// A raw Envoy `RouteConfiguration` forwarding to compiled or raw clusters.
pub fn raw_route_configuration()
-> impl Strategy<Value = Raw<envoy_types::pb::envoy::config::route::v3::RouteConfiguration>> {
    (names(RAW_ROUTE_CONFIGS), vec(names(&["c0", "c1", "raw-a", "missing"]), 1..3), any::<bool>()).prop_map(
        |(name, clusters, as_message)| {
            let routes: Vec<_> = clusters
                .iter()
                .enumerate()
                .map(|(i, c)| serde_json::json!({"name": format!("r{i}"), "match": {"prefix": format!("/{i}")}, "route": {"cluster": c}}))
                .collect();
            raw_object_of(serde_json::json!({
                "name": name,
                "virtual_hosts": [{"name": "raw", "domains": ["raw.example"], "routes": routes}]
            }), as_message)
        },
    )
}

/// A raw Envoy `Secret`: the test certificate, or a validation context for `ca`.
pub fn raw_secret()
-> impl Strategy<Value = Raw<envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret>>
{
    (names(SECRETS), any::<bool>()).prop_map(|(name, as_message)| {
        let s = if name == "ca" {
            serde_json::json!({"name": name, "validation_context": {"trusted_ca": {"inline_string": TEST_CERT}}})
        } else {
            serde_json::json!({"name": name, "tls_certificate": {
                "certificate_chain": {"inline_string": TEST_CERT}, "private_key": {"inline_string": TEST_KEY}}})
        };
        raw_object_of(s, as_message)
    })
}

/// A raw Envoy resource of any of the five types, over names that collide with compiled
/// objects' (a conflict), refer to them, or are their own.
pub fn raw_object() -> impl Strategy<Value = Object> {
    prop_oneof![
        2 => raw_cluster().prop_map(Object::from),
        1 => raw_load_assignment().prop_map(Object::from),
        2 => raw_listener().prop_map(Object::from),
        1 => raw_route_configuration().prop_map(Object::from),
        1 => raw_secret().prop_map(Object::from),
    ]
}

/// Model objects and raw resources mixed.
pub fn objects_with_raw() -> impl Strategy<Value = Vec<Object>> {
    vec(prop_oneof![3 => object(), 1 => raw_object()], 0..24)
}

/// A model with raw resources.
pub fn model_with_raw() -> impl Strategy<Value = Model> {
    objects_with_raw().prop_map(Model::from_objects)
}

/// A change of a model with raw resources.
pub fn change_with_raw() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => change(),
        1 => raw_object().prop_map(|o| Change::Upsert(Arc::new(o))),
        1 => (select(&Kind::ALL[5..]), select(&["http", "c0", "raw-a", "raw-l", "raw-rc", "cert-a"][..]))
            .prop_map(|(k, n)| Change::Delete(ObjectKey::new(k, n))),
    ]
}

/// A sequence of batches of changes, raw resources among them.
pub fn change_batches_with_raw() -> impl Strategy<Value = Vec<Vec<Change>>> {
    vec(vec(change_with_raw(), 1..6), 1..8)
}

/// A model.
pub fn model() -> impl Strategy<Value = Model> {
    objects().prop_map(Model::from_objects)
}

/// A change: mostly upserts, sometimes deletes of a name from the pools.
pub fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => object().prop_map(|o| Change::Upsert(Arc::new(o))),
        1 => (select(&Kind::ALL[..]), select(&["http", "https", "c0", "c1", "v0", "v1", "cert-a", "ca"][..]))
            .prop_map(|(k, n)| Change::Delete(ObjectKey::new(k, n))),
    ]
}

/// A sequence of batches of changes.
pub fn change_batches() -> impl Strategy<Value = Vec<Vec<Change>>> {
    vec(vec(change(), 1..6), 1..8)
}
