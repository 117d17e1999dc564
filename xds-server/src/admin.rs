//! The admin HTTP endpoints: health, readiness, Prometheus metrics and debug views.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | 200 while the process works (and the embedder's sources are alive) |
//! | `GET /readyz` | 200 once a snapshot is published (and the embedder's sources are ready), 503 with the reasons before |
//! | `GET /metrics` | Prometheus text |
//! | `GET /debug/snapshot` | each fleet's snapshot as Envoy JSON, secrets redacted |
//! | `GET /debug/clients` | each stream: node, fleet, subscriptions, versions sent and acknowledged, last NACK |
//! | `GET /debug/sources` | the embedder's sources (with [`Admin::with_sources`]) |
//! | `GET /` | the status page: fleets, Envoys, NACKs and where they come from, sources, memory (HTML) |
//! | `GET /debug/status` | the status page's figures as JSON |
//! | `GET /debug/pprof/profile?seconds=N` | a CPU profile of N seconds (default 10, at most 50), pprof protobuf; only [`Admin::with_profiling`] |
//! | `GET /debug/pprof/heap` | a heap profile (jemalloc's sampled live allocations), gzipped pprof; only [`Admin::with_profiling`] |
//!
//! `/` and `/debug/*` can be turned off ([`Admin::with_debug_endpoints`]): they show node
//! identities, addresses and configuration, which not every operator wants on a port. The
//! profiles are off unless turned on. A slow client cannot
//! hold the listener: request headers must arrive within a timeout, a connection lives at
//! most a minute, and at most [`MAX_ADMIN_CONNECTIONS`] are open at once (more are closed).
//!
//! The admin sits above what it shows: it gathers the status page's inputs and hands them
//! to `status` (which renders them and knows no `Admin`), renders the server's `metrics`
//! and adds the families read when scraped (`Scraped`: snapshot sizes, connected streams).
//!
//! Not here: binding the listener (the binaries keep it on loopback by default).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use xdsc_core::snapshot::ResourceType;

use crate::clients::{Clients, Origins};
use crate::publish::Publisher;

/// Extra JSON an embedder adds to `/debug/snapshot` (for example its sources' errors).
pub type DebugExtra = Arc<dyn Fn() -> Value + Send + Sync>;

/// What an embedder's sources tell the admin endpoints: whether they are ready and alive
/// (with the reasons when not), their state, and metrics of their own.
///
/// ```
/// use xdsc_server::SourceHealth;
/// struct Always;
/// impl SourceHealth for Always {
///     fn ready(&self) -> Result<(), String> { Ok(()) }
///     fn alive(&self) -> Result<(), String> { Ok(()) }
///     fn status(&self) -> serde_json::Value { serde_json::json!({"kind": "always"}) }
/// }
/// let admin = xdsc_server::XdsServer::new(xdsc_server::Publisher::new())
///     .admin()
///     .with_sources(std::sync::Arc::new(Always));
/// # let _ = admin;
/// ```
pub trait SourceHealth: Send + Sync + 'static {
    /// `Ok` once every source has synced and is healthy; otherwise why not (`/readyz`
    /// answers 503 with it).
    fn ready(&self) -> Result<(), String>;
    /// `Ok` while the sources work; otherwise why not (`/healthz` answers 503 with it, so
    /// that a supervisor restarts the process).
    fn alive(&self) -> Result<(), String>;
    /// The sources' state as JSON (`/debug/sources`, and `sources` in `/debug/snapshot`).
    fn status(&self) -> Value;
    /// Adds the sources' metric families to `registry`, once, when the admin endpoints are
    /// given the sources; `/metrics` renders them after the server's. Families whose values
    /// are read when scraped are a `prometheus_client` collector
    /// (`registry.register_collector`).
    fn register_metrics(&self, registry: &mut Registry) {
        let _ = registry;
    }
}

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    pub(crate) publisher: Publisher,
    pub(crate) clients: Clients,
    pub(crate) extra: Option<DebugExtra>,
    pub(crate) sources: Option<Arc<dyn SourceHealth>>,
    /// The families read when scraped (snapshots, clients, memory) and the sources' own.
    pub(crate) registries: Vec<Arc<Registry>>,
    pub(crate) origins: Option<Origins>,
    /// The binary's name and version, shown on the status page.
    pub(crate) build: (String, String),
    pub(crate) profiling: bool,
    pub(crate) debug: bool,
    pub(crate) header_timeout: Duration,
}

