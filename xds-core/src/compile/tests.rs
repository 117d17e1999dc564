//! Unit tests of the compiler: one `check` helper per area drives the public API.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3 as ecluster;
use envoy_types::pb::envoy::config::endpoint::v3 as eendpoint;
use envoy_types::pb::envoy::config::listener::v3 as elistener;
use envoy_types::pb::envoy::config::route::v3 as eroute;
use prost::Message;

use super::*;
use crate::model::*;

fn doc(yaml_like_json: &str) -> Vec<Object> {
    serde_json::from_str(yaml_like_json).expect("test model parses")
}

fn compile(objects: Vec<Object>) -> Compiled {
    Compiled::new(&Model::from_objects(objects))
}

fn errors(c: &Compiled) -> Vec<String> {
    c.diagnostics().iter().map(ToString::to_string).collect()
}

fn routes(c: &Compiled, listener: &str) -> eroute::RouteConfiguration {
    let r = c
        .snapshot()
        .get(ResourceType::Route, listener)
        .expect("route configuration");
    eroute::RouteConfiguration::decode(r.body().clone()).expect("decodes")
}

fn cluster(c: &Compiled, name: &str) -> ecluster::Cluster {
    let r = c
        .snapshot()
        .get(ResourceType::Cluster, name)
        .expect("cluster");
    ecluster::Cluster::decode(r.body().clone()).expect("decodes")
}

fn base() -> Vec<Object> {
    doc(r#"[
        {"kind":"Listener","name":"http","port":8080},
        {"kind":"Cluster","name":"web"},
        {"kind":"Cluster","name":"api"},
        {"kind":"Endpoints","name":"web","localities":[{"endpoints":[{"address":"10.0.0.2","port":80},{"address":"10.0.0.1","port":80}]}]}
    ]"#)
}

#[test]
fn minimal_http_model_compiles_to_consistent_snapshot() {
    let mut objects = base();
    objects.extend(doc(r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["Example.com","*.example.com"],
        "routes":[{"name":"all","forward":{"backends":[{"cluster":"web"}]}},
                  {"name":"api","match":{"path":{"path_prefix":"/api/"}},"forward":{"backends":[{"cluster":"api","weight":3},{"cluster":"web","weight":1}]}}]}]"#));
    let c = compile(objects);
    assert!(errors(&c).is_empty(), "{:?}", errors(&c));
    let rc = routes(&c, "http");
    assert_eq!(rc.virtual_hosts.len(), 1);
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.domains, ["*.example.com", "example.com"]);
    // Longer prefix first, whatever the order in the object.
    assert_eq!(
        vh.routes
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["api", "all"]
    );
    let m = vh.routes[0].r#match.as_ref().unwrap();
    assert_eq!(
        m.path_specifier,
        Some(eroute::route_match::PathSpecifier::PathSeparatedPrefix(
            "/api".into()
        ))
    );
    // Endpoints sorted by address whatever the input order.
    let cla = eendpoint::ClusterLoadAssignment::decode(
        c.snapshot()
            .get(ResourceType::Endpoint, "web")
            .unwrap()
            .body()
            .clone(),
    )
    .unwrap();
    let addrs: Vec<_> = cla.endpoints[0]
        .lb_endpoints
        .iter()
        .map(|e| format!("{e:?}").contains("10.0.0.1"))
        .collect();
    assert_eq!(addrs, [true, false]);
    // Every cluster has its load assignment, even without an Endpoints object.
    assert!(c.snapshot().get(ResourceType::Endpoint, "api").is_some());
    let l = elistener::Listener::decode(
        c.snapshot()
            .get(ResourceType::Listener, "http")
            .unwrap()
            .body()
            .clone(),
    )
    .unwrap();
    assert_eq!(l.filter_chains.len(), 1);
}

fn listener(c: &Compiled, name: &str) -> elistener::Listener {
    let r = c
        .snapshot()
        .get(ResourceType::Listener, name)
        .expect("listener");
    elistener::Listener::decode(r.body().clone()).expect("decodes")
}

fn vhost(c: &Compiled, listener: &str, name: &str) -> eroute::VirtualHost {
    routes(c, listener)
        .virtual_hosts
        .into_iter()
        .find(|v| v.name == name)
        .expect("virtual host")
}

fn with(extra: &str) -> Compiled {
    let mut objects = base();
    objects.extend(doc(extra));
    compile(objects)
}

fn action(r: &eroute::Route) -> &eroute::route::Action {
    r.action.as_ref().expect("action")
}

#[test]
fn route_precedence_is_exact_regex_prefix_longest_then_headers_then_name() {
    let c = with(
        r#"[{"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],"routes":[
        {"name":"z-root","forward":{"backends":[{"cluster":"web"}]}},
        {"name":"a-prefix","match":{"path":{"prefix":"/a"}},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"ab-prefix","match":{"path":{"prefix":"/a/b"}},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"a-seg","match":{"path":{"path_prefix":"/a/"}},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"a-hdr","match":{"path":{"prefix":"/a"},"headers":[{"name":"x","value":"present"}]},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"re","match":{"path":{"regex":"/r/.*"}},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"exact","match":{"path":{"exact":"/a"}},"forward":{"backends":[{"cluster":"web"}]}}]}]"#,
    );
    let names: Vec<String> = vhost(&c, "http", "v")
        .routes
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        [
            "exact",
            "re",
            "ab-prefix",
            "a-seg",
            "a-hdr",
            "a-prefix",
            "z-root"
        ]
    );
}

