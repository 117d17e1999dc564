//! The live file source: watch files and folders, batch bursts of changes, read and
//! translate what changed, and serve what is good.
//!
//! # When a change is applied
//!
//! Each reload reads only the files that changed (see [`crate::load::Loader`]), translates
//! only what their objects touch, and hands the model changes to the shared source runtime
//! ([`xdsc_server::source::Reconciler`]), which compiles them incrementally against the
//! served configuration. Its last-good rule holds back, per object, the changes that bring
//! an error the served configuration lacks (errors are compared by file, object, field and
//! problem, not by line): the objects of a broken file, the virtual host of an Ingress with
//! a new error, the deletion of a cluster something still refers to. The rest is applied.
//! An error no change explains holds the whole batch back ([`Unattributed::HoldAll`]).
//! Held changes are retried with every reload, so fixing the file applies them. The
//! errors are logged once when they appear and once when they clear, shown under `sources`
//! in `/debug/snapshot` and counted in `/metrics` (`xdsc_source_errors`,
//! `xdsc_source_rejected_batches_total`). At startup there is no last good configuration:
//! the first load is served with whatever compiles, and its errors are reported the same
//! way.
//!
//! # Watching
//!
//! inotify (through `notify`) watches each folder given, recursively, and the folder of each
//! file given or named by a secret, so editor save patterns (write in place, write a temporary
//! file and rename it over, delete and recreate) are all seen. Events record the paths they
//! name (a set, so a burst of events on one file is one path) and raise a flag (a channel of
//! one), so a burst costs one reload: the reload starts once no event came for the hold-off,
//! or after the maximum delay since the first event, and looks only at the paths recorded
//! ([`crate::load::Loader::reload_touched`]): a one-file edit `stat`s and reads that file,
//! whatever the size of the folder. Lost events (a queue overflow, the kernel asking for a
//! rescan, more than 10,000 paths in one burst) make the next reload scan everything, and so
//! does a rescan on a timer, which catches anything a watcher missed (network file systems,
//! a watch limit reached). A reload whose objects are unchanged publishes nothing. A file
//! written in place (`cp` over it, an editor that does not rename) is read only once it is
//! closed: a write seen without its close holds reloads (rescans too) back for up to 5 s, so
//! a prefix of a file, valid YAML with fewer objects, is never served. A folder given that
//! disappears is an error (the last good configuration stays served) and is watched again
//! when it comes back.
//!
//! Not here: parsing (see [`crate::load`]), the last-good rule and batching in time
//! (`xdsc_server::source`, shared with the Kubernetes controller) and serving.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use notify::{RecursiveMode, Watcher};
use xdsc_core::diagnostic::{Problem, Subject};
use xdsc_server::source::{Debounce, Finding, Timing, Unattributed};
pub use xdsc_server::source::{Report, Sink, SourceStatus};

use crate::load::{Diagnostic, LoadOptions, Loader, absolute};

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
        let t = Timing::default();
        SourceOptions {
            hold_off: t.hold_off,
            max_delay: t.max_delay,
            rescan: Duration::from_secs(10),
        }
    }
}

impl SourceOptions {
    fn timing(&self) -> Timing {
        Timing {
            hold_off: self.hold_off,
            max_delay: self.max_delay,
        }
    }
}

/// The last-good rule for files, with file diagnostics.
pub type Reconciler = xdsc_server::source::Reconciler<Diagnostic>;

/// What a reload did.
pub type Outcome = xdsc_server::source::Outcome<Diagnostic>;

/// A new reconciler with the files' rule: an error no change explains holds everything.
pub fn reconciler() -> Reconciler {
    Reconciler::new(Unattributed::HoldAll)
}

impl Finding for Diagnostic {
    fn is_error(&self) -> bool {
        Diagnostic::is_error(self)
    }

    /// Everything but the line and column: moving text around is not a new error.
    fn identity(&self) -> String {
        let file = self.location.as_ref().map(|l| l.file.display().to_string());
        let mut shown = self.clone();
        shown.location = None;
        format!("{}|{shown}", file.unwrap_or_default())
    }

    fn subject(&self) -> Option<&Subject> {
        self.object.as_ref()
    }

    fn problem(&self) -> Option<&Problem> {
        Some(&self.problem)
    }

