//! Server metrics, kept in `prometheus-client` families and rendered as Prometheus text
//! (version 0.0.4). Recording is an atomic add (a histogram takes a short lock): it never
//! blocks a stream.
//!
//! Families are labelled where an operator slices them: `type` (the short resource type name:
//! `clusters`, `endpoints`, `listeners`, `routes`, `secrets`), `fleet`, `source` (the
//! embedder's name for a source, e.g. `files` or `kubernetes`). Snapshot sizes per fleet and
//! type are read from the published snapshots when scraped (see `admin`), not counted here.
//!
//! Every family the server records into is defined here, the accept path's (`Connections`,
//! with the close reasons it counts) and the sync budget's included, so this module imports
//! nothing of the server: the modules that record import it (`publish`, which hands it to
//! the streams, `budget`, `connection`), and `admin` renders it.
//!
//! Not here: the memory figures (`memory`), the families read when scraped (`admin`) and the
//! embedder's own ([`crate::SourceHealth::register_metrics`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use xdsc_core::snapshot::ResourceType;

/// The label set of a per-type family.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TypeLabel {
    r#type: &'static str,
}

impl TypeLabel {
    pub(crate) fn of(t: ResourceType) -> TypeLabel {
        TypeLabel {
            r#type: t.short_name(),
        }
    }
}

/// The label set of a per-fleet family.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FleetLabel {
    fleet: String,
}

/// The label set of a per-source family.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

/// The buckets of the snapshot build histogram: 0.5 ms to 16 s, doubling.
fn build_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 16)
}

/// The buckets of the push-to-ACK histogram: 1 ms to 32 s, doubling.
fn ack_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 16)
}

type PerType = Family<TypeLabel, Counter>;
type PerSource<M> = Family<SourceLabel, M>;

/// Counters, gauges and histograms of one server, and the registry that renders them.
///
/// The embedder records its builds and source batches here ([`crate::XdsServer::metrics`]):
///
/// ```
/// let server = xdsc_server::XdsServer::new(xdsc_server::Publisher::new());
/// server.metrics().record_build(0.012);
/// server.metrics().record_batch("files", 3);
/// let text = server.metrics().render();
/// assert!(text.contains("xdsc_snapshot_build_seconds_count 1"));
/// assert!(text.contains("xdsc_source_events_total{source=\"files\"} 3"));
/// ```
pub struct Metrics {
    registry: Registry,
    streams: Gauge,
    streams_total: Counter,
    pushes: PerType,
    resources_sent: PerType,
    bytes_sent: PerType,
    acks: PerType,
    nacks: PerType,
    push_ack_seconds: Family<TypeLabel, Histogram>,
    publishes: Family<FleetLabel, Counter>,
    build_seconds: Histogram,
    source_events: PerSource<Counter>,
    source_batches: PerSource<Counter>,
    source_errors: PerSource<Gauge>,
    source_ignored: PerSource<Gauge>,
    rejected_batches: PerSource<Counter>,
    /// Streams holding a sync permit (see `budget`).
    pub(crate) sync_held: Gauge,
    /// Streams waiting for a sync permit.
    pub(crate) sync_waiting: Gauge,
    /// Times freed memory was returned to the operating system after a wave of large
    /// responses (see `budget`), and the allocator's resident bytes that went.
    pub(crate) memory_releases: Counter,
    pub(crate) memory_released_bytes: Counter,
    /// Whole-map response bodies encoded, and responses written from one (`wire::Bodies`).
    bodies_encoded: Counter,
    bodies_shared: Counter,
    /// The accept path's counters (see `connection`).
    pub(crate) connections: Connections,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            streams: Gauge::default(),
            streams_total: Counter::default(),
            pushes: PerType::default(),
            resources_sent: PerType::default(),
            bytes_sent: PerType::default(),
            acks: PerType::default(),
            nacks: PerType::default(),
            push_ack_seconds: Family::new_with_constructor(|| Histogram::new(ack_buckets())),
            publishes: Family::default(),
            build_seconds: Histogram::new(build_buckets()),
            source_events: Family::default(),
            source_batches: Family::default(),
            source_errors: Family::default(),
            source_ignored: Family::default(),
            rejected_batches: Family::default(),
            sync_held: Gauge::default(),
            sync_waiting: Gauge::default(),
            memory_releases: Counter::default(),
            memory_released_bytes: Counter::default(),
            bodies_encoded: Counter::default(),
            bodies_shared: Counter::default(),
            connections: Connections::default(),
        };
        // Every type is shown from the start (at 0), so a dashboard's rate() has a baseline.
        for t in ResourceType::ALL {
            for f in [
                &m.pushes,
                &m.resources_sent,
                &m.bytes_sent,
                &m.acks,
                &m.nacks,
            ] {
                let _ = f.get_or_create(&TypeLabel::of(t));
            }
        }
        let r = &mut m.registry;
        r.register("xdsc_streams", "Connected xDS streams", m.streams.clone());
        r.register(
            "xdsc_streams",
            "xDS streams opened",
            m.streams_total.clone(),
        );
        r.register(
            "xdsc_sync_permits_held",
            "Streams holding a permit to send large responses",
            m.sync_held.clone(),
        );
        r.register(
            "xdsc_sync_permits_waiting",
            "Streams waiting for a permit to send a large response",
            m.sync_waiting.clone(),
        );
        r.register(
            "xdsc_memory_releases",
            "Times freed memory was returned to the OS after a wave of large responses (jemalloc)",
            m.memory_releases.clone(),
        );
        r.register(
            "xdsc_memory_released_bytes",
            "Allocator resident bytes returned to the OS by those releases",
            m.memory_released_bytes.clone(),
        );
        r.register(
            "xdsc_response_bodies_encoded",
            "Whole-map response bodies encoded (once per type version, shared by the streams sent it)",
            m.bodies_encoded.clone(),
        );
        r.register(
            "xdsc_response_bodies_shared",
            "Responses written from a shared whole-map body instead of encoded for their stream",
            m.bodies_shared.clone(),
        );
        r.register(
            "xdsc_snapshot_publishes",
            "Snapshots published, per fleet",
            m.publishes.clone(),
        );
        r.register(
            "xdsc_snapshot_build_seconds",
            "Time the embedder spent compiling each snapshot",
            m.build_seconds.clone(),
        );
        r.register(
            "xdsc_source_events",
            "Source events applied, per source",
            m.source_events.clone(),
        );
        r.register(
            "xdsc_source_batches",
            "Source event batches applied, per source",
            m.source_batches.clone(),
        );
        r.register(
            "xdsc_source_errors",
            "Errors in each source's newest input (0: it is valid)",
            m.source_errors.clone(),
        );
        r.register(
            "xdsc_source_ignored_objects",
            "Objects each source ignores: kinds that carry no routing",
            m.source_ignored.clone(),
        );
        r.register(
            "xdsc_source_rejected_batches",
            "Source batches held back because of errors; the last good snapshot stayed",
            m.rejected_batches.clone(),
        );
        r.register(
            "xdsc_pushes",
            "Discovery responses sent, per type",
            m.pushes.clone(),
        );
        r.register(
            "xdsc_resources_sent",
            "Resources sent in discovery responses, per type",
            m.resources_sent.clone(),
        );
        r.register(
            "xdsc_bytes_sent",
            "Resource bytes sent in discovery responses, per type",
            m.bytes_sent.clone(),
        );
        r.register(
            "xdsc_acks",
            "Responses acknowledged by Envoy, per type",
            m.acks.clone(),
        );
        r.register(
            "xdsc_nacks",
            "Responses rejected by Envoy, per type",
            m.nacks.clone(),
        );
        r.register(
            "xdsc_push_ack_seconds",
            "Time from sending a response until Envoy acknowledged it, per type",
            m.push_ack_seconds.clone(),
        );
        m.connections.register(r);
        m
    }
}