#[test]
fn a_method_match_precedes_header_and_query_matches() {
    let c = with(
        r#"[{"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],"routes":[
        {"name":"a-query","match":{"path":{"prefix":"/a"},"query":[{"name":"q","value":"present"}]},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"b-headers","match":{"path":{"prefix":"/a"},"headers":[{"name":"x","value":"present"},{"name":"y","value":"present"}]},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"c-method","match":{"path":{"prefix":"/a"},"methods":["GET"]},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"d-header","match":{"path":{"prefix":"/a"},"headers":[{"name":"x","value":"present"}]},"forward":{"backends":[{"cluster":"web"}]}}]}]"#,
    );
    let names: Vec<String> = vhost(&c, "http", "v")
        .routes
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["c-method", "b-headers", "d-header", "a-query"]);
}

#[test]
fn identical_matches_are_shadowed_and_reported() {
    let c = with(
        r#"[{"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],"routes":[
        {"name":"b","match":{"path":{"prefix":"/x"},"methods":["GET","POST"]},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"a","match":{"path":{"prefix":"/x"},"methods":["POST","GET"]},"direct_response":{"status":404}}]}]"#,
    );
    let vh = vhost(&c, "http", "v");
    assert_eq!(vh.routes.len(), 1);
    assert_eq!(vh.routes[0].name, "a");
    assert_eq!(
        errors(&c),
        [
            "warning: VirtualHost/v: routes[b]: never matches: route \"a\" has the same match and comes first"
        ]
    );
}

#[test]
fn domain_conflicts_resolve_by_name_and_are_reported() {
    let c = with(
        r#"[{"kind":"VirtualHost","name":"b","listeners":["http"],"domains":["shared.test","b.test"],"routes":[{"name":"r","forward":{"backends":[{"cluster":"web"}]}}]},
            {"kind":"VirtualHost","name":"a","listeners":["http"],"domains":["SHARED.test"],"routes":[{"name":"r","forward":{"backends":[{"cluster":"api"}]}}]}]"#,
    );
    assert_eq!(vhost(&c, "http", "a").domains, ["shared.test"]);
    assert_eq!(vhost(&c, "http", "b").domains, ["b.test"]);
    assert_eq!(
        errors(&c),
        [
            "warning: VirtualHost/b: domains: domain \"shared.test\" on listener \"http\" is also claimed by VirtualHost/a, which takes precedence"
        ]
    );
    // Deleting the winner hands the domain over, incrementally.
    let c2 = c.apply([Change::Delete(ObjectKey::new(Kind::VirtualHost, "a"))]);
    assert_eq!(vhost(&c2, "http", "b").domains, ["b.test", "shared.test"]);
    assert!(errors(&c2).is_empty());
}

