//! The controller in-process against the test API server: what the watches deliver reaches
//! the snapshot, recovery from cut watches and 410 Gone, status writing apart from serving,
//! leadership, and bursts.

use std::time::{Duration, Instant};

use serde_json::json;
use xdsc_core::snapshot::ResourceType as T;

use xdsc_kube_testserver::{TestServer, Verb};

use crate::support::*;

const CLUSTER: &str = "k8s:shop/web:80";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_scale_delete_reach_the_snapshot_and_scaling_changes_only_eds() {
    let server = TestServer::start().await.unwrap();
    let c = Controller::start(&server, "a", |_| {});
    seed(&server).await;
    let first = c
        .wait("the Ingress routed", |s| {
            endpoint_addresses(s, CLUSTER) == ["10.0.0.1"]
        })
        .await;
    c.ready().await;
    assert!(has(&first, T::Listener, "k8s:ingress-http"));
    assert!(has(&first, T::Cluster, CLUSTER));

    server.put(slice("shop", "web", 3)).unwrap();
    let scaled = c
        .wait("scaled to 3", |s| endpoint_addresses(s, CLUSTER).len() == 3)
        .await;
    for ((t, before), (_, after)) in versions(&first).into_iter().zip(versions(&scaled)) {
        if t == T::Endpoint {
            assert_ne!(before, after, "EDS changed");
        } else {
            assert_eq!(before, after, "{t} unchanged by a scale");
        }
    }

    let api: kube::Api<k8s_openapi::api::networking::v1::Ingress> =
        kube::Api::namespaced(server.client(), "shop");
    api.delete("web", &Default::default()).await.unwrap();
    c.wait("the Ingress removed", |s| !has(s, T::Cluster, CLUSTER))
        .await;
    c.stop().await;
}

