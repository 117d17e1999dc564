//! The xDS connection-accept path: every accepted TCP connection is admitted under the
//! connection limits, gets its socket options (TCP_NODELAY, TCP keepalive), must complete its
//! handshake (the HTTP/2 preface) within a timeout, and is served as HTTP/2 by hyper with
//! keepalive pings, so a peer that went silent is closed.
//!
//! Whatever way an embedder hands connections over (a tokio or std listener, or a stream of
//! accepted sockets), they come through [`serve`], so no path skips the options. Without
//! TCP_NODELAY the second HTTP/2 frame of a response waits for the peer's delayed ACK of the
//! first (about 40 ms on Linux) before it is sent.
//!
//! Shutdown is prompt: the listener closes, every xDS stream ends with `UNAVAILABLE` (the
//! [`Handle`] in each request's extensions tells the stream task), every connection gets an
//! HTTP/2 GOAWAY, and connections still open after [`ConnectionOptions::shutdown_grace`] are
//! cut. An Envoy whose stream ends reconnects at once, to another replica when this one has
//! stopped listening; an Envoy that waited for the stream to time out would not.
//!
//! Not here: what a request does (the services in [`crate::service`]); the gRPC framing
//! (tonic).

mod admission;
mod io;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::{Service, http};
use tonic::transport::server::TcpConnectInfo;

use admission::Admission;
use io::{Cut, Io};

use crate::metrics::Closed;

/// How accepted xDS connections are admitted, kept and closed.
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
///     max_connections_per_peer: 16,
///     http2_keepalive_interval: Some(Duration::from_secs(10)),
///     ..ConnectionOptions::default()
/// };
/// let server = XdsServer::new(Publisher::new()).with_connection_options(options);
/// # let _ = server;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// Open connections at most; more are closed at once, with a warning and
    /// `xdsc_xds_connections_refused_total{reason="total"}`. Keep it below the process's
    /// file descriptor limit.
    pub max_connections: usize,
    /// Open connections from one IP address at most (an Envoy needs one; Envoys behind one
    /// NAT address share it); `reason="peer"` in the metric.
    pub max_connections_per_peer: usize,
    /// Concurrent HTTP/2 streams on one connection at most (an Envoy opens one per xDS
    /// service it uses).
    pub max_streams_per_connection: u32,
    /// How long a new connection has to send the HTTP/2 preface; a connection that does not
    /// is closed (`xdsc_xds_connections_closed_total{reason="handshake_timeout"}`).
    pub handshake_timeout: Duration,
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
    /// How long a response may go without an ACK or NACK (and the client without sending
    /// anything) before the client counts as stalled and its connection is closed: a client
    /// that stops reading otherwise holds its encoded responses in memory for good
    /// (`None`: never).
    pub response_timeout: Option<Duration>,
    /// On shutdown, how long connections may take to finish after their streams were ended;
    /// the rest are then cut. Bounds the whole shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            max_connections: 10_000,
            max_connections_per_peer: 1_000,
            max_streams_per_connection: 1_000,
            handshake_timeout: Duration::from_secs(10),
            tcp_keepalive: Some(Duration::from_secs(30)),
            tcp_keepalive_interval: Duration::from_secs(10),
            tcp_keepalive_retries: 3,
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(20),
            response_timeout: Some(Duration::from_secs(120)),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The status every xDS stream ends with when the server shuts down.
pub(crate) const SHUTTING_DOWN: &str = "xDS server shutting down; reconnect";

/// The first bytes of every HTTP/2 connection (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a stream knows of its connection: whether the server is shutting down, and how to
/// close the connection of a client that stopped reading. Found in every request's
/// extensions; a request that did not come through [`serve`] gets one that never fires.
#[derive(Clone, Debug, Default)]
pub(crate) struct Handle {
    closing: Option<tokio::sync::watch::Receiver<bool>>,
    cut: Option<(Cut, Arc<Admission>)>,
    /// See [`ConnectionOptions::response_timeout`].
    pub(crate) response_timeout: Option<Duration>,
}

impl Handle {
    /// The handle of a request.
    pub(crate) fn of(extensions: &tonic::codegen::http::Extensions) -> Handle {
        extensions.get::<Handle>().cloned().unwrap_or_default()
    }

