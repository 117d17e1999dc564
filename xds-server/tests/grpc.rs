//! In-process protocol tests over the real gRPC transport: the shipped scripted ADS client
//! (`xdsc_server::testing`) plays Envoy through scripted sequences against a server on a free
//! loopback port.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use xdsc_core::snapshot::ResourceType as T;
use xdsc_server::protocol::Request;
use xdsc_server::testing::{
    AdsClient, FakeEnvoy, Reply, Subscription, TestServer, listed_as_envoy_lists, snapshot,
};
use xdsc_server::{Limits, Publisher, SyncLimits, XdsServer};

const STEP: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

async fn server(first: xdsc_core::snapshot::Snapshot, limits: Limits) -> TestServer {
    TestServer::start(first, |x| x.with_limits(limits)).await
}

/// Waits until a metric has a value (no timing assumption beyond the test's own patience).
async fn until_metric(s: &TestServer, name: &str, value: u64) {
    let deadline = tokio::time::Instant::now() + STEP;
    while s.metric(name) != Some(value) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never became {value}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        cluster: "default".into(),
        ..Default::default()
    }
}

fn request(t: T, names: &[&str]) -> Request {
    Request {
        type_url: t.type_url().into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        subscribe: names.iter().map(|n| n.to_string()).collect(),
        ..Request::default()
    }
}

/// A state-of-the-world ADS stream of node `id`, subscribed to every cluster.
async fn open(s: &TestServer, id: &str) -> AdsClient {
    open_as(s, node(id), false, request(T::Cluster, &[])).await
}

async fn open_as(s: &TestServer, node: Node, delta: bool, first: Request) -> AdsClient {
    AdsClient::open(s.channel().await, node, delta, first)
        .await
        .expect("stream")
}

/// Plays the initial exchange like Envoy, checking the order; returns the responses.
async fn settle(c: &mut AdsClient, clusters: &[&str]) -> Vec<Reply> {
    let cds = c.expect(STEP).await;
    assert_eq!(cds.type_url(), T::Cluster.type_url());
    c.subscribe(T::Listener, &[]).await;
    c.ack(&cds, &[]).await;
    c.subscribe(T::Endpoint, clusters).await;
    let eds = c.expect(STEP).await;
    assert_eq!(eds.type_url(), T::Endpoint.type_url());
    c.ack(&eds, clusters).await;
    let lds = c.expect(STEP).await;
    assert_eq!(
        lds.type_url(),
        T::Listener.type_url(),
        "listeners after endpoints"
    );
    c.ack(&lds, &[]).await;
    c.subscribe(T::Route, &["http"]).await;
    let rds = c.expect(STEP).await;
    assert_eq!(rds.type_url(), T::Route.type_url());
    c.ack(&rds, &["http"]).await;
    c.expect_nothing(QUIET).await;
    vec![cds, eds, lds, rds]
}

