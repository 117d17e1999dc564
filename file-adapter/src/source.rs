//! The live file source: watch files and folders, batch bursts of changes, reload the whole
//! set, and publish a new snapshot only when the set is good.
//!
//! # When a change is applied
//!
//! Every reload reads the whole set of files again (see [`crate::load`]) and compiles it
//! incrementally against the configuration being served. It is applied, atomically, when it
//! brings no error that the served configuration did not already have (errors are compared by
//! file, object, field and message, not by line, so moving text around is not a new error).
//! Otherwise it is held back whole: the last good snapshot keeps being served, and the errors
//! are logged, shown under `sources` in `/debug/snapshot` and counted in `/metrics`
//! (`xdsc_source_errors`, `xdsc_source_rejected_batches_total`). Once fixed, the next reload
//! applies. At startup there is no last good configuration: the first load is served with
//! whatever compiles, and its errors are reported the same way.
//!
//! # Watching
//!
//! inotify (through `notify`) watches each folder given, recursively, and the folder of each
//! file given or named by a secret, so editor save patterns (write in place, write a temporary
//! file and rename it over, delete and recreate) are all seen. Events only raise a flag (a
//! channel of one), so a burst costs one reload: the reload starts once no event came for the
//! hold-off, or after the maximum delay since the first event. A rescan on a timer catches
//! anything a watcher missed (network file systems, a watch limit reached). A reload whose
//! objects are unchanged publishes nothing.
//!
//! Not here: parsing (see [`crate::load`]) and serving (`xdsc-server`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use serde_json::{Value, json};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Change, ObjectKey};
use xdsc_core::snapshot::Snapshot;

use crate::load::{self, Diagnostic, LoadOptions, Loaded};

/// Timing of the live source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceOptions {
    /// Quiet time after the last event before a reload (default 100 ms).
    pub hold_off: Duration,
    /// The longest a reload waits after the first event of a burst (default 1 s).
    pub max_delay: Duration,
    /// A full reload on this period even without events (default 10 s).
    pub rescan: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            hold_off: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            rescan: Duration::from_secs(10),
        }
    }
}

/// What one reload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The set was applied; `changed` objects differ from the served ones.
    Applied {
        /// How many objects were added, changed or removed.
        changed: usize,
    },
    /// Nothing differs from what is served.
    Unchanged,
    /// The set has new errors and was held back; the served configuration stays.
    HeldBack {
        /// The errors the served configuration did not have.
        new_errors: Vec<Diagnostic>,
    },
}

/// The served configuration and the decision rule, without any I/O: feed it loads, it says
/// what to publish.
///
/// ```
/// use xdsc_file::load::Loaded;
/// use xdsc_file::source::{Outcome, Reconciler};
/// let mut r = Reconciler::default();
/// assert_eq!(r.step(Loaded::default()), Outcome::Applied { changed: 0 });
/// assert_eq!(r.step(Loaded::default()), Outcome::Unchanged);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Reconciler {
    compiled: Compiled,
    /// The diagnostics of the served configuration.
    served: Vec<Diagnostic>,
    /// The diagnostics of the newest load, applied or not.
    newest: Vec<Diagnostic>,
    started: bool,
}

/// An error's identity for "is it new?": everything but the line and column.
fn identity(d: &Diagnostic) -> impl Ord + '_ {
    (
        d.location.as_ref().map(|l| &l.file),
        &d.object,
        &d.from,
        &d.field,
        &d.problem,
    )
}

impl Reconciler {
    /// Takes a fresh load of the whole set and decides.
    pub fn step(&mut self, loaded: Loaded) -> Outcome {
        let model = self.compiled.model();
        let mut changes: Vec<Change> = model
            .objects()
            .map(|o| o.key())
            .filter(|k| !loaded.objects.contains_key(k))
            .map(Change::Delete)
            .collect();
        changes.extend(
            loaded
                .objects
                .iter()
                .filter(|(k, o)| {
                    model
                        .get(k)
                        .is_none_or(|old| !Arc::ptr_eq(old, o) && old != *o)
                })
                .map(|(_, o)| Change::Upsert(Arc::clone(o))),
        );
        let changed = changes.len();
        let candidate = if changes.is_empty() {
            self.compiled.clone()
        } else {
            self.compiled.apply(changes)
        };
        let report = loaded.report(&candidate);
        self.newest = report.clone();
        if !self.started {
            self.started = true;
            self.compiled = candidate;
            self.served = report;
            return Outcome::Applied { changed };
        }
        let new_errors: Vec<Diagnostic> = {
            let known: BTreeSet<_> = self
                .served
                .iter()
                .filter(|d| d.is_error())
                .map(identity)
                .collect();
            report
                .iter()
                .filter(|d| d.is_error() && !known.contains(&identity(d)))
                .cloned()
                .collect()
        };
        if !new_errors.is_empty() {
            return Outcome::HeldBack { new_errors };
        }
        self.compiled = candidate;
        self.served = report;
        if changed == 0 {
            Outcome::Unchanged
        } else {
            Outcome::Applied { changed }
        }
    }