    fn file(&self) -> Option<String> {
        let l = self.location.as_ref()?;
        // A file-level problem (a file that does not parse) concerns every object read from
        // it; a problem of one object concerns that object (its subject) only.
        (self.object.is_none()).then(|| l.file.display().to_string())
    }
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
    /// Files written to (inotify's IN_MODIFY) and not yet closed (IN_CLOSE_WRITE), with when
    /// the first write was seen: an editor writing in place, or `cp` over a file, is mid-way.
    writing: BTreeMap<PathBuf, Instant>,
}

/// How long a file written to and not closed holds reloads back: a writer that keeps a file
/// open longer (a log, a stuck process) is read anyway.
const WRITE_CLOSE_WAIT: Duration = Duration::from_secs(5);

impl Interest {
    /// Whether a wanted file is still being written (and for how long it may hold reloads).
    fn writing_until(&mut self, now: Instant) -> Option<Instant> {
        self.writing
            .retain(|_, since| now.duration_since(*since) < WRITE_CLOSE_WAIT);
        self.writing
            .values()
            .min()
            .map(|since| *since + WRITE_CLOSE_WAIT)
    }

    fn wants(&self, path: &Path) -> bool {
        self.files.contains(path)
            || path.parent().is_some_and(|p| self.parents.contains(p))
            || self.dirs.iter().any(|d| path.starts_with(d))
    }
}

/// The paths file events named since the last reload, for the next one to look at.
#[derive(Debug, Default)]
struct Touched {
    paths: BTreeSet<PathBuf>,
    /// Events were lost (a queue overflow, a rescan asked for, too many paths): the next
    /// reload scans everything.
    all: bool,
}

/// Beyond this many paths in one burst, a full scan is as cheap as looking at each.
const MAX_TOUCHED: usize = 10_000;

impl Touched {
    fn add(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        if self.all {
            return;
        }
        self.paths.extend(paths);
        if self.paths.len() > MAX_TOUCHED {
            self.lost();
        }
    }

    fn lost(&mut self) {
        self.all = true;
        self.paths.clear();
    }
}

