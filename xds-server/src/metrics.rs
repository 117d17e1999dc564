//! Server metrics, rendered as Prometheus text. Counters are atomics: recording never blocks a
//! stream.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use xdsc_core::snapshot::{ResourceType, Snapshot};

#[derive(Default)]
struct PerType([AtomicU64; 5]);

impl PerType {
    fn add(&self, t: ResourceType, n: u64) {
        self.0[index(t)].fetch_add(n, Ordering::Relaxed);
    }
    fn get(&self, t: ResourceType) -> u64 {
        self.0[index(t)].load(Ordering::Relaxed)
    }
}

fn index(t: ResourceType) -> usize {
    ResourceType::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// Counters and gauges of one server.
#[derive(Default)]
pub struct Metrics {
    streams: AtomicU64,
    streams_total: AtomicU64,
    pushes: PerType,
    resources_sent: PerType,
    bytes_sent: PerType,
    acks: PerType,
    nacks: PerType,
    publishes: AtomicU64,
    resources: Mutex<[u64; 5]>,
    builds: AtomicU64,
    build_seconds_sum: Mutex<f64>,
    source_events: AtomicU64,
    batch_size_sum: AtomicU64,
    source_errors: AtomicU64,
    source_ignored: AtomicU64,
    rejected_batches: AtomicU64,
    /// Streams holding a sync permit (see `budget`).
    pub(crate) sync_held: AtomicU64,
    /// Streams waiting for a sync permit.
    pub(crate) sync_waiting: AtomicU64,
    /// The accept path's counters (see `connection`).
    pub(crate) connections: crate::connection::Counters,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub(crate) fn stream_opened(&self) {
        self.streams.fetch_add(1, Ordering::Relaxed);
        self.streams_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_closed(&self) {
        self.streams.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn pushed(&self, t: ResourceType, resources: usize, bytes: usize) {
        self.pushes.add(t, 1);
        self.resources_sent.add(t, resources as u64);
        self.bytes_sent.add(t, bytes as u64);
    }

    pub(crate) fn ack(&self, t: ResourceType) {
        self.acks.add(t, 1);
    }

    pub(crate) fn nack(&self, t: ResourceType) {
        self.nacks.add(t, 1);
    }

    pub(crate) fn record_publish(&self, s: &Snapshot) {
        self.publishes.fetch_add(1, Ordering::Relaxed);
        let mut r = self
            .resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in ResourceType::ALL {
            r[index(t)] = s.resources(t).len() as u64;
        }
    }

    /// Records one snapshot build by the embedder (how long the compile took).
    pub fn record_build(&self, seconds: f64) {
        self.builds.fetch_add(1, Ordering::Relaxed);
        *self
            .build_seconds_sum
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += seconds;
    }

    /// Records one batch of source events of this size.
    pub fn record_batch(&self, events: usize) {
        self.source_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.batch_size_sum.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets how many errors the sources' newest input has (0 once it is fixed).
    pub fn set_source_errors(&self, errors: usize) {
        self.source_errors.store(errors as u64, Ordering::Relaxed);
    }

    /// Sets how many objects the sources ignore because their kinds carry no routing
    /// (Deployments, ConfigMaps, ... in a `kubectl get -o yaml` dump).
    pub fn set_source_ignored(&self, objects: usize) {
        self.source_ignored.store(objects as u64, Ordering::Relaxed);
    }

    /// Records a batch that was held back because it had errors (the last good snapshot
    /// stays published).
    pub fn record_rejected_batch(&self) {
        self.rejected_batches.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let g = |o: &mut String, name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        g(
            &mut o,
            "xdsc_streams",
            "Connected xDS streams.",
            "gauge",
            self.streams.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_streams_total",
            "xDS streams opened.",
            "counter",
            self.streams_total.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_sync_permits_held",
            "Streams holding a permit to send large responses.",
            "gauge",
            self.sync_held.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_sync_permits_waiting",
            "Streams waiting for a permit to send a large response.",
            "gauge",
            self.sync_waiting.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_snapshot_publishes_total",
            "Snapshots published.",
            "counter",
            self.publishes.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_snapshot_builds_total",
            "Snapshots compiled.",
            "counter",
            self.builds.load(Ordering::Relaxed).to_string(),
        );
        let sum = *self
            .build_seconds_sum
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g(
            &mut o,
            "xdsc_snapshot_build_seconds_sum",
            "Total time spent compiling snapshots.",
            "counter",
            format!("{sum}"),
        );
        g(
            &mut o,
            "xdsc_source_events_total",
            "Source events applied.",
            "counter",
            self.source_events.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_source_batches_total",
            "Source event batches applied.",
            "counter",
            self.batch_size_sum.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_source_errors",
            "Errors in the sources' newest input (0: it is valid).",
            "gauge",
            self.source_errors.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_source_ignored_objects",
            "Objects the sources ignore: kinds that carry no routing.",
            "gauge",
            self.source_ignored.load(Ordering::Relaxed).to_string(),
        );
        g(
            &mut o,
            "xdsc_source_rejected_batches_total",
            "Source batches held back because of errors; the last good snapshot stayed.",
            "counter",
            self.rejected_batches.load(Ordering::Relaxed).to_string(),
        );
        let resources = *self
            .resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let per_type = |o: &mut String,
                        name: &str,
                        help: &str,
                        kind: &str,
                        f: &dyn Fn(ResourceType) -> u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for t in ResourceType::ALL {
                let _ = writeln!(o, "{name}{{type=\"{}\"}} {}", t.short_name(), f(t));
            }
        };
        per_type(
            &mut o,
            "xdsc_snapshot_resources",
            "Resources in the last published snapshot.",
            "gauge",
            &|t| resources[index(t)],
        );
        per_type(
            &mut o,
            "xdsc_pushes_total",
            "Discovery responses sent.",
            "counter",
            &|t| self.pushes.get(t),
        );
        per_type(
            &mut o,
            "xdsc_resources_sent_total",
            "Resources sent in discovery responses.",
            "counter",
            &|t| self.resources_sent.get(t),
        );
        per_type(
            &mut o,
            "xdsc_bytes_sent_total",
            "Resource bytes sent in discovery responses.",
            "counter",
            &|t| self.bytes_sent.get(t),
        );
        per_type(
            &mut o,
            "xdsc_acks_total",
            "Responses acknowledged by Envoy.",
            "counter",
            &|t| self.acks.get(t),
        );
        per_type(
            &mut o,
            "xdsc_nacks_total",
            "Responses rejected by Envoy.",
            "counter",
            &|t| self.nacks.get(t),
        );
        self.connections.render(&mut o);
        if let Some(rss) = resident_bytes() {
            g(
                &mut o,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
                rss.to_string(),
            );
        }
        o
    }
}

/// The process's resident memory, from /proc on Linux.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