/// A controller recovered from cut watches and a 410 holds what a fresh one lists: the same
/// snapshot, version for version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_cut_watches_and_410_the_state_equals_a_fresh_list() {
    let server = TestServer::builder().history(50).start().await.unwrap();
    seed(&server).await;
    for i in 0..5 {
        server.put(service("shop", &format!("s{i}"))).unwrap();
        server
            .put(ingress(
                "shop",
                &format!("i{i}"),
                &format!("h{i}.example"),
                &format!("s{i}"),
            ))
            .unwrap();
    }
    let a = Controller::start(&server, "a", |c| c.lease = None);
    a.ready().await;
    assert!(server.wait_for_watches(9, PATIENCE).await);

    // Cut mid-way: changes land while the streams are broken.
    server.faults().cut_watches();
    server.put(slice("shop", "web", 2)).unwrap();
    server.put(service("shop", "late")).unwrap();

    // Then a gap the history does not cover: deletes and changes nobody sees as events.
    assert!(server.wait_for_watches(9, PATIENCE).await);
    server.faults().pause_watches();
    let ing: kube::Api<k8s_openapi::api::networking::v1::Ingress> =
        kube::Api::namespaced(server.client(), "shop");
    ing.delete("i0", &Default::default()).await.unwrap();
    ing.delete("i1", &Default::default()).await.unwrap();
    server.put(slice("shop", "web", 4)).unwrap();
    server
        .put(ingress("shop", "i9", "h9.example", "s2"))
        .unwrap();
    for i in 0..60 {
        // More writes than the history keeps, so resuming gets 410.
        server
            .put(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("noise{i}"), "namespace": "shop"}}))
            .unwrap();
    }
    server.faults().forget_history();
    server.faults().resume_watches();

    let b = Controller::start(&server, "b", |c| c.lease = None);
    b.ready().await;
    // A replica is ready only once its snapshot holds the whole cluster as listed.
    let fresh = b.snapshot().unwrap();
    if !holds_the_state_after_the_gap(&fresh) {
        let (_, sources) = b.admin("/debug/sources").await;
        let asked: Vec<String> = server
            .faults()
            .requests()
            .iter()
            .filter(|r| r.token.as_deref() == Some("b"))
            .map(|r| format!("{} {}?{} -> {}", r.method, r.path, r.query, r.code))
            .collect();
        panic!(
            "b was ready with an incomplete snapshot: {:?}; b's sources: {sources}; b's requests: {asked:#?}",
            summary(&fresh)
        );
    }
    let recovered = {
        let start = Instant::now();
        loop {
            let now = a.snapshot();
            if let Some(s) = now.as_ref().filter(|s| s.version() == fresh.version()) {
                break s.clone();
            }
            if start.elapsed() > 2 * PATIENCE {
                // Say how they differ, to tell a slow recovery from a wrong one.
                let diff: Vec<String> = T::ALL
                    .iter()
                    .flat_map(|t| {
                        let (x, y) = (now.as_ref().map(|s| s.resources(*t)), fresh.resources(*t));
                        let names =
                            |m: Option<&xdsc_core::snapshot::Resources>| -> Vec<(String, String)> {
                                m.into_iter()
                                    .flat_map(|m| {
                                        m.iter()
                                            .map(|r| (r.name().to_owned(), r.version().to_string()))
                                    })
                                    .collect()
                            };
                        let (x, y) = (names(x), names(Some(y)));
                        let only_a: Vec<String> = x
                            .iter()
                            .filter(|e| !y.contains(e))
                            .map(|e| format!("{t} a:{}@{}", e.0, e.1))
                            .collect();
                        let only_b: Vec<String> = y
                            .iter()
                            .filter(|e| !x.contains(e))
                            .map(|e| format!("{t} b:{}@{}", e.0, e.1))
                            .collect();
                        only_a.into_iter().chain(only_b)
                    })
                    .collect();
                let (_, sources) = a.admin("/debug/sources").await;
                let (_, b_sources) = b.admin("/debug/sources").await;
                panic!(
                    "a never reached the fresh state; differences: {diff:?}; a's sources: {sources}; b's sources: {b_sources}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(versions(&recovered), versions(&fresh));
    assert!(holds_the_state_after_the_gap(&recovered));
    let (_, sources) = a.admin("/debug/sources").await;
    let v: serde_json::Value = serde_json::from_str(&sources).unwrap();
    let relists: u64 = v["watches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["relists"].as_u64().unwrap())
        .sum();
    assert!(relists >= 1, "the 410 made watches relist: {sources}");
    a.stop().await;
    b.stop().await;
}

/// What the cluster holds after the cut and the gap: four endpoints, the Ingresses deleted
/// in the gap gone, the one created in it present.
fn holds_the_state_after_the_gap(s: &xdsc_core::snapshot::Snapshot) -> bool {
    let d = domains(s);
    let has = |h: &str| d.iter().any(|x| x == h);
    endpoint_addresses(s, CLUSTER).len() == 4
        && !has("h0.example")
        && !has("h1.example")
        && has("h9.example")
        && has("h4.example")
}

/// Each type's resource names, to say what a snapshot holds.
fn summary(s: &xdsc_core::snapshot::Snapshot) -> Vec<(String, Vec<String>)> {
    T::ALL
        .iter()
        .map(|t| {
            let names = s
                .resources(*t)
                .iter()
                .map(|r| r.name().to_owned())
                .collect();
            (t.to_string(), names)
        })
        .collect()
}

/// Status writes held 10 s by the API server do not hold endpoint changes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_status_writes_never_delay_endpoint_changes() {
    let server = TestServer::start().await.unwrap();
    server.faults().delay_status_writes(Duration::from_secs(10));
    let c = Controller::start(&server, "a", |c| {
        c.translation.ingress_status_addresses = vec!["192.0.2.10".into()];
    });
    seed(&server).await;
    c.wait("routed", |s| endpoint_addresses(s, CLUSTER).len() == 1)
        .await;
    // The Ingress status write is now held by the server; change endpoints meanwhile.
    for n in 2..=4 {
        let started = Instant::now();
        server.put(slice("shop", "web", n)).unwrap();
        c.wait("the new endpoints", |s| {
            endpoint_addresses(s, CLUSTER).len() == n
        })
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "an endpoint change waited {:?} behind a status write",
            started.elapsed()
        );
    }
    // The status does arrive, after the delay.
    wait_status_ip(&server, "web", "192.0.2.10", Duration::from_secs(30)).await;
    c.stop().await;
}

fn status_writers(server: &TestServer) -> Vec<String> {
    let mut w: Vec<String> = server
        .faults()
        .writes()
        .into_iter()
        .filter(|w| {
            w.subresource.as_deref() == Some("status") && w.verb == Verb::Patch && w.code < 300
        })
        .filter_map(|w| w.token)
        .collect();
    w.dedup();
    w
}

async fn lease_holder(server: &TestServer) -> Option<String> {
    server
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("default"),
            "xdsc-kube",
        )
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

async fn wait_holder(server: &TestServer, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if lease_holder(server).await.as_deref() == Some(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{want} did not take the Lease within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_status_ip(server: &TestServer, name: &str, ip: &str, within: Duration) {
    let start = Instant::now();
    loop {
        let v = server
            .get("networking.k8s.io/v1", "Ingress", Some("shop"), name)
            .unwrap();
        if v["status"]["loadBalancer"]["ingress"][0]["ip"] == ip {
            return;
        }
        assert!(
            start.elapsed() < within,
            "status of {name} never written: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two controllers: only the Lease holder writes status; when it stops (gracefully, or by
/// crashing) the other takes over within the Lease duration and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_status_and_the_other_takes_over() {
    let server = TestServer::start().await.unwrap();
    seed(&server).await;
    // Each replica would write a different address, so a write by a non-leader shows.
    let address = |ip: &'static str| {
        move |c: &mut xdsc_kube_controller::Config| {
            c.translation.ingress_status_addresses = vec![ip.into()];
        }
    };
    let a = Controller::start(&server, "a", address("192.0.2.1"));
    wait_holder(&server, "a", PATIENCE).await;
    let b = Controller::start(&server, "b", address("192.0.2.2"));
    a.ready().await;
    b.ready().await;
    wait_status_ip(&server, "web", "192.0.2.1", PATIENCE).await;
    server
        .put(ingress("shop", "second", "second.example", "web"))
        .unwrap();
    wait_status_ip(&server, "second", "192.0.2.1", PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status_writers(&server),
        ["a"],
        "only the leader wrote status"
    );
    assert_eq!(b.metric("xdsc_kube_leader").await, 0.0);
    assert_eq!(a.metric("xdsc_kube_leader").await, 1.0);

    // Graceful stop: the Lease is released, b takes it at its next try and writes every
    // status that differs from its own once.
    a.stop().await;
    let took = wait_holder(&server, "b", Duration::from_secs(2)).await;
    eprintln!("takeover after a graceful stop: {took:?}");
    wait_status_ip(&server, "web", "192.0.2.2", PATIENCE).await;
    wait_status_ip(&server, "second", "192.0.2.2", PATIENCE).await;
    assert_eq!(status_writers(&server), ["a", "b"]);

    // A crash: no release; a third replica takes over once the Lease expires.
    let c = Controller::start(&server, "c", address("192.0.2.3"));
    c.ready().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status_writers(&server),
        ["a", "b"],
        "c does not write while b leads"
    );
    b.kill();
    // The Lease (2 s) expires by c's clock from the last renewal it saw; c tries every 200 ms.
    let took = wait_holder(&server, "c", Duration::from_millis(2600)).await;
    eprintln!("takeover after a crash: {took:?}");
    wait_status_ip(&server, "web", "192.0.2.3", PATIENCE).await;
    assert_eq!(status_writers(&server), ["a", "b", "c"]);
    c.stop().await;
}

/// 10,000 updates of EndpointSlices in a burst: translated in a few coalesced batches, and
/// what waits is bounded by the number of slices, not the number of updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_endpoint_updates_is_coalesced() {
    let server = TestServer::builder().history(20_000).start().await.unwrap();
    seed(&server).await;
    for i in 0..10 {
        server.put(service("shop", &format!("s{i}"))).unwrap();
        server
            .put(ingress(
                "shop",
                &format!("i{i}"),
                &format!("h{i}.example"),
                &format!("s{i}"),
            ))
            .unwrap();
    }
    let c = Controller::start(&server, "a", |c| c.lease = None);
    c.ready().await;
    let batches_before = c.metric("xdsc_kube_batches_total").await;
    // Held while written, then delivered as one flood: the burst a relist or a rollout
    // gives, whatever the scheduling of this test's own writes.
    server.faults().pause_watches();
    for n in 0..10_000usize {
        server
            .put(slice("shop", &format!("s{}", n % 10), 1 + n % 7))
            .unwrap();
    }
    // The last write of each slice has a count no earlier write had, so seeing it means the
    // whole flood was delivered (one watch, in order), not a state that recurs in the middle.
    for i in 0..10usize {
        server.put(slice("shop", &format!("s{i}"), 8)).unwrap();
    }
    server.faults().resume_watches();
    for i in 0..10usize {
        c.wait("the last state", |s| {
            endpoint_addresses(s, &format!("k8s:shop/s{i}:80")).len() == 8
        })
        .await;
    }
    let batches = c.metric("xdsc_kube_batches_total").await - batches_before;
    let coalesced = c.metric("xdsc_kube_coalesced_events_total").await;
    let pending_max = c.metric("xdsc_kube_pending_objects_max").await;
    let (_, sources) = c.admin("/debug/sources").await;
    let v: serde_json::Value = serde_json::from_str(&sources).unwrap();
    let slices = v["watches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "EndpointSlice")
        .cloned()
        .unwrap();
    eprintln!(
        "10,010 updates: {batches} batches, {coalesced} events coalesced, at most {pending_max} objects waiting; the EndpointSlice watch: {slices}"
    );
    // Without coalescing each update would be a batch (10,000, none coalesced); the bounds
    // leave room for a loaded machine's stalls (each ends a batch after the hold-off).
    assert!(
        slices["events"].as_u64().unwrap() >= 10_010,
        "every update was delivered: {slices}"
    );
    assert!(batches <= 500.0, "{batches} batches for 10,010 updates");
    assert!(coalesced >= 5_000.0, "{coalesced}");
    assert!(
        pending_max <= 60.0,
        "bounded by the objects, not the updates: {pending_max}"
    );
    c.stop().await;
}

/// An Envoy that rejects the route configuration built from an HTTPRoute: the route's own
/// status says so (`Programmed: False`, `Invalid`, with Envoy's message), and clears when
/// the rejecting stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_resource_puts_envoys_error_into_its_objects_status() {
    use envoy_types::pb::envoy::config::core::v3::Node;
    use xdsc_server::protocol::Request;
    use xdsc_server::testing::AdsClient;

    const GW: &str = "gateway.networking.k8s.io/v1";
    let server = TestServer::start().await.unwrap();
    for o in [
        json!({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "xdsc"},
            "spec": {"controllerName": "xdsc.dev/gateway-controller"}}),
        json!({"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "shop"},
            "spec": {"gatewayClassName": "xdsc", "listeners": [
                {"name": "http", "protocol": "HTTP", "port": 8080}]}}),
        json!({"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["api.example"],
                "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}),
        service("shop", "web"),
        slice("shop", "web", 1),
    ] {
        server.put(o).unwrap();
    }
    let c = Controller::start(&server, "a", |_| {});
    let snapshot = c
        .wait("the route configuration", |s| {
            s.resources(T::Route).len() == 1
        })
        .await;
    let route = snapshot
        .resources(T::Route)
        .iter()
        .next()
        .unwrap()
        .name()
        .to_owned();
    let programmed = |v: &serde_json::Value| {
        v["status"]["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
            .find(|c| c["type"] == "Programmed")
    };
    // `Some(status)`: a Programmed condition with that status; `None`: none (a route's
    // status has none unless Envoy rejected it).
    let wait_programmed = |want: Option<&'static str>| {
        let server = &server;
        async move {
            let start = Instant::now();
            loop {
                let v = server
                    .get(GW, "HTTPRoute", Some("shop"), "api")
                    .unwrap_or_default();
                let got = programmed(&v);
                if got.as_ref().map(|c| c["status"].clone()) == want.map(serde_json::Value::from)
                    && v["status"]["parents"].is_array()
                {
                    return got.unwrap_or_default();
                }
                assert!(start.elapsed() < PATIENCE, "Programmed never {want:?}: {v}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", c.xds_port))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let node = Node {
        id: "envoy-1".into(),
        cluster: "default".into(),
        ..Default::default()
    };
    let first = Request {
        type_url: T::Route.type_url().into(),
        resource_names: vec![route.clone()].into(),
        ..Request::default()
    };
    let mut ads = AdsClient::open(channel, node, false, first).await.unwrap();
    let reply = ads.expect(PATIENCE).await;
    assert_eq!(reply.names(), std::slice::from_ref(&route));
    let detail = format!("Error adding/updating route {route}: invalid regex 'a{{9999}}'");
    // The route's own status first (accepted, nothing rejected), then the NACK.
    wait_programmed(None).await;
    ads.nack(&reply, &[&route], &detail).await;
    let c1 = wait_programmed(Some("False")).await;
    assert_eq!(c1["reason"], "Invalid");
    let message = c1["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("envoy-1") && message.contains(&detail),
        "the message names the Envoy and its error: {message}"
    );
    assert!(c.metric("xdsc_kube_rejected_objects").await >= 1.0);

    // That Envoy goes away: no rejection stands, and the condition goes with it.
    drop(ads);
    wait_programmed(None).await;
    c.stop().await;
}
