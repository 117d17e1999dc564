//! The accept path: TCP_NODELAY whatever the listener handover, and shutdown.

use std::time::{Duration, Instant};

use xdsc_server::{ConnectionOptions, Publisher, XdsServer};

use crate::support::*;

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
    let _serial = crate::serial().await;
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

/// Counted, not timed: the socket the server accepted has TCP_NODELAY, read through a
/// duplicate of it (the same socket) kept by the test. `serve` and `serve_std` hand their
/// connections to `serve_incoming`, which sets the options on each one.
#[tokio::test]
async fn every_accepted_socket_has_tcp_nodelay() {
    use tokio_stream::StreamExt;
    let _serial = crate::serial().await;
    let publisher = Publisher::new();
    publisher.publish("default", snapshot(&["a"]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |s| {
        if let Ok(s) = &s {
            let _ = tx.send(socket2::SockRef::from(s).try_clone().expect("dup"));
        }
        s
    });
    tokio::spawn(XdsServer::new(publisher).serve_incoming(incoming, std::future::pending()));
    for _ in 0..3 {
        // A response has come back: the server has configured the socket.
        let mut c = Sotw::open(port, eds(&["a"], "", "")).await;
        c.next().await;
        let socket = accepted.recv().await.expect("an accepted socket");
        assert!(
            socket.tcp_nodelay().expect("getsockopt"),
            "an accepted xDS connection without TCP_NODELAY"
        );
    }
}

#[tokio::test]
async fn shutdown_ends_every_stream_with_unavailable_and_returns_at_once() {
    let options = ConnectionOptions {
        shutdown_grace: Duration::from_secs(30),
        ..ConnectionOptions::default()
    };
    let running = Running::with(snapshot(&["a"]), options).await;
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
    let _serial = crate::serial().await;
    let running = Running::with(snapshot_with(&["a"], 20_000), options).await;
    let mut stalled = unread_big(running.port).await;
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
    assert!(ended_in_error(&mut stalled).await);
}
