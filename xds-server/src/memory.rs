//! Memory visibility: the process's resident memory, the container's memory limit (cgroup v2
//! or v1), the allocator's own figures when the binary runs on jemalloc (feature
//! `jemalloc`), as metrics, JSON and log lines. [`MemoryWatch`] logs a warning when resident
//! memory crosses a configured fraction of the limit (and a line when it falls back below),
//! and a summary at a low rate, so the growth that ends in an OOM kill is in the log before
//! it happens.
//!
//! Not here: setting the global allocator (the binaries do, `#[global_allocator]`) or
//! profiles (`profile`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// jemalloc as a global allocator (feature `jemalloc`), for a binary's
/// `#[global_allocator] static ALLOCATOR: xdsc_server::memory::Jemalloc = xdsc_server::memory::Jemalloc;`.
#[cfg(feature = "jemalloc")]
pub use tikv_jemallocator::Jemalloc;

/// The memory figures at one moment. Each is `None` where this platform or process cannot
/// tell (no /proc, no cgroup limit, not on jemalloc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryFigures {
    /// Resident set size of the process, bytes (`VmRSS`).
    pub resident: Option<u64>,
    /// The container's memory limit, bytes (`memory.max` or `memory.limit_in_bytes`); `None`
    /// when unlimited or not in a cgroup with a limit.
    pub limit: Option<u64>,
    /// The allocator's own figures.
    pub allocator: Option<AllocatorFigures>,
}

/// What jemalloc says of itself (`stats.*`, refreshed by advancing its epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AllocatorFigures {
    /// Bytes allocated by the application (`stats.allocated`).
    pub allocated: u64,
    /// Bytes in active pages (`stats.active`): allocated plus fragmentation.
    pub active: u64,
    /// Bytes of physically resident pages the allocator maps (`stats.resident`).
    pub resident: u64,
    /// Bytes retained: returned by the application, kept mapped (virtual) by the allocator
    /// for reuse rather than unmapped (`stats.retained`).
    pub retained: u64,
}

impl MemoryFigures {
    /// Reads the figures now.
    ///
    /// ```
    /// let m = xdsc_server::memory::MemoryFigures::now();
    /// # #[cfg(target_os = "linux")]
    /// assert!(m.resident.is_some_and(|r| r > 0));
    /// ```
    pub fn now() -> MemoryFigures {
        MemoryFigures {
            resident: resident_bytes(),
            limit: container_limit(Path::new("/proc/self/cgroup"), Path::new("/sys/fs/cgroup")),
            allocator: allocator_figures(),
        }
    }

    /// Resident memory as a fraction of the limit, when both are known.
    pub fn fraction(&self) -> Option<f64> {
        Some(self.resident? as f64 / self.limit.filter(|l| *l > 0)? as f64)
    }
}

/// The process's resident memory, from `/proc/self/status` (`VmRSS`, in kB).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// A limit this large means "no limit" (cgroup v1 writes 2^63 rounded down to a page).
const UNLIMITED: u64 = 1 << 60;

/// The memory limit of the process's cgroup: `cgroup` is the process's `/proc/self/cgroup`,
/// `root` the cgroup file system's mount (`/sys/fs/cgroup`). cgroup v2 (`memory.max`) is
/// preferred; v1 (`memory.limit_in_bytes`) otherwise. In a container the cgroup's own folder
/// is usually the mount's root, so each is looked for at the listed path, then at the root.
pub fn container_limit(cgroup: &Path, root: &Path) -> Option<u64> {
    let listing = std::fs::read_to_string(cgroup).unwrap_or_default();
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let mut candidates = Vec::new();
    for line in listing.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let Some(path) = path.map(|p| p.trim_start_matches('/')) else {
            continue;
        };
        match controllers {
            Some("") => candidates.push(root.join(path).join("memory.max")),
            Some(c) if c.split(',').any(|c| c == "memory") => {
                candidates.push(root.join("memory").join(path).join("memory.limit_in_bytes"));
            }
            _ => {}
        }
    }
    candidates.push(root.join("memory.max"));
    candidates.push(root.join("memory").join("memory.limit_in_bytes"));
    candidates
        .into_iter()
        .find_map(read)
        .and_then(|text| parse_limit(&text))
}

fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse().ok().filter(|l| *l < UNLIMITED)
}