#[test]
fn dangling_backends_fall_back_and_reappear() {
    let c = with(
        r#"[{"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],"routes":[
        {"name":"gone","match":{"path":{"prefix":"/gone"}},"forward":{"backends":[{"cluster":"nope"}]}},
        {"name":"zero","match":{"path":{"prefix":"/zero"}},"forward":{"backends":[{"cluster":"web","weight":0}]}},
        {"name":"half","forward":{"backends":[{"cluster":"web"},{"cluster":"nope"}],"mirror":[{"cluster":"nope"}]}}]}]"#,
    );
    let vh = vhost(&c, "http", "v");
    let by = |n: &str| vh.routes.iter().find(|r| r.name == n).unwrap().clone();
    assert!(
        matches!(action(&by("gone")), eroute::route::Action::DirectResponse(d) if d.status == 503)
    );
    assert!(
        matches!(action(&by("zero")), eroute::route::Action::DirectResponse(d) if d.status == 500)
    );
    match action(&by("half")) {
        eroute::route::Action::Route(a) => {
            assert_eq!(
                a.cluster_specifier,
                Some(eroute::route_action::ClusterSpecifier::Cluster(
                    "web".into()
                ))
            );
            assert!(a.request_mirror_policies.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(errors(&c).iter().any(|e| e.contains("routes[gone].forward.backends[0].cluster: refers to Cluster/nope")));
    // The cluster appears: the routes change to forward, nothing else is rebuilt.
    let c2 = c.apply([Change::upsert(Cluster::new("nope"))]);
    let vh = vhost(&c2, "http", "v");
    assert!(matches!(
        action(&vh.routes[0]),
        eroute::route::Action::Route(_)
    ));
    let diff = c.snapshot().diff(c2.snapshot());
    assert_eq!(diff.get(ResourceType::Route).changed, [Arc::from("http")]);
    assert!(diff.get(ResourceType::Listener).is_empty());
}

#[test]
fn invalid_routes_are_left_out_with_field_paths() {
    let c = with(
        r#"[{"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],"routes":[
        {"name":"good","forward":{"backends":[{"cluster":"web"}]}},
        {"name":"badre","match":{"path":{"regex":"(a"}},"forward":{"backends":[{"cluster":"web"}]}},
        {"name":"two","forward":{"backends":[{"cluster":"web"}]},"direct_response":{"status":200}},
        {"name":"nopath","match":{"path":{"prefix":"x"}},"direct_response":{"status":200}},
        {"name":"hdr","request_headers":{"add":[{"name":":path","value":"x"}]},"direct_response":{"status":200}},
        {"name":"resp","response_headers":{"add":[{"name":"Host","value":"x"}],"remove":[":status"]},"direct_response":{"status":200}},
        {"name":"retry","forward":{"backends":[{"cluster":"web"}],"retry":{"on":["sometimes"]}}}]}]"#,
    );
    assert_eq!(vhost(&c, "http", "v").routes.len(), 1);
    let e = errors(&c).join("\n");
    for needle in [
        "error: VirtualHost/v: routes[badre].match.path.regex: invalid regular expression \"(a\"",
        "error: VirtualHost/v: routes[two]: set exactly one of forward, redirect and direct_response",
        "error: VirtualHost/v: routes[nopath].match.path: \"x\" must start with /",
        "error: VirtualHost/v: routes[hdr].request_headers.add[0].name: \":path\" cannot be added or removed",
        // Envoy refuses these on responses too (":-prefixed or host headers may not be modified").
        "error: VirtualHost/v: routes[resp].response_headers.add[0].name: \"Host\" cannot be added or removed",
        "error: VirtualHost/v: routes[resp].response_headers.remove[0]: \":status\" cannot be added or removed",
        "error: VirtualHost/v: routes[retry].forward.retry.on[0]: \"sometimes\" is not an Envoy retry condition",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn route_actions_translate() {
    let c = with(
        r#"[{"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],"routes":[
        {"name":"fwd","match":{"path":{"prefix":"/f"},"headers":[{"name":"X-Env","value":{"exact":"beta"},"invert":true}],"query":[{"name":"q","value":{"regex":"[0-9]+"}}],"methods":["GET"]},
         "forward":{"backends":[{"cluster":"web","weight":3},{"cluster":"api","weight":1}],"timeout":"2s","retry":{"on":["5xx"],"attempts":3,"per_try_timeout":"500ms"},
                    "rewrite":{"prefix":"/g","host":"up.internal"},"mirror":[{"cluster":"api","percent":25}],"hash_policy":["source_ip",{"header":"X-User"}]},
         "request_headers":{"add":[{"name":"X-A","value":"1","append":true}],"remove":["x-b"]},"response_headers":{"add":[{"name":"x-c","value":"2"}]}},
        {"name":"redir","match":{"path":{"path_prefix":"/old"}},"redirect":{"scheme":"https","host":"new.test","port":8443,"prefix":"/new","code":307}},
        {"name":"direct","match":{"path":{"exact":"/ping"}},"direct_response":{"status":200,"body":"pong"}}]}]"#,
    );
    assert!(errors(&c).is_empty(), "{:?}", errors(&c));
    let vh = vhost(&c, "http", "v");
    let fwd = vh.routes.iter().find(|r| r.name == "fwd").unwrap();
    let m = fwd.r#match.as_ref().unwrap();
    assert_eq!(m.headers.len(), 2); // x-env and :method
    assert_eq!(m.headers[0].name, "x-env");
    assert!(m.headers[0].invert_match);
    assert_eq!(m.headers[1].name, ":method");
    assert_eq!(m.query_parameters[0].name, "q");
    let eroute::route::Action::Route(a) = action(fwd) else {
        panic!()
    };
    let Some(eroute::route_action::ClusterSpecifier::WeightedClusters(w)) = &a.cluster_specifier
    else {
        panic!()
    };
    assert_eq!(
        w.clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight.as_ref().unwrap().value))
            .collect::<Vec<_>>(),
        [("web", 3), ("api", 1)]
    );
    assert_eq!(a.timeout.as_ref().unwrap().seconds, 2);
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(
        (
            retry.retry_on.as_str(),
            retry.num_retries.as_ref().unwrap().value
        ),
        ("5xx", 3)
    );
    assert_eq!(retry.per_try_timeout.as_ref().unwrap().nanos, 500_000_000);
    assert_eq!(a.prefix_rewrite, "/g");
    assert_eq!(
        a.request_mirror_policies[0]
            .runtime_fraction
            .as_ref()
            .unwrap()
            .default_value
            .as_ref()
            .unwrap()
            .numerator,
        25
    );
    assert_eq!(a.hash_policy.len(), 2);
    assert_eq!(
        fwd.request_headers_to_add[0].header.as_ref().unwrap().key,
        "x-a"
    );
    assert_eq!(fwd.request_headers_to_remove, ["x-b"]);
    assert_eq!(fwd.response_headers_to_add.len(), 1);

    let redir = vh.routes.iter().find(|r| r.name == "redir").unwrap();
    assert_eq!(
        redir.r#match.as_ref().unwrap().path_specifier,
        Some(eroute::route_match::PathSpecifier::PathSeparatedPrefix(
            "/old".into()
        ))
    );
    let eroute::route::Action::Redirect(rd) = action(redir) else {
        panic!()
    };
    assert_eq!(
        (rd.host_redirect.as_str(), rd.port_redirect),
        ("new.test", 8443)
    );
    assert_eq!(
        rd.response_code,
        eroute::redirect_action::RedirectResponseCode::TemporaryRedirect as i32
    );
    let direct = vh.routes.iter().find(|r| r.name == "direct").unwrap();
    assert!(
        matches!(action(direct), eroute::route::Action::DirectResponse(d) if d.status == 200 && d.body.is_some())
    );
}

