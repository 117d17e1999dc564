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
//! tokio::try_join!(
//!     server.serve(xds, std::future::pending()),
//!     async { admin.serve(http, std::future::pending()).await.map_err(xdsc_server::Error::from) },
//! )?;
//! # Ok(()) }
//! ```

mod admin;
mod budget;
mod clients;
mod dispatch;
mod metrics;
pub mod protocol;
mod publish;
mod service;
#[cfg(feature = "test-util")]
pub mod testing;
mod wire;

use std::future::Future;

use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_server::ClusterDiscoveryServiceServer;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryServiceServer;
use envoy_types::pb::envoy::service::listener::v3::listener_discovery_service_server::ListenerDiscoveryServiceServer;
use envoy_types::pb::envoy::service::route::v3::route_discovery_service_server::RouteDiscoveryServiceServer;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
use tokio::net::TcpListener;

pub use admin::{Admin, DebugExtra};
pub use budget::SyncLimits;
pub use metrics::Metrics;
pub use protocol::Limits;
pub use publish::{DEFAULT_FLEET, Publisher};
pub use service::{FleetSelector, fleet_by_node_cluster};

/// Errors of serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gRPC transport failed.
    #[error("xDS transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A socket operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The largest gRPC message accepted or sent by default (64 MiB: a route configuration of
/// 10,000 virtual hosts is a few MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A configured xDS server.
#[derive(Clone)]
pub struct XdsServer {
    shared: service::Shared,
    max_message_bytes: usize,
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer")
            .field("limits", &self.shared.limits)
            .field("sync_limits", &self.shared.budget.limits())
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
            },
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Chooses fleets with this function instead of the node's `cluster`.
    pub fn with_fleet_selector(mut self, selector: FleetSelector) -> XdsServer {
        self.shared.selector = selector;
        self
    }

    /// Sets per-stream limits.
    pub fn with_limits(mut self, limits: Limits) -> XdsServer {
        self.shared.limits = limits;
        self
    }

    /// Sets how many streams may send large responses at once (see [`SyncLimits`]).
    pub fn with_sync_limits(mut self, limits: SyncLimits) -> XdsServer {
        self.shared.budget = budget::Budget::new(limits);
        self
    }

    /// Sets the largest gRPC message accepted or sent.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> XdsServer {
        self.max_message_bytes = bytes;
        self
    }

    /// The server's metrics (the embedder records builds and source batches here).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.publisher.metrics
    }

    /// The admin endpoints of this server.
    pub fn admin(&self) -> Admin {
        Admin {
            publisher: self.shared.publisher.clone(),
            clients: self.shared.clients.clone(),
            extra: None,
        }
    }

    /// Serves every discovery service on `listener` until `shutdown` completes; then stops
    /// accepting, and lets streams end.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let services = service::Services(self.shared.clone());
        let max = self.max_message_bytes;
        macro_rules! svc {
            ($server:ident) => {
                $server::new(services.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max)
            };
        }
        let dispatch = dispatch::Dispatch {
            shared: self.shared.clone(),
            max,
            ads: svc!(AggregatedDiscoveryServiceServer),
            cds: svc!(ClusterDiscoveryServiceServer),
            eds: svc!(EndpointDiscoveryServiceServer),
            lds: svc!(ListenerDiscoveryServiceServer),
            rds: svc!(RouteDiscoveryServiceServer),
            sds: svc!(SecretDiscoveryServiceServer),
        };
        tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(
                dispatch,
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown,
            )
            .await?;
        Ok(())
    }
}