    /// Completes once the server is shutting down.
    pub(crate) async fn closed(&self) {
        match &self.closing {
            // An error means the server is gone: closed as well.
            Some(rx) => drop(rx.clone().wait_for(|closing| *closing).await),
            None => std::future::pending().await,
        }
    }

    /// Closes the connection of a client that stopped reading (once, however many of its
    /// streams notice).
    pub(crate) fn stalled(&self) {
        if let Some((cut, admission)) = &self.cut
            && !cut.is_cut()
        {
            cut.cut();
            admission.closed(Closed::Stalled);
        }
    }
}

/// A request as the HTTP service is handed it, and its response.
type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// The HTTP service every connection is served with (the discovery services' router, which
/// sits above this module and finds each request's [`Handle`] in its extensions).
pub(crate) trait HttpService:
    Service<HttpRequest, Response = HttpResponse, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> HttpService for T where
    T: Service<HttpRequest, Response = HttpResponse, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// After an accept error (out of file descriptors, most likely), how long to wait before
/// accepting again: retrying at once would spin on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long after the grace period, and a cut, a connection task may take to end before it is
/// aborted.
const BACKSTOP: Duration = Duration::from_secs(1);

/// What every connection task shares.
#[derive(Clone)]
struct Shared<H> {
    service: H,
    builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    options: ConnectionOptions,
    admission: Arc<Admission>,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Read for each connection: a reload serves the connections accepted after it.
    tls: Option<crate::tls::TlsConfig>,
}

/// Serves every connection of `incoming` until `shutdown` completes (or `incoming` ends);
/// then stops accepting, ends every stream, asks every connection to finish (HTTP/2 GOAWAY)
/// and waits for them, at most `shutdown_grace`.
pub(crate) async fn serve<I, H: HttpService>(
    incoming: I,
    service: H,
    options: ConnectionOptions,
    tls: Option<crate::tls::TlsConfig>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl Future<Output = ()>,
) where
    I: Stream<Item = std::io::Result<TcpStream>>,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.max_streams_per_connection)
        // HTTP/2 buffers up to this much of a stream's response before asking the body for
        // more. hyper's 400 KiB default let 25 chunks queue at once, and h2 keeps the queue's
        // slab at its largest for the connection's life: 9.8 KiB per idle connection, against
        // 2.4 KiB at 64 KiB (four chunks; BENCHMARKS "Per-connection memory"). The socket's
        // own buffer keeps the connection busy either way.
        .max_send_buf_size(SEND_BUFFER)
        .keep_alive_interval(options.http2_keepalive_interval)
        .keep_alive_timeout(options.http2_keepalive_timeout);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Rotated certificates: read again while serving, ended with the server.
    let reloads = tls.clone().map(|tls| {
        let metrics = Arc::clone(&metrics);
        AbortOnDrop(tokio::spawn(async move {
            tls.reload_while_serving(|ok| metrics.connections.tls_reload(ok))
                .await;
        }))
    });
    let shared = Shared {
        service,
        builder,
        options,
        admission: Admission::new(
            options.max_connections,
            options.max_connections_per_peer,
            metrics,
        ),
        stop,
        tls,
    };
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
            let Ok(peer) = stream.peer_addr() else {
                continue; // Gone already.
            };
            // Refused: dropped here, closed before any byte is read.
            let Ok(ticket) = shared.admission.admit(peer.ip()) else {
                continue;
            };
            configure(&stream, &options);
            connections.spawn(connection(stream, shared.clone(), ticket));
        }
    }
    // The listener is dropped here: new clients are refused while the others drain.
    let _ = stop_tx.send(true);
    tracing::info!(connections = connections.len(), grace = ?options.shutdown_grace, "xDS server stopping: streams ended, connections draining");
    // Each connection cuts itself at the end of the grace period; this is only a backstop.
    let drained = tokio::time::timeout(options.shutdown_grace + BACKSTOP, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    drop(reloads);
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How much of a stream's response HTTP/2 holds before polling the body for more (four
/// [`crate::wire::CHUNK`]s).
const SEND_BUFFER: usize = 4 * crate::wire::CHUNK;

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

/// Reads the HTTP/2 preface; `Err` says why the connection is closed instead.
async fn handshake<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, Closed> {
    let mut preface = vec![0u8; PREFACE.len()];
    match stream.read_exact(&mut preface).await {
        Ok(_) if preface == PREFACE => Ok(preface),
        _ => Err(Closed::BadHandshake),
    }
}

/// A connection past its handshake: plain, or TLS.
enum Opened {
    Plain(TcpStream, Vec<u8>),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, Vec<u8>),
}