#[cfg(feature = "jemalloc")]
fn allocator_figures() -> Option<AllocatorFigures> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let figure = |v: Result<usize, tikv_jemalloc_ctl::Error>| v.ok().map(|v| v as u64);
    Some(AllocatorFigures {
        allocated: figure(stats::allocated::read())?,
        active: figure(stats::active::read())?,
        resident: figure(stats::resident::read())?,
        retained: figure(stats::retained::read())?,
    })
}

#[cfg(not(feature = "jemalloc"))]
fn allocator_figures() -> Option<AllocatorFigures> {
    None
}

/// Returns the pages the allocator holds freed to the operating system now, and says how
/// many bytes of the allocator's resident memory went (`None`: not built with the `jemalloc`
/// feature, which has nothing to return).
///
/// jemalloc returns freed pages only as it allocates (a decay of 10 s, ticked by allocations),
/// so a process that goes quiet after a burst keeps the burst's peak resident for good: after
/// an initial sync of 10,000 services, 0.5-1 MiB per idle stream (BENCHMARKS.md, issue 13).
/// The server calls this once a wave of large responses is over (`SyncLimits::release_after`),
/// on a blocking thread: it takes a few milliseconds per hundred MiB.
///
/// How: setting an arena's decay time to 0 purges its unused dirty (and muzzy) pages at once
/// (`madvise(MADV_DONTNEED)`), after which the arena's own decay time is set back. (The
/// `arena.<i>.purge` control does the same, but takes no value, which the safe mallctl
/// interface cannot call.)
///
/// ```
/// let released = xdsc_server::memory::release_freed_memory();
/// # #[cfg(not(feature = "jemalloc"))]
/// assert_eq!(released, None);
/// ```
pub fn release_freed_memory() -> Option<u64> {
    release()
}

#[cfg(feature = "jemalloc")]
fn release() -> Option<u64> {
    use tikv_jemalloc_ctl::{Access, AsName, arenas};
    // This thread's cached objects first, so that their pages can go too.
    flush_own_cache();
    let before = allocator_figures()?.resident;
    let arenas = arenas::narenas::read().ok()?;
    for control in [
        &b"arena.0.dirty_decay_ms\0"[..],
        &b"arena.0.muzzy_decay_ms\0"[..],
    ] {
        let Ok(mut mib) = control.name().mib::<[usize; 3]>() else {
            continue;
        };
        for arena in 0..arenas {
            mib[1] = arena as usize;
            // An arena not in use yet has no such control; there is nothing to purge there.
            if let Ok(decay) = Access::<isize>::update(&mib, 0) {
                let _ = mib.write(decay);
            }
        }
    }
    let after = allocator_figures()?.resident;
    Some(before.saturating_sub(after))
}

#[cfg(not(feature = "jemalloc"))]
fn release() -> Option<u64> {
    None
}

/// Empties the calling thread's allocator cache (jemalloc's thread cache, `tcache`) into the
/// arenas, and says whether there was one to empty (`false`: not built with the `jemalloc`
/// feature).
///
/// Each thread keeps freed small objects for its own reuse, up to about a megabyte, and only
/// that thread can hand them back: an idle thread that stops allocating keeps its cache full
/// for good, and the pages under those objects stay resident, whatever purging the arenas
/// does. [`release_freed_memory`] calls this for its own thread; the server also has each
/// runtime worker call it ([`release_freed_memory_on`]).
///
/// How: turning the cache off (`thread.tcache.enabled`) flushes and frees it; turning it back
/// on gives the thread an empty one. (`thread.tcache.flush` does the same, but takes no value,
/// which the safe mallctl interface cannot call.)
///
/// ```
/// let flushed = xdsc_server::memory::flush_thread_cache();
/// # #[cfg(not(feature = "jemalloc"))]
/// assert!(!flushed);
/// ```
pub fn flush_thread_cache() -> bool {
    flush_own_cache()
}

#[cfg(feature = "jemalloc")]
fn flush_own_cache() -> bool {
    use tikv_jemalloc_ctl::{Access, AsName};
    let enabled = b"thread.tcache.enabled\0".name();
    match Access::<bool>::update(enabled, false) {
        Ok(true) => enabled.write(true).is_ok(),
        // Off already (`opt.tcache` false): nothing cached, nothing to turn back on.
        Ok(false) | Err(_) => false,
    }
}