#[test]
fn clusters_translate_every_option() {
    let c = with(
        r#"[{"kind":"Secret","name":"ca","validation_context":{"trusted_ca":"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}},
            {"kind":"Cluster","name":"full","lb":"maglev","connect_timeout":"250ms","protocol":"http2","tls":{"sni":"up.internal","ca_secret":"ca"},
             "health_check":{"http_path":"/hz","interval":"3s"},"outlier_detection":{"consecutive_5xx":7},"circuit_breakers":{"max_requests":50}}]"#,
    );
    assert!(errors(&c).is_empty(), "{:?}", errors(&c));
    let cl = cluster(&c, "full");
    assert_eq!(cl.lb_policy, ecluster::cluster::LbPolicy::Maglev as i32);
    assert_eq!(cl.connect_timeout.as_ref().unwrap().nanos, 250_000_000);
    assert!(
        cl.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
    assert!(cl.transport_socket.is_some());
    assert_eq!(cl.health_checks[0].interval.as_ref().unwrap().seconds, 3);
    assert_eq!(
        cl.outlier_detection
            .as_ref()
            .unwrap()
            .consecutive_5xx
            .as_ref()
            .unwrap()
            .value,
        7
    );
    assert_eq!(
        cl.circuit_breakers.as_ref().unwrap().thresholds[0]
            .max_requests
            .as_ref()
            .unwrap()
            .value,
        50
    );
    // Removing the CA secret leaves the cluster out (and its endpoints), reported.
    let c2 = c.apply([Change::Delete(ObjectKey::new(Kind::Secret, "ca"))]);
    assert!(c2.snapshot().get(ResourceType::Cluster, "full").is_none());
    assert!(c2.snapshot().get(ResourceType::Endpoint, "full").is_none());
    assert_eq!(
        errors(&c2),
        [
            "error: Cluster/full: tls.ca_secret: refers to Secret/ca, which does not exist or is invalid"
        ]
    );
}

#[test]
fn endpoints_group_sort_compact_priorities_and_keep_health() {
    let c = with(
        r#"[{"kind":"Endpoints","name":"api","localities":[
            {"zone":"b","priority":5,"endpoints":[{"address":"10.0.0.9","port":80,"health":"draining"}]},
            {"zone":"a","endpoints":[{"address":"10.0.0.2","port":80,"weight":3},{"address":"10.0.0.1","port":80,"health":"unhealthy"},{"address":"10.0.0.1","port":80}]},
            {"zone":"c","priority":2,"endpoints":[{"address":"bogus","port":80}]}]}]"#,
    );
    let cla = eendpoint::ClusterLoadAssignment::decode(
        c.snapshot()
            .get(ResourceType::Endpoint, "api")
            .unwrap()
            .body()
            .clone(),
    )
    .unwrap();
    assert_eq!(
        cla.endpoints.iter().map(|l| l.priority).collect::<Vec<_>>(),
        [0, 1]
    );
    let p0 = &cla.endpoints[0];
    assert_eq!(p0.locality.as_ref().unwrap().zone, "a");
    assert_eq!(p0.lb_endpoints.len(), 2);
    assert_eq!(
        p0.lb_endpoints[0].health_status,
        envoy_types::pb::envoy::config::core::v3::HealthStatus::Unhealthy as i32
    );
    assert_eq!(
        p0.lb_endpoints[1]
            .load_balancing_weight
            .as_ref()
            .unwrap()
            .value,
        3
    );
    assert_eq!(
        cla.endpoints[1].lb_endpoints[0].health_status,
        envoy_types::pb::envoy::config::core::v3::HealthStatus::Draining as i32
    );
    let e = errors(&c).join("\n");
    assert!(e.contains("error: Endpoints/api: localities[2].endpoints[0].address: \"bogus\" is not an IPv4 or IPv6 address"), "{e}");
    assert!(
        e.contains(
            "warning: Endpoints/api: localities[1].endpoints[2]: duplicate endpoint 10.0.0.1:80"
        ),
        "{e}"
    );
}

const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n";

fn secret(name: &str) -> Object {
    Object::Secret(Secret {
        name: name.into(),
        tls_certificate: Some(TlsCertificate {
            certificate_chain: PEM_CERT.into(),
            private_key: PEM_KEY.into(),
        }),
        validation_context: None,
        provenance: vec![],
    })
}

#[test]
fn https_listener_has_a_chain_per_certificate_by_sni() {
    let mut objects = base();
    objects.push(secret("a"));
    objects.push(secret("b"));
    objects.extend(doc(
        r#"[{"kind":"Listener","name":"https","port":8443,"protocol":"https","max_connections":100,"idle_timeout":"30s","access_log":[{"path":"/dev/stdout","format":"%RESPONSE_CODE%\n"}],
             "tls":[{"hosts":["b.test","*.Example.com"],"secret":"b"},{"secret":"a"},{"hosts":["b.test"],"secret":"a"},{"hosts":["c.test"],"secret":"missing"}]}]"#,
    ));
    let c = compile(objects);
    let l = listener(&c, "https");
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    assert_eq!(l.filter_chains.len(), 2);
    let names = &l.filter_chains[0]
        .filter_chain_match
        .as_ref()
        .unwrap()
        .server_names;
    assert_eq!(names, &["*.example.com", "b.test"]);
    assert!(l.filter_chains[1].filter_chain_match.is_none()); // the default certificate
    assert_eq!(
        l.filter_chains[0].filters[0].name,
        "envoy.filters.network.connection_limit"
    );
    let e = errors(&c).join("\n");
    assert!(e.contains("warning: Listener/https: tls[2].hosts[0]: \"b.test\" is already served by an earlier tls entry"), "{e}");
    assert!(
        e.contains("error: Listener/https: tls[3].secret: refers to Secret/missing"),
        "{e}"
    );
    // Without any usable certificate the listener is left out, and so is its route config.
    let c2 = c.apply([
        Change::Delete(ObjectKey::new(Kind::Secret, "a")),
        Change::Delete(ObjectKey::new(Kind::Secret, "b")),
    ]);
    assert!(c2.snapshot().get(ResourceType::Listener, "https").is_none());
    assert!(c2.snapshot().get(ResourceType::Route, "https").is_none());
}

