//! Hostile clients against the real server. Each test asserts what the server does with the
//! client (a status, or the connection closed, with its metric), that an honest stream's
//! update still arrives while it happens, and that the bytes the server holds return to their
//! baseline once the client is gone. Each prints its figures (`--nocapture`; BENCHMARKS.md
//! quotes a release run).

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use tokio::io::AsyncWriteExt;
use xdsc_core::snapshot::ResourceType as T;
use xdsc_server::ConnectionOptions;

use crate::live_bytes;
use crate::support::*;

/// What the server may still hold after an attack beyond its baseline: allocator noise of a
/// few caches (tokio's, hyper's), not a per-connection or per-name cost.
const SLACK: i64 = 256 << 10;

/// Measures an attack: live bytes before, during (after `attack` returns, with the attack's
/// connections open) and after (once `cleanup` has closed them and the server has let go),
/// and the honest stream's update latency, sampled while the attack's connections are open.
struct Figures {
    name: &'static str,
    before: i64,
    during: i64,
    updates: Vec<Duration>,
}

impl Figures {
    fn start(name: &'static str) -> Figures {
        Figures {
            name,
            before: live_bytes(),
            during: 0,
            updates: Vec::new(),
        }
    }

    /// Samples the honest stream's update latency `n` times.
    async fn updates(
        &mut self,
        running: &Running,
        honest: &mut (
            Sotw,
            envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse,
        ),
        n: u16,
    ) {
        self.during = live_bytes();
        for i in 0..n {
            let (c, last) = honest;
            let took = honest_update(running, c, last, 1000 + i).await;
            self.updates.push(took);
        }
    }

    /// Waits until the server holds only the honest stream again, then checks the bytes.
    async fn finish(mut self, running: &Running) {
        running.until_metric("xdsc_xds_connections", 1).await;
        running.until_metric("xdsc_streams", 1).await;
        // Let closed tasks finish dropping what they hold.
        let deadline = Instant::now() + STEP;
        let mut after = live_bytes();
        while after - self.before > SLACK && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            after = live_bytes();
        }
        self.updates.sort();
        let p = |q: usize| {
            self.updates
                .get((self.updates.len() * q / 100).min(self.updates.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        eprintln!(
            "{}: server+client live bytes before {} KiB, during {} KiB (+{} KiB), after {} KiB ({:+} KiB); honest update p50 {:?}, max {:?} over {}",
            self.name,
            self.before >> 10,
            self.during >> 10,
            (self.during - self.before) >> 10,
            after >> 10,
            (after - self.before) >> 10,
            p(50),
            p(100),
            self.updates.len(),
        );
        assert!(
            after - self.before <= SLACK,
            "{}: {} KiB still held after the attack",
            self.name,
            (after - self.before) >> 10
        );
    }
}

/// A first round of the attack, small, so that lazily built state (tokio's, hyper's, the
/// allocator's) exists before the baseline is taken.
async fn warm_up(running: &Running) {
    let mut s = running.raw_h2().await;
    s.write_all(&grpc_request(&eds(&["a"], "", "")))
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    running.until_metric("xdsc_xds_connections", 1).await;
}

#[tokio::test]
async fn connections_that_never_send_the_preface_are_closed_after_the_handshake_timeout() {
    let _serial = crate::serial().await;
    let options = ConnectionOptions {
        handshake_timeout: Duration::from_millis(500),
        ..ConnectionOptions::default()
    };
    let running = Running::with(snapshot(&["a"]), options).await;
    let mut honest = honest(running.port).await;
    warm_up(&running).await;
    let mut figures = Figures::start("500 connections that never send the HTTP/2 preface");
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(running.raw_from("127.0.0.1").await);
    }
    figures.updates(&running, &mut honest, 10).await;
    for s in &mut idle {
        assert!(closed_by_server(s, STEP).await, "closed by the server");
    }
    running
        .until_metric(
            "xdsc_xds_connections_closed_total{reason=\"handshake_timeout\"}",
            500,
        )
        .await;
    drop(idle);
    figures.finish(&running).await;
}

#[tokio::test]
async fn a_connection_that_goes_silent_after_the_handshake_is_closed_by_keepalive() {
    let _serial = crate::serial().await;
    let options = ConnectionOptions {
        http2_keepalive_interval: Some(Duration::from_millis(200)),
        http2_keepalive_timeout: Duration::from_millis(300),
        ..ConnectionOptions::default()
    };
    let running = Running::with(snapshot(&["a"]), options).await;
    let mut honest = honest(running.port).await;
    warm_up(&running).await;
    let mut figures = Figures::start("100 connections silent after the HTTP/2 preface");
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(running.raw_h2().await);
    }
    figures.updates(&running, &mut honest, 10).await;
    for s in &mut silent {
        assert!(closed_by_server(s, STEP).await, "closed by the server");
    }
    running
        .until_metric(
            "xdsc_xds_connections_closed_total{reason=\"keepalive_timeout\"}",
            100,
        )
        .await;
    drop(silent);
    figures.finish(&running).await;
}

