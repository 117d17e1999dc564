//! `xdsc-file serve`: the live file source in front of an xDS server and the admin endpoints.
//!
//! The source runs in a thread of its own (see [`crate::source`]); every snapshot it accepts is
//! published to one fleet (`default` unless configured). `/readyz` answers 200 once the first
//! load is published; `/debug/snapshot` shows the source's state and errors under `sources`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use xdsc_core::model::Model;
use xdsc_core::snapshot::Snapshot;
use xdsc_server::tls::TlsFiles;
use xdsc_server::{ConnectionOptions, Metrics, Publisher, XdsServer};

use crate::source::{FileSource, Report, Sink, SourceStatus};

/// Errors of serving.
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
    /// The file watcher could not start.
    #[error("cannot watch the files: {0}")]
    Watch(std::io::Error),
    /// The xDS server failed.
    #[error(transparent)]
    Server(#[from] xdsc_server::Error),
    /// The TLS certificate, key or client CAs could not be used.
    #[error("xDS TLS: {0}")]
    Tls(#[from] xdsc_server::tls::TlsError),
    /// The admin server failed.
    #[error("admin server: {0}")]
    Admin(std::io::Error),
}

/// What `serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The source: paths, parsing, timing.
    pub source: FileSource,
    /// The gRPC xDS listener.
    pub xds_addr: SocketAddr,
    /// The admin HTTP listener.
    pub admin_addr: SocketAddr,
    /// The fleet the snapshots are published to.
    pub fleet: String,
    /// On shutdown, how long xDS connections may take to close after their streams were
    /// ended (see [`xdsc_server::ConnectionOptions::shutdown_grace`]).
    pub shutdown_grace: std::time::Duration,
    /// Whether `/`, `/debug/snapshot` and `/debug/clients` answer.
    pub debug_endpoints: bool,
    /// Profiles and memory logs.
    pub ops: xdsc_server::Operability,
    /// TLS on the xDS listener (mutual TLS with client CAs); `None`: plain text.
    pub tls: Option<xdsc_server::tls::TlsFiles>,
}

struct PublisherSink {
    publisher: Publisher,
    fleet: String,
    server: XdsServer,
    status: Arc<Mutex<Option<SourceStatus>>>,
    /// The served model, for where a NACKed resource's objects were read.
    served: Arc<Mutex<Model>>,
}

impl Sink for PublisherSink {
    fn publish(&mut self, snapshot: Snapshot) {
        tracing::info!(fleet = %self.fleet, version = %snapshot.version(), resources = snapshot.len(), "publishing snapshot");
        self.publisher.publish(&self.fleet, snapshot);
    }

    fn served(&mut self, model: &Model) {
        *self.served.lock().unwrap_or_else(PoisonError::into_inner) = model.clone();
    }

    fn report(&mut self, report: Report<'_>) {
        let m: &Metrics = self.server.metrics();
        if report.changed > 0 {
            m.record_build(report.took.as_secs_f64());
            m.record_batch("files", report.changed);
        }
        if report.held_back && !report.repeated {
            m.record_rejected_batch("files");
        }
        m.set_source_errors("files", report.status.errors.len());
        m.set_source_ignored("files", report.status.ignored.values().sum());
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Some(report.status.clone());
    }
}

/// Serves until `shutdown` completes; then ends every xDS stream, closes the connections
/// within the grace period and stops watching.
pub async fn serve(config: ServeConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })
    };
    // Read first: a bad certificate is reported before anything listens.
    let tls = config.tls.as_ref().map(TlsFiles::load).transpose()?;
    let xds_tls = match &tls {
        None => "off",
        Some(t) if t.requires_client_certificates() => "mutual",
        Some(_) => "on",
    };
    let xds = bind(config.xds_addr).await?;
    let http = bind(config.admin_addr).await?;
    let publisher = Publisher::new();
    let mut server = XdsServer::new(publisher.clone()).with_connection_options(ConnectionOptions {
        shutdown_grace: config.shutdown_grace,
        ..ConnectionOptions::default()
    });
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    let status = Arc::new(Mutex::new(None));
    let debug_status = Arc::clone(&status);
    let served = Arc::new(Mutex::new(Model::default()));
    let model = Arc::clone(&served);
    let admin = server
        .admin()
        .with_build_info("xdsc-file", env!("CARGO_PKG_VERSION"))
        .with_debug_endpoints(config.debug_endpoints)
        .with_origins(Arc::new(move |key| {
            let model = model.lock().unwrap_or_else(PoisonError::into_inner);
            model.get(key).map_or_else(Vec::new, |o| {
                o.provenance().iter().map(ToString::to_string).collect()
            })
        }))
        .with_debug_extra(Arc::new(move || {
            let s = debug_status.lock().unwrap_or_else(PoisonError::into_inner);
            Value::Array(vec![serde_json::to_value(&*s).unwrap_or(Value::Null)])
        }));
    let sink = PublisherSink {
        publisher,
        fleet: config.fleet.clone(),
        server: server.clone(),
        status,
        served,
    };
    let admin = config.ops.start(admin).await;
    let source = config.source.clone();
    let running = tokio::task::spawn_blocking(move || source.start(sink))
        .await
        .map_err(|e| Error::Watch(std::io::Error::other(e)))?
        .map_err(Error::Watch)?;
    tracing::info!(
        xds = %xds.local_addr().map_err(Error::Admin)?,
        admin = %http.local_addr().map_err(Error::Admin)?,
        fleet = %config.fleet,
        xds_tls,
        "serving"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let xds_task = server.serve(xds, stopped(stop_rx.clone()));
    let admin_task = admin.serve(http, stopped(stop_rx));
    let trigger = async {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        Ok::<(), Error>(())
    };
    let result = tokio::try_join!(
        trigger,
        async { xds_task.await.map_err(Error::from) },
        async { admin_task.await.map_err(Error::Admin) }
    );
    let _ = tokio::task::spawn_blocking(move || running.stop()).await;
    result.map(|_| ())
}
