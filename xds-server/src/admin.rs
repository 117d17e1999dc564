//! The admin HTTP endpoints: health, readiness, Prometheus metrics and debug views.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | 200 while the process works |
//! | `GET /readyz` | 200 once a snapshot is published, 503 before |
//! | `GET /metrics` | Prometheus text |
//! | `GET /debug/snapshot` | each fleet's snapshot as Envoy JSON, secrets redacted |
//! | `GET /debug/clients` | each stream: node, fleet, subscriptions, versions sent and acknowledged, last NACK |

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::clients::Clients;
use crate::publish::Publisher;

/// Extra JSON an embedder adds to `/debug/snapshot` (for example its sources' errors).
pub type DebugExtra = Arc<dyn Fn() -> Value + Send + Sync>;

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    pub(crate) publisher: Publisher,
    pub(crate) clients: Clients,
    pub(crate) extra: Option<DebugExtra>,
}

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
    /// Adds embedder JSON under `"sources"` in `/debug/snapshot`.
    pub fn with_debug_extra(mut self, extra: DebugExtra) -> Admin {
        self.extra = Some(extra);
        self
    }

    /// Answers one request.
    pub fn handle(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET {
            return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
        }
        match path {
            "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
            "/readyz" if self.publisher.is_ready() => {
                respond(StatusCode::OK, "text/plain", "ready\n")
            }
            "/readyz" => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no snapshot published yet\n",
            ),
            "/metrics" => {
                let mut text = self.publisher.metrics.render();
                text.push_str(&format!(
                    "# HELP xdsc_clients Connected xDS streams in the registry.\n# TYPE xdsc_clients gauge\nxdsc_clients {}\n",
                    self.clients.len()
                ));
                respond(StatusCode::OK, "text/plain; version=0.0.4", text)
            }
            "/debug/clients" => json(&self.clients.to_json()),
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
                if let Some(extra) = &self.extra {
                    out.insert("sources".into(), extra());
                }
                json(&Value::Object(out))
            }
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }

    /// Serves the endpoints on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (socket, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut shutdown => return Ok(()),
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let response = admin.handle(req.method(), req.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await
                {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
            });
        }
    }
}
