//! The HTTP side: accepting connections (HTTP/1.1 on plain TCP), routing the API server's
//! paths (discovery, `/api/v1/...`, `/apis/GROUP/VERSION/...`, namespaced and cluster
//! scoped, the `status` subresource), query parameters, request bodies (JSON; YAML for
//! apply), fault actions, the logs, and JSON responses or watch streams.
//!
//! It holds no state of its own: everything is in [`crate::store`], reached through
//! [`Inner`].

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{self, ApiError};
use crate::faults::{self, Action, RequestInfo, Verb};
use crate::resources;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Deleted, ListQuery, Part, Patch, Preconditions, Writer};
use crate::watch::{self, Start, Watch};
use crate::{Inner, with_version};

type Body = BoxBody<Bytes, io::Error>;

/// The largest request body accepted (the real server's limit).
const MAX_BODY: usize = 3 * 1024 * 1024;
/// A watch's lifetime when the client names none (the real server picks 30 to 60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Accepts connections until the task is aborted; aborting drops every connection.
pub(crate) async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let inner = inner.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(inner.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Decoded query parameters.
struct Query(Vec<(String, String)>);

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    fn parse(q: &str) -> Self {
        Self(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | ""))
    }
}

/// A request for a resource path.
struct Target {
    id: usize,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// What a path names.
enum Route {
    Json(Value),
    Resource(Target),
    Missing,
}

fn route(inner: &Inner, path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let state = inner.state();
    let defs = state.defs();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Route::Json(resources::version()),
        ["healthz" | "livez" | "readyz"] => return Route::Json(json!("ok")),
        ["api"] => return Route::Json(resources::core_versions(&inner.address)),
        ["apis"] => return Route::Json(resources::group_list(&defs)),
        ["apis", g] => return resources::group(&defs, g).map_or(Route::Missing, Route::Json),
        ["openapi", "v3"] => return Route::Json(resources::openapi_root(&defs)),
        ["openapi", "v3", rest @ ..] => {
            return resources::openapi_group_version(&defs, &rest.join("/"))
                .map_or(Route::Missing, Route::Json);
        }
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Route::Missing,
    };
    if rest.is_empty() {
        return resources::resource_list(&defs, group, version).map_or(Route::Missing, Route::Json);
    }
    let namespaced = |plural: &str| {
        state
            .find(group, version, plural)
            .filter(|id| state.def(*id).namespaced)
    };
    let (id, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced(plural).is_some() => (
            namespaced(plural).expect("checked"),
            Some((*ns).to_owned()),
            tail,
        ),
        [plural, tail @ ..] => match state.find(group, version, plural) {
            // A namespaced resource addressed without a namespace is only a collection.
            Some(id) if !state.def(id).namespaced || tail.is_empty() => (id, None, tail),
            _ => return Route::Missing,
        },
        [] => return Route::Missing,
    };
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, "status"] if state.def(id).status => {
            (Some((*name).to_owned()), Some("status".to_owned()))
        }
        _ => return Route::Missing,
    };
    Route::Resource(Target {
        id,
        version: version.to_owned(),
        namespace,
        name,
        subresource,
    })
}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(CONTENT_TYPE, "application/json")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .expect("a valid response")
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body failed: {e}"
        ))),
    }
}

/// Parses a body as JSON, or as YAML when the content type says so (JSON is YAML too).
fn decode(bytes: &[u8], yaml: bool) -> Result<Value, ApiError> {
    if yaml {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
    }
}