#[test]
fn an_https_listener_passes_through_the_sni_names_no_certificate_claims() {
    let mut objects = base();
    objects.push(secret("b"));
    objects.extend(doc(
        r#"[{"kind":"Listener","name":"mixed","port":8443,"protocol":"https",
             "tls":[{"hosts":["b.test"],"secret":"b"}],
             "tcp_routes":[{"name":"a","sni":["a.test"],"backends":[{"cluster":"web"}]},
                           {"name":"dup","sni":["b.test"],"backends":[{"cluster":"web"}]}]}]"#,
    ));
    let c = compile(objects);
    let l = listener(&c, "mixed");
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    let chains: Vec<(Vec<String>, &str, bool)> = l
        .filter_chains
        .iter()
        .map(|f| {
            let m = f.filter_chain_match.as_ref().expect("chosen by SNI");
            (
                m.server_names.clone(),
                f.filters[0].name.as_str(),
                f.transport_socket.is_some(),
            )
        })
        .collect();
    assert_eq!(
        chains,
        [
            (
                vec!["b.test".to_owned()],
                "envoy.filters.network.http_connection_manager",
                true
            ),
            (
                vec!["a.test".to_owned()],
                "envoy.filters.network.tcp_proxy",
                false
            ),
        ]
    );
    let e = errors(&c).join("\n");
    assert!(
        e.contains("warning: Listener/mixed: tcp_routes[1].sni[0]: \"b.test\" is already routed by an earlier route or served by a certificate"),
        "{e}"
    );
    assert!(!e.contains("ignored"), "{e}");
    // The terminated names keep their route configuration.
    assert!(c.snapshot().get(ResourceType::Route, "mixed").is_some());
}

#[test]
fn tcp_and_passthrough_listeners_route_to_clusters() {
    let c = with(
        r#"[{"kind":"Listener","name":"tls","port":9443,"protocol":"tls_passthrough","tcp_routes":[
              {"name":"b","sni":["b.test"],"backends":[{"cluster":"web"},{"cluster":"api","weight":2}]},
              {"name":"a","sni":["a.test"],"backends":[{"cluster":"api"}]},
              {"name":"gone","sni":["g.test"],"backends":[{"cluster":"nope"}]}]},
            {"kind":"Listener","name":"tcp","port":6379,"protocol":"tcp","tcp_routes":[{"name":"all","backends":[{"cluster":"web"}]},{"name":"two","backends":[{"cluster":"web"}]}]}]"#,
    );
    let l = listener(&c, "tls");
    assert_eq!(
        l.filter_chains
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        l.filter_chains[0]
            .filter_chain_match
            .as_ref()
            .unwrap()
            .transport_protocol,
        "tls"
    );
    assert_eq!(listener(&c, "tcp").filter_chains.len(), 1);
    let e = errors(&c).join("\n");
    assert!(
        e.contains("error: Listener/tls: tcp_routes[2].backends: no usable backend"),
        "{e}"
    );
    assert!(
        e.contains(
            "error: Listener/tcp: tcp_routes[1]: only one route may take connections without SNI"
        ),
        "{e}"
    );
    // TCP listeners have no route configuration.
    assert!(c.snapshot().get(ResourceType::Route, "tcp").is_none());
}

#[test]
fn listeners_on_one_address_conflict_by_name() {
    let c = with(r#"[{"kind":"Listener","name":"zz","port":8080}]"#);
    assert!(c.snapshot().get(ResourceType::Listener, "http").is_some());
    assert!(c.snapshot().get(ResourceType::Listener, "zz").is_none());
    assert_eq!(
        errors(&c),
        [
            "error: Listener/zz: port: address 0.0.0.0:8080 is also claimed by Listener/http, which takes precedence"
        ]
    );
    // The winner moves away: the loser is served, incrementally.
    let c2 = c.apply([Change::upsert(Listener::new("http", 8081))]);
    assert!(c2.snapshot().get(ResourceType::Listener, "zz").is_some());
    assert!(errors(&c2).is_empty(), "{:?}", errors(&c2));
}

#[test]
fn secrets_validate_pem_and_kind() {
    let c = compile(doc(
        r#"[{"kind":"Secret","name":"bad","tls_certificate":{"certificate_chain":"nope","private_key":"nope"}},
            {"kind":"Secret","name":"empty"},
            {"kind":"Cluster","name":"c","tls":{"ca_secret":"cert"}}]"#,
    ))
    .apply([Change::Upsert(Arc::new(secret("cert")))]);
    assert!(c.snapshot().get(ResourceType::Secret, "cert").is_some());
    assert!(c.snapshot().get(ResourceType::Secret, "bad").is_none());
    let e = errors(&c).join("\n");
    assert!(
        e.contains(
            "error: Secret/bad: tls_certificate.certificate_chain: is not a PEM certificate chain"
        ),
        "{e}"
    );
    assert!(
        e.contains("error: Secret/bad: tls_certificate.private_key: is not a PEM private key"),
        "{e}"
    );
    assert!(
        e.contains(
            "error: Secret/empty: set exactly one of tls_certificate and validation_context"
        ),
        "{e}"
    );
    assert!(e.contains("error: Cluster/c: tls.ca_secret: secret \"cert\" is a certificate, not a validation context"), "{e}");
}

