//! End to end with the real Envoy: the server, two backends and Envoy over ADS (state of the
//! world and delta). Traffic reaches backend one, moves to backend two when a new snapshot is
//! published, Envoy's /config_dump shows the published versions and /debug/clients no NACK.
//! Then a listener Envoy rejects is injected: the NACK is visible, not resent, and Envoy keeps
//! serving the previous config until a good snapshot is acknowledged. Raw Envoy resources (a
//! cluster and its load assignment) are served and followed the same way. And Envoy lists its
//! endpoint subscription as `FakeEnvoy` (and so `xdsc-load --named`) assumes it does.

use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3 as elistener;
use prost::Message;
use serde_json::{Value, json};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Model, Object};
use xdsc_core::snapshot::{Resource, ResourceType, Snapshot};
use xdsc_server::events::{Events, StreamEvent};
use xdsc_server::testing::listed_as_envoy_lists;
use xdsc_server::{Publisher, XdsServer};
use xdsc_test_support::{Backend, Envoy, ads_bootstrap, find_envoy, free_port, http_get, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn snapshot(listen_port: u16, cluster: &str, backends: &[(&str, &Backend)]) -> Snapshot {
    let mut docs = vec![
        json!({"kind":"Listener","name":"http","address":"127.0.0.1","port":listen_port}),
        json!({"kind":"VirtualHost","name":"all","listeners":["http"],"domains":["*"],
               "routes":[{"name":"r","forward":{"backends":[{"cluster":cluster}],"timeout":"5s"}}]}),
    ];
    for (name, b) in backends {
        docs.push(json!({"kind":"Cluster","name":name,"connect_timeout":"1s"}));
        docs.push(json!({"kind":"Endpoints","name":name,"localities":[{"endpoints":[{"address":"127.0.0.1","port":b.addr.port()}]}]}));
    }
    let objects: Vec<Object> = serde_json::from_value(Value::Array(docs)).expect("model");
    let c = Compiled::new(&Model::from_objects(objects));
    assert!(c.diagnostics().is_empty(), "{:?}", c.diagnostics());
    c.snapshot().clone()
}

struct Harness {
    _rt: tokio::runtime::Runtime,
    publisher: Publisher,
    admin_port: u16,
    envoy: Envoy,
    listen_port: u16,
    /// The server's stream events (the requests Envoy sent among them).
    events: Events,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn start(binary: &std::path::Path, delta: bool, first: Snapshot, listen_port: u16) -> Harness {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let publisher = Publisher::new();
    publisher.publish("default", first);
    let (observer, events) = xdsc_server::events::observer(4096);
    let server = XdsServer::new(publisher.clone()).with_observer(observer);
    let admin = server.admin();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let (xds, http) = rt.block_on(async {
        let xds = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind xds");
        let http = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind admin");
        (xds, http)
    });
    let xds_port = xds.local_addr().expect("xds address").port();
    let admin_port = http.local_addr().expect("admin address").port();
    rt.spawn(server.serve(xds, until_stopped(stopped.clone())));
    rt.spawn(admin.serve(http, until_stopped(stopped)));
    let envoy_admin = free_port();
    let envoy = Envoy::start(
        binary,
        &ads_bootstrap("e2e", "default", xds_port, envoy_admin, delta),
        envoy_admin,
    );
    Harness {
        _rt: rt,
        publisher,
        admin_port,
        envoy,
        listen_port,
        events,
        _stop: stop,
    }
}

impl Harness {
    fn until_body(&self, want: &str) {
        let got = wait_for(WAIT, || {
            match http_get(self.listen_port, "example.com", "/") {
                Some((200, body)) if body == want => Some(()),
                _ => None,
            }
        });
        assert!(
            got.is_some(),
            "traffic never reached {want}; last answer {:?}\nenvoy log:\n{}",
            http_get(self.listen_port, "example.com", "/"),
            self.envoy.log_tail()
        );
    }

    fn ours(&self, path: &str) -> String {
        http_get(self.admin_port, "localhost", path)
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    fn clients(&self) -> Value {
        serde_json::from_str(&self.ours("/debug/clients")).expect("clients json")
    }

    fn metric(&self, name: &str) -> u64 {
        self.ours("/metrics")
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

fn nacks(clients: &Value) -> Vec<Value> {
    clients
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["types"].as_array().cloned().unwrap_or_default())
        .filter(|t| !t["last_nack"].is_null())
        .collect()
}

fn traffic_moves(delta: bool) {
    let Some(binary) = find_envoy() else { return };
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let h = start(&binary, delta, snapshot(port, "one", &[("one", &a)]), port);
    h.until_body("backend-a");
    let second = snapshot(port, "two", &[("one", &a), ("two", &b)]);
    let route_version = second
        .get(ResourceType::Route, "http")
        .expect("routes")
        .version()
        .to_string();
    let listeners_version = second
        .resources(ResourceType::Listener)
        .version()
        .to_string();
    h.publisher.publish("default", second);
    h.until_body("backend-b");
    let dump = wait_for(WAIT, || {
        let d = h.envoy.admin("/config_dump")?;
        d.contains(if delta {
            &route_version
        } else {
            &listeners_version
        })
        .then_some(d)
    });
    assert!(
        dump.is_some(),
        "config_dump never showed the published version"
    );
    let clients = h.clients();
    assert_eq!(clients.as_array().map(Vec::len), Some(1), "{clients:#}");
    assert!(nacks(&clients).is_empty(), "{clients:#}");
    assert_eq!(clients[0]["variant"], if delta { "delta" } else { "sotw" });
}

#[test]
fn sotw_ads_routes_traffic_and_follows_a_new_snapshot() {
    traffic_moves(false);
}

#[test]
fn delta_ads_routes_traffic_and_follows_a_new_snapshot() {
    traffic_moves(true);
}

#[test]
fn a_rejected_listener_is_recorded_not_resent_and_the_old_config_keeps_serving() {
    let Some(binary) = find_envoy() else { return };
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let good = snapshot(port, "one", &[("one", &a)]);
    let h = start(&binary, false, good.clone(), port);
    h.until_body("backend-a");
    // A listener Envoy rejects (a filter it does not know), injected through the embedding API.
    let listener = elistener::Listener::decode(
        good.get(ResourceType::Listener, "http")
            .unwrap()
            .body()
            .clone(),
    )
    .unwrap();
    let mut broken = listener.clone();
    broken.filter_chains[0].filters[0].name = "xdsc.test.unknown_filter".into();
    broken.filter_chains[0].filters[0].config_type = Some(
        elistener::filter::ConfigType::TypedConfig(envoy_types::pb::google::protobuf::Any {
            type_url: "type.googleapis.com/xdsc.test.Unknown".into(),
            value: vec![],
        }),
    );
    let bad = good.clone().with(Resource::new(
        ResourceType::Listener,
        "http",
        broken.encode_to_vec(),
        vec![],
    ));
    h.publisher.publish("default", bad.clone());
    let nack = wait_for(WAIT, || nacks(&h.clients()).into_iter().next());
    let nack =
        nack.unwrap_or_else(|| panic!("no NACK recorded; envoy log:\n{}", h.envoy.log_tail()));
    assert_eq!(nack["type"], "listeners");
    assert!(
        !nack["last_nack"]["detail"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{nack:#}"
    );
    assert_eq!(h.metric("xdsc_nacks_total{type=\"listeners\"}"), 1);
    // Not resent, even when the same content is published again.
    let pushes = h.metric("xdsc_pushes_total{type=\"listeners\"}");
    h.publisher.publish("default", bad);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        h.metric("xdsc_pushes_total{type=\"listeners\"}"),
        pushes,
        "the rejected version was sent again"
    );
    assert_eq!(h.metric("xdsc_nacks_total{type=\"listeners\"}"), 1);
    // Envoy keeps serving the previous config.
    assert_eq!(
        http_get(port, "example.com", "/"),
        Some((200, "backend-a".to_owned()))
    );
    // A good snapshot is sent, acknowledged and served.
    let fixed = snapshot(port, "two", &[("one", &a), ("two", &b)]);
    let version = fixed
        .resources(ResourceType::Listener)
        .version()
        .to_string();
    h.publisher.publish("default", fixed);
    h.until_body("backend-b");
    let acked = wait_for(WAIT, || {
        let c = h.clients();
        let types = c[0]["types"].as_array()?.clone();
        types
            .iter()
            .any(|t| t["type"] == "listeners" && t["version_acked"] == version.as_str())
            .then_some(())
    });
    assert!(
        acked.is_some(),
        "the fixed listeners were never acknowledged: {:#}",
        h.clients()
    );
}

/// A raw Envoy cluster (EDS over ADS, with metadata in a map) and its raw load assignment,
/// as model documents, routed to by a model virtual host.
fn raw_snapshot(listen_port: u16, backend: &Backend) -> Snapshot {
    let docs = json!([
        {"kind":"Listener","name":"http","address":"127.0.0.1","port":listen_port},
        {"kind":"VirtualHost","name":"all","listeners":["http"],"domains":["*"],
         "routes":[{"name":"r","forward":{"backends":[{"cluster":"legacy"}],"timeout":"5s"}}]},
        {"kind":"EnvoyCluster","resource":{"name":"legacy","type":"EDS","connect_timeout":"1s",
            "eds_cluster_config":{"eds_config":{"ads":{},"resource_api_version":"V3"}},
            "metadata":{"filter_metadata":{"xdsc.test":{"owner":"raw"},"a.test":{"n":1}}}}},
        {"kind":"EnvoyClusterLoadAssignment","resource":{"cluster_name":"legacy","endpoints":[{"lb_endpoints":[
            {"endpoint":{"address":{"socket_address":{"address":"127.0.0.1","port_value":backend.addr.port()}}}}]}]}}
    ]);
    let objects: Vec<Object> = serde_json::from_value(docs).expect("model");
    let c = Compiled::new(&Model::from_objects(objects));
    assert!(c.diagnostics().is_empty(), "{:?}", c.diagnostics());
    c.snapshot().clone()
}

#[test]
fn raw_envoy_resources_are_served_to_envoy() {
    let Some(binary) = find_envoy() else { return };
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let first = raw_snapshot(port, &a);
    let h = start(&binary, false, first.clone(), port);
    h.until_body("backend-a");
    let second = raw_snapshot(port, &b);
    // Only the raw load assignment changed.
    let diff = first.diff(&second);
    assert_eq!(
        diff.changed_types().collect::<Vec<_>>(),
        [ResourceType::Endpoint]
    );
    h.publisher.publish("default", second);
    h.until_body("backend-b");
    let dump = h.envoy.admin("/config_dump").unwrap_or_default();
    assert!(
        dump.contains("xdsc.test") && dump.contains("\"legacy\""),
        "{dump}"
    );
    assert!(nacks(&h.clients()).is_empty(), "{:#}", h.clients());
}

/// The endpoint names of each state-of-the-world EDS request Envoy has sent so far, as listed.
fn endpoint_requests(events: &mut Events) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    while let Some(event) = events.try_recv() {
        if let StreamEvent::Request { request, .. } = event
            && request.type_url == ResourceType::Endpoint.type_url()
        {
            out.push(request.resource_names.iter().map(str::to_owned).collect());
        }
    }
    out
}

/// `FakeEnvoy` lists a named subscription as Envoy 1.40 was seen to: one name per cluster it
/// holds, in an order of its own (not sorted), the same list again in every acknowledgement,
/// and the names of new clusters in front of the ones it kept, in their order
/// (`listed_as_envoy_lists`, with which `tests/grpc.rs` checks the fake Envoy). The server's
/// fast paths for named acknowledgements were built and measured (`xdsc-load --named`)
/// against that; if an Envoy release lists them otherwise, this fails and the fake Envoy
/// must follow.
#[test]
fn envoy_lists_its_endpoint_subscription_as_the_fake_envoy_does() {
    let Some(binary) = find_envoy() else { return };
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let names: Vec<String> = (0..15).map(|i| format!("c{i:02}")).collect();
    // The first `n` clusters, all at backend a but c00 (routed to) at `to`.
    let clusters = |n: usize, to: &Backend| {
        let mut c: Vec<(&str, &Backend)> = names[..n].iter().map(|n| (n.as_str(), &a)).collect();
        c[0].1 = to;
        snapshot(port, "c00", &c)
    };
    let mut h = start(&binary, false, clusters(12, &a), port);
    h.until_body("backend-a");
    // Three clusters more, then an endpoint change (c00 moves to backend b), which Envoy
    // acknowledges with its whole list again.
    h.publisher.publish("default", clusters(15, &a));
    let held_all = wait_for(WAIT, || {
        let d = h.envoy.admin("/clusters")?;
        names
            .iter()
            .all(|n| d.contains(&format!("{n}::")))
            .then_some(())
    });
    assert!(held_all.is_some(), "{}", h.envoy.log_tail());
    h.publisher.publish("default", clusters(15, &b));
    h.until_body("backend-b");
    std::thread::sleep(Duration::from_secs(1));
    let lists = endpoint_requests(&mut h.events);
    assert_eq!(h.events.dropped(), 0);

    let mut sorted: Vec<String> = lists.last().cloned().unwrap_or_default();
    sorted.sort();
    assert_eq!(
        sorted, names,
        "the last list names every cluster once: {lists:?}"
    );
    let first_full = lists
        .iter()
        .find(|l| l.len() == 12)
        .unwrap_or_else(|| panic!("no list of the first 12 clusters: {lists:?}"));
    let mut in_order = first_full.clone();
    in_order.sort();
    assert_ne!(
        &in_order, first_full,
        "Envoy listed its clusters sorted: the fake Envoy's order is no longer Envoy's"
    );
    if let Err(e) = listed_as_envoy_lists(&lists) {
        panic!("{e}; all of Envoy's lists: {lists:?}");
    }
    let repeats = lists.windows(2).filter(|p| p[0] == p[1]).count();
    assert!(
        repeats >= 1,
        "no acknowledgement repeated the list: {lists:?}"
    );
}
