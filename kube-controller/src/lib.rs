//! xdsc-kube, the Kubernetes controller: watches the API server with kube-runtime, feeds the
//! incremental translation (`xdsc_kube::translator`), serves xDS from every replica, and
//! writes status from the holder of a `coordination.k8s.io/v1` Lease.
//!
//! ```text
//!  API server ──watch──▶ watch (strip, parse) ──▶ inbox (slot per object) ──▶ controller loop
//!     ▲                  per kind, per namespace     hold-off, max delay        translate, compile, publish
//!     │                                                                          │ statuses, NACKs
//!     └──── status writer (leader only, latest-wins slot per object) ◀── status hub
//! ```
//!
//! [`run`] wires it: [`watch`] (one task per kind, kinds from [`kinds`]), [`inbox`],
//! [`controller`] (the loop), [`status`] (the hub and writer), [`lease`] (leadership),
//! [`health`] (per-watch state, `/readyz`, `/healthz`, `/debug/sources`, metrics) and
//! [`activity`] (watch-stream bytes seen in the client). Every replica watches, translates
//! and serves; replicas given the same objects publish byte-identical snapshots, so an Envoy
//! that moves between them receives nothing it already holds.
//!
//! Not here: what Kubernetes objects mean (`xdsc_kube`, pure and shared with `xdsc-file`),
//! the xDS protocol (`xdsc_server`), and the command line (`main.rs`).

pub mod activity;
pub mod controller;
pub mod health;
pub mod inbox;
pub mod kinds;
pub mod lease;
pub mod status;
pub mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use xdsc_kube::translate::Options;
use xdsc_server::tls::TlsFiles;
use xdsc_server::{ConnectionOptions, Publisher, XdsServer};

use crate::activity::Activity;
use crate::health::{AdminView, Board};
use crate::inbox::{Inbox, Timing};
use crate::kinds::Resources;
use crate::lease::{Elector, LeaseConfig};
use crate::status::StatusHub;
use crate::watch::Shared;

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The Kubernetes client could not be built from the configuration.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The xDS server failed.
    #[error(transparent)]
    Server(#[from] xdsc_server::Error),
    /// The admin server failed.
    #[error("admin server: {0}")]
    Admin(std::io::Error),
    /// The TLS certificate, key or client CAs could not be used.
    #[error("xDS TLS: {0}")]
    Tls(#[from] xdsc_server::tls::TlsError),
}

/// Everything [`run`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// How to reach the API server.
    pub kube: kube::Config,
    /// The gRPC xDS listener.
    pub xds_addr: SocketAddr,
    /// The admin HTTP listener.
    pub admin_addr: SocketAddr,
    /// The fleet snapshots are published to.
    pub fleet: String,
    /// How long xDS connections may take to close on shutdown.
    pub shutdown_grace: Duration,
    /// The namespaces watched (empty: all).
    pub namespaces: Vec<String>,
    /// What the translation takes and where it serves it.
    pub translation: Options,
    /// How batches are cut.
    pub timing: Timing,
    /// A watch unhealthy for longer than this turns `/readyz` to 503.
    pub stale_after: Duration,
    /// The Lease whose holder writes status; `None`: never write status.
    pub lease: Option<LeaseConfig>,
    /// Profiles and memory logs.
    pub ops: xdsc_server::Operability,
    /// TLS on the xDS listener (mutual TLS with client CAs); `None`: plain text.
    pub tls: Option<xdsc_server::tls::TlsFiles>,
}

impl Config {
    /// A configuration with the defaults of the command line, for `kube`.
    pub fn new(kube: kube::Config) -> Config {
        let mut translation = Options {
            // In a cluster an Ingress without a class is taken only through a default
            // IngressClass, as the Ingress spec says.
            take_unclassed_ingress_without_classes: false,
            ..Options::default()
        };
        translation.ingress_status_addresses.clear();
        Config {
            kube,
            xds_addr: SocketAddr::from(([127, 0, 0, 1], 18000)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 18001)),
            fleet: xdsc_server::DEFAULT_FLEET.to_owned(),
            shutdown_grace: Duration::from_secs(5),
            namespaces: Vec::new(),
            translation,
            timing: Timing::default(),
            stale_after: Duration::from_secs(60),
            lease: Some(LeaseConfig::new("xdsc-kube", "default", "xdsc-kube")),
            ops: xdsc_server::Operability::default(),
            tls: None,
        }
    }
}

/// Marks a task dead on the board if it ends, unless the process is stopping.
struct Supervised {
    board: Arc<Board>,
    name: String,
    stopping: Arc<AtomicBool>,
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if !self.stopping.load(Ordering::SeqCst) {
            self.board.task_ended(self.name.clone());
        }
    }
}

/// The controller's tasks, aborted when [`run_with`] returns or its future is dropped (so a
/// dropped controller stops at once, as a killed process does: no Lease release).
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn spawn_supervised(
    board: &Arc<Board>,
    stopping: &Arc<AtomicBool>,
    name: String,
    fut: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::AbortHandle {
    let guard = Supervised {
        board: Arc::clone(board),
        name,
        stopping: Arc::clone(stopping),
    };
    tokio::spawn(async move {
        let _guard = guard;
        fut.await;
    })
    .abort_handle()
}

/// Runs the controller until `shutdown` completes: then ends every xDS stream, releases
/// the Lease if held, and returns.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    run_with(config, Publisher::new(), shutdown).await
}