#[tokio::test]
async fn connections_beyond_the_limits_are_refused_with_a_log_line_and_a_metric() {
    let _serial = crate::serial().await;
    let options = ConnectionOptions {
        max_connections: 6,
        max_connections_per_peer: 4,
        ..ConnectionOptions::default()
    };
    let running = Running::with(snapshot(&["a"]), options).await;
    let mut honest = honest(running.port).await; // one connection from 127.0.0.1
    warm_up(&running).await;
    let mut figures = Figures::start("connections beyond the limits (4 per peer, 6 in all)");
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(running.raw_h2().await);
    }
    running.until_metric("xdsc_xds_connections", 4).await;
    let mut refused = running.raw_h2().await;
    assert!(
        closed_by_server(&mut refused, STEP).await,
        "the fifth from one address is refused"
    );
    running
        .until_metric("xdsc_xds_connections_refused_total{reason=\"peer\"}", 1)
        .await;
    // Another address may connect, up to the total.
    for _ in 0..2 {
        kept.push(running.raw_from("127.0.0.2").await);
    }
    running.until_metric("xdsc_xds_connections", 6).await;
    let mut over = running.raw_from("127.0.0.3").await;
    assert!(closed_by_server(&mut over, STEP).await, "over the total");
    running
        .until_metric("xdsc_xds_connections_refused_total{reason=\"total\"}", 1)
        .await;
    for s in &mut kept {
        assert!(
            !closed_by_server(s, Duration::from_millis(100)).await,
            "admitted connections stay"
        );
    }
    let logs = crate::logs();
    assert!(
        logs.contains("xDS connection refused: this peer's connection limit is reached")
            && logs.contains("xDS connection refused: the server's connection limit is reached"),
        "{logs}"
    );
    // The honest stream is unaffected.
    figures.updates(&running, &mut honest, 10).await;
    drop((kept, refused, over));
    figures.finish(&running).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_its_socket_is_closed_by_keepalive() {
    let _serial = crate::serial().await;
    let options = ConnectionOptions {
        http2_keepalive_interval: Some(Duration::from_millis(200)),
        http2_keepalive_timeout: Duration::from_millis(300),
        ..ConnectionOptions::default()
    };
    // `big`: ~600 kB of endpoints, more than the socket buffers take.
    let running = Running::with(snapshot_with(&["a"], 20_000), options).await;
    let mut honest = honest(running.port).await;
    warm_up(&running).await;
    let mut figures = Figures::start("10 clients that subscribe to 600 kB and never read");
    let mut stalled = Vec::new();
    for _ in 0..10 {
        let mut s = running.raw_h2().await;
        s.write_all(&grpc_request(&eds(&["big"], "", "")))
            .await
            .expect("write");
        stalled.push(s);
    }
    figures.updates(&running, &mut honest, 10).await;
    running
        .until_metric(
            "xdsc_xds_connections_closed_total{reason=\"keepalive_timeout\"}",
            10,
        )
        .await;
    drop(stalled);
    figures.finish(&running).await;
}

#[tokio::test]
async fn a_client_that_reads_but_never_takes_its_responses_is_cut_off() {
    let _serial = crate::serial().await;
    let options = ConnectionOptions {
        response_timeout: Some(Duration::from_millis(500)),
        ..ConnectionOptions::default()
    };
    let running = Running::with(snapshot_with(&["a"], 20_000), options).await;
    let mut honest = honest(running.port).await;
    let mut figures = Figures::start("10 clients whose HTTP/2 window stays shut");
    let mut stalled = Vec::new();
    for _ in 0..10 {
        stalled.push(unread_big(running.port).await);
    }
    figures.updates(&running, &mut honest, 10).await;
    running
        .until_metric("xdsc_xds_connections_closed_total{reason=\"stalled\"}", 10)
        .await;
    // Closed by the server, while the clients still hold them open: only the honest one stays.
    running.until_metric("xdsc_xds_connections", 1).await;
    for c in &mut stalled {
        assert!(ended_in_error(c).await, "cut off");
    }
    drop(stalled);
    figures.finish(&running).await;
}