#[tokio::test]
async fn ack_ordering_and_a_change_of_one_type() {
    let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
    let mut c = open(&s, "n1").await;
    settle(&mut c, &["a", "b"]).await;
    s.publisher
        .publish("default", snapshot("a", &["a", "b"], 81));
    let eds = c.expect(STEP).await;
    assert_eq!((eds.type_url(), eds.len()), (T::Endpoint.type_url(), 2));
    c.ack(&eds, &["a", "b"]).await;
    c.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn nack_then_fix() {
    let s = server(snapshot("a", &["a"], 80), Limits::default()).await;
    let mut c = open(&s, "n1").await;
    settle(&mut c, &["a"]).await;
    s.publisher
        .publish("default", snapshot("a", &["a", "bad"], 80));
    let cds = c.expect(STEP).await;
    c.nack(&cds, &[], "rejected by the test").await;
    c.expect_nothing(QUIET).await; // not resent
    s.publisher
        .publish("default", snapshot("a", &["a", "bad"], 80));
    c.expect_nothing(QUIET).await; // not even when republished
    s.publisher
        .publish("default", snapshot("a", &["a", "good"], 80));
    let fixed = c.expect(STEP).await;
    assert_eq!(fixed.type_url(), T::Cluster.type_url());
    assert_ne!(fixed.version_info(), cds.version_info());
}

#[tokio::test]
async fn a_reconnect_with_held_versions_receives_nothing() {
    let s = server(snapshot("a", &["a"], 80), Limits::default()).await;
    let mut c = open(&s, "n1").await;
    let held = settle(&mut c, &["a"]).await;
    drop(c);
    // A new stream presenting every version it holds.
    let names: [&[&str]; 4] = [&[], &["a"], &[], &["http"]];
    let presenting = |r: &Reply, names: &[&str]| Request {
        version_info: r.version_info().to_owned(),
        ..request(r.resource_type().expect("known type"), names)
    };
    let mut again = open_as(&s, node("n1"), false, presenting(&held[0], names[0])).await;
    for (r, names) in held.iter().zip(names).skip(1) {
        again.send(presenting(r, names)).await;
    }
    again.expect_nothing(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn named_subscriptions_and_unsubscribe() {
    let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
    let mut c = open(&s, "n1").await;
    let cds = c.expect(STEP).await;
    c.ack(&cds, &[]).await;
    c.subscribe(T::Endpoint, &["b"]).await;
    let eds = c.expect(STEP).await;
    assert_eq!(eds.len(), 1, "only the name asked for");
    // Unsubscribe from b, subscribe to a: a arrives.
    c.ack(&eds, &["a"]).await;
    let eds2 = c.expect(STEP).await;
    assert_eq!(eds2.len(), 1);
    c.ack(&eds2, &["a"]).await;
    // Only b's endpoints change: nothing is sent, b is no longer subscribed.
    let b_moved = snapshot("a", &["b"], 99);
    let next =
        snapshot("a", &["a", "b"], 80).with((**b_moved.get(T::Endpoint, "b").unwrap()).clone());
    s.publisher.publish("default", next);
    c.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn delta_removals_over_the_wire() {
    let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
    let mut c = open_as(&s, node("d1"), true, request(T::Endpoint, &["a", "b"])).await;
    let r1 = c.expect(STEP).await;
    assert_eq!(r1.len(), 2);
    c.ack(&r1, &[]).await;
    s.publisher.publish("default", snapshot("a", &["a"], 80));
    let r2 = c.expect(STEP).await;
    assert_eq!(r2.removed(), ["b"]);
    assert!(r2.is_empty());
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_hold_back_another() {
    // 3,000 clusters: the first cluster response (~200 KiB) is larger than an HTTP/2 window,
    // so the server's send to the stalled client really blocks.
    let names: Vec<String> = (0..3000).map(|i| format!("service-{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let s = server(snapshot("service-0000", &refs, 80), Limits::default()).await;
    let stalled = open(&s, "stalled").await; // asks for clusters, never reads
    let mut healthy = open(&s, "healthy").await;
    settle(&mut healthy, &refs).await;
    for port in 81..101 {
        s.publisher
            .publish("default", snapshot("service-0000", &refs, port));
        let eds = healthy.expect(STEP).await;
        assert_eq!((eds.type_url(), eds.len()), (T::Endpoint.type_url(), 3000));
        healthy.ack(&eds, &refs).await;
    }
    drop(stalled);
}

/// One sync permit, and every response counts as large.
fn one_permit(hold: Duration) -> SyncLimits {
    SyncLimits {
        concurrent: 1,
        large_response_bytes: 1,
        hold,
        ..SyncLimits::default()
    }
}

#[tokio::test]
async fn concurrent_syncs_are_bounded_by_the_permits() {
    let s = TestServer::start(snapshot("a", &["a"], 80), |x| {
        x.with_sync_limits(one_permit(Duration::from_secs(3600)))
    })
    .await;
    let mut a = open(&s, "a").await;
    // Like Envoy: ask for endpoints before acknowledging the clusters. The stream keeps its one
    // permit while anything is unacknowledged and needs no second one.
    let cds = a.expect(STEP).await;
    a.subscribe(T::Endpoint, &["a"]).await;
    let eds = a.expect(STEP).await;
    assert_eq!(eds.type_url(), T::Endpoint.type_url());
    until_metric(&s, "xdsc_sync_permits_held", 1).await;
    let mut b = open(&s, "b").await;
    until_metric(&s, "xdsc_sync_permits_waiting", 1).await;
    // Nothing of a is unacknowledged any more: b gets the permit and its clusters.
    a.ack(&eds, &["a"]).await;
    a.ack(&cds, &[]).await;
    assert_eq!(b.expect(STEP).await.type_url(), T::Cluster.type_url());
    until_metric(&s, "xdsc_sync_permits_waiting", 0).await;
    until_metric(&s, "xdsc_sync_permits_held", 1).await;
    drop(b);
    until_metric(&s, "xdsc_sync_permits_held", 0).await;
}

#[tokio::test]
async fn a_stalled_client_gives_its_sync_permit_back() {
    let s = TestServer::start(snapshot("a", &["a"], 80), |x| {
        x.with_sync_limits(one_permit(Duration::from_millis(200)))
    })
    .await;
    let _stalled = open(&s, "stalled").await; // asks for clusters, never acknowledges
    until_metric(&s, "xdsc_sync_permits_held", 1).await;
    let mut healthy = open(&s, "healthy").await;
    settle(&mut healthy, &["a"]).await;
}

#[tokio::test]
async fn a_stream_on_the_default_fallback_switches_when_its_fleet_is_published() {
    let s = server(snapshot("a", &["a"], 80), Limits::default()).await;
    let edge = Node {
        id: "n1".into(),
        cluster: "edge".into(),
        ..Default::default()
    };
    let mut c = open_as(&s, edge, false, request(T::Cluster, &[])).await;
    settle(&mut c, &["a"]).await; // the default fleet's snapshot
    s.publisher.publish("edge", snapshot("b", &["a", "b"], 80));
    let cds = c.expect(STEP).await;
    assert_eq!(cds.type_url(), T::Cluster.type_url());
    assert_eq!(cds.len(), 2, "the edge fleet's clusters");
    // And it follows that fleet, not default, from now on.
    c.ack(&cds, &[]).await;
    c.subscribe(T::Endpoint, &["a", "b"]).await;
    let eds = c.expect(STEP).await;
    assert_eq!(eds.len(), 1, "endpoints of b only");
}

#[tokio::test]
async fn nothing_is_sent_before_the_first_snapshot_is_published() {
    let publisher = Publisher::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(XdsServer::new(publisher.clone()).serve(listener, std::future::pending()));
    // An Envoy reconnecting over delta with the endpoints of an earlier run, to a server that
    // has published nothing yet: removing them now would leave its clusters without hosts.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("address")
        .connect()
        .await
        .expect("connect");
    let first = Request {
        initial_versions: vec![("a".to_owned(), "v-earlier".to_owned())],
        ..request(T::Endpoint, &["a"])
    };
    let mut c = AdsClient::open(channel, node("early"), true, first)
        .await
        .expect("stream");
    c.expect_nothing(QUIET).await;
    // A request sent while waiting is kept and answered once there is a snapshot.
    c.subscribe(T::Cluster, &[]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher.publish("default", snapshot("a", &["a"], 80));
    let eds = c.expect(STEP).await;
    assert_eq!(eds.type_url(), T::Endpoint.type_url());
    assert!(eds.removed().is_empty(), "{eds:?}");
    assert_eq!(eds.len(), 1, "the first published snapshot's endpoints");
    let cds = c.expect(STEP).await;
    assert_eq!(
        cds.type_url(),
        T::Cluster.type_url(),
        "the early request is answered"
    );
    assert_eq!(cds.len(), 1);
}

#[tokio::test]
async fn too_many_names_end_the_stream_with_a_clear_status() {
    let s = server(
        snapshot("a", &["a"], 80),
        Limits {
            max_subscribed_names: 2,
        },
    )
    .await;
    let mut c = open(&s, "n1").await;
    let cds = c.expect(STEP).await;
    c.ack(&cds, &[]).await;
    c.subscribe(T::Endpoint, &["a", "b", "c"]).await;
    let status = tokio::time::timeout(STEP, c.next())
        .await
        .expect("in time")
        .expect_err("a status");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("limit of 2"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn per_type_services_serve_their_type_state_of_the_world_and_delta() {
    use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
    use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;
    let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
    let url = format!("http://127.0.0.1:{}", s.port);
    // Clusters, state of the world.
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node("cds")),
        type_url: T::Cluster.type_url().into(),
        ..Default::default()
    })
    .await
    .expect("send");
    let mut cds = ClusterDiscoveryServiceClient::connect(url.clone())
        .await
        .expect("connect");
    let mut rx = cds
        .stream_clusters(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let r = tokio::time::timeout(STEP, rx.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert_eq!(
        (r.type_url.as_str(), r.resources.len()),
        (T::Cluster.type_url(), 2)
    );
    // Another type on a per-type stream is refused.
    tx.send(DiscoveryRequest {
        type_url: T::Listener.type_url().into(),
        ..Default::default()
    })
    .await
    .expect("send");
    let status = tokio::time::timeout(STEP, rx.message())
        .await
        .expect("in time")
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // Endpoints, delta.
    let (tx, rx) = mpsc::channel(4);
    tx.send(DeltaDiscoveryRequest {
        node: Some(node("eds")),
        type_url: T::Endpoint.type_url().into(),
        resource_names_subscribe: vec!["b".into()],
        ..Default::default()
    })
    .await
    .expect("send");
    let mut eds = EndpointDiscoveryServiceClient::connect(url)
        .await
        .expect("connect");
    let mut rx = eds
        .delta_endpoints(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let r = tokio::time::timeout(STEP, rx.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert_eq!(
        r.resources
            .iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    // A unary fetch of endpoints.
    let fetched = eds
        .fetch_endpoints(DiscoveryRequest {
            type_url: T::Endpoint.type_url().into(),
            resource_names: vec!["a".into()],
            ..Default::default()
        })
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(fetched.resources.len(), 1);
}

#[tokio::test]
async fn the_fake_envoy_subscribes_by_name_like_envoy_in_both_variants() {
    for delta in [false, true] {
        let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
        let mut e = FakeEnvoy::start(s.channel().await, "fake", delta, Subscription::Named)
            .await
            .expect("stream");
        e.until_synced().await.expect("synced");
        assert_eq!(e.held(T::Endpoint), ["a", "b"], "delta: {delta}");
        assert_eq!(e.held(T::Route), ["http"], "delta: {delta}");
        // A new cluster: its endpoints are asked for by name and arrive.
        s.publisher
            .publish("default", snapshot("a", &["a", "b", "c"], 80));
        while e.held(T::Endpoint).len() < 3 {
            tokio::time::timeout(STEP, e.step())
                .await
                .expect("in time")
                .expect("ok");
        }
        assert_eq!(e.held(T::Cluster), ["a", "b", "c"]);
    }
}

/// The fake Envoy lists its endpoint subscription as the real-Envoy test
/// (`envoy_lists_its_endpoint_subscription_as_the_fake_envoy_does`) sees Envoy list it: the
/// same check on the requests the server read, through the same observer.
#[tokio::test]
async fn the_fake_envoy_lists_its_endpoint_subscription_as_envoy_does() {
    use xdsc_server::events::{StreamEvent, observer};
    let names: Vec<String> = (0..15).map(|i| format!("c{i:02}")).collect();
    let clusters = |n: usize, port: u16| {
        let c: Vec<&str> = names[..n].iter().map(String::as_str).collect();
        snapshot("c00", &c, port)
    };
    let (observer, mut events) = observer(4096);
    let s = TestServer::start(clusters(12, 80), |x| x.with_observer(observer)).await;
    let mut e = FakeEnvoy::start(s.channel().await, "fake", false, Subscription::Named)
        .await
        .expect("stream");
    e.until_synced().await.expect("synced");
    // Three clusters more, then an endpoint change of every cluster.
    s.publisher.publish("default", clusters(15, 80));
    while e.held(T::Endpoint).len() < 15 {
        tokio::time::timeout(STEP, e.step())
            .await
            .expect("in time")
            .expect("ok");
    }
    s.publisher.publish("default", clusters(15, 81));
    let reply = loop {
        let r = tokio::time::timeout(STEP, e.step())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        if r.resource_type() == Some(T::Endpoint) {
            break r;
        }
    };
    assert_eq!(reply.len(), 15);
    // Every request the server read, its acknowledgement of `reply` last (within QUIET).
    let mut lists = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(QUIET, events.recv()).await {
        if let StreamEvent::Request { stream, request } = event
            && stream.node.id == "fake"
            && request.type_url == T::Endpoint.type_url()
        {
            lists.push(
                request
                    .resource_names
                    .iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            );
        }
    }
    listed_as_envoy_lists(&lists).unwrap();
    let first = lists.iter().find(|l| l.len() == 12).expect("12 names");
    let mut sorted = first.clone();
    sorted.sort();
    assert_ne!(&sorted, first, "not sorted");
    assert_eq!(lists.last().map(Vec::len), Some(15));
    assert!(
        lists.windows(2).any(|p| p[0] == p[1]),
        "a repeat: {lists:?}"
    );
}

#[tokio::test]
async fn the_observer_sees_a_stream_open_request_receive_ack_nack_and_close() {
    use xdsc_server::events::{StreamEvent as E, observer};
    let (observer, mut events) = observer(256);
    let s = TestServer::start(snapshot("a", &["a"], 80), |x| x.with_observer(observer)).await;
    let mut c = open(&s, "n1").await;
    settle(&mut c, &["a"]).await;
    s.publisher
        .publish("default", snapshot("a", &["a", "bad"], 80));
    let cds = c.expect(STEP).await;
    c.nack(&cds, &[], "rejected by the test").await;
    c.expect_nothing(QUIET).await;
    drop(c);
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(STEP, events.recv())
            .await
            .expect("an event in time")
            .expect("the server still holds the observer");
        let closed = matches!(e, E::Closed { .. });
        seen.push(e);
        if closed {
            break;
        }
    }
    assert_eq!(events.dropped(), 0);
    let id = seen[0].stream().id;
    assert!(seen.iter().all(|e| e.stream().id == id), "one stream");
    assert!(
        matches!(&seen[0], E::Opened { stream } if stream.node.id == "n1" && stream.fleet == "default")
    );
    assert!(
        matches!(&seen[1], E::Request { request, .. } if request.type_url == T::Cluster.type_url())
    );
    let count = |f: &dyn Fn(&E) -> bool| seen.iter().filter(|e| f(e)).count();
    // Four types sent and acknowledged, then the changed clusters sent and rejected.
    assert_eq!(
        count(&|e| matches!(e, E::ResponseSent { .. })),
        5,
        "{seen:#?}"
    );
    assert_eq!(count(&|e| matches!(e, E::Ack { .. })), 4, "{seen:#?}");
    assert!(seen.iter().any(|e| matches!(e,
        E::ResponseSent { resource_type: T::Cluster, resources, .. } if resources.iter().any(|r| &**r == "bad"))));
    let nacks: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            E::Nack { nack, .. } => Some(nack),
            _ => None,
        })
        .collect();
    assert_eq!(nacks.len(), 1);
    assert_eq!(nacks[0].resource_type, T::Cluster);
    assert_eq!(nacks[0].detail, "rejected by the test");
    assert_eq!(nacks[0].version_info, cds.version_info());
    // Requests: the first, four ACKs with subscriptions in between, the NACK.
    assert!(count(&|e| matches!(e, E::Request { .. })) >= 6, "{seen:#?}");
}

#[tokio::test]
async fn an_observer_nobody_reads_never_holds_a_stream_back() {
    let (observer, events) = xdsc_server::events::observer(1);
    let s = TestServer::start(snapshot("a", &["a", "b"], 80), |x| {
        x.with_observer(observer)
    })
    .await;
    let mut c = open(&s, "n1").await;
    // The whole exchange completes although the queue holds one event and is never read.
    settle(&mut c, &["a", "b"]).await;
    s.publisher
        .publish("default", snapshot("a", &["a", "b"], 81));
    let eds = c.expect(STEP).await;
    c.ack(&eds, &["a", "b"]).await;
    c.expect_nothing(QUIET).await;
    // Opened fit; at least the 5 responses, 5 ACKs and their requests were dropped and counted.
    assert!(events.dropped() >= 15, "dropped {}", events.dropped());
}

#[tokio::test]
async fn every_wildcard_initial_sync_is_written_from_a_shared_body() {
    let clusters: Vec<String> = (0..200).map(|i| format!("svc-{i:03}")).collect();
    let names: Vec<&str> = clusters.iter().map(String::as_str).collect();
    // Every response counts as large, so each stream syncs under a permit and the bodies
    // are kept for the wave (smaller ones are held only while written).
    let s = TestServer::start(snapshot("svc-000", &names, 80), |x| {
        x.with_sync_limits(SyncLimits {
            large_response_bytes: 1,
            ..SyncLimits::default()
        })
    })
    .await;
    const STREAMS: u64 = 10;
    let mut envoys = Vec::new();
    for i in 0..STREAMS {
        let delta = i % 2 == 1;
        envoys.push(
            FakeEnvoy::start(
                s.channel().await,
                &format!("n{i}"),
                delta,
                Subscription::Wildcard,
            )
            .await
            .expect("stream"),
        );
    }
    for e in &mut envoys {
        e.until_synced().await.expect("synced");
        assert_eq!(e.held(T::Cluster).len(), 200);
        assert_eq!(e.held(T::Endpoint).len(), 200);
    }
    // Clusters, endpoints, listeners and routes: each stream is sent every map whole, and
    // each of those responses is written from the body shared for its type version.
    let shared = s.metric("xdsc_response_bodies_shared_total").unwrap_or(0);
    let encoded = s.metric("xdsc_response_bodies_encoded_total").unwrap_or(0);
    assert_eq!(shared, STREAMS * 4, "every initial sync response");
    // Once per form and type: a body is kept for the whole wave, not only while some
    // stream's response is being written from it (the streams' syncs hold permits until
    // acknowledged, so the wave lasts until the last one synced).
    assert_eq!(
        encoded, 8,
        "{encoded} bodies encoded for {shared} responses: state of the world and delta, 4 types"
    );
    // A change of one cluster is not a whole map for endpoints: written per stream.
    let mut fewer = names.clone();
    fewer.pop();
    s.publisher
        .publish("default", snapshot("svc-000", &fewer, 80));
    for e in &mut envoys {
        while e.held(T::Cluster).len() > 199 {
            tokio::time::timeout(STEP, e.step())
                .await
                .expect("in time")
                .expect("ok");
        }
    }
    let after = s.metric("xdsc_response_bodies_shared_total").unwrap_or(0);
    // State of the world resends every cluster (a whole map again); delta sends a removal.
    assert_eq!(
        after - shared,
        STREAMS / 2,
        "only the state-of-the-world CDS resends"
    );
}
