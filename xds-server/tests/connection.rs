//! The xDS connection-accept path over real sockets: socket options, limits, timeouts,
//! shutdown and hostile clients.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Model, Object};
use xdsc_core::snapshot::{ResourceType as T, Snapshot};
use xdsc_server::{ConnectionOptions, Publisher, XdsServer};

const STEP: Duration = Duration::from_secs(5);

/// Clusters with one endpoint each, and `big` with `big_endpoints` endpoints (700 encode to
/// ~20 kB).
fn snapshot_with(clusters: &[&str], big_endpoints: usize) -> Snapshot {
    let mut docs = vec![];
    for c in clusters {
        docs.push(json!({"kind":"Cluster","name":c}));
        docs.push(json!({"kind":"Endpoints","name":c,"localities":[{"endpoints":[{"address":"10.0.0.1","port":80}]}]}));
    }
    // One cluster whose endpoints encode to ~20 kB: two HTTP/2 DATA frames (16 KiB each at
    // most), so two writes, the second of which Nagle holds until the first is acknowledged.
    let big: Vec<Value> = (0..big_endpoints)
        .map(|i| json!({"address": format!("10.1.{}.{}", i / 250, i % 250), "port": 8080}))
        .collect();
    docs.push(json!({"kind":"Cluster","name":"big"}));
    docs.push(json!({"kind":"Endpoints","name":"big","localities":[{"endpoints":big}]}));
    let objects: Vec<Object> = serde_json::from_value(Value::Array(docs)).expect("model");
    Compiled::new(&Model::from_objects(objects))
        .snapshot()
        .clone()
}

fn snapshot(clusters: &[&str]) -> Snapshot {
    snapshot_with(clusters, 700)
}

/// A server on a free port, stopped when `stop` is sent.
struct Running {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), xdsc_server::Error>>,
}

impl Running {
    async fn start(server: XdsServer) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Running {
            port,
            stop: Some(stop),
            done,
        }
    }

    /// Signals shutdown; returns how long `serve` took to return.
    async fn shut_down(mut self) -> Duration {
        let start = Instant::now();
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(Duration::from_secs(30), self.done)
            .await
            .expect("serve returned")
            .expect("serve task")
            .expect("serve ok");
        start.elapsed()
    }
}

fn server_of(snapshot: Snapshot) -> XdsServer {
    let publisher = Publisher::new();
    publisher.publish("default", snapshot);
    XdsServer::new(publisher)
}

struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn open(port: u16, first: DiscoveryRequest) -> Sotw {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        Sotw::open_on(channel, first).await
    }

    async fn open_on(channel: tonic::transport::Channel, first: DiscoveryRequest) -> Sotw {
        let (tx, rx) = mpsc::channel(16);
        tx.send(first).await.expect("send");
        let mut c = EndpointDiscoveryServiceClient::new(channel);
        let rx = c
            .stream_endpoints(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        Sotw { tx, rx }
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(STEP, self.rx.message())
            .await
            .expect("a response in time")
            .expect("stream ok")
            .expect("stream open")
    }
}

fn eds(names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: "n".into(),
            ..Default::default()
        }),
        type_url: T::Endpoint.type_url().into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// 50 request/response round trips, alternating a response of two HTTP/2 frames with a small
/// one; returns the median of each kind.
async fn round_trips(port: u16) -> (Duration, Duration) {
    let mut c = Sotw::open(port, eds(&["a"], "", "")).await;
    let mut last = c.next().await;
    let (mut large, mut small) = (Vec::new(), Vec::new());
    for i in 0..50 {
        let names: &[&str] = if i % 2 == 0 { &["big"] } else { &["a"] };
        let start = Instant::now();
        c.tx.send(eds(names, &last.version_info, &last.nonce))
            .await
            .expect("send");
        last = c.next().await;
        let took = start.elapsed();
        if i % 2 == 0 {
            assert!(prost::Message::encoded_len(&last) > 16_500);
            large.push(took);
        } else {
            small.push(took);
        }
    }
    large.sort();
    small.sort();
    (large[large.len() / 2], small[small.len() / 2])
}

