//! What the connection tests share: snapshots, a server on a free port, a scripted
//! per-type EDS client, raw sockets, metrics and the live-bytes counter.

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

pub(crate) const STEP: Duration = Duration::from_secs(5);

/// Clusters with one endpoint each, and `big` with `big_endpoints` endpoints (700 encode to
/// ~20 kB).
pub(crate) fn snapshot_with(clusters: &[&str], big_endpoints: usize) -> Snapshot {
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

pub(crate) fn snapshot(clusters: &[&str]) -> Snapshot {
    snapshot_with(clusters, 700)
}

/// A server on a free port, stopped when `stop` is sent.
pub(crate) struct Running {
    pub(crate) port: u16,
    pub(crate) server: XdsServer,
    publisher: Publisher,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), xdsc_server::Error>>,
}

impl Running {
    /// A server of `snapshot` with these options.
    pub(crate) async fn with(snapshot: Snapshot, options: ConnectionOptions) -> Running {
        let publisher = Publisher::new();
        publisher.publish("default", snapshot);
        let server = XdsServer::new(publisher.clone()).with_connection_options(options);
        Running::start(publisher, server).await
    }

    /// `server`, which serves the snapshots of `publisher`.
    pub(crate) async fn start(publisher: Publisher, server: XdsServer) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(server.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        Running {
            port,
            server,
            publisher,
            stop: Some(stop),
            done,
        }
    }

    /// Signals shutdown; returns how long `serve` took to return.
    pub(crate) async fn shut_down(mut self) -> Duration {
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

pub(crate) struct Sotw {
    pub(crate) tx: mpsc::Sender<DiscoveryRequest>,
    pub(crate) rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    pub(crate) async fn open(port: u16, first: DiscoveryRequest) -> Sotw {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        Sotw::open_on(channel, first).await
    }

    pub(crate) async fn open_on(
        channel: tonic::transport::Channel,
        first: DiscoveryRequest,
    ) -> Sotw {
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

    pub(crate) async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(STEP, self.rx.message())
            .await
            .expect("a response in time")
            .expect("stream ok")
            .expect("stream open")
    }
}

pub(crate) fn eds(names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
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

/// A stream's end: the gRPC status it closed with.
pub(crate) async fn ended(rx: &mut Streaming<DiscoveryResponse>) -> tonic::Status {
    loop {
        match tokio::time::timeout(STEP, rx.message()).await {
            Err(_) => panic!("the stream did not end"),
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Err(status)) => return status,
        }
    }
}

impl Running {
    /// The value of one metric line (`name` with its labels, as rendered).
    pub(crate) fn metric(&self, name: &str) -> u64 {
        metric(&self.server, name)
    }

    /// Waits until a metric has a value (within the test's patience).
    pub(crate) async fn until_metric(&self, name: &str, value: u64) {
        let deadline = Instant::now() + STEP * 2;
        while self.metric(name) != value {
            assert!(
                Instant::now() < deadline,
                "{name} is {}, never became {value}",
                self.metric(name)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The publisher the server serves.
    pub(crate) fn publish(&self, snapshot: Snapshot) {
        self.publisher.publish("default", snapshot);
    }

    /// A raw TCP connection to the server from `source` (any 127.0.0.0/8 address).
    pub(crate) async fn raw_from(&self, source: &str) -> tokio::net::TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{source}:0").parse().expect("address"))
            .expect("bind the source");
        socket
            .connect(([127, 0, 0, 1], self.port).into())
            .await
            .expect("connect")
    }

    /// A raw connection that has sent the HTTP/2 preface and an empty SETTINGS frame.
    pub(crate) async fn raw_h2(&self) -> tokio::net::TcpStream {
        let mut s = self.raw_from("127.0.0.1").await;
        tokio::io::AsyncWriteExt::write_all(&mut s, PREFACE_AND_SETTINGS)
            .await
            .expect("write");
        s
    }
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
pub(crate) const PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// The value of one metric line (`name` with its labels, as rendered).
pub(crate) fn metric(server: &XdsServer, name: &str) -> u64 {
    let text = server.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

/// Whether the server closed `s`: reading returns end of file or an error within `within`.
pub(crate) async fn closed_by_server(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(s, &mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue, // The server's SETTINGS, PING, GOAWAY: read on.
        }
    }
}

/// An ADS-less honest client settled on `a`: the stream whose updates an attack must not hold
/// up. Returns the stream and its last response.
pub(crate) async fn honest(port: u16) -> (Sotw, DiscoveryResponse) {
    let mut c = Sotw::open(port, eds(&["a"], "", "")).await;
    let r = c.next().await;
    c.tx.send(eds(&["a"], &r.version_info, &r.nonce))
        .await
        .expect("ack");
    (c, r)
}

/// Publishes a change of `a`'s endpoint and waits for the honest client to receive it; returns
/// how long that took.
pub(crate) async fn honest_update(
    running: &Running,
    c: &mut Sotw,
    last: &mut DiscoveryResponse,
    port: u16,
) -> Duration {
    let start = Instant::now();
    running.publish(snapshot_port(port));
    let r = c.next().await;
    assert_ne!(r.version_info, last.version_info, "a new version");
    c.tx.send(eds(&["a"], &r.version_info, &r.nonce))
        .await
        .expect("ack");
    *last = r;
    start.elapsed()
}

/// The snapshot of [`snapshot`] with `a`'s endpoint on `port`.
pub(crate) fn snapshot_port(port: u16) -> Snapshot {
    let docs = vec![
        json!({"kind":"Cluster","name":"a"}),
        json!({"kind":"Endpoints","name":"a","localities":[{"endpoints":[{"address":"10.0.0.1","port":port}]}]}),
    ];
    let objects: Vec<Object> = serde_json::from_value(Value::Array(docs)).expect("model");
    Compiled::new(&Model::from_objects(objects))
        .snapshot()
        .clone()
}

/// The raw HTTP/2 frames of a gRPC EDS stream (stream 1) whose first message is `request`:
/// HEADERS (HPACK literals, no Huffman coding) and one DATA frame, without END_STREAM.
pub(crate) fn grpc_request(request: &DiscoveryRequest) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (
            ":path",
            "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints",
        ),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        // A literal header field without indexing, new name (RFC 7541, 6.2.2).
        headers.push(0);
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(value.len() as u8);
        headers.extend_from_slice(value.as_bytes());
    }
    let message = prost::Message::encode_to_vec(request);
    let mut data = vec![0];
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(&message);
    let mut out = Vec::new();
    for (kind, flags, payload) in [(1u8, 4u8, headers), (0, 0, data)] {
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        out.extend_from_slice(&payload);
    }
    out
}

/// An EDS stream subscribed to `big` over a connection whose HTTP/2 windows are 64 KiB and
/// never opened again: it reads its socket and answers pings, but a large response waits in
/// the server (with the status behind it).
pub(crate) async fn unread_big(port: u16) -> Sotw {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    Sotw::open_on(channel, eds(&["big"], "", "")).await
}

/// Reads a stream to its end: `true` if it ended with an error, `false` if it ended cleanly
/// or not in time.
pub(crate) async fn ended_in_error(c: &mut Sotw) -> bool {
    loop {
        match tokio::time::timeout(STEP, c.rx.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Err(_)) => return true,
            Ok(Ok(None)) | Err(_) => return false,
        }
    }
}