#[cfg(not(feature = "jemalloc"))]
fn flush_own_cache() -> bool {
    false
}

/// The bytes in all threads' allocator caches (jemalloc's `stats.arenas.<all>.tcache_bytes`;
/// `None`: not on jemalloc): freed memory kept per thread, which no purge returns
/// ([`flush_thread_cache`]).
///
/// ```
/// let cached = xdsc_server::memory::thread_cache_bytes();
/// # #[cfg(not(feature = "jemalloc"))]
/// assert_eq!(cached, None);
/// ```
pub fn thread_cache_bytes() -> Option<u64> {
    thread_caches()
}

#[cfg(feature = "jemalloc")]
fn thread_caches() -> Option<u64> {
    use tikv_jemalloc_ctl::{Access, AsName, epoch};
    epoch::advance().ok()?;
    // 4096 is `MALLCTL_ARENAS_ALL`: the figures of every arena merged.
    let bytes: usize = b"stats.arenas.4096.tcache_bytes\0".name().read().ok()?;
    Some(bytes as u64)
}

#[cfg(not(feature = "jemalloc"))]
fn thread_caches() -> Option<u64> {
    None
}

/// [`release_freed_memory`] for a server on the runtime `runtime`: first every worker thread of
/// the runtime empties its allocator cache ([`flush_thread_cache`]), so that the objects idle
/// workers keep cached go back to their pages, then those pages are returned. Returns the
/// bytes returned and how many worker threads emptied their cache.
///
/// Call it from a thread that is not one of the runtime's workers (the server calls it on a
/// blocking thread once a wave of initial syncs is over). Without the flush, two idle workers
/// kept about 1.6 MB cached after 100 initial syncs of 10,000 services (16 KiB per stream,
/// BENCHMARKS.md, issue 13).
///
/// How each worker is reached: one task per worker is spawned from this (non-worker) thread,
/// and each holds its worker until all of them have started, so no two run on the same worker
/// thread; a worker busy elsewhere for longer than [`WORKER_WAIT`] is skipped rather than
/// waited for (the others go on; the count says so).
///
/// ```
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
/// let (_released, workers) =
///     std::thread::scope(|s| s.spawn(|| xdsc_server::memory::release_freed_memory_on(rt.handle())).join().unwrap());
/// # #[cfg(feature = "jemalloc")]
/// assert_eq!(workers, 2);
/// # #[cfg(not(feature = "jemalloc"))]
/// assert_eq!(workers, 0);
/// ```
pub fn release_freed_memory_on(runtime: &tokio::runtime::Handle) -> (Option<u64>, usize) {
    let workers = if cfg!(feature = "jemalloc") {
        flush_worker_caches(runtime, WORKER_WAIT)
    } else {
        0
    };
    (release(), workers)
}

/// How long a worker's flush task waits for the other workers' to start
/// ([`release_freed_memory_on`]).
pub const WORKER_WAIT: Duration = Duration::from_millis(50);

/// Has each worker of `runtime` empty its thread cache; returns how many distinct worker
/// threads did.
fn flush_worker_caches(runtime: &tokio::runtime::Handle, wait: Duration) -> usize {
    use std::sync::{Arc, Condvar, Mutex};
    let workers = runtime.metrics().num_workers();
    let started = Arc::new((Mutex::new(0_usize), Condvar::new()));
    let (done, flushed) = std::sync::mpsc::channel();
    for _ in 0..workers {
        let (started, done) = (Arc::clone(&started), done.clone());
        runtime.spawn(async move {
            // Holding this worker (a blocking wait, on purpose) until every flush task has
            // started is what puts each on a worker of its own.
            let (count, all) = &*started;
            let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            all.notify_all();
            let deadline = std::time::Instant::now() + wait;
            while *n < workers {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                n = all
                    .wait_timeout(n, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            drop(n);
            if flush_own_cache() {
                let _ = done.send(std::thread::current().id());
            }
        });
    }
    drop(done);
    // Ends when every task has run or been dropped (a runtime shutting down drops them).
    let threads: std::collections::HashSet<_> = flushed.iter().collect();
    threads.len()
}

/// What the server's release after a wave does ([`crate::SyncLimits::release_after`]), on a
/// blocking thread of the server's runtime: [`release_freed_memory_on`] that runtime.
pub(crate) fn release_after_wave() -> Option<u64> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return release();
    };
    let (released, workers) = release_freed_memory_on(&runtime);
    tracing::debug!(workers, "worker threads emptied their allocator caches");
    released
}