#[tokio::test]
async fn a_subscription_to_100000_names_is_held_and_one_more_is_refused() {
    let _serial = crate::serial().await;
    let running = Running::with(snapshot(&["a"]), ConnectionOptions::default()).await;
    let mut honest = honest(running.port).await;
    let names: Vec<String> = (0..100_000).map(|i| format!("missing-{i:06}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut figures = Figures::start("a stream subscribed to 100,000 names");
    let mut wide = Sotw::open(running.port, eds(&refs, "", "")).await;
    figures.updates(&running, &mut honest, 10).await;
    // It is not ended: the names are within the limit (nothing exists, nothing is sent).
    let early = tokio::time::timeout(Duration::from_millis(300), wide.rx.message()).await;
    assert!(early.is_err(), "{early:?}");
    let mut over: Vec<&str> = refs.clone();
    over.push("one-more");
    wide.tx.send(eds(&over, "", "")).await.expect("send");
    let status = ended(&mut wide.rx).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    drop(wide);
    drop(over);
    // `names` and `refs` were there before the baseline: kept until it is checked.
    figures.finish(&running).await;
    drop(refs);
    drop(names);
}

#[tokio::test]
async fn bogus_nonces_are_ignored_and_an_unknown_type_or_a_new_node_ends_the_stream() {
    let _serial = crate::serial().await;
    let running = Running::with(snapshot(&["a"]), ConnectionOptions::default()).await;
    let mut honest = honest(running.port).await;
    warm_up(&running).await;
    let mut figures =
        Figures::start("1,000 bogus nonces, then streams with an unknown type and a changed node");
    let (c, last) = &mut honest;
    // 1,000 requests answering responses that were never sent: nothing is resent.
    for i in 0..1000 {
        c.tx.send(eds(&["a"], &last.version_info, &format!("bogus-{i}")))
            .await
            .expect("send");
    }
    let quiet = tokio::time::timeout(Duration::from_millis(300), c.rx.message()).await;
    assert!(quiet.is_err(), "nothing for stale nonces: {quiet:?}");
    // The stream still works.
    honest_update(&running, c, last, 3000).await;

    let mut unknown = Sotw::open(running.port, eds(&["a"], "", "")).await;
    unknown.next().await;
    unknown
        .tx
        .send(DiscoveryRequest {
            type_url: "type.googleapis.com/envoy.config.core.v3.Bogus".into(),
            ..Default::default()
        })
        .await
        .expect("send");
    let status = ended(&mut unknown.rx).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("Bogus"), "{status:?}");

    let mut moved = Sotw::open(running.port, eds(&["a"], "", "")).await;
    moved.next().await;
    moved
        .tx
        .send(DiscoveryRequest {
            node: Some(Node {
                id: "someone-else".into(),
                ..Default::default()
            }),
            ..eds(&["a"], "", "")
        })
        .await
        .expect("send");
    let status = ended(&mut moved.rx).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("node changed"), "{status:?}");
    figures.updates(&running, &mut honest, 10).await;
    drop((unknown, moved));
    figures.finish(&running).await;
}

#[tokio::test]
async fn a_thousand_connect_and_disconnect_cycles_leave_nothing_behind() {
    let _serial = crate::serial().await;
    let running = Running::with(snapshot(&["a"]), ConnectionOptions::default()).await;
    let mut honest = honest(running.port).await;
    {
        let mut c = Sotw::open(running.port, eds(&["a"], "", "")).await;
        c.next().await;
    }
    running.until_metric("xdsc_streams", 1).await;
    let mut figures = Figures::start("1,000 connect, subscribe, disconnect cycles");
    for _ in 0..1000 {
        let mut c = Sotw::open(running.port, eds(&["a"], "", "")).await;
        c.next().await;
    }
    figures.updates(&running, &mut honest, 10).await;
    running.until_metric("xdsc_streams_total", 1002).await;
    figures.finish(&running).await;
}