impl FileSource {
    /// Loads the set once, reports and publishes it, then watches in a thread of its own until
    /// stopped. The first snapshot is published before this returns, so readiness follows.
    pub fn start(self, sink: impl Sink) -> std::io::Result<Running> {
        let (tx, rx) = mpsc::sync_channel::<Signal>(1);
        let interest = Arc::new(Mutex::new(Interest::default()));
        let watcher_interest = Arc::clone(&interest);
        let touched = Arc::new(Mutex::new(Touched::default()));
        let watcher_touched = Arc::clone(&touched);
        let event_tx = tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            tracing::trace!(event = ?res, "file event");
            if let Ok(event) = &res {
                track_writes(&watcher_interest, event);
            }
            let relevant = match &res {
                // A file written in place was closed: now it is whole.
                Ok(event)
                    if matches!(
                        event.kind,
                        notify::EventKind::Access(notify::event::AccessKind::Close(
                            notify::event::AccessMode::Write
                        ))
                    ) =>
                {
                    let i = watcher_interest
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    event.paths.iter().any(|p| i.wants(p))
                }
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
                    let wanted: Vec<PathBuf> =
                        event.paths.iter().filter(|p| i.wants(p)).cloned().collect();
                    drop(i);
                    let mut t = watcher_touched
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if event.need_rescan() {
                        t.lost();
                        true
                    } else {
                        let relevant = !wanted.is_empty();
                        t.add(wanted);
                        relevant
                    }
                }
                // An error (a queue overflow): scan everything to be safe.
                Err(_) => {
                    (watcher_touched
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner))
                    .lost();
                    true
                }
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
            reconciler: reconciler(),
            loader: Loader::new(self.load.clone()),
            status: SourceStatus {
                kind: "files".into(),
                paths: self.paths.iter().map(|p| p.display().to_string()).collect(),
                ..SourceStatus::default()
            },
            source: self,
            watcher,
            watched: BTreeSet::new(),
            interest,
            touched,
            last: None,
            logged: BTreeMap::new(),
            sink,
        };
        worker.reload(true);
        let options = worker.source.options;
        let writes = Arc::clone(&worker.interest);
        let thread = std::thread::Builder::new()
            .name("xdsc-file-source".into())
            .spawn(move || {
                loop {
                    let full = match rx.recv_timeout(options.rescan) {
                        Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(Signal::Changed) => {
                            if wait_quiet(&rx, options) {
                                return;
                            }
                            false
                        }
                        Err(RecvTimeoutError::Timeout) => true,
                    };
                    if wait_written(&rx, &writes, options) {
                        return;
                    }
                    worker.reload(full);
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
    /// The paths events named since the last reload.
    touched: Arc<Mutex<Touched>>,
    /// What the previous reload decided: (applied, held, held errors).
    last: Option<(usize, usize, Vec<String>)>,
    /// The served findings already logged, by identity.
    logged: BTreeMap<String, Diagnostic>,
    /// Parsed files and the incremental translation.
    loader: Loader,
    status: SourceStatus,
    sink: S,
}

impl<S: Sink> Worker<S> {
    /// Reads what changed: everything (`full`, or when events were lost), else only where
    /// the events since the last reload point.
    fn reload(&mut self, full: bool) {
        let started = Instant::now();
        // A folder given that came back: watch it before reading it, so that a file written
        // into it meanwhile is seen.
        if self.source.paths.iter().any(|p| {
            let abs = absolute(p);
            abs.is_dir() && !self.watched.contains(&abs)
        }) {
            self.update_watches();
        }
        let touched =
            std::mem::take(&mut *self.touched.lock().unwrap_or_else(PoisonError::into_inner));
        let full = full || touched.all;
        let delta = match full {
            true => self.loader.reload(&self.source.paths),
            false => (self.loader).reload_touched(&self.source.paths, &touched.paths),
        };
        if delta.work.full_scan || delta.files_changed {
            self.update_watches();
        }
        let t = delta.timing;
        let looked = t.look + (started.elapsed().saturating_sub(t.total()));
        let before = self.reconciler.snapshot().version();
        let first = self.status.reloads == 0;
        let loader = &self.loader;
        let compiling = Instant::now();
        let outcome = self.reconciler.step(delta.changes, |c| loader.report(c));
        let compiled = compiling.elapsed();
        let took = started.elapsed();
        self.status.reloads += 1;
        let (changed, held, new_errors) = match &outcome {
            Outcome::Applied {
                changed,
                held,
                new_errors,
            } => (*changed, *held, new_errors.as_slice()),
            Outcome::Unchanged => (0, 0, &[][..]),
            Outcome::HeldBack { new_errors } => {
                (0, self.reconciler.pending(), new_errors.as_slice())
            }
        };
        let decision = (
            changed,
            held,
            new_errors.iter().map(Finding::identity).collect::<Vec<_>>(),
        );
        let repeated = self.last.as_ref() == Some(&decision);
        let logging = Instant::now();
        self.log(&outcome, took, first || delta.ignored_changed, repeated);
        self.status.ignored = self.loader.ignored().clone();
        self.status.set_findings(&self.reconciler);
        let logged = logging.elapsed();
        let publishing = Instant::now();
        if first || (changed > 0 && self.reconciler.snapshot().version() != before) {
            self.sink.publish(self.reconciler.snapshot().clone());
            self.sink.served(self.reconciler.compiled().model());
        }
        let phases = [
            ("look", looked),
            ("parse", t.parse),
            ("index", t.index),
            ("translate", t.translate),
            ("merge", t.merge),
            ("compile", compiled),
            ("log", logged),
            ("publish", publishing.elapsed()),
        ];
        self.sink.report(Report {
            changed,
            held_back: held > 0,
            repeated,
            took,
            phases: &phases,
            status: &self.status,
        });
        self.last = Some(decision);
    }

    /// Logs what changed: findings that appeared or cleared in the served configuration
    /// (each once), errors that hold changes back (once per decision), the count of ignored
    /// objects when it changes, and the outcome.
    fn log(&mut self, outcome: &Outcome, took: Duration, ignored: bool, repeated: bool) {
        let served: BTreeMap<String, &Diagnostic> = self
            .reconciler
            .served_diagnostics()
            .iter()
            .map(|d| (d.identity(), d))
            .collect();
        self.logged.retain(|id, d| {
            let keep = served.contains_key(id);
            if !keep {
                tracing::info!(diagnostic = %d, "cleared");
            }
            keep
        });
        for (id, d) in served {
            if let std::collections::btree_map::Entry::Vacant(e) = self.logged.entry(id) {
                if d.is_error() {
                    tracing::error!(diagnostic = %d, "configuration error");
                } else {
                    tracing::warn!(diagnostic = %d, "configuration warning");
                }
                e.insert(d.clone());
            }
        }
        if ignored && !self.loader.ignored().is_empty() {
            let kinds: Vec<String> = (self.loader.ignored().iter())
                .map(|(k, n)| format!("{k} ({n})"))
                .collect();
            let total: usize = self.loader.ignored().values().sum();
            tracing::info!(
                objects = total,
                kinds = %kinds.join(", "),
                "ignored objects of kinds that carry no routing"
            );
        }
        let version = self.reconciler.snapshot().version().to_string();
        let ms = took.as_secs_f64() * 1000.0;
        match outcome {
            Outcome::Applied {
                changed,
                held,
                new_errors,
            } => {
                tracing::info!(changed, held, %version, reload_ms = ms, "configuration applied");
                if *held > 0 && !repeated {
                    for d in new_errors {
                        tracing::error!(diagnostic = %d, "change held back");
                    }
                }
            }
            Outcome::Unchanged => {
                tracing::debug!(%version, reload_ms = ms, "configuration unchanged");
            }
            Outcome::HeldBack { new_errors } if !repeated => {
                for d in new_errors {
                    tracing::error!(diagnostic = %d, "configuration error");
                }
                tracing::warn!(
                    errors = new_errors.len(),
                    serving = %version,
                    "change held back: the last good configuration is still served"
                );
            }
            Outcome::HeldBack { .. } => {}
        }
    }

    /// Watches what the load read: folders given (recursively), and the folder of every file.
    fn update_watches(&mut self) {
        let mut dirs = Vec::new();
        let mut files: BTreeSet<PathBuf> =
            self.loader.files().iter().map(|f| absolute(f)).collect();
        let mut wanted: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
        // A folder that was removed lost its watch with it; watch it again when it is back.
        self.watched.retain(|d| d.is_dir());
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
        i.dirs = dirs;
        i.files = files;
        i.parents = parents;
    }
}

/// Records files being written (a write seen, no close yet) and written (closed, removed).
fn track_writes(interest: &Mutex<Interest>, event: &notify::Event) {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    let mut i = interest.lock().unwrap_or_else(PoisonError::into_inner);
    match event.kind {
        // IN_MODIFY: a write or a truncation (`>` and `cp` truncate first).
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any | ModifyKind::Other) => {
            let now = Instant::now();
            for p in &event.paths {
                if i.wants(p) {
                    i.writing.entry(p.clone()).or_insert(now);
                }
            }
        }
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Remove(_)
        | EventKind::Modify(ModifyKind::Name(_)) => {
            for p in &event.paths {
                i.writing.remove(p);
            }
        }
        _ => {}
    }
}

/// Waits while a file is being written (at most [`WRITE_CLOSE_WAIT`] since its first write),
/// then for the hold-off after its close, so that a file written in place in several chunks
/// is read whole, never half-written. True: stop.
fn wait_written(
    rx: &mpsc::Receiver<Signal>,
    interest: &Mutex<Interest>,
    options: SourceOptions,
) -> bool {
    loop {
        let until = interest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .writing_until(Instant::now());
        let Some(until) = until else {
            return false;
        };
        tracing::debug!("a file is being written; waiting for it to be closed");
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(options.max_delay)) {
            Ok(Signal::Changed) => {
                if wait_quiet(rx, options) {
                    return true;
                }
            }
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Waits until no event came for the hold-off, or the maximum delay passed. True: stop.
fn wait_quiet(rx: &mpsc::Receiver<Signal>, options: SourceOptions) -> bool {
    let mut batch = Debounce::new(options.timing());
    batch.event(Instant::now());
    while let Some(deadline) = batch.deadline() {
        let now = Instant::now();
        if batch.due(now) {
            return false;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(Signal::Changed) => batch.event(Instant::now()),
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