#[test]
fn virtual_host_on_unknown_listener_is_reported() {
    let c = with(r#"[{"kind":"VirtualHost","name":"v","listeners":["nope"],"domains":["*"]}]"#);
    assert_eq!(
        errors(&c),
        [
            "warning: VirtualHost/v: listeners: listener \"nope\" is missing or invalid; not served there"
        ]
    );
    let c2 = c.apply([Change::upsert(Listener::new("nope", 9999))]);
    assert!(errors(&c2).is_empty());
    assert_eq!(routes(&c2, "nope").virtual_hosts.len(), 1);
}

#[test]
fn provenance_traces_resources_to_sources() {
    let mut objects = base();
    objects.extend(doc(
        r#"[{"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],
             "provenance":[{"kind":"Ingress","namespace":"shop","name":"front","origin":"ingress.yaml:1"}]}]"#,
    ));
    let c = compile(objects);
    let r = c.snapshot().get(ResourceType::Route, "http").unwrap();
    assert_eq!(
        r.provenance(),
        [
            ObjectKey::new(Kind::Listener, "http"),
            ObjectKey::new(Kind::VirtualHost, "v")
        ]
    );
    let sources: Vec<String> = c.sources(r).iter().map(ToString::to_string).collect();
    assert_eq!(
        sources,
        ["Listener http", "Ingress shop/front (ingress.yaml:1)"]
    );
}

#[test]
fn one_route_change_rebuilds_only_its_route_configuration() {
    let c = with(
        r#"[{"kind":"VirtualHost","name":"v1","listeners":["http"],"domains":["a.test"],"routes":[{"name":"r","forward":{"backends":[{"cluster":"web"}]}}]},
            {"kind":"VirtualHost","name":"v2","listeners":["http"],"domains":["b.test"],"routes":[{"name":"r","forward":{"backends":[{"cluster":"web"}]}}]}]"#,
    );
    let mut v2 = VirtualHost::new("v2", ["http"], ["b.test"]);
    v2.routes.push(Route::forward_prefix("r", "/", "api"));
    let c2 = c.apply([Change::upsert(v2)]);
    let diff = c.snapshot().diff(c2.snapshot());
    assert_eq!(
        diff.changed_types().collect::<Vec<_>>(),
        [ResourceType::Route]
    );
    // v1's piece is the same allocation (bytes reused), so the new route config embeds it.
    let p1 = c.pieces.get(&(Arc::from("http"), Arc::from("v1"))).unwrap();
    let p2 = c2
        .pieces
        .get(&(Arc::from("http"), Arc::from("v1")))
        .unwrap();
    assert_eq!(p1.as_ptr(), p2.as_ptr());
    assert_eq!(vhost(&c2, "http", "v1"), vhost(&c, "http", "v1"));
}

fn hcm_of(c: &Compiled, listener: &str) -> envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager{
    let r = c
        .snapshot()
        .get(ResourceType::Listener, listener)
        .expect("listener");
    let l = elistener::Listener::decode(r.body().clone()).expect("decodes");
    let f = &l.filter_chains[0].filters[0];
    match &f.config_type {
        Some(elistener::filter::ConfigType::TypedConfig(a)) => {
            prost::Message::decode(a.value.as_slice()).expect("hcm decodes")
        }
        other => panic!("no typed config: {other:?}"),
    }
}

#[test]
fn listeners_share_a_named_route_configuration_and_set_their_stat_prefix() {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
    let mut objects = base();
    objects.extend(doc(r#"[
        {"kind":"Listener","name":"a","port":8081,"route_config":"shared","stat_prefix":"ingress_a"},
        {"kind":"Listener","name":"b","port":8082,"route_config":"shared"},
        {"kind":"VirtualHost","name":"site","listeners":["shared"],"domains":["example.com"],
         "routes":[{"name":"all","forward":{"backends":[{"cluster":"web"}]}}]}]"#));
    let c = compile(objects);
    assert!(errors(&c).is_empty(), "{:?}", errors(&c));
    let rc = routes(&c, "shared");
    assert_eq!(rc.name, "shared");
    assert_eq!(rc.virtual_hosts[0].name, "site");
    for (l, prefix) in [("a", "ingress_a"), ("b", "b"), ("http", "http")] {
        let m = hcm_of(&c, l);
        assert_eq!(m.stat_prefix, prefix, "{l}");
        let Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) = m.route_specifier else {
            panic!("{l} has no RDS");
        };
        let want = if l == "http" { "http" } else { "shared" };
        assert_eq!(rds.route_config_name, want, "{l}");
    }
    // Only the listeners' route configurations exist: none named after "a" or "b".
    let names: Vec<_> = c
        .snapshot()
        .resources(ResourceType::Route)
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    assert_eq!(names, ["http", "shared"]);
    let r = c.snapshot().get(ResourceType::Route, "shared").unwrap();
    assert_eq!(
        r.provenance(),
        [
            ObjectKey::new(Kind::Listener, "a"),
            ObjectKey::new(Kind::Listener, "b"),
            ObjectKey::new(Kind::VirtualHost, "site"),
        ]
    );

    // Deleting one sharer keeps the configuration; deleting both drops it, with a warning.
    let one = c.apply([Change::Delete(ObjectKey::new(Kind::Listener, "a"))]);
    assert!(one.snapshot().get(ResourceType::Route, "shared").is_some());
    let none = one.apply([Change::Delete(ObjectKey::new(Kind::Listener, "b"))]);
    assert!(none.snapshot().get(ResourceType::Route, "shared").is_none());
    assert!(
        errors(&none).iter().any(|e| e.contains("\"shared\"")),
        "{:?}",
        errors(&none)
    );
    // Incremental equals full.
    assert_eq!(
        none.snapshot().version(),
        Compiled::new(none.model()).snapshot().version()
    );
}