impl Metrics {
    pub(crate) fn stream_opened(&self) {
        self.streams.inc();
        self.streams_total.inc();
    }

    pub(crate) fn stream_closed(&self) {
        self.streams.dec();
    }

    pub(crate) fn memory_released(&self, bytes: u64) {
        self.memory_releases.inc();
        self.memory_released_bytes.inc_by(bytes);
    }

    /// A response was written from a shared whole-map body; `fresh`: encoded for it.
    pub(crate) fn shared_body(&self, fresh: bool) {
        if fresh {
            self.bodies_encoded.inc();
        }
        self.bodies_shared.inc();
    }

    pub(crate) fn pushed(&self, t: ResourceType, resources: usize, bytes: usize) {
        let l = TypeLabel::of(t);
        self.pushes.get_or_create(&l).inc();
        self.resources_sent
            .get_or_create(&l)
            .inc_by(resources as u64);
        self.bytes_sent.get_or_create(&l).inc_by(bytes as u64);
    }

    /// An ACK of type `t`, `after` the response it acknowledges was sent (when known).
    pub(crate) fn ack(&self, t: ResourceType, after: Option<std::time::Duration>) {
        let l = TypeLabel::of(t);
        self.acks.get_or_create(&l).inc();
        if let Some(d) = after {
            self.push_ack_seconds
                .get_or_create(&l)
                .observe(d.as_secs_f64());
        }
    }

    pub(crate) fn nack(&self, t: ResourceType) {
        self.nacks.get_or_create(&TypeLabel::of(t)).inc();
    }

    pub(crate) fn record_publish(&self, fleet: &str) {
        self.publishes
            .get_or_create(&FleetLabel {
                fleet: fleet.to_owned(),
            })
            .inc();
    }

    /// Records one snapshot build by the embedder (how long the compile took).
    pub fn record_build(&self, seconds: f64) {
        self.build_seconds.observe(seconds);
    }

    /// Records one batch of `events` source events from `source`.
    pub fn record_batch(&self, source: &str, events: usize) {
        let l = source_label(source);
        self.source_events.get_or_create(&l).inc_by(events as u64);
        self.source_batches.get_or_create(&l).inc();
    }

    /// Sets how many errors `source`'s newest input has (0 once it is fixed).
    pub fn set_source_errors(&self, source: &str, errors: usize) {
        self.source_errors
            .get_or_create(&source_label(source))
            .set(gauge_value(errors));
    }

