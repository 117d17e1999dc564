//! Fault injection and the request and write logs, the controls a test drives from the
//! in-process API: delay or fail chosen requests for a while, end, cut or pause every open
//! watch, forget the event history, and see who wrote what (by bearer token).
//!
//! Nothing here changes stored objects; faults act on requests and watch streams only.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::State;

/// Entries kept in each log; older entries are dropped first.
const LOG_KEPT: usize = 100_000;

/// What a watch stream is told to do, published to every open stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Signal {
    /// The newest resourceVersion.
    pub(crate) rv: u64,
    /// Bumped to end every open watch cleanly.
    pub(crate) end: u64,
    /// Bumped to abort every open watch mid-stream.
    pub(crate) cut: u64,
    /// While set, open watches send nothing.
    pub(crate) paused: bool,
}

/// Which requests a fault applies to; the default matches every request.
///
/// ```
/// use xdsc_kube_testserver::Filter;
/// let status_writes = Filter::default().writes().subresource("status");
/// let endpoint_watches = Filter::default().resource("endpointslices").watches();
/// # let _ = (status_writes, endpoint_watches);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Filter {
    resource: Option<String>,
    subresource: Option<String>,
    writes: Option<bool>,
    watches: Option<bool>,
    path_contains: Option<String>,
    token: Option<String>,
}

impl Filter {
    /// Only requests for this plural resource (`ingresses`).
    pub fn resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.to_owned());
        self
    }

    /// Only requests for this subresource (`status`).
    pub fn subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.to_owned());
        self
    }

    /// Only writes (POST, PUT, PATCH, DELETE).
    pub fn writes(mut self) -> Self {
        self.writes = Some(true);
        self
    }

    /// Only reads (GET).
    pub fn reads(mut self) -> Self {
        self.writes = Some(false);
        self
    }

    /// Only watch requests.
    pub fn watches(mut self) -> Self {
        self.watches = Some(true);
        self
    }

    /// Only requests whose path contains `s`.
    pub fn path_contains(mut self, s: &str) -> Self {
        self.path_contains = Some(s.to_owned());
        self
    }

    /// Only requests carrying this bearer token.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub(crate) fn matches(&self, r: &RequestInfo<'_>) -> bool {
        self.resource
            .as_deref()
            .is_none_or(|x| r.resource == Some(x))
            && self
                .subresource
                .as_deref()
                .is_none_or(|x| r.subresource == Some(x))
            && self.writes.is_none_or(|w| w == r.write)
            && self.watches.is_none_or(|w| w == r.watch)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|x| r.path.contains(x))
            && self.token.as_deref().is_none_or(|x| r.token == Some(x))
    }
}

/// What the fault does to a matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hold the request this long before serving it.
    Delay(Duration),
    /// Answer with this HTTP code and a `Status` (503 `ServiceUnavailable`, ...).
    Fail(u16),
}

#[derive(Clone, Debug)]
struct Rule {
    filter: Filter,
    action: Action,
    until: Option<Instant>,
    times: Option<usize>,
}

/// The request facts a filter looks at.
pub(crate) struct RequestInfo<'a> {
    pub(crate) path: &'a str,
    pub(crate) resource: Option<&'a str>,
    pub(crate) subresource: Option<&'a str>,
    pub(crate) write: bool,
    pub(crate) watch: bool,
    pub(crate) token: Option<&'a str>,
}

/// One request served, as the request log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// Whether it was a watch.
    pub watch: bool,
    /// The HTTP status answered.
    pub code: u16,
}

/// The kind of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH with a merge, strategic or JSON patch.
    Patch,
    /// PATCH with `application/apply-patch+yaml`.
    Apply,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

/// One write, as the write log records it: who (bearer token) wrote what and the outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The bearer token of the request, if any. kubectl (client-go) sends no credentials to
    /// a plain-HTTP server; tell its writes apart by [`Write::user_agent`].
    pub token: Option<String>,
    /// The `User-Agent` header, if any (`kubectl/v1.32.4 ...`).
    pub user_agent: Option<String>,
    /// The `fieldManager` query parameter, if any.
    pub field_manager: Option<String>,
    /// What kind of write.
    pub verb: Verb,
    /// API group (empty for core).
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// Object name (for a create, the name given or generated; empty for collections).
    pub name: String,
    /// The HTTP status answered.
    pub code: u16,
    /// The server's resourceVersion after the write.
    pub resource_version: u64,
}