/// [`run`], publishing into `publisher` (an embedder or a test reads the snapshots there).
pub async fn run_with(
    config: Config,
    publisher: Publisher,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })
    };
    // Read first: a bad certificate is reported before anything listens.
    let tls = config.tls.as_ref().map(TlsFiles::load).transpose()?;
    let xds = bind(config.xds_addr).await?;
    let http = bind(config.admin_addr).await?;
    let activity = Activity::default();
    let client = kube::client::ClientBuilder::try_from(config.kube.clone())
        .map_err(Error::Client)?
        .with_layer(&activity.layer())
        .build();
    let board = Arc::new(Board::new(config.stale_after, activity));
    let inbox = Arc::new(Inbox::default());
    let hub = Arc::new(StatusHub::new(&config.translation.gateway_controller));
    let resources = Arc::new(Resources::default());
    let mut server = XdsServer::new(publisher.clone()).with_connection_options(ConnectionOptions {
        shutdown_grace: config.shutdown_grace,
        ..ConnectionOptions::default()
    });
    if let Some(tls) = tls {
        tracing::info!(
            xds_tls = if tls.requires_client_certificates() {
                "mutual"
            } else {
                "on"
            },
            "xDS over TLS"
        );
        server = server.with_tls(tls);
    }
    let admin = server
        .admin()
        .with_build_info("xdsc-kube", env!("CARGO_PKG_VERSION"))
        .with_sources(Arc::new(AdminView(Arc::clone(&board))));
    let admin = config.ops.start(admin).await;
    let stopping = Arc::new(AtomicBool::new(false));
    let mut tasks = Tasks(Vec::new());

    let shared = Shared {
        client: client.clone(),
        inbox: Arc::clone(&inbox),
        board: Arc::clone(&board),
        hub: Arc::clone(&hub),
        resources: Arc::clone(&resources),
    };
    let namespaces: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let watched = kinds::watched();
    watch::register(&board, &watched, &namespaces);
    for kind in watched {
        let name = format!("watch {}", kind.kind());
        tasks.0.push(spawn_supervised(
            &board,
            &stopping,
            name,
            watch::run_kind(shared.clone(), kind, namespaces.clone()),
        ));
    }

    let metrics_server = server.clone();
    let looped = controller::Loop {
        core: controller::Core::new(config.translation.clone()),
        inbox: Arc::clone(&inbox),
        board: Arc::clone(&board),
        hub: Arc::clone(&hub),
        resources: Arc::clone(&resources),
        client: client.clone(),
        publisher: publisher.clone(),
        rejections: server.rejections(),
        fleet: config.fleet.clone(),
        timing: config.timing,
        metrics: Arc::new(move |seconds, objects| {
            let m = metrics_server.metrics();
            m.record_build(seconds);
            m.record_batch("kubernetes", objects);
        }),
    };
    tasks.0.push(spawn_supervised(
        &board,
        &stopping,
        "controller loop".into(),
        looped.run(),
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // A dropped sender (the controller's future dropped) is no request to stop: the
        // tasks are aborted instead.
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let elector_task = match &config.lease {
        Some(lease) => {
            let elector = Elector::new(client.clone(), lease.clone());
            let leading = elector.subscribe();
            tasks.0.push(spawn_supervised(
                &board,
                &stopping,
                "status writer".into(),
                status::run_writer(
                    Arc::clone(&hub),
                    client.clone(),
                    Arc::clone(&resources),
                    Arc::clone(&board),
                    leading,
                ),
            ));
            tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "taking part in leader election");
            board.set_status(
                "lease",
                serde_json::json!({"name": lease.name, "namespace": lease.namespace, "identity": lease.identity}),
            );
            let task = tokio::spawn(elector.run(stopped(stop_rx.clone())));
            tasks.0.push(task.abort_handle());
            Some(task)
        }
        None => {
            tracing::info!("no Lease: this replica never writes status");
            None
        }
    };

    tracing::info!(
        xds = %xds.local_addr().map_err(Error::Admin)?,
        admin = %http.local_addr().map_err(Error::Admin)?,
        fleet = %config.fleet,
        namespaces = ?config.namespaces,
        "serving"
    );
    let xds_task = server.serve(xds, stopped(stop_rx.clone()));
    let admin_task = admin.serve(http, stopped(stop_rx));
    let trigger = async {
        shutdown.await;
        tracing::info!("shutting down");
        stopping.store(true, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        Ok::<(), Error>(())
    };
    let result = tokio::try_join!(
        trigger,
        async { xds_task.await.map_err(Error::from) },
        async { admin_task.await.map_err(Error::Admin) }
    );
    stopping.store(true, Ordering::SeqCst);
    if let Some(e) = elector_task {
        // Releasing the Lease is one request; do not wait for an API server that is gone.
        let _ = tokio::time::timeout(Duration::from_secs(3), e).await;
    }
    drop(tasks);
    result.map(|_| ())
}