/// The memory families, read when scraped: `process_resident_memory_bytes`,
/// `xdsc_memory_limit_bytes`,
/// `xdsc_allocator_{allocated,active,resident,thread_cache,retained}_bytes`.
#[derive(Debug)]
pub(crate) struct Collector;

impl prometheus_client::collector::Collector for Collector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        let m = MemoryFigures::now();
        let a = m.allocator;
        let figures = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                m.resident,
            ),
            (
                "xdsc_memory_limit_bytes",
                "The container's memory limit (cgroup), bytes; absent when unlimited",
                m.limit,
            ),
            (
                "xdsc_allocator_allocated_bytes",
                "Bytes the application holds allocated (jemalloc stats.allocated)",
                a.map(|a| a.allocated),
            ),
            (
                "xdsc_allocator_active_bytes",
                "Bytes in the allocator's active pages (jemalloc stats.active)",
                a.map(|a| a.active),
            ),
            (
                "xdsc_allocator_resident_bytes",
                "Bytes of resident pages the allocator maps (jemalloc stats.resident)",
                a.map(|a| a.resident),
            ),
            (
                "xdsc_allocator_thread_cache_bytes",
                "Freed bytes kept in the threads' own allocator caches (jemalloc tcache_bytes)",
                thread_caches(),
            ),
            (
                "xdsc_allocator_retained_bytes",
                "Bytes freed but kept mapped by the allocator for reuse (jemalloc stats.retained)",
                a.map(|a| a.retained),
            ),
        ];
        for (name, help, value) in figures {
            if let Some(v) = value {
                let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

/// How memory is logged ([`MemoryWatch::spawn`]).
///
/// ```
/// let watch = xdsc_server::memory::MemoryWatch::default();
/// assert_eq!(watch.fractions, [0.5, 0.75, 0.9]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryWatch {
    /// Fractions of the container's limit whose crossing (upwards) logs a warning, and
    /// (downwards) an info line.
    pub fractions: Vec<f64>,
    /// How often memory is read.
    pub sample_every: Duration,
    /// How often a summary line is logged (`None`: never).
    pub summary_every: Option<Duration>,
}

impl Default for MemoryWatch {
    fn default() -> MemoryWatch {
        MemoryWatch {
            fractions: vec![0.5, 0.75, 0.9],
            sample_every: Duration::from_secs(5),
            summary_every: Some(Duration::from_secs(600)),
        }
    }
}

/// Parses a comma-separated list of fractions (`0.5,0.75,0.9`), each in (0, 1], for
/// [`MemoryWatch::fractions`] (the binaries' `--memory-log-at`).
///
/// ```
/// assert_eq!(xdsc_server::memory::parse_fractions("0.5, 0.9"), Ok(vec![0.5, 0.9]));
/// assert!(xdsc_server::memory::parse_fractions("0.5,2").is_err());
/// ```
pub fn parse_fractions(text: &str) -> Result<Vec<f64>, String> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| match s.trim().parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
            _ => Err(format!("{s:?} is not a fraction in (0, 1]")),
        })
        .collect()
}

/// The threshold crossings of resident memory against a limit (pure: fractions in, crossings
/// out).
#[derive(Debug)]
struct Crossings {
    fractions: Vec<f64>,
    /// How many of the (sorted) fractions the last reading was at or above.
    above: usize,
}

/// A crossing: the fraction, and whether memory went above it (or fell back below).
#[derive(Debug, PartialEq)]
enum Crossing {
    Up(f64),
    Down(f64),
}

impl Crossings {
    fn new(mut fractions: Vec<f64>) -> Crossings {
        fractions.retain(|f| f.is_finite() && *f > 0.0);
        fractions.sort_by(f64::total_cmp);
        fractions.dedup();
        Crossings {
            fractions,
            above: 0,
        }
    }

