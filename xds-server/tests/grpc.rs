//! In-process protocol tests over the real gRPC transport: a tonic client plays Envoy through
//! scripted sequences against a server on a free loopback port.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Model, Object};
use xdsc_core::snapshot::{ResourceType as T, Snapshot};
use xdsc_server::{Limits, Publisher, SyncLimits, XdsServer};

const STEP: Duration = Duration::from_secs(5);

fn snapshot(route_to: &str, clusters: &[&str], port: u16) -> Snapshot {
    let mut docs = vec![
        json!({"kind":"Listener","name":"http","port":8080}),
        json!({"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],
               "routes":[{"name":"r","forward":{"backends":[{"cluster":route_to}]}}]}),
    ];
    for c in clusters {
        docs.push(json!({"kind":"Cluster","name":c}));
        docs.push(json!({"kind":"Endpoints","name":c,"localities":[{"endpoints":[{"address":"10.0.0.1","port":port}]}]}));
    }
    let objects: Vec<Object> = serde_json::from_value(Value::Array(docs)).expect("model");
    Compiled::new(&Model::from_objects(objects))
        .snapshot()
        .clone()
}

struct Server {
    publisher: Publisher,
    port: u16,
    xds: XdsServer,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// The value of one unlabeled metric.
    fn metric(&self, name: &str) -> u64 {
        let text = self.xds.metrics().render();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }

