//! The xDS connection-accept path: every accepted TCP connection gets its socket options
//! (TCP_NODELAY, TCP keepalive) and is served as HTTP/2 by hyper, with HTTP/2 keepalive pings.
//!
//! Whatever way an embedder hands connections over (a tokio or std listener, or a stream of
//! accepted sockets), they come through [`serve`], so no path skips the options. Without
//! TCP_NODELAY the tail of a response larger than one segment waits for the peer's delayed
//! ACK (about 40 ms on Linux) before it is sent.
//!
//! Not here: what a request does (the services in [`crate::service`]); the gRPC framing
//! (tonic).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::Service;
use tonic::transport::server::TcpConnectInfo;

/// How accepted xDS connections are kept: TCP and HTTP/2 keepalive.
///
/// The defaults suit Envoy: it answers HTTP/2 pings, so a peer that vanished (a node that lost
/// power, a dropped NAT entry) is noticed within `http2_keepalive_interval` +
/// `http2_keepalive_timeout` even when no update is being sent, and its stream's state freed.
///
/// ```
/// use std::time::Duration;
/// use xdsc_server::{ConnectionOptions, Publisher, XdsServer};
///
/// let options = ConnectionOptions {
///     http2_keepalive_interval: Some(Duration::from_secs(10)),
///     ..ConnectionOptions::default()
/// };
/// let server = XdsServer::new(Publisher::new()).with_connection_options(options);
/// # let _ = server;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// Idle time before the kernel sends TCP keepalive probes (`None`: no TCP keepalive).
    pub tcp_keepalive: Option<Duration>,
    /// Time between TCP keepalive probes.
    pub tcp_keepalive_interval: Duration,
    /// Unanswered TCP keepalive probes before the kernel drops the connection.
    pub tcp_keepalive_retries: u32,
    /// Time between HTTP/2 PING frames on a connection that received nothing meanwhile
    /// (`None`: no pings).
    pub http2_keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed. Generous: Envoy
    /// answers on its main thread, which can be busy applying a large update.
    pub http2_keepalive_timeout: Duration,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            tcp_keepalive: Some(Duration::from_secs(30)),
            tcp_keepalive_interval: Duration::from_secs(10),
            tcp_keepalive_retries: 3,
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// The HTTP service every connection is served with (the discovery services' router).
pub(crate) type HttpService = crate::Dispatch;

/// After an accept error (out of file descriptors, most likely), how long to wait before
/// accepting again: retrying at once would spin on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves every connection of `incoming` until `shutdown` completes; then stops accepting,
/// asks every connection to finish (HTTP/2 GOAWAY) and waits for them.
pub(crate) async fn serve<I>(
    incoming: I,
    service: HttpService,
    options: ConnectionOptions,
    shutdown: impl Future<Output = ()>,
) where
    I: Stream<Item = std::io::Result<TcpStream>>,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(options.http2_keepalive_interval)
        .keep_alive_timeout(options.http2_keepalive_timeout);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    {
        tokio::pin!(incoming);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = incoming.next() => accepted,
            };
            let stream = match accepted {
                Some(Ok(stream)) => stream,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot accept an xDS connection; retrying shortly");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
                None => break,
            };
            configure(&stream, &options);
            connections.spawn(connection(
                stream,
                service.clone(),
                builder.clone(),
                stop_rx.clone(),
            ));
        }
    }
    // The listener is dropped here: new clients are refused while the others drain.
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// Sets the socket options of an accepted connection. Failing to set one is logged, not
/// fatal: the connection still works.
fn configure(stream: &TcpStream, options: &ConnectionOptions) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(error = %e, "cannot set TCP_NODELAY on an xDS connection");
    }
    if let Some(time) = options.tcp_keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(time)
            .with_interval(options.tcp_keepalive_interval)
            .with_retries(options.tcp_keepalive_retries);
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
            tracing::warn!(error = %e, "cannot set TCP keepalive on an xDS connection");
        }
    }
}

/// Serves one connection until it ends, or until shutdown and then its streams end.
async fn connection(
    stream: TcpStream,
    service: HttpService,
    builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let info = TcpConnectInfo {
        local_addr: stream.local_addr().ok(),
        remote_addr: stream.peer_addr().ok(),
    };
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let mut service = service.clone();
        async move {
            let response = service.call(req.map(tonic::body::Body::new)).await;
            Ok::<_, Infallible>(match response {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "xDS connection ended with an error");
    }
}