    /// The served compilation.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The served snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        self.compiled.snapshot()
    }

    /// The diagnostics of the served configuration.
    pub fn served_diagnostics(&self) -> &[Diagnostic] {
        &self.served
    }

    /// The diagnostics of the newest load, whether it was applied or held back.
    pub fn newest_diagnostics(&self) -> &[Diagnostic] {
        &self.newest
    }

    /// Whether an object is served.
    pub fn serves(&self, key: &ObjectKey) -> bool {
        self.compiled.model().get(key).is_some()
    }
}

/// Where the source publishes and reports.
pub trait Sink: Send + 'static {
    /// A new snapshot to serve.
    fn publish(&mut self, snapshot: Snapshot);
    /// A reload happened.
    fn report(&mut self, report: Report<'_>);
}

/// What one reload did, for a [`Sink`].
#[derive(Debug)]
pub struct Report<'a> {
    /// The decision.
    pub outcome: &'a Outcome,
    /// Whether it is the same as the previous reload's (a rescan of an unchanged broken set).
    pub repeated: bool,
    /// How long reading and compiling took.
    pub took: Duration,
    /// The source's state.
    pub reconciler: &'a Reconciler,
    /// The source's state as JSON, for debug views.
    pub status: Value,
}

/// The live source: what to read and how.
#[derive(Clone, Debug)]
pub struct FileSource {
    /// The files and folders given.
    pub paths: Vec<PathBuf>,
    /// How documents are read.
    pub load: LoadOptions,
    /// Timing.
    pub options: SourceOptions,
}