/// Serves one request: faults first, then the route; every request is logged.
async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let raw_query = req.uri().query().unwrap_or_default().to_owned();
    let query = Query::parse(&raw_query);
    let token = bearer(&req);
    let user_agent = req
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let target = route(&inner, &path);
    let (resource, subresource) = match &target {
        Route::Resource(t) => (
            Some(inner.state().def(t.id).plural.clone()),
            t.subresource.clone(),
        ),
        _ => (None, None),
    };
    let is_watch = method == Method::GET && query.flag("watch");
    let info = RequestInfo {
        path: &path,
        resource: resource.as_deref(),
        subresource: subresource.as_deref(),
        write: !matches!(method, Method::GET | Method::HEAD),
        watch: is_watch,
        token: token.as_deref(),
    };
    let mut failed = None;
    for action in inner.faults.actions(&info) {
        match action {
            Action::Delay(d) => tokio::time::sleep(d).await,
            Action::Fail(code) => failed = Some(ApiError::injected(code)),
        }
    }
    let response = match (failed, target) {
        (Some(e), _) => error_response(&e),
        (None, Route::Missing) => error_response(&ApiError::no_route(&path)),
        (None, Route::Json(v)) if method == Method::GET => json_response(200, &v),
        (None, Route::Json(_)) => error_response(&ApiError::method_not_allowed()),
        (None, Route::Resource(t)) => {
            let content_type = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = if matches!(
                method,
                Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                match read_body(req.into_body()).await {
                    Ok(b) => b,
                    Err(e) => return Ok(error_response(&e)),
                }
            } else {
                Bytes::new()
            };
            let call = Call {
                inner: &inner,
                t,
                query: &query,
                token: token.clone(),
                user_agent: user_agent.clone(),
                content_type,
                body,
            };
            match method {
                Method::GET if is_watch => call.watch(),
                Method::GET => call.read(),
                Method::POST | Method::PUT | Method::PATCH | Method::DELETE => call.write(&method),
                _ => error_response(&ApiError::method_not_allowed()),
            }
        }
    };
    tracing::debug!(%method, %path, query = %raw_query, code = response.status().as_u16(), "request");
    inner.faults.record_request(faults::Request {
        method: method.to_string(),
        path,
        query: raw_query,
        token,
        user_agent,
        watch: is_watch,
        code: response.status().as_u16(),
    });
    Ok(response)
}

/// One request for a resource path.
struct Call<'a> {
    inner: &'a Arc<Inner>,
    t: Target,
    query: &'a Query,
    token: Option<String>,
    user_agent: Option<String>,
    content_type: String,
    body: Bytes,
}

