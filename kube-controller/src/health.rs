//! Never stale in silence: the state of every watch (resolving, listing, watching, backing
//! off, or its kind not served), its last event and last bytes received (bookmarks
//! included), relists and errors; and the rules `/readyz` and `/healthz` answer by.
//!
//! [`WatchState`] is pure: every transition takes the time it happened, so the rules are
//! tested without a clock. [`Board`] holds every watch's state behind one lock (updated by
//! the watch tasks, read by the admin endpoints and metrics) and implements
//! [`xdsc_server::SourceHealth`].
//!
//! Not here: the watches themselves ([`crate::watch`]).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use crate::activity::Activity;

/// What a watch is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Asking the API server's discovery for the kind.
    Resolving,
    /// The API server does not serve the kind (its CRD is not installed): nothing to watch,
    /// checked again periodically. Does not hold readiness back.
    Unavailable,
    /// Listing (the first list, or a relist after 410 Gone).
    Listing,
    /// Listed, and following the watch stream.
    Watching,
    /// The last request failed; kube-runtime's backoff waits before the next.
    BackingOff,
}

impl Phase {
    /// As shown in `/debug/sources`, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolving => "resolving",
            Phase::Unavailable => "unavailable",
            Phase::Listing => "listing",
            Phase::Watching => "watching",
            Phase::BackingOff => "backing_off",
        }
    }

    const ALL: [Phase; 5] = [
        Phase::Resolving,
        Phase::Unavailable,
        Phase::Listing,
        Phase::Watching,
        Phase::BackingOff,
    ];
}

/// The state of one watch (one kind in one namespace, or cluster-wide).
///
/// ```
/// use std::time::{Duration, Instant};
/// use xdsc_kube_controller::health::{Phase, WatchState};
/// let t0 = Instant::now();
/// let mut w = WatchState::new(t0);
/// w.listing(t0);
/// w.listed(t0 + Duration::from_millis(5), 3);
/// assert_eq!(w.phase(), Phase::Watching);
/// w.error(t0 + Duration::from_secs(1), "connection reset".into());
/// assert_eq!(w.unhealthy_for(t0 + Duration::from_secs(31)), Some(Duration::from_secs(30)));
/// ```
#[derive(Clone, Debug)]
pub struct WatchState {
    phase: Phase,
    /// When the watch last stopped being healthy (`None` while watching).
    unhealthy_since: Option<Instant>,
    listed_once: bool,
    last_event: Option<Instant>,
    relists: u64,
    errors: u64,
    events: u64,
    last_error: Option<String>,
    objects: usize,
    /// Objects that do not parse, by `namespace/name`, with why (the last good version, if
    /// any, stays in the translation).
    invalid: BTreeMap<String, String>,
}