    fn observe(&mut self, fraction: f64) -> Option<Crossing> {
        let above = self.fractions.iter().filter(|f| fraction >= **f).count();
        let before = std::mem::replace(&mut self.above, above);
        match above.cmp(&before) {
            std::cmp::Ordering::Greater => Some(Crossing::Up(self.fractions[above - 1])),
            std::cmp::Ordering::Less => Some(Crossing::Down(self.fractions[above])),
            std::cmp::Ordering::Equal => None,
        }
    }
}

fn mib(b: Option<u64>) -> String {
    b.map_or_else(
        || "-".to_owned(),
        |b| format!("{:.1}", b as f64 / 1048576.0),
    )
}

impl MemoryWatch {
    /// Reads memory every `sample_every` until the runtime ends: logs threshold crossings
    /// (only with a known limit) and a summary every `summary_every`.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut crossings = Crossings::new(self.fractions.clone());
            let mut tick = tokio::time::interval(self.sample_every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_summary: Option<tokio::time::Instant> = None;
            loop {
                tick.tick().await;
                let m = MemoryFigures::now();
                let a = m.allocator;
                if let Some(f) = m.fraction() {
                    match crossings.observe(f) {
                        Some(Crossing::Up(t)) => tracing::warn!(
                            resident_mib = %mib(m.resident), limit_mib = %mib(m.limit),
                            fraction = format!("{f:.3}"), threshold = t,
                            allocated_mib = %mib(a.map(|a| a.allocated)),
                            "memory above {:.0}% of the container limit", t * 100.0
                        ),
                        Some(Crossing::Down(t)) => tracing::info!(
                            resident_mib = %mib(m.resident), limit_mib = %mib(m.limit),
                            fraction = format!("{f:.3}"), threshold = t,
                            "memory back below {:.0}% of the container limit", t * 100.0
                        ),
                        None => {}
                    }
                }
                let due = self
                    .summary_every
                    .is_some_and(|every| last_summary.is_none_or(|at| at.elapsed() >= every));
                if due {
                    last_summary = Some(tokio::time::Instant::now());
                    tracing::info!(
                        resident_mib = %mib(m.resident), limit_mib = %mib(m.limit),
                        allocated_mib = %mib(a.map(|a| a.allocated)),
                        active_mib = %mib(a.map(|a| a.active)),
                        retained_mib = %mib(a.map(|a| a.retained)),
                        "memory"
                    );
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossings_up_and_down_once_each() {
        let mut c = Crossings::new(vec![0.9, 0.5, 0.75, f64::NAN]);
        assert_eq!(c.observe(0.1), None);
        assert_eq!(c.observe(0.55), Some(Crossing::Up(0.5)));
        assert_eq!(c.observe(0.6), None, "still above 0.5: no second line");
        assert_eq!(c.observe(0.95), Some(Crossing::Up(0.9)), "jumped past two");
        assert_eq!(c.observe(0.8), Some(Crossing::Down(0.9)));
        assert_eq!(c.observe(0.2), Some(Crossing::Down(0.5)));
    }

    #[test]
    fn vm_rss_and_limits_parse() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("536870912\n"), Some(536870912));
        assert_eq!(parse_limit("9223372036854771712\n"), None, "v1's no limit");
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn the_limit_is_read_from_cgroup_v2_then_v1() {
        let dir = xdsc_test_support::TempDir::new("cgroup");
        let root = dir.path();
        let cgroup = root.join("cgroup");
        // v2: the process's cgroup folder.
        std::fs::create_dir_all(root.join("fs/kubepods/pod1")).unwrap();
        std::fs::write(root.join("fs/kubepods/pod1/memory.max"), "268435456\n").unwrap();
        std::fs::write(&cgroup, "0::/kubepods/pod1\n").unwrap();
        assert_eq!(container_limit(&cgroup, &root.join("fs")), Some(268435456));
        // v1, the cgroup mounted as the root of the memory hierarchy (a container).
        let v1 = root.join("v1");
        std::fs::create_dir_all(v1.join("memory")).unwrap();
        std::fs::write(v1.join("memory/memory.limit_in_bytes"), "1073741824\n").unwrap();
        std::fs::write(&cgroup, "4:memory:/docker/abc\n0::/\n").unwrap();
        assert_eq!(container_limit(&cgroup, &v1), Some(1073741824));
        // No limit anywhere.
        assert_eq!(container_limit(&cgroup, &root.join("none")), None);
    }
}