impl Call<'_> {
    fn api_version(&self) -> String {
        self.inner
            .state()
            .def(self.t.id)
            .api_version_of(&self.t.version)
    }

    fn selectors(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.query.get("labelSelector").unwrap_or_default())?;
        let def = self.inner.state().def(self.t.id).clone();
        let fields =
            FieldSelector::parse(self.query.get("fieldSelector").unwrap_or_default(), &def)?;
        Ok((labels, fields))
    }

    /// GET of an object or a list.
    fn read(&self) -> Response<Body> {
        let api_version = self.api_version();
        let ns = self.t.namespace.as_deref();
        if let Some(name) = &self.t.name {
            return match self.inner.state().get(self.t.id, ns, name) {
                Ok(obj) => json_response(200, &with_version(&obj, &api_version)),
                Err(e) => error_response(&e),
            };
        }
        let (labels, fields) = match self.selectors() {
            Ok(s) => s,
            Err(e) => return error_response(&e),
        };
        let limit = match self
            .query
            .get("limit")
            .filter(|l| !l.is_empty())
            .map(str::parse::<usize>)
        {
            Some(Ok(l)) => Some(l),
            Some(Err(_)) => {
                return error_response(&ApiError::bad_request(
                    "limit must be a non-negative integer",
                ));
            }
            None => None,
        };
        let q = ListQuery {
            labels,
            fields,
            limit,
            continue_token: self
                .query
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            resource_version: self.query.get("resourceVersion").map(str::to_owned),
            version_match: self
                .query
                .get("resourceVersionMatch")
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
        };
        let (page, kind) = {
            let mut state = self.inner.state();
            let kind = state.def(self.t.id).kind.clone();
            (state.list(self.t.id, ns, &q), kind)
        };
        match page {
            Ok(page) => {
                let items: Vec<Value> = page
                    .items
                    .iter()
                    .map(|o| with_version(o, &api_version))
                    .collect();
                let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
                if let Some(c) = page.continue_token {
                    meta["continue"] = json!(c);
                }
                if let Some(r) = page.remaining {
                    meta["remainingItemCount"] = json!(r);
                }
                json_response(
                    200,
                    &json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": meta, "items": items}),
                )
            }
            Err(e) => error_response(&e),
        }
    }

    /// GET with `watch=true`: a streaming response fed by a watch task.
    fn watch(&self) -> Response<Body> {
        if self.t.name.is_some() {
            return error_response(&ApiError::method_not_allowed());
        }
        let (labels, fields) = match self.selectors() {
            Ok(s) => s,
            Err(e) => return error_response(&e),
        };
        let rv = self.query.get("resourceVersion").unwrap_or_default();
        let send_initial = self
            .query
            .get("sendInitialEvents")
            .map(|v| v == "true" || v == "1");
        let bookmarks = self.query.flag("allowWatchBookmarks");
        if send_initial == Some(true)
            && (self.query.get("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks)
        {
            return error_response(&ApiError::bad_request(
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
            ));
        }
        let start = match (rv, send_initial) {
            (_, Some(true)) | ("" | "0", None) => Start::Initial,
            ("" | "0", Some(false)) => Start::After(self.inner.state().resource_version()),
            (v, _) => match v.parse::<u64>() {
                Ok(v) => Start::After(v),
                Err(_) => {
                    return error_response(&ApiError::bad_request(format!(
                        "invalid resource version: {v}"
                    )));
                }
            },
        };
        let timeout = match self
            .query
            .get("timeoutSeconds")
            .filter(|t| !t.is_empty())
            .map(str::parse::<u64>)
        {
            Some(Ok(s)) => Duration::from_secs(s),
            Some(Err(_)) => {
                return error_response(&ApiError::bad_request("timeoutSeconds must be an integer"));
            }
            None => DEFAULT_WATCH_TIMEOUT,
        };
        let kind = self.inner.state().def(self.t.id).kind.clone();
        let w = Watch {
            id: self.t.id,
            api_version: self.api_version(),
            kind,
            namespace: self.t.namespace.clone(),
            labels,
            fields,
            start,
            bookmarks,
            initial_events_end: send_initial == Some(true),
            timeout,
        };
        let (tx, rx) = mpsc::channel::<watch::Chunk>(16);
        watch::start(self.inner, w, tx);
        let stream = StreamBody::new(ReceiverStream::new(rx));
        Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/json")
            .body(BodyExt::boxed(stream))
            .expect("a valid response")
    }

    /// POST, PUT, PATCH and DELETE, recorded in the write log.
    fn write(&self, method: &Method) -> Response<Body> {
        let manager = self
            .query
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .or_else(|| {
                self.user_agent
                    .as_deref()
                    .and_then(|ua| ua.split('/').next())
            })
            .unwrap_or("unknown")
            .to_owned();
        let w = Writer {
            dry_run: self.query.get("dryRun").is_some_and(|d| d == "All"),
            manager: Some(manager),
            apply: method == Method::PATCH
                && self.content_type.starts_with("application/apply-patch"),
        };
        let part = if self.t.subresource.is_some() {
            Part::Status
        } else {
            Part::Main
        };
        let ns = self.t.namespace.as_deref();
        let yaml = self.content_type.contains("yaml");
        let (verb, result) = match (method, &self.t.name) {
            (&Method::POST, None) => (
                Verb::Create,
                self.body(yaml).and_then(|b| {
                    self.inner
                        .write(|s| s.create(self.t.id, ns, b, &w))
                        .map(|o| (201, (*o).clone()))
                }),
            ),
            (&Method::PUT, Some(name)) => (
                Verb::Update,
                self.body(yaml).and_then(|b| {
                    self.inner
                        .write(|s| s.update(self.t.id, ns, name, b, part, &w))
                        .map(|o| (200, (*o).clone()))
                }),
            ),
            (&Method::PATCH, Some(name)) => {
                let apply = self.content_type.starts_with("application/apply-patch");
                (
                    if apply { Verb::Apply } else { Verb::Patch },
                    self.patch(name, part, &w),
                )
            }
            (&Method::DELETE, Some(name)) if part == Part::Main => {
                (Verb::Delete, self.delete(name, &w))
            }
            (&Method::DELETE, None) => (Verb::DeleteCollection, self.delete_collection(&w)),
            _ => (Verb::Update, Err(ApiError::method_not_allowed())),
        };
        let mut name = self.t.name.clone().unwrap_or_default();
        let (code, response) = match result {
            Ok((code, body)) => {
                if name.is_empty() && verb == Verb::Create {
                    name = body
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                }
                let body = if body.get("kind") == Some(&json!("Status")) {
                    body
                } else {
                    with_version(&body, &self.api_version())
                };
                (code, json_response(code, &body))
            }
            Err(e) => (e.code, error_response(&e)),
        };
        let def = self.inner.state().def(self.t.id).clone();
        self.inner.faults.record_write(faults::Write {
            token: self.token.clone(),
            user_agent: self.user_agent.clone(),
            field_manager: self.query.get("fieldManager").map(str::to_owned),
            verb,
            group: def.group.clone(),
            resource: def.plural.clone(),
            subresource: self.t.subresource.clone(),
            namespace: self.t.namespace.clone(),
            name,
            code,
            resource_version: self.inner.state().resource_version(),
        });
        response
    }

    fn body(&self, yaml: bool) -> Result<Value, ApiError> {
        decode(&self.body, yaml)
    }

    fn patch(&self, name: &str, part: Part, w: &Writer) -> Result<(u16, Value), ApiError> {
        let ct = self
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let patch = match ct {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                Patch::Merge(self.body(false)?)
            }
            "application/json-patch+json" => Patch::Json(self.body(false)?),
            "application/apply-patch+yaml" => {
                if self.query.get("fieldManager").is_none_or(str::is_empty) {
                    return Err(ApiError::bad_request(
                        "PATCH with apply-patch+yaml must be sent with fieldManager",
                    ));
                }
                Patch::Apply(self.body(true)?)
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        let existed = self
            .inner
            .state()
            .get(self.t.id, self.t.namespace.as_deref(), name)
            .is_ok();
        let obj = self
            .inner
            .write(|s| s.patch(self.t.id, self.t.namespace.as_deref(), name, patch, part, w))?;
        Ok((if existed { 200 } else { 201 }, (*obj).clone()))
    }

    fn preconditions(&self) -> Result<Preconditions, ApiError> {
        if self.body.is_empty() {
            return Ok(Preconditions::default());
        }
        let opts = decode(&self.body, false)?;
        let get = |f: &str| {
            opts.pointer(&format!("/preconditions/{f}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(Preconditions {
            uid: get("uid"),
            resource_version: get("resourceVersion"),
        })
    }

    fn delete(&self, name: &str, w: &Writer) -> Result<(u16, Value), ApiError> {
        let pre = self.preconditions()?;
        let ns = self.t.namespace.as_deref();
        match self
            .inner
            .write(|s| s.delete(self.t.id, ns, name, &pre, w))?
        {
            Deleted::Gone(obj) => {
                let def = self.inner.state().def(self.t.id).clone();
                let uid = obj
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Ok((200, error::success(&def, name, uid)))
            }
            Deleted::Pending(obj) => Ok((200, (*obj).clone())),
        }
    }

    fn delete_collection(&self, w: &Writer) -> Result<(u16, Value), ApiError> {
        let (labels, fields) = self.selectors()?;
        let ns = self.t.namespace.as_deref();
        let q = ListQuery {
            labels,
            fields,
            ..ListQuery::default()
        };
        let deleted = self.inner.write(|s| -> Result<Vec<Value>, ApiError> {
            let page = s.list(self.t.id, ns, &q)?;
            let mut out = Vec::new();
            for obj in page.items {
                let obj_ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                match s.delete(
                    self.t.id,
                    obj_ns.as_deref(),
                    &name,
                    &Preconditions::default(),
                    w,
                )? {
                    Deleted::Gone(o) | Deleted::Pending(o) => out.push((*o).clone()),
                }
            }
            Ok(out)
        })?;
        let kind = self.inner.state().def(self.t.id).kind.clone();
        let api_version = self.api_version();
        let items: Vec<Value> = deleted
            .iter()
            .map(|o| with_version(o, &api_version))
            .collect();
        let rv = self.inner.state().resource_version().to_string();
        Ok((
            200,
            json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": {"resourceVersion": rv}, "items": items}),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse("labelSelector=a%3Db%2Cc+in+%28x%29&watch=1&limit=");
        assert_eq!(q.get("labelSelector"), Some("a=b,c in (x)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("limit"), Some(""));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
