//! The xDS connection-accept path: every accepted TCP connection gets its socket options
//! (TCP_NODELAY, TCP keepalive) and is served as HTTP/2 by hyper, with HTTP/2 keepalive pings.
//!
//! Whatever way an embedder hands connections over (a tokio or std listener, or a stream of
//! accepted sockets), they come through [`serve`], so no path skips the options. Without
//! TCP_NODELAY the second HTTP/2 frame of a response waits for the peer's delayed ACK of the
//! first (about 40 ms on Linux) before it is sent.
//!
//! Shutdown is prompt: the listener closes, every xDS stream ends with `UNAVAILABLE` (a
//! [`Closing`] in each request's extensions tells the stream task), every connection gets an
//! HTTP/2 GOAWAY, and connections still open after [`ConnectionOptions::shutdown_grace`] are
//! dropped. An Envoy whose stream ends reconnects at once, to another replica when this one
//! has stopped listening; an Envoy that waited for the stream to time out would not.
//!
//! Not here: what a request does (the services in [`crate::service`]); the gRPC framing
//! (tonic).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// On shutdown, how long connections may take to finish after their streams were ended;
    /// the rest are then dropped. Bounds the whole shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            tcp_keepalive: Some(Duration::from_secs(30)),
            tcp_keepalive_interval: Duration::from_secs(10),
            tcp_keepalive_retries: 3,
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The status every xDS stream ends with when the server shuts down.
pub(crate) const SHUTTING_DOWN: &str = "xDS server shutting down; reconnect";

/// Tells a stream that its server is shutting down; found in every request's extensions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Closing(Option<tokio::sync::watch::Receiver<bool>>);

impl Closing {
    /// The signal of a request (never, for a request that did not come through [`serve`]).
    pub(crate) fn of(extensions: &tonic::codegen::http::Extensions) -> Closing {
        extensions.get::<Closing>().cloned().unwrap_or_default()
    }

    /// Completes once the server is shutting down.
    pub(crate) async fn closed(&mut self) {
        match &mut self.0 {
            // An error means the server is gone: closed as well.
            Some(rx) => drop(rx.wait_for(|closing| *closing).await),
            None => std::future::pending().await,
        }
    }
}

/// The HTTP service every connection is served with (the discovery services' router).
pub(crate) type HttpService = crate::Dispatch;

/// After an accept error (out of file descriptors, most likely), how long to wait before
/// accepting again: retrying at once would spin on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves every connection of `incoming` until `shutdown` completes (or `incoming` ends);
/// then stops accepting, ends every stream, asks every connection to finish (HTTP/2 GOAWAY)
/// and waits for them, at most `shutdown_grace`.
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
                options.shutdown_grace,
            ));
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
}

/// How long after the grace period, and a cut, a connection task may take to end before it is
/// aborted.
const BACKSTOP: Duration = Duration::from_secs(1);

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

/// Serves one connection until it ends; on shutdown, until its streams have ended or the
/// grace period is over, whichever comes first.
async fn connection(
    stream: TcpStream,
    service: HttpService,
    builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) {
    let info = TcpConnectInfo {
        local_addr: stream.local_addr().ok(),
        remote_addr: stream.peer_addr().ok(),
    };
    let closing = Closing(Some(stop.clone()));
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        req.extensions_mut().insert(closing.clone());
        let mut service = service.clone();
        async move {
            let response = service.call(req.map(tonic::body::Body::new)).await;
            Ok::<_, Infallible>(match response {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let (io, cut) = Io::new(stream);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(grace, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    // A client that does not read keeps its streams' ends behind data it never
                    // takes: fail the socket, so that hyper ends the streams and closes.
                    tracing::info!(peer = ?info_peer(&cut), "xDS connection still open after the shutdown grace period; closing it");
                    // (In debug builds h2 asserts, wrongly, that no stream is open when the
                    // connection is dropped: hyperium/h2#907. Release builds are unaffected.)
                    cut.cut();
                    conn.await
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "xDS connection ended with an error");
    }
}

/// Makes a connection's socket fail, so that hyper ends its streams and closes the connection
/// itself (its tasks end normally rather than being aborted).
#[derive(Clone, Debug)]
pub(crate) struct Cut(Arc<CutState>);

#[derive(Debug, Default)]
struct CutState {
    cut: AtomicBool,
    peer: Option<std::net::SocketAddr>,
    waker: Mutex<Option<Waker>>,
}

fn info_peer(cut: &Cut) -> Option<std::net::SocketAddr> {
    cut.0.peer
}

impl Cut {
    /// Every later read and write of the connection fails; a pending one is woken.
    pub(crate) fn cut(&self) {
        self.0.cut.store(true, Ordering::Release);
        let waker = self
            .0
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The socket of one connection as hyper sees it: reads and writes fail once it is [`Cut`].
struct Io<T> {
    inner: T,
    cut: Arc<CutState>,
}

impl Io<TcpStream> {
    fn new(inner: TcpStream) -> (Io<TcpStream>, Cut) {
        let cut = Arc::new(CutState {
            peer: inner.peer_addr().ok(),
            ..CutState::default()
        });
        (
            Io {
                inner,
                cut: Arc::clone(&cut),
            },
            Cut(cut),
        )
    }
}

impl<T> Io<T> {
    /// `Some(error)` once cut. Otherwise registers the task, so that a cut wakes it if the
    /// operation it is about to try stays pending.
    fn check(&self, cx: &Context<'_>) -> Option<std::io::Error> {
        let mut waker = self
            .cut
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.cut.cut.load(Ordering::Acquire) {
            return Some(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            ));
        }
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        None
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