impl WatchState {
    /// A watch that starts resolving its kind at `now`.
    pub fn new(now: Instant) -> WatchState {
        WatchState {
            phase: Phase::Resolving,
            unhealthy_since: Some(now),
            listed_once: false,
            last_event: None,
            relists: 0,
            errors: 0,
            events: 0,
            last_error: None,
            objects: 0,
            invalid: BTreeMap::new(),
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A list starts (the first, or a relist: counted).
    pub fn listing(&mut self, now: Instant) {
        if self.listed_once {
            self.relists += 1;
        }
        self.phase = Phase::Listing;
        self.unhealthy_since.get_or_insert(now);
    }

    /// The list is complete; `objects` are known.
    pub fn listed(&mut self, now: Instant, objects: usize) {
        self.listed_once = true;
        self.objects = objects;
        self.phase = Phase::Watching;
        self.unhealthy_since = None;
        self.last_event = Some(now);
    }

    /// An object changed (or was deleted); `objects` are known now.
    pub fn event(&mut self, now: Instant, objects: usize) {
        self.events += 1;
        self.objects = objects;
        self.last_event = Some(now);
        if self.phase == Phase::BackingOff && self.listed_once {
            self.phase = Phase::Watching;
            self.unhealthy_since = None;
        }
    }

    /// A request of the watch failed.
    pub fn error(&mut self, now: Instant, error: String) {
        self.errors += 1;
        self.last_error = Some(error);
        if self.phase != Phase::Unavailable {
            self.phase = Phase::BackingOff;
        }
        self.unhealthy_since.get_or_insert(now);
    }

    /// A watch stream was seen open again after an error (by the client's activity layer):
    /// the watch is healthy again even before an object changes.
    pub fn reopened(&mut self) {
        if self.phase == Phase::BackingOff && self.listed_once {
            self.phase = Phase::Watching;
            self.unhealthy_since = None;
        }
    }

    /// The kind is not served by the API server.
    pub fn unavailable(&mut self, why: String) {
        self.phase = Phase::Unavailable;
        self.last_error = Some(why);
        self.unhealthy_since = None;
    }

    /// The kind was found: the first list follows.
    pub fn resolved(&mut self, now: Instant) {
        self.phase = Phase::Resolving;
        self.unhealthy_since.get_or_insert(now);
    }

    /// An object does not parse (`None`: it parses again, or is gone).
    pub fn set_invalid(&mut self, name: String, why: Option<String>) {
        match why {
            Some(w) => self.invalid.insert(name, w),
            None => self.invalid.remove(&name),
        };
    }

    /// Whether the first list completed (or the kind is not served, so there is nothing to
    /// wait for).
    pub fn synced(&self) -> bool {
        self.listed_once || self.phase == Phase::Unavailable
    }

    /// How long the watch has not been healthy, if it is not.
    pub fn unhealthy_for(&self, now: Instant) -> Option<Duration> {
        self.unhealthy_since
            .map(|t| now.saturating_duration_since(t))
    }

    fn to_json(&self, now: Instant, activity: Option<Duration>) -> Value {
        let secs = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0);
        json!({
            "state": self.phase.as_str(),
            "synced": self.synced(),
            "objects": self.objects,
            "events": self.events,
            "relists": self.relists,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_event_age_seconds": secs(self.last_event.map(|t| now.saturating_duration_since(t))),
            "last_activity_age_seconds": secs(activity),
            "unhealthy_for_seconds": secs(self.unhealthy_for(now)),
            "invalid_objects": self.invalid,
        })
    }
}

/// Which watch: a kind, and the namespace it is limited to (`None`: all namespaces, or a
/// cluster-scoped kind).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchId {
    /// The kind.
    pub kind: String,
    /// The namespace.
    pub namespace: Option<String>,
}

impl std::fmt::Display for WatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} in {ns}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

struct Entry {
    state: WatchState,
    /// The watch's URL path, once resolved, to find its stream's activity.
    path: Option<String>,
}

/// Every watch's state, the liveness of the controller's tasks, and whether the first
/// snapshot is published: what the admin endpoints answer from.
pub struct Board {
    watches: Mutex<BTreeMap<WatchId, Entry>>,
    /// Tasks that ended (they never should): their names.
    dead: Mutex<Vec<String>>,
    published: AtomicBool,
    /// A watch unhealthy for longer than this turns `/readyz` to 503.
    stale_after: Duration,
    activity: Activity,
    started: Instant,
    /// Set by the controller loop: extra metrics (batches, status writes, leadership).
    pub(crate) counters: Counters,
    extra_status: Mutex<BTreeMap<&'static str, Value>>,
}