    /// Sets how many objects `source` ignores because their kinds carry no routing
    /// (Deployments, ConfigMaps, ... in a `kubectl get -o yaml` dump).
    pub fn set_source_ignored(&self, source: &str, objects: usize) {
        self.source_ignored
            .get_or_create(&source_label(source))
            .set(gauge_value(objects));
    }

    /// Records a batch of `source` that was held back because it had errors (the last good
    /// snapshot stays published).
    pub fn record_rejected_batch(&self, source: &str) {
        self.rejected_batches
            .get_or_create(&source_label(source))
            .inc();
    }

    /// The server's families as Prometheus text (what `/metrics` starts with).
    pub fn render(&self) -> String {
        let mut o = String::new();
        encode(&mut o, &self.registry);
        o
    }
}

fn source_label(source: &str) -> SourceLabel {
    SourceLabel {
        source: source.to_owned(),
    }
}

/// A count as a gauge value (gauges are `i64`).
pub(crate) fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Appends `registry` as Prometheus text to `o`. Writing to a `String` cannot fail, and the
/// encoder fails only when its writer does.
pub(crate) fn encode(o: &mut String, registry: &Registry) {
    let _ = prometheus_client::encoding::prometheus_text::encode(o, registry);
}

/// Why the server closed an admitted connection: the `reason` of
/// `xdsc_xds_connections_closed_total` (the accept path, `connection`, reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The TLS handshake and the HTTP/2 preface did not arrive within `handshake_timeout`.
    HandshakeTimeout,
    /// The client did not speak HTTP/2.
    BadHandshake,
    /// The TLS handshake failed (no client certificate where one is required, one from an
    /// untrusted CA, a client that does not speak TLS).
    TlsHandshake,
    /// An HTTP/2 PING went unanswered for `http2_keepalive_timeout`.
    KeepaliveTimeout,
    /// A response stayed unacknowledged for `response_timeout`: the client stopped reading.
    Stalled,
    /// Still open at the end of the shutdown grace period.
    Shutdown,
}

const CLOSED: [(Closed, &str); 6] = [
    (Closed::HandshakeTimeout, "handshake_timeout"),
    (Closed::BadHandshake, "bad_handshake"),
    (Closed::TlsHandshake, "tls_handshake"),
    (Closed::KeepaliveTimeout, "keepalive_timeout"),
    (Closed::Stalled, "stalled"),
    (Closed::Shutdown, "shutdown"),
];

/// The label of a refusal or close reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The accept path's families (admission, closes, TLS reloads; see `connection`).
#[derive(Debug)]
pub(crate) struct Connections {
    open: Gauge,
    accepted: Counter,
    refused: Family<Reason, Counter>,
    closed: Family<Reason, Counter>,
    tls_reloads: Family<Outcome, Counter>,
}

/// The label of a reload's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: &'static str,
}

impl Default for Connections {
    fn default() -> Connections {
        let c = Connections {
            open: Gauge::default(),
            accepted: Counter::default(),
            refused: Family::default(),
            closed: Family::default(),
            tls_reloads: Family::default(),
        };
        for result in ["ok", "error"] {
            let _ = c.tls_reloads.get_or_create(&Outcome { result });
        }
        // Every reason is shown from the start, at 0.
        for reason in ["total", "peer"] {
            let _ = c.refused.get_or_create(&Reason { reason });
        }
        for (_, reason) in CLOSED {
            let _ = c.closed.get_or_create(&Reason { reason });
        }
        c
    }
}

impl Connections {
    /// Counts an admitted connection, open from now.
    pub(crate) fn admitted(&self) {
        self.open.inc();
        self.accepted.inc();
    }

    /// Counts an admitted connection gone.
    pub(crate) fn left(&self) {
        self.open.dec();
    }

    pub(crate) fn closed(&self, why: Closed) {
        if let Some((_, reason)) = CLOSED.iter().find(|(c, _)| *c == why) {
            self.closed.get_or_create(&Reason { reason }).inc();
        }
    }

    /// Counts a reload of changed TLS files: used (`ok`) or refused, the previous
    /// configuration kept.
    pub(crate) fn tls_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.tls_reloads.get_or_create(&Outcome { result }).inc();
    }

    /// Counts a refusal by a limit (`total` or `peer`).
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    /// Adds these counters' families to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "xdsc_xds_connections",
            "Open xDS connections",
            self.open.clone(),
        );
        registry.register(
            "xdsc_xds_connections_accepted",
            "xDS connections admitted",
            self.accepted.clone(),
        );
        registry.register(
            "xdsc_xds_connections_refused",
            "xDS connections refused by a connection limit (total: max_connections; peer: max_connections_per_peer)",
            self.refused.clone(),
        );
        registry.register(
            "xdsc_xds_connections_closed",
            "xDS connections the server closed, by reason",
            self.closed.clone(),
        );
        registry.register(
            "xdsc_xds_tls_reloads",
            "Changes of the xDS TLS files read: ok (new connections get them) or error (the previous certificate kept)",
            self.tls_reloads.clone(),
        );
    }
}