#[test]
fn a_virtual_host_naming_a_renamed_listener_is_told_which_name_to_use() {
    let mut objects = base();
    objects.extend(doc(r#"[
        {"kind":"Listener","name":"a","port":8081,"route_config":"shared"},
        {"kind":"VirtualHost","name":"site","listeners":["a"],"domains":["example.com"]}]"#));
    let c = compile(objects);
    let e = errors(&c);
    assert!(
        e.iter()
            .any(|e| e.contains("serves route configuration \"shared\"")),
        "{e:?}"
    );
    let bad = compile(doc(
        r#"[{"kind":"Listener","name":"a","port":8081,"route_config":"no spaces","stat_prefix":""}]"#,
    ));
    let e = errors(&bad);
    assert!(e.iter().any(|e| e.contains("route_config")), "{e:?}");
    assert!(e.iter().any(|e| e.contains("stat_prefix")), "{e:?}");
    assert!(bad.snapshot().get(ResourceType::Listener, "a").is_none());
}

#[test]
fn routes_as_written_keep_their_order_but_still_drop_identical_matches() {
    let vhost = |order: &str| {
        let mut objects = base();
        objects.extend(doc(&format!(
            r#"[{{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],{order}
            "routes":[{{"name":"all","forward":{{"backends":[{{"cluster":"web"}}]}}}},
                      {{"name":"api","match":{{"path":{{"prefix":"/api"}}}},"forward":{{"backends":[{{"cluster":"api"}}]}}}},
                      {{"name":"later","forward":{{"backends":[{{"cluster":"api"}}]}}}}]}}]"#
        )));
        let c = compile(objects);
        let names: Vec<String> = routes(&c, "http").virtual_hosts[0]
            .routes
            .iter()
            .map(|r| r.name.clone())
            .collect();
        (names, errors(&c))
    };
    let (names, e) = vhost("");
    assert_eq!(names, ["api", "all"]);
    assert!(e.iter().any(|e| e.contains("later")), "{e:?}");
    let (names, e) = vhost(r#""route_order":"as_written","#);
    assert_eq!(names, ["all", "api"]);
    assert!(e.iter().any(|e| e.contains("later")), "{e:?}");
}

#[test]
fn update_to_a_whole_model_rebuilds_only_what_differs() {
    let mut objects = vec![Object::Listener(Listener::new("http", 8080))];
    for i in 0..200 {
        let c = format!("c{i}");
        objects.push(Object::Cluster(Cluster::new(c.clone())));
        let mut vh = VirtualHost::new(format!("v{i}"), ["http"], [format!("h{i}.example.com")]);
        vh.routes.push(Route::forward_prefix("all", "/", c));
        objects.push(Object::VirtualHost(vh));
    }
    let v1 = Model::from_objects(objects.clone());
    let first = Compiled::new(&v1);
    assert_eq!(first.stats().objects_changed, 401);

    // The embedder's next whole model, derived from the last: one route changed.
    let mut vh = VirtualHost::new("v7", ["http"], ["h7.example.com"]);
    vh.routes.push(Route::forward_prefix("all", "/", "c8"));
    let v2 = v1.apply([Change::upsert(vh)]);
    let second = first.update(&v2);
    // The virtual host's piece and the route configuration it is assembled into.
    assert_eq!(
        second.stats(),
        Stats {
            objects_changed: 1,
            resources_built: 2
        }
    );
    assert!(second.snapshot() == Compiled::new(&v2).snapshot());
    let same = |t: ResourceType, n: &str| {
        Arc::ptr_eq(
            first.snapshot().get(t, n).unwrap(),
            second.snapshot().get(t, n).unwrap(),
        )
    };
    assert!(same(ResourceType::Cluster, "c7") && same(ResourceType::Listener, "http"));
    assert!(!same(ResourceType::Route, "http"));

    // A model rebuilt from scratch with equal objects (nothing shared): nothing is rebuilt and
    // every resource is the same allocation.
    let again = first.update(&Model::from_objects(objects));
    assert_eq!(again.stats(), Stats::default());
    for r in first.snapshot().iter() {
        assert!(Arc::ptr_eq(
            r,
            again.snapshot().get(r.resource_type(), r.name()).unwrap()
        ));
    }
    // Back to the first model, then a deletion.
    let back = second.update(&v1);
    assert_eq!(back.stats().objects_changed, 1);
    assert!(back.snapshot() == first.snapshot());
    let v3 = v1.apply([Change::Delete(ObjectKey::new(Kind::Cluster, "c3"))]);
    let third = back.update(&v3);
    assert_eq!(third.stats().objects_changed, 1);
    assert!(third.snapshot() == Compiled::new(&v3).snapshot());
    assert!(third.snapshot().get(ResourceType::Cluster, "c3").is_none());
}