/// What a binary turns on for its operators: profiles on the admin listener, and how memory
/// is logged. Both binaries take it from the same flags (`--profiling`,
/// `--memory-log-at`, `--memory-summary-every`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ops = xdsc_server::Operability::default();
/// let admin = ops.start(xdsc_server::XdsServer::new(xdsc_server::Publisher::new()).admin()).await;
/// assert_eq!(admin.handle(&hyper::Method::GET, "/debug/pprof/heap").status(), 404);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Operability {
    /// Serve `/debug/pprof/*` and sample heap allocations from the start.
    pub profiling: bool,
    /// The memory log lines.
    pub memory: crate::memory::MemoryWatch,
}

impl Operability {
    /// Starts the memory watch (a task of the current runtime) and, with profiling, jemalloc's
    /// allocation sampling (a warning if this build or allocator cannot); returns `admin`
    /// with the profiles turned on or off.
    pub async fn start(&self, admin: Admin) -> Admin {
        // Runs until the runtime ends; its handle is not needed.
        drop(self.memory.clone().spawn());
        if self.profiling {
            match crate::profile::activate_heap_profiling().await {
                Ok(()) => {
                    tracing::info!("profiling on: /debug/pprof/profile and /debug/pprof/heap")
                }
                Err(e) => tracing::warn!(error = %e, "profiling on, but no heap profiles: {e}"),
            }
        }
        admin.with_profiling(self.profiling)
    }
}

/// The longest CPU profile served (an admin connection lives at most a minute).
pub(crate) const MAX_PROFILE_SECONDS: u64 = 50;

/// Admin connections open at once at most; more are closed at once.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// How long an admin connection may live (a slow reader of a large `/debug/snapshot`
/// included).
const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How long a client has to send a request's headers, by default.
pub const DEFAULT_ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json(v: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    respond(StatusCode::OK, "application/json", body)
}

impl Admin {
    /// Turns `/debug/snapshot` and `/debug/clients` on (the default) or off (404).
    ///
    /// ```
    /// let admin = xdsc_server::XdsServer::new(xdsc_server::Publisher::new())
    ///     .admin()
    ///     .with_debug_endpoints(false);
    /// assert_eq!(admin.handle(&hyper::Method::GET, "/debug/clients").status(), 404);
    /// ```
    pub fn with_debug_endpoints(mut self, on: bool) -> Admin {
        self.debug = on;
        self
    }

    /// Sets how long a client has to send a request's headers
    /// ([`DEFAULT_ADMIN_HEADER_TIMEOUT`] by default); a slower one is disconnected.
    pub fn with_header_timeout(mut self, timeout: Duration) -> Admin {
        self.header_timeout = timeout;
        self
    }

    /// Names the binary on the status page (name and version).
    pub fn with_build_info(mut self, name: &str, version: &str) -> Admin {
        self.build = (name.to_owned(), version.to_owned());
        self
    }

    /// Turns `/debug/pprof/profile` and `/debug/pprof/heap` on (off by default: a profile
    /// shows the code and costs a sampling signal while it runs).
    ///
    /// ```
    /// let admin = xdsc_server::XdsServer::new(xdsc_server::Publisher::new()).admin();
    /// assert_eq!(admin.handle(&hyper::Method::GET, "/debug/pprof/heap").status(), 404);
    /// ```
    pub fn with_profiling(mut self, on: bool) -> Admin {
        self.profiling = on;
        self
    }

    /// Says where model objects were read, for NACKs on the status page and in
    /// `/debug/clients` (`origins` of each last NACK).
    pub fn with_origins(mut self, origins: Origins) -> Admin {
        self.origins = Some(origins);
        self
    }

