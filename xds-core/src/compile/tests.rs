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