#[tokio::test]
async fn oversized_and_malformed_messages_get_a_status_and_garbage_frames_a_close() {
    let _serial = crate::serial().await;
    let publisher = xdsc_server::Publisher::new();
    publisher.publish("default", snapshot(&["a"]));
    let server = xdsc_server::XdsServer::new(publisher.clone()).with_max_message_bytes(1 << 20);
    let running = Running::start(publisher, server).await;
    let mut honest = honest(running.port).await;
    warm_up(&running).await;
    let mut figures =
        Figures::start("a 2 MB request, an undecodable message, HTTP/1.1 and garbage frames");

    // 2 MB of names in one request, over the 1 MiB limit.
    let names: Vec<String> = (0..150_000).map(|i| format!("name-{i:08}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let status = raw_stream_status(
        running.port,
        prost::Message::encode_to_vec(&eds(&refs, "", "")),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    // Bytes that are no protobuf message.
    let status = raw_stream_status(running.port, vec![0xff; 64]).await;
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(status.message().contains("decode"), "{status:?}");

    // Not HTTP/2 at all: closed at once.
    let mut http1 = running.raw_from("127.0.0.1").await;
    http1
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    assert!(closed_by_server(&mut http1, STEP).await);
    running
        .until_metric(
            "xdsc_xds_connections_closed_total{reason=\"bad_handshake\"}",
            1,
        )
        .await;
    // HTTP/2, then garbage frames: closed (a GOAWAY first).
    let mut garbage = running.raw_h2().await;
    garbage.write_all(&[0xff; 256]).await.expect("write");
    assert!(closed_by_server(&mut garbage, STEP).await);

    drop(refs);
    drop(names);
    figures.updates(&running, &mut honest, 10).await;
    drop((http1, garbage));
    figures.finish(&running).await;
}

/// Opens an EDS stream whose one message is `bytes` as they are; returns how it ended.
async fn raw_stream_status(port: u16, bytes: Vec<u8>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(bytes).await.expect("send");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints",
    );
    let request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let result = grpc.streaming(request, path, RawCodec).await;
    let status = match result {
        Err(status) => status,
        Ok(response) => {
            let mut rx = response.into_inner();
            loop {
                match tokio::time::timeout(STEP, rx.message()).await {
                    Ok(Ok(Some(_))) => continue,
                    Ok(Ok(None)) => panic!("ended without a status"),
                    Ok(Err(status)) => break status,
                    Err(_) => panic!("no status in time"),
                }
            }
        }
    };
    drop(tx);
    let _ = T::Endpoint;
    status
}

/// A codec that sends bytes as they are and receives them so.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

#[tokio::test]
async fn a_slow_admin_client_is_disconnected_and_does_not_block_the_others() {
    let _serial = crate::serial().await;
    let publisher = xdsc_server::Publisher::new();
    let admin = xdsc_server::XdsServer::new(publisher)
        .admin()
        .with_header_timeout(Duration::from_millis(300));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(admin.serve(listener, std::future::pending()));
    // A client that sends its headers a byte every 50 ms, never finishing them.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    let start = Instant::now();
    let dribble = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if slow.write_all(b"x").await.is_err() {
                break;
            }
        }
    };
    // Meanwhile another client is answered.
    let other = tokio::task::spawn_blocking(move || {
        xdsc_test_support::http_get(port, "localhost", "/healthz")
    });
    let _ = tokio::time::timeout(STEP, dribble).await;
    let closed_after = start.elapsed();
    assert!(
        closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
    assert_eq!(other.await.expect("task").map(|r| r.0), Some(200));
    // Connections beyond the cap are closed at once, and the cap frees up again.
    let mut idle = Vec::new();
    for _ in 0..xdsc_server::MAX_ADMIN_CONNECTIONS {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    let mut over = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    assert!(closed_by_server(&mut over, STEP).await, "over the cap");
    for s in &mut idle {
        assert!(closed_by_server(s, STEP).await, "idle: header timeout");
    }
    let again = tokio::task::spawn_blocking(move || {
        xdsc_test_support::http_get(port, "localhost", "/healthz")
    });
    assert_eq!(again.await.expect("task").map(|r| r.0), Some(200));
}
