//! An in-memory Kubernetes API server for tests, and for trying `xdsc-kube` without a
//! cluster.
//!
//! It speaks the API server's HTTP protocol over plain HTTP on loopback, well enough for
//! kubectl (discovery, `get` with `-o yaml` and `-w`, `create`, `apply --server-side`,
//! `patch`, `delete`) and kube-rs (`Api`, `watcher`, `reflector`): lists with selectors and
//! `limit`/`continue`, watches with bookmarks, `sendInitialEvents` and 410 Expired, writes
//! with conflicts, the `status` subresource and `metadata.generation`. One resourceVersion
//! counts every write of every kind.
//!
//! [`TestServer::faults`] injects what real clusters do to controllers: delayed or failed
//! requests, watches ended, cut or paused, history forgotten; and logs who wrote what.
//!
//! It does not do admission, defaulting (beyond server-owned metadata and a Namespace's
//! `status.phase`), schema validation, RBAC or authentication (any bearer token is accepted
//! and only recorded), field ownership or apply conflicts (`managedFields` entries are
//! recorded in shape only), strategic merge (read as a JSON merge patch),
//! protobuf, TLS or persistence.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//!
//! let server = xdsc_kube_testserver::TestServer::start().await?;
//! let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
//! let cm = serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}}))?;
//! cms.create(&PostParams::default(), &cm).await?;
//! assert_eq!(server.faults().writes().len(), 1);
//! # Ok(()) }
//! ```

mod error;
mod faults;
mod http;
mod resources;
mod selector;
mod store;
mod watch;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch as cell;
use tokio::task::JoinHandle;

pub use error::ApiError;
pub use faults::{Action, Faults, Filter, Request, Verb, Write};
pub use resources::ResourceDef;

use faults::Signal;
use store::State;

/// Shared by the connection tasks, the watch tasks and the in-process API.
pub(crate) struct Inner {
    state: Arc<Mutex<State>>,
    signal: cell::Sender<Signal>,
    faults: Faults,
    bookmark_interval: Duration,
    address: String,
    /// Watch streams open now.
    watches: AtomicUsize,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a write on the state and wakes the watches if it changed anything.
    fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let (out, before, after) = {
            let mut state = self.state();
            let before = state.resource_version();
            let out = f(&mut state);
            (out, before, state.resource_version())
        };
        if after != before {
            self.signal.send_modify(|s| s.rv = after);
        }
        out
    }
}

/// Options for [`TestServer`]; [`TestServer::start`] uses the defaults.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// let server = xdsc_kube_testserver::TestServer::builder()
///     .history(100)
///     .bookmark_interval(Duration::from_millis(200))
///     .start()
///     .await?;
/// # drop(server); Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    addr: SocketAddr,
    history: usize,
    bookmark_interval: Duration,
    resources: Vec<ResourceDef>,
    managed_fields: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            resources: ResourceDef::builtin(),
            managed_fields: true,
        }
    }
}

impl Builder {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Events kept per resource for watches to resume from (default 10,000); a watch from
    /// an older version gets 410 Expired.
    pub fn history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }

    /// How often an idle watch that asked for bookmarks gets one (default 5 s).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Whether writes record `metadata.managedFields` entries (default on, as a real
    /// cluster does: an entry per manager, operation and subresource with the written
    /// fields; no ownership or conflicts). Off makes objects smaller.
    pub fn managed_fields(mut self, on: bool) -> Self {
        self.managed_fields = on;
        self
    }

    /// Serves one more resource (a custom resource, say) besides [`ResourceDef::builtin`].
    pub fn resource(mut self, def: ResourceDef) -> Self {
        self.resources.push(def);
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(self) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let mut state = State::new(self.resources, self.history);
        state.set_managed_fields(self.managed_fields);
        let state = Arc::new(Mutex::new(state));
        let (signal, _) = cell::channel(Signal::default());
        let inner = Arc::new(Inner {
            faults: Faults::new(state.clone(), signal.clone()),
            state,
            signal,
            bookmark_interval: self.bookmark_interval,
            address: addr.to_string(),
            watches: AtomicUsize::new(0),
        });
        let task = tokio::spawn(http::serve(inner.clone(), listener));
        Ok(TestServer { inner, addr, task })
    }
}

