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
use xdsc_server::{Publisher, XdsServer};

const STEP: Duration = Duration::from_secs(5);

fn snapshot(clusters: &[&str]) -> Snapshot {
    let mut docs = vec![];
    for c in clusters {
        docs.push(json!({"kind":"Cluster","name":c}));
        docs.push(json!({"kind":"Endpoints","name":c,"localities":[{"endpoints":[{"address":"10.0.0.1","port":80}]}]}));
    }
    // One cluster whose endpoints encode to ~20 kB: two HTTP/2 DATA frames (16 KiB each at
    // most), so two writes, the second of which Nagle holds until the first is acknowledged.
    let big: Vec<Value> = (0..700)
        .map(|i| json!({"address": format!("10.1.{}.{}", i / 250, i % 250), "port": 8080}))
        .collect();
    docs.push(json!({"kind":"Cluster","name":"big"}));
    docs.push(json!({"kind":"Endpoints","name":"big","localities":[{"endpoints":big}]}));
    let objects: Vec<Object> = serde_json::from_value(Value::Array(docs)).expect("model");
    Compiled::new(&Model::from_objects(objects))
        .snapshot()
        .clone()
}

struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn open(port: u16, first: DiscoveryRequest) -> Sotw {
        let (tx, rx) = mpsc::channel(16);
        tx.send(first).await.expect("send");
        let mut c = EndpointDiscoveryServiceClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .expect("connect");
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
