//! Raw Envoy resources through the compiler: decoding, canonical bytes, references, conflicts
//! and the incremental edges; one `compile` helper drives the public API.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3 as ecluster;
use envoy_types::pb::envoy::config::route::v3 as eroute;
use envoy_types::pb::google::protobuf::Any;
use serde_json::json;

use crate::compile::Compiled;
use crate::model::{self, Change, Kind, Model, Object, ObjectKey, Raw};
use crate::snapshot::ResourceType;

fn compile(objects: Vec<Object>) -> Compiled {
    Compiled::new(&Model::from_objects(objects))
}

fn diags(c: &Compiled) -> Vec<String> {
    c.diagnostics().iter().map(ToString::to_string).collect()
}

fn raw<M: model::RawMessage>(v: serde_json::Value) -> Raw<M>
where
    Object: From<Raw<M>>,
{
    Raw::from_json(v).expect("names the resource")
}

fn eds_cluster(name: &str) -> Object {
    raw::<ecluster::Cluster>(json!({
        "name": name, "type": "EDS", "connect_timeout": "1s",
        "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}
    }))
    .into()
}

fn rds_listener(name: &str, port: u16, rc: &str) -> Object {
    raw::<envoy_types::pb::envoy::config::listener::v3::Listener>(json!({
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "rds": {"route_config_name": rc, "config_source": {"ads": {}, "resource_api_version": "V3"}},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
        }}]}]
    }))
    .into()
}

fn raw_routes(name: &str, cluster: &str) -> Object {
    raw::<eroute::RouteConfiguration>(json!({
        "name": name,
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": cluster}}
        ]}]
    }))
    .into()
}

fn model_objects(json: serde_json::Value) -> Vec<Object> {
    serde_json::from_value(json).expect("model objects")
}

#[test]
fn raw_resources_serve_beside_compiled_ones_and_refer_to_them() {
    // A raw listener fetching the compiled route configuration "rc", a raw EDS cluster fed by
    // a model Endpoints object, a model virtual host forwarding to the raw cluster.
    let mut objects = vec![eds_cluster("web"), rds_listener("edge", 10000, "rc")];
    objects.extend(model_objects(json!([
        {"kind": "VirtualHost", "name": "site", "listeners": ["rc"], "domains": ["*"],
         "routes": [{"name": "all", "forward": {"backends": [{"cluster": "web"}]}}]},
        {"kind": "Endpoints", "name": "web", "localities": [{"endpoints": [{"address": "10.0.0.1", "port": 80}]}]}
    ])));
    let c = compile(objects);
    assert!(diags(&c).is_empty(), "{:?}", diags(&c));
    let s = c.snapshot();
    let cl = s
        .get(ResourceType::Cluster, "web")
        .expect("raw cluster served");
    assert_eq!(cl.provenance(), [ObjectKey::new(Kind::EnvoyCluster, "web")]);
    let eps = s
        .get(ResourceType::Endpoint, "web")
        .expect("its load assignment");
    assert_eq!(
        eps.provenance(),
        [
            ObjectKey::new(Kind::EnvoyCluster, "web"),
            ObjectKey::new(Kind::Endpoints, "web")
        ]
    );
    assert!(s.get(ResourceType::Listener, "edge").is_some());
    let rc = s
        .get(ResourceType::Route, "rc")
        .expect("the compiled route configuration");
    assert!(
        rc.provenance()
            .contains(&ObjectKey::new(Kind::EnvoyListener, "edge"))
    );
    let out = crate::oracle::evaluate(s, &crate::oracle::Request::new("edge", "a.example", "/x"));
    assert!(format!("{out:?}").contains("web"), "{out:?}");
}

