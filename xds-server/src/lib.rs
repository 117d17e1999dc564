//! xdsc-server: serves `xdsc-core` snapshots to fleets of Envoy proxies over xDS.
//!
//! An embedder publishes snapshots per fleet through a [`Publisher`]; [`XdsServer`] serves the
//! aggregated (ADS) and per-type discovery services, state of the world and delta, and
//! [`Admin`] the admin HTTP endpoints. The protocol rules live in [`protocol`], a pure state
//! machine tested without a network; the services only move events in and responses out.
//!
//! Not here: compiling snapshots (`xdsc-core`), watching files or Kubernetes (the adapters).
//!
//! ```no_run
//! # async fn run() -> Result<(), xdsc_server::Error> {
//! use xdsc_core::{compile::Compiled, model::Model};
//! use xdsc_server::{Publisher, XdsServer};
//!
//! let publisher = Publisher::new();
//! publisher.publish("default", Compiled::new(&Model::default()).snapshot().clone());
//! let server = XdsServer::new(publisher.clone());
//! let admin = server.admin();
//! let xds = tokio::net::TcpListener::bind("127.0.0.1:18000").await?;
//! let http = tokio::net::TcpListener::bind("127.0.0.1:18001").await?;
//! // On Ctrl-C: stop accepting, end every xDS stream with UNAVAILABLE (Envoy reconnects,
//! // to another replica, at once), close the connections within the shutdown grace period.
//! let (stop, stopped) = tokio::sync::watch::channel(());
//! let until_stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
//!     let _ = rx.changed().await;
//! };
//! tokio::try_join!(
//!     server.serve(xds, until_stopped(stopped.clone())),
//!     async { admin.serve(http, until_stopped(stopped)).await.map_err(xdsc_server::Error::from) },
//!     async {
//!         let _ = tokio::signal::ctrl_c().await;
//!         drop(stop);
//!         Ok(())
//!     },
//! )?;
//! # Ok(()) }
//! ```

mod admin;
mod budget;
#[cfg(feature = "cli")]
pub mod cli;
mod clients;
mod connection;
mod dispatch;
use dispatch::Dispatch;
pub mod events;
pub mod memory;
mod metrics;
pub mod profile;
pub mod protocol;
mod publish;
mod service;
pub mod source;
mod status;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod tls;
mod wire;

use std::future::Future;

use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_server::ClusterDiscoveryServiceServer;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryServiceServer;
use envoy_types::pb::envoy::service::listener::v3::listener_discovery_service_server::ListenerDiscoveryServiceServer;
use envoy_types::pb::envoy::service::route::v3::route_discovery_service_server::RouteDiscoveryServiceServer;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
use tokio::net::TcpListener;

pub use admin::{
    Admin, DEFAULT_ADMIN_HEADER_TIMEOUT, DebugExtra, MAX_ADMIN_CONNECTIONS, Operability,
    SourceHealth,
};
pub use budget::SyncLimits;
pub use clients::{Origins, Rejection, Rejections};
pub use connection::ConnectionOptions;
pub use metrics::Metrics;
pub use protocol::Limits;
pub use publish::{DEFAULT_FLEET, Publisher};
pub use service::{FleetSelector, fleet_by_node_cluster};

/// The `envoy-types` crate this server speaks, for embedders whose own code (a
/// [`FleetSelector`], raw resources) needs its messages: use it rather than a version of their
/// own, so that the types agree.
pub use envoy_types;
/// The Envoy node of a stream's first request, what a [`FleetSelector`] chooses by.
pub use envoy_types::pb::envoy::config::core::v3::Node;
/// The core this server serves the snapshots of.
pub use xdsc_core;

/// Errors of serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): what the binaries stop on.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// The largest gRPC message accepted or sent by default (64 MiB: a route configuration of
/// 10,000 virtual hosts is a few MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A configured xDS server.
#[derive(Clone)]
pub struct XdsServer {
    shared: service::Shared,
    max_message_bytes: usize,
    connections: ConnectionOptions,
    tls: Option<tls::TlsConfig>,
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer")
            .field("limits", &self.shared.limits)
            .field("sync_limits", &self.shared.budget.limits())
            .field("connections", &self.connections)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl XdsServer {
    /// A server for the snapshots of `publisher`, choosing fleets by the node's `cluster`.
    pub fn new(publisher: Publisher) -> XdsServer {
        XdsServer {
            shared: service::Shared {
                publisher,
                clients: clients::Clients::default(),
                selector: fleet_by_node_cluster(),
                limits: Limits::default(),
                budget: budget::Budget::new(SyncLimits::default()),
                observer: None,
                bodies: Default::default(),
                streams: Default::default(),
            },
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            connections: ConnectionOptions::default(),
            tls: None,
        }
    }

    /// Chooses fleets with this function instead of the node's `cluster`.
    pub fn with_fleet_selector(mut self, selector: FleetSelector) -> XdsServer {
        self.shared.selector = selector;
        self
    }

    /// Reports every stream's events (opened, requests, responses sent, ACKs, NACKs, closed)
    /// to `observer`, without ever waiting for its reader: see [`events`].
    pub fn with_observer(mut self, observer: events::Observer) -> XdsServer {
        self.shared.observer = Some(observer);
        self
    }

    /// Sets per-stream limits.
    pub fn with_limits(mut self, limits: Limits) -> XdsServer {
        self.shared.limits = limits;
        self
    }

    /// Sets how many streams may send large responses at once, and when the memory they
    /// used is returned to the OS (see [`SyncLimits`]).
    pub fn with_sync_limits(mut self, limits: SyncLimits) -> XdsServer {
        self.shared.budget = budget::Budget::new(limits);
        self
    }

    /// Sets the largest gRPC message accepted or sent.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> XdsServer {
        self.max_message_bytes = bytes;
        self
    }