    /// Answers one request, profiles included (they take time: a CPU profile lasts as
    /// long as asked).
    pub async fn answer(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Response<Full<Bytes>> {
        if method != Method::GET || !path.starts_with("/debug/pprof/") || !self.debug {
            return self.handle(method, path);
        }
        if !self.profiling {
            return respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "profiling is off (start with --profiling)\n",
            );
        }
        let result = match path {
            "/debug/pprof/profile" => {
                let seconds = query
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .find_map(|kv| kv.strip_prefix("seconds="))
                    .map_or(Ok(10), str::parse::<u64>);
                let Ok(seconds) = seconds else {
                    return respond(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "seconds must be a whole number\n",
                    );
                };
                let duration = Duration::from_secs(seconds.clamp(1, MAX_PROFILE_SECONDS));
                tokio::task::spawn_blocking(move || crate::profile::cpu(duration))
                    .await
                    .unwrap_or_else(|e| Err(crate::profile::ProfileError::Failed(e.to_string())))
            }
            "/debug/pprof/heap" => crate::profile::heap().await,
            _ => return respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        };
        match result {
            Ok(bytes) => {
                let mut r = respond(StatusCode::OK, "application/octet-stream", bytes);
                if let Ok(v) = "attachment; filename=\"profile.pb.gz\"".parse() {
                    r.headers_mut()
                        .insert(hyper::header::CONTENT_DISPOSITION, v);
                }
                r
            }
            Err(e @ crate::profile::ProfileError::Busy) => {
                respond(StatusCode::CONFLICT, "text/plain", format!("{e}\n"))
            }
            Err(e) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{e}\n"),
            ),
        }
    }

    /// Adds embedder JSON under `"sources"` in `/debug/snapshot`.
    pub fn with_debug_extra(mut self, extra: DebugExtra) -> Admin {
        self.extra = Some(extra);
        self
    }

    /// Adds the embedder's sources: `/readyz` also waits for them, `/healthz` fails when
    /// they are not alive, `/debug/sources` shows them, `/metrics` adds theirs.
    pub fn with_sources(mut self, sources: Arc<dyn SourceHealth>) -> Admin {
        let mut registry = Registry::default();
        sources.register_metrics(&mut registry);
        self.registries.push(Arc::new(registry));
        self.sources = Some(sources);
        self
    }

    /// The Prometheus text of `/metrics`: the server's families, those read when scraped,
    /// then the sources'.
    pub fn metrics_text(&self) -> String {
        let mut text = self.publisher.metrics.render();
        for r in &self.registries {
            crate::metrics::encode(&mut text, r);
        }
        text
    }

    /// Answers one request.
    pub fn handle(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET {
            return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
        }
        match path {
            "/healthz" => match self.sources.as_ref().map_or(Ok(()), |s| s.alive()) {
                Ok(()) => respond(StatusCode::OK, "text/plain", "ok\n"),
                Err(why) => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("{why}\n"),
                ),
            },
            "/readyz" => {
                let mut reasons = Vec::new();
                if let Some(Err(why)) = self.sources.as_ref().map(|s| s.ready()) {
                    reasons.push(why);
                } else if !self.publisher.is_ready() {
                    reasons.push("no snapshot published yet".to_owned());
                }
                if reasons.is_empty() {
                    respond(StatusCode::OK, "text/plain", "ready\n")
                } else {
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        format!("{}\n", reasons.join("\n")),
                    )
                }
            }
            "/metrics" => respond(
                StatusCode::OK,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                self.metrics_text(),
            ),
            p if (p == "/" || p.starts_with("/debug/")) && !self.debug => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "debug endpoints are off\n",
            ),
            "/debug/sources" => json(&self.sources_json()),
            "/debug/clients" => json(&self.clients_json()),
            "/debug/status" => json(&self.status_json()),
            "/" => respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                crate::status::html(&self.status_json()),
            ),
            "/debug/snapshot" => {
                let mut fleets = Map::new();
                for fleet in self.publisher.fleets() {
                    if let Some(s) = self.publisher.snapshot(&fleet) {
                        let v = xdsc_core::render::debug_json(&s)
                            .unwrap_or_else(|e| Value::String(format!("cannot render: {e}")));
                        fleets.insert(fleet, v);
                    }
                }
                let mut out = Map::new();
                out.insert("fleets".into(), Value::Object(fleets));
                if let Some(s) = &self.sources {
                    out.insert("sources".into(), s.status());
                } else if let Some(extra) = &self.extra {
                    out.insert("sources".into(), extra());
                }
                json(&Value::Object(out))
            }
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }

    /// `/debug/sources`: the sources' state, else the embedder's extra JSON, else `null`.
    fn sources_json(&self) -> Value {
        match (&self.sources, &self.extra) {
            (Some(s), _) => s.status(),
            (None, Some(extra)) => extra(),
            (None, None) => Value::Null,
        }
    }

    /// `/debug/clients`: every stream, each last NACK with its origins when known.
    fn clients_json(&self) -> Value {
        self.clients.to_json(self.origins.as_ref())
    }

    /// `/debug/status`, what the status page shows.
    fn status_json(&self) -> Value {
        crate::status::json(
            &self.build,
            &self.publisher,
            self.clients_json(),
            self.sources_json(),
        )
    }

    /// Serves the endpoints on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        let open = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
        loop {
            let (socket, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors, most likely: wait instead of spinning.
                        tracing::warn!(error = %e, "cannot accept an admin connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return Ok(()),
            };
            let Ok(place) = Arc::clone(&open).try_acquire_owned() else {
                tracing::debug!(%peer, "admin connection refused: too many open");
                continue;
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let _place = place;
                let header_timeout = admin.header_timeout;
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let admin = admin.clone();
                    async move {
                        let uri = req.uri();
                        Ok::<_, Infallible>(
                            admin.answer(req.method(), uri.path(), uri.query()).await,
                        )
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(socket), service);
                match tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, conn).await {
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "admin connection ended with an error");
                    }
                    Err(_) => tracing::debug!(%peer, "admin connection closed: open too long"),
                    Ok(Ok(())) => {}
                }
            });
        }
    }
}