/// A running server; dropping it stops it (open connections and watches end).
pub struct TestServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts a server with the default options on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Builder::default().start().await
    }

    /// Options for a server.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client configuration for this server, sending `token` as a bearer token.
    /// kube's retries of 429/503/504 are left on, as in a real client.
    pub fn config(&self, token: Option<&str>) -> kube::Config {
        let uri = self.url().parse().expect("a loopback URL parses");
        let mut config = kube::Config::new(uri);
        if let Some(token) = token {
            let value = format!("Bearer {token}")
                .parse()
                .expect("tokens are header-safe");
            config.headers.push((hyper::header::AUTHORIZATION, value));
        }
        config
    }

    /// A kube client without a token. Must be called inside a tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config(None)).expect("a plain-HTTP client builds")
    }

    /// A kube client sending `token`, so the write log tells its writes apart.
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        kube::Client::try_from(self.config(Some(token))).expect("a plain-HTTP client builds")
    }

    /// A kubeconfig (YAML) for kubectl and `xdsc-kube --kubeconfig`, default namespace
    /// `default`, with `token` as the user's bearer token if given.
    pub fn kubeconfig(&self, token: Option<&str>) -> String {
        kubeconfig(&self.url(), token)
    }

    /// The fault controls and the request and write logs.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// How many watch streams are open now (a test waits for a client's watch to be open
    /// before injecting a fault into it).
    pub fn open_watches(&self) -> usize {
        self.inner.watches.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` watch streams are open, up to `timeout`; returns whether
    /// they are.
    pub async fn wait_for_watches(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.open_watches() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.state().resource_version()
    }

    /// Fixes the clock used for `creationTimestamp` and `deletionTimestamp` (`None`: the
    /// system clock).
    pub fn set_time(&self, now: Option<jiff::Timestamp>) {
        self.inner.state().set_time(now);
    }

    /// Stores `object` as given, status included (and `uid`/`creationTimestamp` when set),
    /// creating or replacing it, as one write with its watch event. For seeding state
    /// without HTTP; the write log does not record it.
    pub fn put(&self, object: Value) -> Result<Value, ApiError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.inner.write(|s| {
            let id = s
                .find_kind(&api_version, &kind)
                .ok_or_else(|| ApiError::no_route(&format!("{api_version} {kind}")))?;
            s.put(id, object).map(|o| (*o).clone())
        })
    }

    /// The stored object, if any (`namespace` is ignored for cluster-scoped kinds).
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = self.inner.state();
        let id = state.find_kind(api_version, kind)?;
        state
            .get(id, namespace, name)
            .ok()
            .map(|o| with_version(&o, api_version))
    }

    /// Every stored object of a kind, ordered by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let state = self.inner.state();
        let Some(id) = state.find_kind(api_version, kind) else {
            return Vec::new();
        };
        state
            .snapshot(id)
            .0
            .values()
            .map(|o| with_version(o, api_version))
            .collect()
    }

    /// The resources served.
    pub fn resources(&self) -> Vec<ResourceDef> {
        self.inner.state().defs()
    }
}

/// `obj` as read at `api_version`.
pub(crate) fn with_version(obj: &Value, api_version: &str) -> Value {
    let mut obj = obj.clone();
    obj["apiVersion"] = Value::String(api_version.to_owned());
    obj
}

/// A kubeconfig for `url`, with one cluster, user and context named `xdsc-testserver`.
///
/// ```
/// let config = xdsc_kube_testserver::kubeconfig("http://127.0.0.1:6443", Some("t"));
/// assert!(config.contains("server: http://127.0.0.1:6443"));
/// ```
pub fn kubeconfig(url: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(t) => format!("  user:\n    token: {t}\n"),
        None => "  user: {}\n".to_owned(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: xdsc-testserver\n  cluster:\n    server: {url}\n\
         users:\n- name: xdsc-testserver\n{user}contexts:\n- name: xdsc-testserver\n  context:\n    cluster: xdsc-testserver\n\
         \x20   user: xdsc-testserver\n    namespace: default\ncurrent-context: xdsc-testserver\n"
    )
}