#[test]
fn a_prost_message_and_its_envoy_json_give_the_same_bytes() {
    let msg = ecluster::Cluster {
        name: "web".into(),
        typed_extension_protocol_options: [
            (
                "b.ext".to_owned(),
                Any {
                    type_url: "type.googleapis.com/google.protobuf.Struct".into(),
                    value: vec![],
                },
            ),
            (
                "a.ext".to_owned(),
                Any {
                    type_url: "type.googleapis.com/google.protobuf.Struct".into(),
                    value: vec![],
                },
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let from_rust = compile(vec![Raw::from_message(&msg).into()]);
    let json = serde_json::to_value(Object::from(Raw::from_message(&msg))).unwrap();
    let back: Object = serde_json::from_value(json.clone()).unwrap();
    assert!(matches!(back.key().kind, Kind::EnvoyCluster), "{json}");
    let from_json = compile(vec![back]);
    assert!(diags(&from_rust).is_empty(), "{:?}", diags(&from_rust));
    assert_eq!(from_rust.snapshot(), from_json.snapshot());
    let body = from_rust
        .snapshot()
        .get(ResourceType::Cluster, "web")
        .unwrap()
        .body()
        .clone();
    let a = body.windows(5).position(|w| w == b"a.ext").unwrap();
    let b = body.windows(5).position(|w| w == b"b.ext").unwrap();
    assert!(a < b, "map entries sorted by key");
}

#[test]
fn bad_raw_resources_are_diagnostics_naming_object_and_field() {
    let unknown_field =
        raw::<ecluster::Cluster>(json!({"name": "a", "connect_timeout": "1s", "bogus": 1}));
    let bad_any = raw::<eroute::RouteConfiguration>(
        json!({"name": "b", "virtual_hosts": [{"name": "v", "domains": ["*"],
        "typed_per_filter_config": {"f": {"@type": "type.googleapis.com/no.such.Message"}}}]}),
    );
    let mut listener = envoy_types::pb::envoy::config::listener::v3::Listener {
        name: "c".into(),
        ..Default::default()
    };
    listener.listener_filters.push(envoy_types::pb::envoy::config::listener::v3::ListenerFilter {
        name: "x".into(),
        config_type: Some(envoy_types::pb::envoy::config::listener::v3::listener_filter::ConfigType::TypedConfig(Any {
            type_url: "type.googleapis.com/no.such.Filter".into(),
            value: vec![1, 2, 3],
        })),
        ..Default::default()
    });
    let undecodable = Any {
        type_url: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router".into(),
        value: vec![0xff, 0xff],
    };
    let mut listener2 = listener.clone();
    listener2.name = "d".into();
    if let Some(
        envoy_types::pb::envoy::config::listener::v3::listener_filter::ConfigType::TypedConfig(a),
    ) = &mut listener2.listener_filters[0].config_type
    {
        *a = undecodable;
    }
    let c = compile(vec![
        unknown_field.into(),
        bad_any.into(),
        Raw::from_message(&listener).into(),
        Raw::from_message(&listener2).into(),
    ]);
    let d = diags(&c);
    let find = |prefix: &str| {
        d.iter()
            .find(|x| x.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {d:#?}"))
            .clone()
    };
    assert!(find("error: EnvoyCluster/a: resource.bogus:").contains("bogus"));
    find("error: EnvoyRouteConfiguration/b: resource.virtual_hosts[0].typed_per_filter_config");
    assert!(
        find("error: EnvoyListener/c: resource.listener_filters[0].typed_config:")
            .contains("no.such.Filter")
    );
    assert!(
        find("error: EnvoyListener/d: resource.listener_filters[0].typed_config:")
            .contains("does not decode")
    );
    assert!(
        c.snapshot().is_empty(),
        "nothing half-formed: {:?}",
        c.snapshot()
    );

    // A raw resource whose name a compiled object of its type has: the compiled one wins.
    let mut objects = model_objects(json!([{"kind": "Cluster", "name": "web"}]));
    objects.push(eds_cluster("web"));
    let c = compile(objects);
    assert_eq!(
        diags(&c),
        [
            "error: EnvoyCluster/web: resource: cluster \"web\" is also claimed by Cluster/web, which takes precedence"
        ]
    );
    let served = c.snapshot().get(ResourceType::Cluster, "web").unwrap();
    assert_eq!(served.provenance(), [ObjectKey::new(Kind::Cluster, "web")]);

    // An @type that is not the document kind's, and a document without the name.
    for bad in [
        json!({"kind": "EnvoyCluster", "resource": {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "x"}}),
        json!({"kind": "EnvoyClusterLoadAssignment", "resource": {"endpoints": []}}),
    ] {
        let e = serde_json::from_value::<Object>(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("@type") || e.contains("cluster_name"), "{e}");
    }
}

#[test]
fn references_are_checked_as_compiled_ones_are() {
    let tls_listener = || -> Object {
        raw::<envoy_types::pb::envoy::config::listener::v3::Listener>(json!({
            "name": "tls",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8443}},
            "filter_chains": [{
                "transport_socket": {"name": "tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "cert", "sds_config": {"ads": {}, "resource_api_version": "V3"}}]}}},
                "filters": [{"name": "tcp", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": "tls", "cluster": "db"}}]
            }]
        }))
        .into()
    };
    let c = compile(vec![
        tls_listener(),
        raw_routes("rc", "nowhere"),
        rds_listener("edge", 80, "missing"),
    ]);
    assert_eq!(
        diags(&c),
        [
            "warning: EnvoyListener/edge: resource.filter_chains[0].filters[0].typed_config.rds.route_config_name: refers to EnvoyRouteConfiguration/missing, which does not exist or is invalid",
            "error: EnvoyListener/tls: resource.filter_chains[0].transport_socket: refers to Secret/cert, which does not exist or is invalid",
            "warning: EnvoyListener/tls: resource.filter_chains[0].filters[0].typed_config.cluster: refers to Cluster/db, which does not exist or is invalid",
            "warning: EnvoyRouteConfiguration/rc: resource.virtual_hosts[0].routes[0].route.cluster: refers to Cluster/nowhere, which does not exist or is invalid",
        ]
    );
    let s = c.snapshot();
    assert!(
        s.get(ResourceType::Listener, "tls").is_none(),
        "left out without its secret"
    );
    assert!(
        s.get(ResourceType::Route, "rc").is_some(),
        "served: Envoy answers 503"
    );
    assert!(
        s.get(ResourceType::Route, "missing").is_some(),
        "served empty"
    );

    // The secret arrives (raw), then the cluster (compiled): each fixes what named it.
    let secret = raw::<envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret>(
        json!({
            "name": "cert", "tls_certificate": {"certificate_chain": {"inline_string": "C"}, "private_key": {"inline_string": "K"}}
        }),
    );
    let c2 = c.apply([Change::upsert(secret)]);
    assert!(c2.snapshot().get(ResourceType::Listener, "tls").is_some());
    let c3 = c2.apply(
        model_objects(
            json!([{"kind": "Cluster", "name": "db"}, {"kind": "Cluster", "name": "nowhere"}]),
        )
        .into_iter()
        .map(Change::upsert),
    );
    assert_eq!(diags(&c3).len(), 1, "{:?}", diags(&c3));
    let full = Compiled::new(c3.model());
    assert_eq!(full.snapshot(), c3.snapshot());
    assert_eq!(full.diagnostics(), c3.diagnostics());
}

#[test]
fn a_change_recompiles_only_what_depends_on_it() {
    let mut objects = vec![
        eds_cluster("web"),
        rds_listener("edge", 10000, "rc"),
        raw_routes("rc", "web"),
    ];
    objects.extend(model_objects(json!([{"kind": "Cluster", "name": "other"}])));
    let first = compile(objects);
    assert!(diags(&first).is_empty(), "{:?}", diags(&first));
    let get = |c: &Compiled, t, n: &str| c.snapshot().get(t, n).unwrap().clone();

    // An unrelated compiled change: every raw resource keeps its allocation and version.
    let next = first.apply([Change::upsert(model::Endpoints::new(
        "other",
        [model::Endpoint::new("10.0.0.9", 80)],
    ))]);
    for (t, n) in [
        (ResourceType::Cluster, "web"),
        (ResourceType::Listener, "edge"),
        (ResourceType::Route, "rc"),
    ] {
        assert!(
            Arc::ptr_eq(&get(&first, t, n), &get(&next, t, n)),
            "{t} {n}"
        );
    }
    assert_eq!(next.stats().resources_built, 1);

    // The raw route configuration changes: only it is rebuilt.
    let next = first.apply([Change::upsert(raw_routes("rc", "other"))]);
    assert_eq!(next.stats().resources_built, 1);
    assert_ne!(
        get(&first, ResourceType::Route, "rc").version(),
        get(&next, ResourceType::Route, "rc").version()
    );
    assert!(Arc::ptr_eq(
        &get(&first, ResourceType::Listener, "edge"),
        &get(&next, ResourceType::Listener, "edge")
    ));

    // The same raw resource given again (as a new allocation): nothing changes.
    let again = first.apply([Change::upsert(eds_cluster("web"))]);
    assert_eq!(again.stats().objects_changed, 0);

    // The raw cluster goes: its endpoints go, the route configuration warns.
    let gone = first.apply([Change::Delete(ObjectKey::new(Kind::EnvoyCluster, "web"))]);
    assert!(gone.snapshot().get(ResourceType::Endpoint, "web").is_none());
    assert_eq!(diags(&gone).len(), 1, "{:?}", diags(&gone));
    let full = Compiled::new(gone.model());
    assert_eq!(full.snapshot(), gone.snapshot());
    assert_eq!(full.diagnostics(), gone.diagnostics());
}

/// The example of docs/embedding.md ("Raw Envoy resources"), kept compiling.
#[test]
fn the_embedding_guide_example_holds() {
    use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
    let legacy = Cluster {
        name: "legacy".into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::StrictDns as i32,
        )),
        ..Default::default()
    };
    let routes = Raw::<eroute::RouteConfiguration>::from_json(json!({
        "name": "legacy-routes",
        "virtual_hosts": [{"name": "all", "domains": ["*"],
                           "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "legacy"}}]}]
    }))
    .expect("names the resource");
    let mut web = model::Listener::new("web", 10000);
    web.route_config = Some("legacy-routes".into());
    let compiled = Compiled::new(&Model::from_objects([
        Object::Listener(web),
        Object::from(Raw::from_message(&legacy)),
        Object::from(routes),
    ]));
    assert!(compiled.diagnostics().is_empty(), "{:?}", diags(&compiled));
    let rc = compiled
        .snapshot()
        .get(ResourceType::Route, "legacy-routes")
        .unwrap();
    assert_eq!(
        rc.provenance(),
        [ObjectKey::new(
            Kind::EnvoyRouteConfiguration,
            "legacy-routes"
        )]
    );
}