/// How the embedder hands the listener over.
#[derive(Clone, Copy, Debug)]
enum Handover {
    Tokio,
    Std,
    Incoming,
}

async fn serve_by(handover: Handover, server: XdsServer) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let never = std::future::pending();
    match handover {
        Handover::Tokio => {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            tokio::spawn(server.serve(listener, never));
        }
        Handover::Std => {
            tokio::spawn(server.serve_std(listener, never));
        }
        Handover::Incoming => {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tokio::spawn(server.serve_incoming(incoming, never));
        }
    }
    port
}

/// Without TCP_NODELAY on the accepted socket, the second frame of a response waits for the
/// client's delayed ACK of the first: 43 ms per response on Linux loopback (measured without
/// it), against well under 1 ms with it.
#[tokio::test]
async fn responses_are_not_held_back_by_nagle_whatever_the_listener() {
    for handover in [Handover::Tokio, Handover::Std, Handover::Incoming] {
        let publisher = Publisher::new();
        publisher.publish("default", snapshot(&["a"]));
        let port = serve_by(handover, XdsServer::new(publisher)).await;
        let (large, small) = round_trips(port).await;
        eprintln!("{handover:?}: median round trip {large:?} (20 kB), {small:?} (small)");
        assert!(
            large < Duration::from_millis(20) && small < Duration::from_millis(20),
            "{handover:?}: median round trips {large:?} and {small:?}: a Nagle stall"
        );
    }
}

/// A stream's end: the gRPC status it closed with.
async fn ended(rx: &mut Streaming<DiscoveryResponse>) -> tonic::Status {
    loop {
        match tokio::time::timeout(STEP, rx.message()).await {
            Err(_) => panic!("the stream did not end"),
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Err(status)) => return status,
        }
    }
}

#[tokio::test]
async fn shutdown_ends_every_stream_with_unavailable_and_returns_at_once() {
    let options = ConnectionOptions {
        shutdown_grace: Duration::from_secs(30),
        ..ConnectionOptions::default()
    };
    let running =
        Running::start(server_of(snapshot(&["a"])).with_connection_options(options)).await;
    let port = running.port;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut c = Sotw::open(port, eds(&["a"], "", "")).await;
        c.next().await;
        streams.push(c);
    }
    let took = running.shut_down().await;
    // Well inside the grace period: nothing waited for the clients to go away on their own.
    assert!(took < Duration::from_secs(10), "serve took {took:?}");
    for c in &mut streams {
        let status = ended(&mut c.rx).await;
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("shutting down"), "{status:?}");
    }
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(refused.is_err(), "the listener is closed");
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped_after_the_grace_period() {
    let grace = Duration::from_millis(500);
    let options = ConnectionOptions {
        shutdown_grace: grace,
        ..ConnectionOptions::default()
    };
    // ~600 kB of endpoints: more than the client's flow-control window of 64 KiB, so the
    // response (and the status behind it) cannot be delivered to a client that does not read.
    let server = server_of(snapshot_with(&["a"], 20_000)).with_connection_options(options);
    let running = Running::start(server).await;
    let small_window =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", running.port))
            .expect("endpoint")
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .expect("connect");
    let mut stalled = Sotw::open_on(small_window, eds(&["big"], "", "")).await;
    let mut honest = Sotw::open(running.port, eds(&["a"], "", "")).await;
    honest.next().await;
    // The stalled stream's response is on its way and held by flow control.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = running.shut_down().await;
    assert!(took >= grace, "serve waited for the grace period: {took:?}");
    assert!(
        took < grace + Duration::from_secs(5),
        "and not much longer: {took:?}"
    );
    let status = ended(&mut honest.rx).await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // The stalled client's connection was dropped: reading now ends with an error.
    let end = loop {
        match tokio::time::timeout(STEP, stalled.rx.message()).await {
            Ok(Ok(Some(_))) => continue,
            other => break other,
        }
    };
    assert!(matches!(end, Ok(Err(_))), "{end:?}");
}