#[derive(Default)]
struct Logs {
    requests: VecDeque<Request>,
    writes: VecDeque<Write>,
}

/// The fault controls of a running server ([`crate::TestServer::faults`]).
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    logs: Mutex<Logs>,
    signal: watch::Sender<Signal>,
    state: Arc<Mutex<State>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Faults {
    pub(crate) fn new(state: Arc<Mutex<State>>, signal: watch::Sender<Signal>) -> Self {
        Self {
            rules: Mutex::default(),
            logs: Mutex::default(),
            signal,
            state,
        }
    }

    /// Adds a fault for requests matching `filter`, lasting `duration` (`None`: until
    /// [`Faults::clear`]) and applying to at most `times` requests (`None`: all).
    pub fn inject(
        &self,
        filter: Filter,
        action: Action,
        duration: Option<Duration>,
        times: Option<usize>,
    ) {
        let until = duration.map(|d| Instant::now() + d);
        lock(&self.rules).push(Rule {
            filter,
            action,
            until,
            times,
        });
    }

    /// Every request is answered 503 `ServiceUnavailable` for `duration`, and every open
    /// watch is cut, as when the API server goes away.
    pub fn unavailable_for(&self, duration: Duration) {
        self.inject(Filter::default(), Action::Fail(503), Some(duration), None);
        self.cut_watches();
    }

    /// Writes to any `status` subresource are held `delay` before being served, until
    /// [`Faults::clear`].
    pub fn delay_status_writes(&self, delay: Duration) {
        self.inject(
            Filter::default().writes().subresource("status"),
            Action::Delay(delay),
            None,
            None,
        );
    }

    /// Removes every injected fault and resumes paused watches.
    pub fn clear(&self) {
        lock(&self.rules).clear();
        self.signal.send_modify(|s| s.paused = false);
    }

    /// Every open watch ends cleanly, as when its timeout passes; clients re-watch from the
    /// last version they saw.
    pub fn end_watches(&self) {
        self.signal.send_modify(|s| s.end += 1);
    }

    /// Every open watch is aborted mid-stream (the connection breaks without the final
    /// chunk), as when a load balancer or the server drops it.
    pub fn cut_watches(&self) {
        self.signal.send_modify(|s| s.cut += 1);
    }

    /// Open and new watches send nothing until [`Faults::resume_watches`]: changes made
    /// meanwhile are only in the history (and lost to the watch if that is forgotten).
    pub fn pause_watches(&self) {
        self.signal.send_modify(|s| s.paused = true);
    }

    /// Paused watches go on from where they were.
    pub fn resume_watches(&self) {
        self.signal.send_modify(|s| s.paused = false);
    }

    /// Forgets the event history and list snapshots: a watch (open or new) positioned before
    /// now, and a `continue` token, get 410 Expired.
    pub fn forget_history(&self) {
        lock(&self.state).forget_history();
        self.signal.send_modify(|_| {});
    }

    /// The requests served so far (the newest 100,000), oldest first.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.logs).requests.iter().cloned().collect()
    }

    /// The writes made so far (the newest 100,000), oldest first.
    pub fn writes(&self) -> Vec<Write> {
        lock(&self.logs).writes.iter().cloned().collect()
    }

    /// Empties the request and write logs.
    pub fn clear_logs(&self) {
        let mut logs = lock(&self.logs);
        logs.requests.clear();
        logs.writes.clear();
    }

    /// The actions for a request, consuming one use of each counted rule.
    pub(crate) fn actions(&self, r: &RequestInfo<'_>) -> Vec<Action> {
        let now = Instant::now();
        let mut rules = lock(&self.rules);
        rules.retain(|rule| rule.until.is_none_or(|u| u > now) && rule.times != Some(0));
        let mut out = Vec::new();
        for rule in rules.iter_mut().filter(|rule| rule.filter.matches(r)) {
            if let Some(t) = rule.times.as_mut() {
                *t -= 1;
            }
            out.push(rule.action);
        }
        out
    }

    pub(crate) fn record_request(&self, r: Request) {
        let mut logs = lock(&self.logs);
        if logs.requests.len() >= LOG_KEPT {
            logs.requests.pop_front();
        }
        logs.requests.push_back(r);
    }

    pub(crate) fn record_write(&self, w: Write) {
        let mut logs = lock(&self.logs);
        if logs.writes.len() >= LOG_KEPT {
            logs.writes.pop_front();
        }
        logs.writes.push_back(w);
    }
}