    /// Sets how accepted connections are kept (TCP and HTTP/2 keepalive).
    pub fn with_connection_options(mut self, options: ConnectionOptions) -> XdsServer {
        self.connections = options;
        self
    }

    /// Serves xDS over TLS (mutual TLS when the configuration has client CAs): a client that
    /// fails the handshake is closed before any HTTP/2 byte is read
    /// (`xdsc_xds_connections_closed_total{reason="tls_handshake"}`).
    ///
    /// ```no_run
    /// use xdsc_server::tls::TlsFiles;
    /// use xdsc_server::{Publisher, XdsServer};
    /// // Read again every 5 s: new connections get a rotated certificate.
    /// let tls = TlsFiles::new(
    ///     "/etc/xdsc/tls.crt".into(),
    ///     "/etc/xdsc/tls.key".into(),
    ///     Some("/etc/xdsc/clients-ca.crt".into()),
    /// )
    /// .load()
    /// .expect("readable PEM files");
    /// let server = XdsServer::new(Publisher::new()).with_tls(tls);
    /// # let _ = server;
    /// ```
    pub fn with_tls(mut self, tls: tls::TlsConfig) -> XdsServer {
        self.tls = Some(tls);
        self
    }

    /// The server's metrics (the embedder records builds and source batches here).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.publisher.metrics
    }

    /// The rejections (NACKs) standing now on this server's streams.
    pub fn rejections(&self) -> Rejections {
        self.shared.clients.rejections.clone()
    }

    /// The admin endpoints of this server.
    pub fn admin(&self) -> Admin {
        let mut scraped = prometheus_client::registry::Registry::default();
        scraped.register_collector(Box::new(admin::Scraped {
            publisher: self.shared.publisher.clone(),
            clients: self.shared.clients.clone(),
        }));
        scraped.register_collector(Box::new(memory::Collector));
        Admin {
            publisher: self.shared.publisher.clone(),
            clients: self.shared.clients.clone(),
            extra: None,
            sources: None,
            registries: vec![std::sync::Arc::new(scraped)],
            origins: None,
            build: ("xdsc".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            profiling: false,
            debug: true,
            header_timeout: admin::DEFAULT_ADMIN_HEADER_TIMEOUT,
        }
    }

    /// Serves every discovery service on `listener` until `shutdown` completes; then stops
    /// accepting, ends every xDS stream with `UNAVAILABLE` (so that Envoy reconnects, to
    /// another replica, at once), sends each connection an HTTP/2 GOAWAY, and returns once they
    /// have closed or [`ConnectionOptions::shutdown_grace`] is over (the rest are closed).
    ///
    /// Every accepted connection gets TCP_NODELAY and the keepalive settings of
    /// [`ConnectionOptions`], as with [`XdsServer::serve_std`] and
    /// [`XdsServer::serve_incoming`].
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.serve_incoming(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
    }

    /// [`XdsServer::serve`] on a listener from the standard library (one inherited from a
    /// supervisor, say); it is switched to non-blocking mode.
    pub async fn serve_std(
        self,
        listener: std::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        listener.set_nonblocking(true)?;
        self.serve(TcpListener::from_std(listener)?, shutdown).await
    }

    /// [`XdsServer::serve`] on connections the embedder accepts itself (a stream of accepted
    /// TCP connections, for example from its own listener wrapper). Accept errors are
    /// logged and accepting continues; the stream ending stops the server as `shutdown` does.
    pub async fn serve_incoming<I>(
        self,
        incoming: I,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error>
    where
        I: tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>>,
    {
        let metrics = std::sync::Arc::clone(&self.shared.publisher.metrics);
        // Freed memory goes back to the OS after each wave of large responses (`budget`),
        // for as long as the server serves.
        let release = self.shared.budget.clone().release_after_waves(
            std::sync::Arc::clone(&metrics),
            std::sync::Arc::clone(&self.shared.bodies),
        );
        let serving = connection::serve(
            incoming,
            self.dispatch(),
            self.connections,
            self.tls.clone(),
            metrics,
            shutdown,
        );
        tokio::select! {
            () = serving => {}
            () = release => {}
        }
        Ok(())
    }

    /// The router of every discovery service, streaming and unary.
    fn dispatch(&self) -> Dispatch {
        let services = service::Services(self.shared.clone());
        let max = self.max_message_bytes;
        macro_rules! svc {
            ($server:ident) => {
                $server::new(services.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max)
            };
        }
        Dispatch {
            shared: self.shared.clone(),
            max,
            ads: svc!(AggregatedDiscoveryServiceServer),
            cds: svc!(ClusterDiscoveryServiceServer),
            eds: svc!(EndpointDiscoveryServiceServer),
            lds: svc!(ListenerDiscoveryServiceServer),
            rds: svc!(RouteDiscoveryServiceServer),
            sds: svc!(SecretDiscoveryServiceServer),
        }
    }
}