/// The TLS handshake (when configured), then the HTTP/2 preface.
async fn open(
    mut stream: TcpStream,
    tls: Option<&crate::tls::TlsConfig>,
    peer: Option<std::net::SocketAddr>,
) -> Result<Opened, Closed> {
    let Some(acceptor) = tls.map(crate::tls::TlsConfig::acceptor) else {
        let prefix = handshake(&mut stream).await?;
        return Ok(Opened::Plain(stream, prefix));
    };
    // rustls errors name what failed (no client certificate, an unknown issuer), never key
    // material.
    let mut stream = acceptor.accept(stream).await.map_err(|e| {
        tracing::debug!(?peer, error = %e, "xDS connection refused: TLS handshake failed");
        Closed::TlsHandshake
    })?;
    let prefix = handshake(&mut stream).await?;
    Ok(Opened::Tls(Box::new(stream), prefix))
}

/// Serves one connection until it ends; on shutdown, until its streams have ended or the
/// grace period is over, whichever comes first.
async fn connection<H: HttpService>(
    stream: TcpStream,
    shared: Shared<H>,
    ticket: admission::Ticket,
) {
    let info = TcpConnectInfo {
        local_addr: stream.local_addr().ok(),
        remote_addr: stream.peer_addr().ok(),
    };
    let peer = info.remote_addr;
    let mut stop = shared.stop.clone();
    let opened = tokio::select! {
        read = tokio::time::timeout(shared.options.handshake_timeout, open(stream, shared.tls.as_ref(), peer)) => {
            match read.unwrap_or(Err(Closed::HandshakeTimeout)) {
                Ok(opened) => opened,
                Err(why) => {
                    tracing::debug!(?peer, reason = ?why, "xDS connection closed before its handshake completed");
                    shared.admission.closed(why);
                    return;
                }
            }
        }
        _ = stop.wait_for(|s| *s) => return,
    };
    match opened {
        Opened::Plain(stream, prefix) => serve_http2(stream, prefix, info, shared, ticket).await,
        Opened::Tls(stream, prefix) => serve_http2(stream, prefix, info, shared, ticket).await,
    }
}

/// Serves HTTP/2 on a connection whose preface (`prefix`) was read.
async fn serve_http2<S, H: HttpService>(
    stream: S,
    prefix: Vec<u8>,
    info: TcpConnectInfo,
    shared: Shared<H>,
    _ticket: admission::Ticket,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Shared {
        service,
        builder,
        options,
        admission,
        mut stop,
        tls: _,
    } = shared;
    let peer = info.remote_addr;
    let cut = Cut::default();
    let handle = Handle {
        closing: Some(stop.clone()),
        cut: Some((cut.clone(), Arc::clone(&admission))),
        response_timeout: options.response_timeout,
    };
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        req.extensions_mut().insert(handle.clone());
        let mut service = service.clone();
        async move {
            let response = service.call(req.map(tonic::body::Body::new)).await;
            Ok::<_, Infallible>(match response {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let conn = builder.serve_connection(TokioIo::new(Io::new(prefix, stream, cut.clone())), svc);
    tokio::pin!(conn);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(options.shutdown_grace, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    // A client that does not read keeps its streams' ends behind data it never
                    // takes: fail the socket, so that hyper ends the streams and closes.
                    // (In debug builds h2 asserts, wrongly, that no stream is open when the
                    // connection is dropped: hyperium/h2#907. Release builds are unaffected.)
                    tracing::info!(?peer, "xDS connection still open after the shutdown grace period; closing it");
                    admission.closed(Closed::Shutdown);
                    cut.cut();
                    conn.await
                }
            }
        }
    };
    match result {
        Err(e) if e.is_timeout() => {
            tracing::info!(
                ?peer,
                "xDS connection closed: an HTTP/2 PING went unanswered"
            );
            admission.closed(Closed::KeepaliveTimeout);
        }
        Err(e) if !cut.is_cut() => {
            tracing::debug!(?peer, error = %e, "xDS connection ended with an error");
        }
        _ => {}
    }
}