/// The families read when scraped: each fleet's published snapshot (resources and bytes per
/// type) and the connected streams. Counting bytes walks the snapshot's resources (a few
/// microseconds per thousand); nothing is counted on publish.
#[derive(Debug)]
pub(crate) struct Scraped {
    pub(crate) publisher: Publisher,
    pub(crate) clients: Clients,
}

impl prometheus_client::collector::Collector for Scraped {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::gauge::ConstGauge;
        let fleets: Vec<_> = self
            .publisher
            .fleets()
            .into_iter()
            .filter_map(|f| self.publisher.snapshot(&f).map(|s| (f, s)))
            .collect();
        type Figure = fn(&xdsc_core::snapshot::Resources) -> usize;
        let families: [(&str, &str, Figure); 2] = [
            (
                "xdsc_snapshot_resources",
                "Resources in each fleet's published snapshot, per type",
                |r| r.len(),
            ),
            (
                "xdsc_snapshot_bytes",
                "Encoded bytes of the resources in each fleet's published snapshot, per type",
                |r| r.iter().map(|x| x.body().len()).sum(),
            ),
        ];
        for (name, help, figure) in families {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (fleet, s) in &fleets {
                for t in ResourceType::ALL {
                    let labels = [("fleet", fleet.as_str()), ("type", t.short_name())];
                    ConstGauge::new(crate::metrics::gauge_value(figure(s.resources(t))))
                        .encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let clients = ConstGauge::new(crate::metrics::gauge_value(self.clients.len()));
        clients.encode(encoder.encode_descriptor(
            "xdsc_clients",
            "Connected xDS streams in the registry",
            None,
            clients.metric_type(),
        )?)
    }
}