fn hcm_filters(c: &Compiled, listener_name: &str) -> Vec<String> {
    hcm_of(c, listener_name)
        .http_filters
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

#[test]
fn escape_hatches_reach_envoy_in_order_and_as_given() {
    use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
    let mut objects = base();
    objects.extend(doc(r#"[
        {"kind":"Listener","name":"edge","port":8081,
         "listener_filters":[{"name":"envoy.filters.listener.original_dst","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}}],
         "http_filters":[
            {"name":"envoy.filters.http.cors","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
            {"name":"envoy.filters.http.buffer","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer","max_request_bytes":1024}}]},
        {"kind":"Cluster","name":"grpc","typed_extension_protocol_options":{
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions":{"@type":"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions","explicit_http_config":{"http2_protocol_options":{}}}}},
        {"kind":"VirtualHost","name":"site","listeners":["edge"],"domains":["example.com"],
         "typed_per_filter_config":{"envoy.filters.http.cors":{"@type":"type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy","allow_methods":"GET"}},
         "routes":[{"name":"all","forward":{"backends":[{"cluster":"web"}]},
            "typed_per_filter_config":{"envoy.filters.http.buffer":{"@type":"type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute","disabled":true}}}]}]"#));
    let c = compile(objects.clone());
    assert!(errors(&c).is_empty(), "{:?}", errors(&c));
    assert_eq!(
        hcm_filters(&c, "edge"),
        [
            "envoy.filters.http.cors",
            "envoy.filters.http.buffer",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(hcm_filters(&c, "http"), ["envoy.filters.http.router"]);
    let l = listener(&c, "edge");
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.original_dst"
    );
    let vh = &routes(&c, "edge").virtual_hosts[0];
    let policy = &vh.typed_per_filter_config["envoy.filters.http.cors"];
    assert_eq!(
        CorsPolicy::decode(policy.value.as_slice())
            .unwrap()
            .allow_methods,
        "GET"
    );
    assert!(
        vh.routes[0]
            .typed_per_filter_config
            .contains_key("envoy.filters.http.buffer")
    );
    assert!(
        cluster(&c, "grpc")
            .typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );

    // The same filter given as a prost message: the same bytes, the same version.
    let mut from_rust = objects;
    for o in &mut from_rust {
        if let Object::Listener(l) = o
            && l.name == "edge"
        {
            l.http_filters[0].typed_config = TypedConfig::from_message(&Cors::default());
        }
    }
    let c2 = compile(from_rust);
    assert_eq!(
        c.snapshot()
            .get(ResourceType::Listener, "edge")
            .unwrap()
            .version(),
        c2.snapshot()
            .get(ResourceType::Listener, "edge")
            .unwrap()
            .version()
    );
}

#[test]
fn an_unknown_or_undecodable_typed_config_is_a_diagnostic_naming_object_and_field() {
    let mut objects = base();
    objects.extend(doc(r#"[
        {"kind":"Listener","name":"unknown","port":8081,
         "http_filters":[{"name":"x.auth","typed_config":{"@type":"type.googleapis.com/no.such.Auth"}}]},
        {"kind":"Listener","name":"badjson","port":8082,
         "http_filters":[{"name":"envoy.filters.http.buffer","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer","max_request_bytes":"lots"}}]},
        {"kind":"Listener","name":"router","port":8083,
         "http_filters":[{"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]},
        {"kind":"Cluster","name":"h2","protocol":"http2","typed_extension_protocol_options":{
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions":{"@type":"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"}}},
        {"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],
         "routes":[{"name":"ok","forward":{"backends":[{"cluster":"web"}]}},
                   {"name":"bad","match":{"path":{"prefix":"/bad"}},"forward":{"backends":[{"cluster":"web"}]},
                    "typed_per_filter_config":{"envoy.filters.http.cors":{"@type":"type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy","nope":1}}}]}]"#));
    let mut c = compile(objects);
    // Undecodable protobuf bytes, from Rust.
    let mut l = Listener::new("bytes", 8084);
    l.http_filters.push(NamedExtension::new(
        "envoy.filters.http.buffer",
        TypedConfig::Proto {
            type_url: "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer".into(),
            value: Bytes::from_static(&[0x0a, 0x05, 0x01]),
        },
    ));
    c = c.apply([Change::upsert(l)]);
    let e = errors(&c);
    let has = |needle: &str| e.iter().any(|x| x.contains(needle));
    assert!(
        has("Listener/unknown") && has("http_filters[0].typed_config") && has("no.such.Auth"),
        "{e:#?}"
    );
    assert!(
        has("Listener/badjson")
            && has("not a valid envoy.extensions.filters.http.buffer.v3.Buffer"),
        "{e:#?}"
    );
    assert!(has("Listener/bytes") && has("does not decode"), "{e:#?}");
    assert!(
        has("Listener/router") && has("http_filters[0].name"),
        "{e:#?}"
    );
    assert!(
        has("Cluster/h2") && has("already set by `protocol: http2`"),
        "{e:#?}"
    );
    assert!(
        has("VirtualHost/site")
            && has("routes[bad].typed_per_filter_config[\"envoy.filters.http.cors\"]"),
        "{e:#?}"
    );
    for l in ["unknown", "badjson", "router", "bytes"] {
        assert!(
            c.snapshot().get(ResourceType::Listener, l).is_none(),
            "{l} served"
        );
    }
    assert!(c.snapshot().get(ResourceType::Cluster, "h2").is_none());
    let names: Vec<_> = routes(&c, "http").virtual_hosts[0]
        .routes
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["ok"], "the bad route is left out, the rest served");
}