/// A handle that stops a running source.
#[derive(Debug)]
pub struct Running {
    stop: SyncSender<Signal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops the source and waits for its thread.
    pub fn stop(mut self) {
        let _ = self.stop.send(Signal::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Signal {
    Changed,
    Stop,
}

/// Which paths an event must touch to matter.
#[derive(Default)]
struct Interest {
    dirs: Vec<PathBuf>,
    files: BTreeSet<PathBuf>,
    /// The folders of `files`: any entry changing there matters, because a Kubernetes
    /// volume (a Secret or ConfigMap mount) updates a file by swapping a `..data` symlink
    /// beside it, not by writing the file.
    parents: BTreeSet<PathBuf>,
}

impl Interest {
    fn wants(&self, path: &Path) -> bool {
        self.files.contains(path)
            || path.parent().is_some_and(|p| self.parents.contains(p))
            || self.dirs.iter().any(|d| path.starts_with(d))
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

impl FileSource {
    /// Loads the set once, reports and publishes it, then watches in a thread of its own until
    /// stopped. The first snapshot is published before this returns, so readiness follows.
    pub fn start(self, sink: impl Sink) -> std::io::Result<Running> {
        let (tx, rx) = mpsc::sync_channel::<Signal>(1);
        let interest = Arc::new(Mutex::new(Interest::default()));
        let watcher_interest = Arc::clone(&interest);
        let event_tx = tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            tracing::trace!(event = ?res, "file event");
            let relevant = match &res {
                // Opening and reading files (our own reloads do) changes nothing, and neither
                // does a metadata change (the access time a read updates, a touch; a mode
                // change that makes a file unreadable is caught by the rescan).
                Ok(event)
                    if matches!(
                        event.kind,
                        notify::EventKind::Access(_)
                            | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                    ) =>
                {
                    false
                }
                Ok(event) => {
                    let i = watcher_interest
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    event.paths.iter().any(|p| i.wants(p))
                }
                // An error (a queue overflow): reload to be safe.
                Err(_) => true,
            };
            if relevant {
                // Full means a reload is already pending: nothing queues.
                if let Err(TrySendError::Disconnected(_)) = event_tx.try_send(Signal::Changed) {
                    tracing::debug!("file events after the source stopped");
                }
            }
        })
        .map_err(std::io::Error::other)?;

        let mut worker = Worker {
            source: self,
            reconciler: Reconciler::default(),
            watcher,
            watched: BTreeSet::new(),
            interest,
            batches: 0,
            last: None,
            cache: load::Cache::default(),
            sink,
        };
        worker.reload();
        let options = worker.source.options;
        let thread = std::thread::Builder::new()
            .name("xdsc-file-source".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(options.rescan) {
                        Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(Signal::Changed) => {
                            if wait_quiet(&rx, options) {
                                return;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    worker.reload();
                }
            })?;
        Ok(Running {
            stop: tx,
            thread: Some(thread),
        })
    }
}

/// The source's thread: its state between reloads.
struct Worker<S> {
    source: FileSource,
    reconciler: Reconciler,
    watcher: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
    interest: Arc<Mutex<Interest>>,
    batches: u64,
    last: Option<Outcome>,
    /// Parsed files, so a reload parses only what changed.
    cache: load::Cache,
    sink: S,
}

impl<S: Sink> Worker<S> {
    fn reload(&mut self) {
        let started = Instant::now();
        let loaded = self.cache.load(&self.source.paths, &self.source.load);
        let took = started.elapsed();
        self.update_watches(&loaded);
        let before = self.reconciler.snapshot().version();
        let first = self.batches == 0;
        let outcome = self.reconciler.step(loaded);
        self.batches += 1;
        let repeated = self.last.as_ref() == Some(&outcome);
        if !repeated {
            log_outcome(&outcome, &self.reconciler, took);
        }
        if matches!(outcome, Outcome::Applied { .. })
            && (first || self.reconciler.snapshot().version() != before)
        {
            self.sink.publish(self.reconciler.snapshot().clone());
        }
        let status = self.status(&outcome);
        self.sink.report(Report {
            outcome: &outcome,
            repeated,
            took,
            reconciler: &self.reconciler,
            status,
        });
        self.last = Some(outcome);
    }

    /// Watches what the load read: folders given (recursively), and the folder of every file.
    fn update_watches(&mut self, loaded: &Loaded) {
        let mut dirs = Vec::new();
        let mut files: BTreeSet<PathBuf> = loaded.files.iter().map(|f| absolute(f)).collect();
        let mut wanted: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
        for p in &self.source.paths {
            let abs = absolute(p);
            if abs.is_dir() {
                dirs.push(abs.clone());
                wanted.insert((abs, true));
            } else {
                files.insert(abs.clone());
                if let Some(parent) = abs.parent() {
                    wanted.insert((parent.to_owned(), false));
                }
            }
        }
        for f in &files {
            if let Some(parent) = f.parent()
                && !dirs.iter().any(|d| parent.starts_with(d))
            {
                wanted.insert((parent.to_owned(), false));
            }
        }
        for (dir, recursive) in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match self.watcher.watch(&dir, mode) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                // Not there yet (a folder still to be created): the rescan covers it.
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "cannot watch"),
            }
        }
        let parents = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .filter(|p| !dirs.iter().any(|d| p.starts_with(d)))
            .collect();
        let mut i = self.interest.lock().unwrap_or_else(PoisonError::into_inner);
        *i = Interest {
            dirs,
            files,
            parents,
        };
    }

    fn status(&self, outcome: &Outcome) -> Value {
        let r = &self.reconciler;
        let text = |ds: &[Diagnostic], errors: bool| -> Vec<String> {
            ds.iter()
                .filter(|d| d.is_error() == errors)
                .map(ToString::to_string)
                .collect()
        };
        let held_back = match outcome {
            Outcome::HeldBack { new_errors } => Some(text(new_errors, true)),
            _ => None,
        };
        json!({
            "kind": "files",
            "paths": self.source.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "reloads": self.batches,
            "served_version": r.snapshot().version().to_string(),
            "state": if held_back.is_some() { "held_back" } else { "serving_newest" },
            "held_back_errors": held_back,
            "errors": text(r.newest_diagnostics(), true),
            "warnings": text(r.newest_diagnostics(), false),
        })
    }
}

/// Waits until no event came for the hold-off, or the maximum delay passed. True: stop.
fn wait_quiet(rx: &mpsc::Receiver<Signal>, options: SourceOptions) -> bool {
    let deadline = Instant::now() + options.max_delay;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = options.hold_off.min(deadline - now);
        match rx.recv_timeout(wait) {
            Ok(Signal::Changed) => continue,
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => return false,
        }
    }
}

fn log_outcome(outcome: &Outcome, r: &Reconciler, took: Duration) {
    let version = r.snapshot().version().to_string();
    let ms = took.as_secs_f64() * 1000.0;
    match outcome {
        Outcome::Applied { changed } => {
            for d in r.served_diagnostics() {
                if d.is_error() {
                    tracing::error!(diagnostic = %d, "configuration error");
                } else {
                    tracing::warn!(diagnostic = %d, "configuration warning");
                }
            }
            tracing::info!(changed, %version, reload_ms = ms, "configuration applied");
        }
        Outcome::Unchanged => {
            tracing::debug!(%version, reload_ms = ms, "configuration unchanged");
        }
        Outcome::HeldBack { new_errors } => {
            for d in new_errors {
                tracing::error!(diagnostic = %d, "configuration error");
            }
            tracing::warn!(
                errors = new_errors.len(),
                serving = %version,
                "change held back: the last good configuration is still served"
            );
        }
    }
}

#[cfg(test)]
mod tests;