    /// Waits until a metric has a value (no timing assumption beyond the test's own patience).
    async fn until_metric(&self, name: &str, value: u64) {
        let deadline = tokio::time::Instant::now() + STEP;
        while self.metric(name) != value {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never became {value}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn server(first: Snapshot, limits: Limits) -> Server {
    server_with(first, |x| x.with_limits(limits)).await
}

async fn server_with(first: Snapshot, configure: impl FnOnce(XdsServer) -> XdsServer) -> Server {
    let publisher = Publisher::new();
    publisher.publish("default", first);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let xds = configure(XdsServer::new(publisher.clone()));
    tokio::spawn(xds.clone().serve(listener, async move {
        let _ = stopped.changed().await;
    }));
    Server {
        publisher,
        port,
        xds,
        _stop: stop,
    }
}

/// One state-of-the-world ADS stream.
struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

async fn client(port: u16) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    AggregatedDiscoveryServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect")
}

fn node(id: &str) -> Option<Node> {
    Some(Node {
        id: id.into(),
        cluster: "default".into(),
        ..Default::default()
    })
}

impl Sotw {
    async fn open(port: u16, id: &str) -> Sotw {
        Sotw::open_in(port, node(id)).await
    }

    async fn open_in(port: u16, node: Option<Node>) -> Sotw {
        let (tx, rx) = mpsc::channel(16);
        let mut c = client(port).await;
        let first = DiscoveryRequest {
            node,
            type_url: T::Cluster.type_url().into(),
            ..Default::default()
        };
        tx.send(first).await.expect("send");
        let rx = c
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        Sotw { tx, rx }
    }

    async fn send(&self, t: T, names: &[&str], version: &str, nonce: &str, error: Option<&str>) {
        let r = DiscoveryRequest {
            type_url: t.type_url().into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            error_detail: error.map(|m| RpcStatus {
                code: 3,
                message: m.into(),
                details: vec![],
            }),
            ..Default::default()
        };
        self.tx.send(r).await.expect("send");
    }

    async fn ack(&self, r: &DiscoveryResponse, names: &[&str]) {
        let t = T::from_type_url(&r.type_url).expect("known type");
        self.send(t, names, &r.version_info, &r.nonce, None).await;
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(STEP, self.rx.message())
            .await
            .expect("a response in time")
            .expect("stream ok")
            .expect("stream open")
    }

    async fn nothing(&mut self) {
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(300), self.rx.message()).await {
            panic!("expected nothing, got {r:?}");
        }
    }

    /// Plays the initial exchange like Envoy; returns the responses' versions per type.
    async fn settle(&mut self, clusters: &[&str]) -> Vec<DiscoveryResponse> {
        let cds = self.next().await;
        assert_eq!(cds.type_url, T::Cluster.type_url());
        self.send(T::Listener, &[], "", "", None).await;
        self.ack(&cds, &[]).await;
        self.send(T::Endpoint, clusters, "", "", None).await;
        let eds = self.next().await;
        assert_eq!(eds.type_url, T::Endpoint.type_url());
        self.ack(&eds, clusters).await;
        let lds = self.next().await;
        assert_eq!(
            lds.type_url,
            T::Listener.type_url(),
            "listeners after endpoints"
        );
        self.ack(&lds, &[]).await;
        self.send(T::Route, &["http"], "", "", None).await;
        let rds = self.next().await;
        assert_eq!(rds.type_url, T::Route.type_url());
        self.ack(&rds, &["http"]).await;
        self.nothing().await;
        vec![cds, eds, lds, rds]
    }
}

#[tokio::test]
async fn ack_ordering_and_a_change_of_one_type() {
    let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
    let mut c = Sotw::open(s.port, "n1").await;
    c.settle(&["a", "b"]).await;
    s.publisher
        .publish("default", snapshot("a", &["a", "b"], 81));
    let eds = c.next().await;
    assert_eq!(
        (eds.type_url.as_str(), eds.resources.len()),
        (T::Endpoint.type_url(), 2)
    );
    c.ack(&eds, &["a", "b"]).await;
    c.nothing().await;
}

#[tokio::test]
async fn nack_then_fix() {
    let s = server(snapshot("a", &["a"], 80), Limits::default()).await;
    let mut c = Sotw::open(s.port, "n1").await;
    c.settle(&["a"]).await;
    s.publisher
        .publish("default", snapshot("a", &["a", "bad"], 80));
    let cds = c.next().await;
    c.send(
        T::Cluster,
        &[],
        "",
        &cds.nonce,
        Some("rejected by the test"),
    )
    .await;
    c.nothing().await; // not resent
    s.publisher
        .publish("default", snapshot("a", &["a", "bad"], 80));
    c.nothing().await; // not even when republished
    s.publisher
        .publish("default", snapshot("a", &["a", "good"], 80));
    let fixed = c.next().await;
    assert_eq!(fixed.type_url, T::Cluster.type_url());
    assert_ne!(fixed.version_info, cds.version_info);
}

#[tokio::test]
async fn a_reconnect_with_held_versions_receives_nothing() {
    let s = server(snapshot("a", &["a"], 80), Limits::default()).await;
    let mut c = Sotw::open(s.port, "n1").await;
    let held = c.settle(&["a"]).await;
    drop(c);
    // A new stream presenting every version it holds.
    let (tx, rx) = mpsc::channel(16);
    let names: [&[&str]; 4] = [&[], &["a"], &[], &["http"]];
    for (r, names) in held.iter().zip(names) {
        tx.send(DiscoveryRequest {
            node: node("n1"),
            type_url: r.type_url.clone(),
            version_info: r.version_info.clone(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("send");
    }
    let mut rx = client(s.port)
        .await
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    if let Ok(r) = tokio::time::timeout(Duration::from_millis(500), rx.message()).await {
        panic!("a reconnecting client was sent {r:?}");
    }
}

#[tokio::test]
async fn named_subscriptions_and_unsubscribe() {
    let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
    let mut c = Sotw::open(s.port, "n1").await;
    let cds = c.next().await;
    c.ack(&cds, &[]).await;
    c.send(T::Endpoint, &["b"], "", "", None).await;
    let eds = c.next().await;
    assert_eq!(eds.resources.len(), 1, "only the name asked for");
    // Unsubscribe from b, subscribe to a: a arrives.
    c.ack(&eds, &["a"]).await;
    let eds2 = c.next().await;
    assert_eq!(eds2.resources.len(), 1);
    c.ack(&eds2, &["a"]).await;
    // Only b's endpoints change: nothing is sent, b is no longer subscribed.
    let b_moved = snapshot("a", &["b"], 99);
    let next =
        snapshot("a", &["a", "b"], 80).with((**b_moved.get(T::Endpoint, "b").unwrap()).clone());
    s.publisher.publish("default", next);
    c.nothing().await;
}

async fn next_delta(rx: &mut Streaming<DeltaDiscoveryResponse>) -> DeltaDiscoveryResponse {
    tokio::time::timeout(STEP, rx.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open")
}

#[tokio::test]
async fn delta_removals_over_the_wire() {
    let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
    let (tx, rx) = mpsc::channel(16);
    tx.send(DeltaDiscoveryRequest {
        node: node("d1"),
        type_url: T::Endpoint.type_url().into(),
        resource_names_subscribe: vec!["a".into(), "b".into()],
        ..Default::default()
    })
    .await
    .expect("send");
    let mut rx = client(s.port)
        .await
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let r1 = next_delta(&mut rx).await;
    assert_eq!(r1.resources.len(), 2);
    tx.send(DeltaDiscoveryRequest {
        type_url: r1.type_url.clone(),
        response_nonce: r1.nonce.clone(),
        ..Default::default()
    })
    .await
    .expect("ack");
    s.publisher.publish("default", snapshot("a", &["a"], 80));
    let r2 = next_delta(&mut rx).await;
    assert_eq!(r2.removed_resources, ["b"]);
    assert!(r2.resources.is_empty());
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_hold_back_another() {
    // 3,000 clusters: the first cluster response (~200 KiB) is larger than an HTTP/2 window,
    // so the server's send to the stalled client really blocks.
    let names: Vec<String> = (0..3000).map(|i| format!("service-{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let s = server(snapshot("service-0000", &refs, 80), Limits::default()).await;
    let stalled = Sotw::open(s.port, "stalled").await; // asks for clusters, never reads
    let mut healthy = Sotw::open(s.port, "healthy").await;
    healthy.settle(&refs).await;
    for port in 81..101 {
        s.publisher
            .publish("default", snapshot("service-0000", &refs, port));
        let eds = healthy.next().await;
        assert_eq!(
            (eds.type_url.as_str(), eds.resources.len()),
            (T::Endpoint.type_url(), 3000)
        );
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
    }
}

#[tokio::test]
async fn concurrent_syncs_are_bounded_by_the_permits() {
    let s = server_with(snapshot("a", &["a"], 80), |x| {
        x.with_sync_limits(one_permit(Duration::from_secs(3600)))
    })
    .await;
    let mut a = Sotw::open(s.port, "a").await;
    // Like Envoy: ask for endpoints before acknowledging the clusters. The stream keeps its one
    // permit while anything is unacknowledged and needs no second one.
    let cds = a.next().await;
    a.send(T::Endpoint, &["a"], "", "", None).await;
    let eds = a.next().await;
    assert_eq!(eds.type_url, T::Endpoint.type_url());
    s.until_metric("xdsc_sync_permits_held", 1).await;
    let mut b = Sotw::open(s.port, "b").await;
    s.until_metric("xdsc_sync_permits_waiting", 1).await;
    // Nothing of a is unacknowledged any more: b gets the permit and its clusters.
    a.ack(&eds, &["a"]).await;
    a.ack(&cds, &[]).await;
    assert_eq!(b.next().await.type_url, T::Cluster.type_url());
    s.until_metric("xdsc_sync_permits_waiting", 0).await;
    s.until_metric("xdsc_sync_permits_held", 1).await;
    drop(b);
    s.until_metric("xdsc_sync_permits_held", 0).await;
}

#[tokio::test]
async fn a_stalled_client_gives_its_sync_permit_back() {
    let s = server_with(snapshot("a", &["a"], 80), |x| {
        x.with_sync_limits(one_permit(Duration::from_millis(200)))
    })
    .await;
    let _stalled = Sotw::open(s.port, "stalled").await; // asks for clusters, never acknowledges
    s.until_metric("xdsc_sync_permits_held", 1).await;
    let mut healthy = Sotw::open(s.port, "healthy").await;
    healthy.settle(&["a"]).await;
}

#[tokio::test]
async fn a_stream_on_the_default_fallback_switches_when_its_fleet_is_published() {
    let s = server(snapshot("a", &["a"], 80), Limits::default()).await;
    let edge = Some(Node {
        id: "n1".into(),
        cluster: "edge".into(),
        ..Default::default()
    });
    let mut c = Sotw::open_in(s.port, edge).await;
    c.settle(&["a"]).await; // the default fleet's snapshot
    s.publisher.publish("edge", snapshot("b", &["a", "b"], 80));
    let cds = c.next().await;
    assert_eq!(cds.type_url, T::Cluster.type_url());
    assert_eq!(cds.resources.len(), 2, "the edge fleet's clusters");
    // And it follows that fleet, not default, from now on.
    c.ack(&cds, &[]).await;
    c.send(T::Endpoint, &["a", "b"], "", "", None).await;
    let eds = c.next().await;
    assert_eq!(eds.resources.len(), 1, "endpoints of b only");
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
    let (tx, rx) = mpsc::channel(16);
    tx.send(DeltaDiscoveryRequest {
        node: node("early"),
        type_url: T::Endpoint.type_url().into(),
        resource_names_subscribe: vec!["a".into()],
        initial_resource_versions: [("a".to_owned(), "v-earlier".to_owned())].into(),
        ..Default::default()
    })
    .await
    .expect("send");
    let mut rx = client(port)
        .await
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let early = tokio::time::timeout(Duration::from_millis(300), rx.message()).await;
    assert!(
        early.is_err(),
        "nothing before a snapshot exists: {early:?}"
    );
    // A request sent while waiting is kept and answered once there is a snapshot.
    tx.send(DeltaDiscoveryRequest {
        type_url: T::Cluster.type_url().into(),
        ..Default::default()
    })
    .await
    .expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher.publish("default", snapshot("a", &["a"], 80));
    let eds = next_delta(&mut rx).await;
    assert_eq!(eds.type_url, T::Endpoint.type_url());
    assert!(eds.removed_resources.is_empty(), "{eds:?}");
    assert_eq!(
        eds.resources.len(),
        1,
        "the first published snapshot's endpoints"
    );
    let cds = next_delta(&mut rx).await;
    assert_eq!(
        cds.type_url,
        T::Cluster.type_url(),
        "the early request is answered"
    );
    assert_eq!(cds.resources.len(), 1);
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
    let mut c = Sotw::open(s.port, "n1").await;
    let cds = c.next().await;
    c.ack(&cds, &[]).await;
    c.send(T::Endpoint, &["a", "b", "c"], "", "", None).await;
    let status = tokio::time::timeout(STEP, c.rx.message())
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
    use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient;
    let s = server(snapshot("a", &["a", "b"], 80), Limits::default()).await;
    let url = format!("http://127.0.0.1:{}", s.port);
    // Clusters, state of the world.
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: node("cds"),
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
        node: node("eds"),
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
    let r = next_delta(&mut rx).await;
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