/// Counters the controller loop and the status writer keep, rendered with the watches'.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) batches: AtomicU64,
    pub(crate) batch_objects: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) pending_max: AtomicU64,
    pub(crate) translate_micros: AtomicU64,
    pub(crate) secret_fetches: AtomicU64,
    pub(crate) status_writes: AtomicU64,
    pub(crate) status_skipped: AtomicU64,
    pub(crate) status_conflicts: AtomicU64,
    pub(crate) status_errors: AtomicU64,
    pub(crate) status_pending: AtomicU64,
    pub(crate) leader: AtomicU64,
    pub(crate) leader_transitions: AtomicU64,
    pub(crate) rejected_objects: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Board {
    /// A board whose watches turn `/readyz` to 503 after `stale_after` unhealthy.
    pub fn new(stale_after: Duration, activity: Activity) -> Board {
        Board {
            watches: Mutex::new(BTreeMap::new()),
            dead: Mutex::new(Vec::new()),
            published: AtomicBool::new(false),
            stale_after,
            activity,
            started: Instant::now(),
            counters: Counters::default(),
            extra_status: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds a watch (state: resolving).
    pub fn add(&self, id: WatchId) {
        lock(&self.watches).entry(id).or_insert_with(|| Entry {
            state: WatchState::new(Instant::now()),
            path: None,
        });
    }

    /// Records the URL path of a watch's requests.
    pub fn set_path(&self, id: &WatchId, path: String) {
        if let Some(e) = lock(&self.watches).get_mut(id) {
            e.path = Some(path);
        }
    }

    /// Changes one watch's state.
    pub fn update<T>(&self, id: &WatchId, f: impl FnOnce(&mut WatchState) -> T) -> Option<T> {
        lock(&self.watches).get_mut(id).map(|e| f(&mut e.state))
    }

    /// Records that a task ended; `/healthz` fails from now on.
    pub fn task_ended(&self, name: String) {
        tracing::error!(task = %name, "a controller task ended; /healthz fails so the process is restarted");
        lock(&self.dead).push(name);
    }

    /// Records that the first snapshot was published.
    pub fn set_published(&self) {
        self.published.store(true, Ordering::SeqCst);
    }

    /// Whether every watch has listed once (or its kind is not served).
    pub fn synced(&self) -> bool {
        let watches = lock(&self.watches);
        !watches.is_empty() && watches.values().all(|e| e.state.synced())
    }

    /// Watches that have not listed once yet.
    pub fn unsynced(&self) -> Vec<WatchId> {
        lock(&self.watches)
            .iter()
            .filter(|(_, e)| !e.state.synced())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Watches whose stream was seen open again since they backed off are healthy again;
    /// called before reading states.
    fn refresh(&self, watches: &mut BTreeMap<WatchId, Entry>) {
        for e in watches.values_mut() {
            if e.state.phase == Phase::BackingOff
                && let (Some(path), Some(since)) = (&e.path, e.state.unhealthy_since)
                && self.activity.opened_since(path, since)
            {
                e.state.reopened();
            }
        }
    }

    /// Sets a named part of `/debug/sources` (the status writer, the lease).
    pub(crate) fn set_status(&self, name: &'static str, value: Value) {
        lock(&self.extra_status).insert(name, value);
    }

    /// Why the controller is not ready, if it is not.
    pub fn readiness(&self, now: Instant) -> Result<(), String> {
        let mut watches = lock(&self.watches);
        self.refresh(&mut watches);
        let mut reasons = Vec::new();
        for (id, e) in watches.iter() {
            let s = &e.state;
            if !s.synced() {
                let mut r = format!("watch {id}: {} (not listed yet)", s.phase.as_str());
                if let Some(err) = &s.last_error {
                    let _ = write!(r, ": {err}");
                }
                reasons.push(r);
            } else if let Some(d) = s.unhealthy_for(now)
                && d > self.stale_after
            {
                let mut r = format!(
                    "watch {id}: {} for {}s ({} errors)",
                    s.phase.as_str(),
                    d.as_secs(),
                    s.errors
                );
                if let Some(err) = &s.last_error {
                    let _ = write!(r, ": {err}");
                }
                reasons.push(r);
            }
        }
        if watches.is_empty() {
            reasons.push("no watch started yet".into());
        }
        if !self.published.load(Ordering::SeqCst) {
            reasons.push("no snapshot published yet".into());
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("\n"))
        }
    }

    /// Why the process is not alive, if a task ended.
    pub fn liveness(&self) -> Result<(), String> {
        let dead = lock(&self.dead);
        if dead.is_empty() {
            Ok(())
        } else {
            Err(format!("tasks ended: {}", dead.join(", ")))
        }
    }

    /// `/debug/sources`.
    pub fn to_json(&self, now: Instant) -> Value {
        let mut watches = lock(&self.watches);
        self.refresh(&mut watches);
        let list: Vec<Value> = watches
            .iter()
            .map(|(id, e)| {
                let activity = e
                    .path
                    .as_deref()
                    .and_then(|p| self.activity.idle_for(p, now));
                let mut v = e.state.to_json(now, activity);
                v["kind"] = json!(id.kind);
                v["namespace"] = json!(id.namespace);
                v
            })
            .collect();
        let mut out = json!({
            "kind": "kubernetes",
            "ready": self.readiness_locked(&watches, now),
            "alive": self.liveness().err(),
            "snapshot_published": self.published.load(Ordering::SeqCst),
            "uptime_seconds": now.saturating_duration_since(self.started).as_secs(),
            "watches": list,
        });
        for (k, v) in lock(&self.extra_status).iter() {
            out[*k] = v.clone();
        }
        out
    }

    fn readiness_locked(&self, watches: &BTreeMap<WatchId, Entry>, now: Instant) -> Value {
        let unhealthy = watches.iter().any(|(_, e)| {
            !e.state.synced()
                || e.state
                    .unhealthy_for(now)
                    .is_some_and(|d| d > self.stale_after)
        });
        json!(!unhealthy && self.published.load(Ordering::SeqCst) && !watches.is_empty())
    }

    /// Encodes the watches' and the controller's metric families as they are `now` (what
    /// `/metrics` shows after the server's families).
    pub fn encode_metrics(&self, now: Instant, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut watches = lock(&self.watches);
        self.refresh(&mut watches);
        let label = |id: &WatchId| -> [(&'static str, String); 2] {
            [
                ("kind", id.kind.to_string()),
                ("namespace", id.namespace.clone().unwrap_or_default()),
            ]
        };
        {
            let mut m = encoder.encode_descriptor(
                "xdsc_kube_watch_state",
                "Whether each watch is in each state (1) or not (0)",
                None,
                MetricType::Gauge,
            )?;
            for (id, e) in watches.iter() {
                for p in Phase::ALL {
                    let [kind, namespace] = label(id);
                    let labels = [kind, namespace, ("state", p.as_str().to_owned())];
                    ConstGauge::new(i64::from(e.state.phase == p))
                        .encode(m.encode_family(&labels)?)?;
                }
            }
        }
        type Figure<'a> = Box<dyn Fn(&Entry) -> Option<f64> + 'a>;
        let age = |d: Duration| d.as_secs_f64();
        let families: [(&str, &str, MetricType, Figure<'_>); 8] = [
            (
                "xdsc_kube_watch_objects",
                "Objects known to each watch",
                MetricType::Gauge,
                Box::new(|e| Some(e.state.objects as f64)),
            ),
            (
                "xdsc_kube_watch_events",
                "Object changes received by each watch after its list",
                MetricType::Counter,
                Box::new(|e| Some(e.state.events as f64)),
            ),
            (
                "xdsc_kube_watch_relists",
                "Lists after the first (410 Gone, or a watch that could not resume)",
                MetricType::Counter,
                Box::new(|e| Some(e.state.relists as f64)),
            ),
            (
                "xdsc_kube_watch_errors",
                "Failed list and watch requests",
                MetricType::Counter,
                Box::new(|e| Some(e.state.errors as f64)),
            ),
            (
                "xdsc_kube_watch_invalid_objects",
                "Objects that do not parse (their last good version stays served)",
                MetricType::Gauge,
                Box::new(|e| Some(e.state.invalid.len() as f64)),
            ),
            (
                "xdsc_kube_watch_last_event_age_seconds",
                "Seconds since each watch's last object change (or its list)",
                MetricType::Gauge,
                Box::new(|e| {
                    e.state
                        .last_event
                        .map(|t| age(now.saturating_duration_since(t)))
                }),
            ),
            (
                "xdsc_kube_watch_last_activity_age_seconds",
                "Seconds since each watch's stream last received bytes (events or bookmarks)",
                MetricType::Gauge,
                Box::new(|e| {
                    e.path
                        .as_deref()
                        .and_then(|p| self.activity.idle_for(p, now))
                        .map(age)
                }),
            ),
            (
                "xdsc_kube_watch_unhealthy_seconds",
                "Seconds each watch has not been watching (0 when it is)",
                MetricType::Gauge,
                Box::new(|e| Some(age(e.state.unhealthy_for(now).unwrap_or_default()))),
            ),
        ];
        for (name, help, kind, figure) in families {
            let mut m = encoder.encode_descriptor(name, help, None, kind)?;
            for (id, e) in watches.iter() {
                if let Some(v) = figure(e) {
                    let labels = label(id);
                    let family = m.encode_family(&labels)?;
                    match kind {
                        MetricType::Counter => ConstCounter::new(v).encode(family)?,
                        _ => ConstGauge::new(v).encode(family)?,
                    }
                }
            }
        }
        drop(watches);
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ready = u64::from(self.readiness(now).is_ok());
        let singles: [(&str, &str, MetricType, u64); 16] = [
            (
                "xdsc_kube_batches",
                "Batches of object changes translated",
                MetricType::Counter,
                load(&c.batches),
            ),
            (
                "xdsc_kube_batch_objects",
                "Object changes translated (after coalescing)",
                MetricType::Counter,
                load(&c.batch_objects),
            ),
            (
                "xdsc_kube_coalesced_events",
                "Watch events replaced by a newer state of the same object before being translated",
                MetricType::Counter,
                load(&c.coalesced),
            ),
            (
                "xdsc_kube_pending_objects",
                "Objects with a change waiting for the next batch (bounded by the object count)",
                MetricType::Gauge,
                load(&c.pending),
            ),
            (
                "xdsc_kube_pending_objects_max",
                "The most objects ever waiting for one batch",
                MetricType::Gauge,
                load(&c.pending_max),
            ),
            (
                "xdsc_kube_translate_microseconds",
                "Time spent translating and compiling batches",
                MetricType::Counter,
                load(&c.translate_micros),
            ),
            (
                "xdsc_kube_secret_fetches",
                "Secrets read because something started referring to them (only referenced Secrets keep their data)",
                MetricType::Counter,
                load(&c.secret_fetches),
            ),
            (
                "xdsc_kube_status_writes",
                "Status writes that succeeded",
                MetricType::Counter,
                load(&c.status_writes),
            ),
            (
                "xdsc_kube_status_skipped",
                "Status writes skipped because the object already had that status",
                MetricType::Counter,
                load(&c.status_skipped),
            ),
            (
                "xdsc_kube_status_conflicts",
                "Status writes that met a newer object (409) and were retried",
                MetricType::Counter,
                load(&c.status_conflicts),
            ),
            (
                "xdsc_kube_status_errors",
                "Status writes that failed otherwise (retried later)",
                MetricType::Counter,
                load(&c.status_errors),
            ),
            (
                "xdsc_kube_status_pending",
                "Objects whose status waits to be written",
                MetricType::Gauge,
                load(&c.status_pending),
            ),
            (
                "xdsc_kube_leader",
                "1 while this replica holds the Lease and writes status",
                MetricType::Gauge,
                load(&c.leader),
            ),
            (
                "xdsc_kube_leader_transitions",
                "Times this replica became or stopped being the leader",
                MetricType::Counter,
                load(&c.leader_transitions),
            ),
            (
                "xdsc_kube_rejected_objects",
                "Kubernetes objects whose Envoy resources an Envoy connected here rejects now",
                MetricType::Gauge,
                load(&c.rejected_objects),
            ),
            (
                "xdsc_kube_ready",
                "1 when /readyz answers 200",
                MetricType::Gauge,
                ready,
            ),
        ];
        for (name, help, kind, v) in singles {
            let m = encoder.encode_descriptor(name, help, None, kind)?;
            match kind {
                MetricType::Counter => ConstCounter::new(v).encode(m)?,
                _ => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m)?,
            }
        }
        Ok(())
    }
}

/// The board as the admin endpoints see it.
#[derive(Clone)]
pub(crate) struct AdminView(pub(crate) Arc<Board>);

impl xdsc_server::SourceHealth for AdminView {
    fn ready(&self) -> Result<(), String> {
        self.0.readiness(Instant::now())
    }

    fn alive(&self) -> Result<(), String> {
        self.0.liveness()
    }

    fn status(&self) -> Value {
        self.0.to_json(Instant::now())
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl std::fmt::Debug for AdminView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminView")
    }
}

/// Read when scraped: every figure is the board's state at that moment.
impl Collector for AdminView {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        self.0.encode_metrics(Instant::now(), &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn a_watch_is_healthy_only_while_watching_after_its_first_list() {
        let t0 = Instant::now();
        let mut w = WatchState::new(t0);
        assert!(!w.synced());
        assert_eq!(w.unhealthy_for(at(t0, 2)), Some(Duration::from_secs(2)));
        w.listing(at(t0, 1));
        w.listed(at(t0, 2), 10);
        assert!(w.synced());
        assert_eq!(w.unhealthy_for(at(t0, 3)), None);
        // An error: unhealthy from then on, until an event or a reopened stream.
        w.error(at(t0, 10), "boom".into());
        w.error(at(t0, 12), "boom again".into());
        assert_eq!(w.phase(), Phase::BackingOff);
        assert_eq!(w.unhealthy_for(at(t0, 40)), Some(Duration::from_secs(30)));
        w.reopened();
        assert_eq!(
            (w.phase(), w.unhealthy_for(at(t0, 41))),
            (Phase::Watching, None)
        );
        // A relist (410): counted, unhealthy until listed.
        w.listing(at(t0, 50));
        assert_eq!(w.relists, 1);
        assert_eq!(w.unhealthy_for(at(t0, 51)), Some(Duration::from_secs(1)));
        w.listed(at(t0, 52), 9);
        assert_eq!(w.unhealthy_for(at(t0, 53)), None);
        assert_eq!(w.errors, 2);
    }

    #[test]
    fn an_unserved_kind_counts_as_synced() {
        let t0 = Instant::now();
        let mut w = WatchState::new(t0);
        w.unavailable("the API server does not serve it".into());
        assert!(w.synced());
        assert_eq!(w.unhealthy_for(at(t0, 100)), None);
    }

    #[test]
    fn readiness_names_every_reason() {
        let board = Board::new(Duration::from_secs(30), Activity::default());
        let t0 = Instant::now();
        let a = WatchId {
            kind: "Ingress".into(),
            namespace: None,
        };
        let b = WatchId {
            kind: "Secret".into(),
            namespace: Some("shop".into()),
        };
        board.add(a.clone());
        board.add(b.clone());
        let why = board.readiness(t0).unwrap_err();
        assert!(
            why.contains("watch Ingress: resolving (not listed yet)"),
            "{why}"
        );
        assert!(why.contains("watch Secret in shop"), "{why}");
        assert!(why.contains("no snapshot published yet"), "{why}");
        for id in [&a, &b] {
            board.update(id, |w| w.listed(t0, 1));
        }
        board.set_published();
        assert_eq!(board.readiness(t0), Ok(()));
        board.update(&b, |w| w.error(t0, "403 forbidden".into()));
        assert_eq!(board.readiness(at(t0, 30)), Ok(()), "within the bound");
        let why = board.readiness(at(t0, 31)).unwrap_err();
        assert_eq!(
            why,
            "watch Secret in shop: backing_off for 31s (1 errors): 403 forbidden"
        );
        assert_eq!(board.liveness(), Ok(()));
        board.task_ended("watch Ingress".into());
        assert_eq!(
            board.liveness(),
            Err("tasks ended: watch Ingress".to_owned())
        );
    }
}
