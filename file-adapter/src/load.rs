//! Reading a set of files and folders into model objects, with diagnostics that name file,
//! line, column, object and field.
//!
//! A path is a file or a folder; folders are read recursively, taking `*.yaml`, `*.yml` and
//! `*.json` and skipping hidden files and editor leftovers (`.name`, `name~`, `#name#`). Files
//! are read in path order whatever order they were given in, so the result is deterministic.
//! Each file holds any number of YAML documents (JSON is YAML); a document that is a list
//! holds one object per item. An object is either
//! - a native model document (`kind: Cluster`, `kind: VirtualHost`, ...; the schema is
//!   [`crate::schema::document_schema`]), where a `Secret` may name its PEM files
//!   (`certificate_chain_file`, `private_key_file`, `trusted_ca_file`, relative to the
//!   document's file) instead of holding them inline, or
//! - a Kubernetes manifest (it has an `apiVersion`; `kind: List` is unpacked), translated by
//!   `xdsc_kube::translate`, the code the Kubernetes controller uses.
//!
//! Not here: watching (see [`crate::source`]) and compiling (`xdsc-core`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use xdsc_core::compile::Compiled;
use xdsc_core::diagnostic::{
    FieldPath, Problem, Segment, Severity, SourceRef, Subject, ToFieldPath,
};
use xdsc_core::model::{self, Change, Kind, Object, ObjectKey};
use xdsc_kube::translate;
use xdsc_kube::translator::{ObjectChange, Translator};

use crate::yaml::{self, Document, Pos};

/// The largest file read (16 MiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Where something was written: a file and, when known, a line and column.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The file, as its path was given or found in a folder.
    pub file: PathBuf,
    /// The line and column; `None` for the file as a whole.
    pub pos: Option<Pos>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.pos {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// A problem found while reading, translating or compiling the files: the core's
/// vocabulary ([`Severity`], [`Subject`], [`FieldPath`], [`Problem`]) placed in a file.
///
/// ```
/// use xdsc_file::load::{Diagnostic, Location};
/// use xdsc_core::diagnostic::{Problem, Severity, Subject, ToFieldPath};
/// use xdsc_core::model::{Kind, ObjectKey};
/// let d = Diagnostic {
///     severity: Severity::Error,
///     location: Some(Location { file: "a.yaml".into(), pos: Some(xdsc_file::yaml::Pos { line: 3, column: 5 }) }),
///     object: Some(Subject::Model(ObjectKey::new(Kind::Cluster, "web"))),
///     from: vec![],
///     field: "lb".to_field_path(),
///     problem: Problem::invalid("unknown variant `fast`"),
/// };
/// assert_eq!(d.to_string(), "error: a.yaml:3:5: Cluster/web: lb: unknown variant `fast`");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning. Only errors make `check` fail and hold a change back.
    pub severity: Severity,
    /// Where the problem was written, when it is known.
    pub location: Option<Location>,
    /// The object; `None` for a file (or a document) as a whole.
    pub object: Option<Subject>,
    /// The Kubernetes objects a translated model object came from, shown after it.
    pub from: Vec<model::Source>,
    /// The field path within the object; empty for the object or file as a whole.
    pub field: FieldPath,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.severity)?;
        if let Some(l) = &self.location {
            write!(f, "{l}: ")?;
        }
        if let Some(o) = self.shown_object() {
            write!(f, "{o}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.problem)
    }
}

/// Diagnostics are listed in the order of their text after severity and location: object
/// (with what it came from), field, problem.
impl Ord for Diagnostic {
    fn cmp(&self, other: &Diagnostic) -> Ordering {
        let same_object = self.object == other.object && self.from == other.from;
        let object = || match same_object {
            true => Ordering::Equal,
            false => (self.shown_object().map(|o| o.to_string()))
                .cmp(&other.shown_object().map(|o| o.to_string())),
        };
        let problem = || match self.problem == other.problem {
            true => Ordering::Equal,
            false => (self.problem.to_string()).cmp(&other.problem.to_string()),
        };
        (self.severity.cmp(&other.severity))
            .then_with(|| self.location.cmp(&other.location))
            .then_with(object)
            .then_with(|| self.field.cmp(&other.field))
            .then_with(problem)
            .then_with(|| {
                (&self.object, &self.from, &self.problem).cmp(&(
                    &other.object,
                    &other.from,
                    &other.problem,
                ))
            })
    }
}

impl PartialOrd for Diagnostic {
    fn partial_cmp(&self, other: &Diagnostic) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The object as shown: `Kind/name (from Ingress ns/name (file:line), ...)`.
struct ShownObject<'a>(&'a Subject, &'a [model::Source]);

impl fmt::Display for ShownObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        if let Some((first, rest)) = self.1.split_first() {
            write!(f, " (from {first}")?;
            for s in rest {
                write!(f, ", {s}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Diagnostic {
    fn error(
        location: Location,
        object: Option<Subject>,
        field: impl ToFieldPath,
        message: String,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location: Some(location),
            object,
            from: Vec::new(),
            field: field.to_field_path(),
            problem: Problem::Invalid(message),
        }
    }

    fn shown_object(&self) -> Option<ShownObject<'_>> {
        self.object.as_ref().map(|o| ShownObject(o, &self.from))
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// How Kubernetes manifests are translated.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The translation's options (listener ports, controller names).
    pub kube: translate::Options,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            kube: translate::Options {
                // In files, an Ingress without a class is taken when no IngressClass is given.
                take_unclassed_ingress_without_classes: true,
                ..translate::Options::default()
            },
        }
    }
}

/// What a set of files holds.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Every model object, native and translated, by key.
    pub objects: BTreeMap<ObjectKey, Arc<Object>>,
    /// Where each native object was written.
    pub origins: BTreeMap<ObjectKey, Location>,
    /// Problems found reading and translating (not compiling: see [`Loaded::report`]).
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read, PEM files named by secrets included: what a watcher must watch.
    pub files: BTreeSet<PathBuf>,
    /// The Kubernetes objects read, for tools that need them.
    pub kube: translate::Inputs,
    /// The status the translation computed for the Kubernetes objects (what a controller
    /// would write to the cluster), by object.
    pub statuses: BTreeMap<translate::ObjectRef, xdsc_kube::status::ObjectStatus>,
}

impl Loaded {
    /// Whether reading or translating found an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The model of every object read.
    pub fn model(&self) -> model::Model {
        model::Model::default().apply(
            self.objects
                .values()
                .map(|o| model::Change::Upsert(Arc::clone(o))),
        )
    }

    /// The diagnostics of reading and of compiling, each placed at the file and line of the
    /// object it is about where that is known, sorted and without duplicates. A reference to
    /// a missing object is an error here, where the compiler only warns (it serves a 503 in
    /// its place): so `check` fails on it and `serve` holds such a change back.
    pub fn report(&self, compiled: &Compiled) -> Vec<Diagnostic> {
        report(self.diagnostics.iter(), &self.origins, compiled)
    }
}

/// The diagnostics of reading and of compiling, placed and sorted (see [`Loaded::report`]).
fn report<'a>(
    read: impl Iterator<Item = &'a Diagnostic>,
    origins: &BTreeMap<ObjectKey, Location>,
    compiled: &Compiled,
) -> Vec<Diagnostic> {
    {
        let mut out: BTreeSet<Diagnostic> = read.cloned().collect();
        for d in compiled.diagnostics() {
            let key = d.object.model();
            let from = key
                .and_then(|k| compiled.model().get(k))
                .map(|o| {
                    let from = o.provenance().iter().filter(|s| s.namespace.is_some());
                    from.cloned().collect()
                })
                .unwrap_or_default();
            let origin = key.and_then(|k| origins.get(k));
            // Stricter than the compiler, which serves a 503 in place of a missing cluster: in
            // files a dangling reference is a mistake to fix before it is served.
            // (For translated objects the translation already reported the missing object.)
            let severity = match d.problem {
                Problem::Dangling(_) if origin.is_some() => Severity::Error,
                _ => d.severity,
            };
            out.insert(Diagnostic {
                severity,
                location: origin.cloned(),
                object: Some(d.object),
                from,
                field: d.field,
                problem: d.problem,
            });
        }
        out.into_iter().collect()
    }
}

/// Reads every file under `paths`.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("xdsc-load-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("c.yaml"), "kind: Cluster\nname: web\n---\nkind: Cluster\nname: api\nlbb: x\n").unwrap();
/// let loaded = xdsc_file::load::load(&[dir.clone()], &Default::default());
/// assert_eq!(loaded.objects.len(), 1);
/// let e = loaded.diagnostics[0].to_string();
/// assert!(e.contains("c.yaml:6:1: Cluster/api") && e.contains("lbb"), "{e}");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn load(paths: &[PathBuf], options: &LoadOptions) -> Loaded {
    Loader::new(options.clone()).load(paths)
}

/// What identifies a file's content without reading it: size, modification time and inode.
/// An editor's save (in place or by rename) changes at least one of them, except two writes
/// of the same size within one tick of the file system's clock: a key modified less than
/// [`RACY`] ago is not trusted alone (git's "racy clean" rule), the content hash decides.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileKey {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

/// How recent a modification time must be for the content to be compared too.
const RACY: std::time::Duration = std::time::Duration::from_secs(2);

impl FileKey {
    fn of(path: &Path) -> Option<FileKey> {
        std::fs::metadata(path).ok().map(|m| FileKey::from(&m))
    }

    fn from(m: &std::fs::Metadata) -> FileKey {
        FileKey {
            len: m.len(),
            modified: m.modified().ok(),
            inode: std::os::unix::fs::MetadataExt::ino(m),
        }
    }

    fn is_racy(&self) -> bool {
        self.modified
            .and_then(|m| m.elapsed().ok())
            .is_none_or(|age| age < RACY)
    }
}

fn content_hash(text: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

/// A file's text and, once something asks, where each of its nodes is: positions are worked
/// out (by parsing the file again, recording them) only when an error needs one.
#[derive(Debug)]
struct Tracked {
    text: Arc<str>,
    docs: std::sync::OnceLock<Vec<Document>>,
}

impl Tracked {
    fn position(&self, doc: usize, path: &[Segment]) -> Option<Pos> {
        let docs = self
            .docs
            .get_or_init(|| yaml::parse(&self.text).unwrap_or_default());
        docs.get(doc).map(|d| d.position(path))
    }
}

/// Where a Kubernetes object was written: its file, its document and its path in it.
#[derive(Debug)]
struct Site {
    file: Arc<Tracked>,
    doc: usize,
    prefix: Vec<Segment>,
}

impl Site {
    fn position(&self, path: &FieldPath) -> Option<Pos> {
        let mut full = self.prefix.clone();
        full.extend_from_slice(path.segments());
        self.file.position(self.doc, &full)
    }
}

/// What one file holds, kept while the file (and the PEM files it names) are unchanged.
#[derive(Debug, Default)]
struct FileResult {
    /// The hash of the text parsed (0 when it could not be read).
    hash: u128,
    native: Vec<(Arc<Object>, Location)>,
    kube: Vec<(Arc<translate::KubeObject>, Location, Arc<Site>)>,
    diagnostics: Vec<Diagnostic>,
    /// Objects of kinds that carry no routing, by kind.
    ignored: BTreeMap<String, usize>,
    /// Objects turned from documents into typed objects (or tried).
    converted: usize,
    /// The files this result depends on besides the file itself (PEM files), and their keys.
    deps: Vec<(PathBuf, Option<FileKey>)>,
}

/// One Kubernetes object as a file defines it.
#[derive(Debug)]
struct KubeDef {
    /// Shared with the file's parse result: taking a file in copies no object.
    object: Arc<translate::KubeObject>,
    at: Location,
    site: Arc<Site>,
}

/// Where a definition is: its file and its place among the file's objects. Definitions of
/// one name are ordered by it: the first (in path order) is used.
type DefAt = (PathBuf, usize);

/// What changed in one [`Loader::reload`].
#[derive(Clone, Debug, Default)]
pub struct LoadDelta {
    /// Upserts and deletes of model objects, sorted by key: feed them to
    /// `Compiled::apply` as they are.
    pub changes: Vec<Change>,
    /// Diagnostics of reading and translating that appeared, sorted.
    pub added: Vec<Diagnostic>,
    /// Diagnostics of reading and translating that cleared, sorted.
    pub removed: Vec<Diagnostic>,
    /// How many files were read and parsed (the others were unchanged).
    pub parsed: usize,
    /// Whether the count of ignored objects ([`Loader::ignored`]) changed.
    pub ignored_changed: bool,
    /// Whether the set of files to watch ([`Loader::files`]) changed.
    pub files_changed: bool,
    /// What the reload cost, counted.
    pub work: LoadWork,
    /// Where the reload's time went.
    pub timing: LoadTiming,
}

/// Where one reload's time went, for the live source's report and the reload bench
/// (`xdsc-file-reload --phases`). Guards of the cost count ([`LoadWork`]); this only shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadTiming {
    /// Finding what changed: listing folders, `stat`s, content checks of recent files.
    pub look: std::time::Duration,
    /// Reading and parsing the changed files into typed objects.
    pub parse: std::time::Duration,
    /// Taking the parsed files in: definitions, duplicates, diagnostics of reading.
    pub index: std::time::Duration,
    /// The incremental Kubernetes translation of the objects that changed.
    pub translate: std::time::Duration,
    /// Merging native and translated objects into the model changes.
    pub merge: std::time::Duration,
}

/// What one reload cost, counted (not timed), for tests that guard a cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadWork {
    /// Whether every file was looked at ([`Loader::reload`]) rather than only the paths
    /// events named ([`Loader::reload_touched`]).
    pub full_scan: bool,
    /// Folders listed.
    pub listed: usize,
    /// Metadata reads (`stat`) of files and folders.
    pub stats: usize,
    /// Files whose content was read (to parse it, or to compare it with what was parsed).
    pub read: usize,
    /// Objects (Kubernetes and native) turned from documents into typed objects.
    pub converted: usize,
    /// Kubernetes object changes handed to the translator: objects that appeared, went
    /// away, or whose content or place changed.
    pub translated: usize,
    /// What the translator recomputed for them (units and model objects, by kind).
    pub translation: xdsc_kube::translator::Work,
}

/// The files read and translated, kept between reloads. A reload reads and parses only the
/// files whose size, modification time or inode changed (and those whose PEM files did),
/// hands the Kubernetes objects of those files to the incremental translator
/// ([`xdsc_kube::translator::Translator`]) and returns the model changes: one edit in a
/// folder of thousands of files costs one file's parse, the translation of what that file's
/// objects touch, and no more.
///
/// ```
/// use xdsc_file::load::Loader;
/// let dir = std::env::temp_dir().join(format!("xdsc-loader-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("c.yaml"), "kind: Cluster\nname: web\n").unwrap();
/// let mut loader = Loader::default();
/// let first = loader.reload(&[dir.clone()]);
/// assert_eq!((first.changes.len(), first.parsed), (1, 1));
/// let second = loader.reload(&[dir.clone()]);
/// assert!(second.changes.is_empty() && second.parsed == 0, "not parsed again");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct Loader {
    files: BTreeMap<PathBuf, (FileKey, Arc<FileResult>)>,
    /// Every file read, PEM files included.
    all_files: BTreeSet<PathBuf>,
    translator: Translator,
    kube: BTreeMap<translate::ObjectRef, BTreeMap<DefAt, KubeDef>>,
    native: BTreeMap<ObjectKey, BTreeMap<DefAt, (Arc<Object>, Location)>>,
    /// The translator's model objects.
    translated: BTreeMap<ObjectKey, Arc<Object>>,
    /// The model: native and translated objects, duplicates resolved.
    objects: BTreeMap<ObjectKey, Arc<Object>>,
    origins: BTreeMap<ObjectKey, Location>,
    /// Every diagnostic of reading and translating, with how many places report it.
    diagnostics: BTreeMap<Diagnostic, usize>,
    /// The diagnostics each source contributes, to take them back when it changes.
    by_file: BTreeMap<PathBuf, Vec<Diagnostic>>,
    by_kube: BTreeMap<translate::ObjectRef, Vec<Diagnostic>>,
    by_key: BTreeMap<ObjectKey, Vec<Diagnostic>>,
    by_translation: BTreeMap<translate::Diagnostic, Diagnostic>,
    folders: Vec<Diagnostic>,
    /// Objects of kinds that carry no routing, by kind, over all files.
    ignored: BTreeMap<String, usize>,
    /// Whether a full scan was done: before it, event paths say nothing.
    scanned: bool,
}

impl Default for Loader {
    fn default() -> Self {
        Loader::new(LoadOptions::default())
    }
}

/// Counts diagnostics in and out of a multiset, remembering what the batch changed.
struct Tally<'a> {
    all: &'a mut BTreeMap<Diagnostic, usize>,
    before: BTreeMap<Diagnostic, bool>,
}

impl Tally<'_> {
    fn swap(&mut self, old: &[Diagnostic], new: &[Diagnostic]) {
        for d in old {
            self.before.entry(d.clone()).or_insert(true);
            if let Some(n) = self.all.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    self.all.remove(d);
                }
            }
        }
        for d in new {
            let n = self.all.entry(d.clone()).or_default();
            self.before.entry(d.clone()).or_insert(*n > 0);
            *n += 1;
        }
    }
}

impl Loader {
    /// An empty loader.
    pub fn new(options: LoadOptions) -> Loader {
        Loader {
            translator: Translator::new(options.kube),
            files: BTreeMap::new(),
            all_files: BTreeSet::new(),
            kube: BTreeMap::new(),
            native: BTreeMap::new(),
            translated: BTreeMap::new(),
            objects: BTreeMap::new(),
            origins: BTreeMap::new(),
            diagnostics: BTreeMap::new(),
            by_file: BTreeMap::new(),
            by_kube: BTreeMap::new(),
            by_key: BTreeMap::new(),
            by_translation: BTreeMap::new(),
            folders: Vec::new(),
            ignored: BTreeMap::new(),
            scanned: false,
        }
    }

    /// Every model object, native and translated, by key.
    pub fn objects(&self) -> &BTreeMap<ObjectKey, Arc<Object>> {
        &self.objects
    }

    /// Every diagnostic of reading and translating, sorted.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> + '_ {
        self.diagnostics.keys()
    }

    /// Every file read, PEM files named by secrets included: what a watcher must watch.
    pub fn files(&self) -> &BTreeSet<PathBuf> {
        &self.all_files
    }

    /// Objects of Kubernetes kinds that carry no routing (Deployment, ConfigMap, ...), by
    /// kind: counted, not warned about one by one.
    pub fn ignored(&self) -> &BTreeMap<String, usize> {
        &self.ignored
    }

    /// The translation of the Kubernetes objects read.
    pub fn translator(&self) -> &Translator {
        &self.translator
    }

    /// Reads every file under `paths`, parsing only what changed since the last call, and
    /// returns a snapshot of the whole set (for `check` and `render`; the live source uses
    /// [`Loader::reload`], whose cost does not grow with the set).
    pub fn load(&mut self, paths: &[PathBuf]) -> Loaded {
        self.reload(paths);
        Loaded {
            objects: self.objects.clone(),
            origins: self.origins.clone(),
            diagnostics: self.diagnostics.keys().cloned().collect(),
            files: self.all_files.clone(),
            kube: self.translator.inputs().clone(),
            statuses: self.translator.statuses().clone(),
        }
    }

    /// Reads what changed under `paths` since the last call and returns the model changes
    /// and the diagnostics that appeared or cleared. Every folder is listed and every file's
    /// metadata read (one `stat` each); only changed files are read. The live source calls
    /// this at startup, on its rescan timer and when file events were lost, and
    /// [`Loader::reload_touched`] otherwise.
    pub fn reload(&mut self, paths: &[PathBuf]) -> LoadDelta {
        let started = std::time::Instant::now();
        let mut work = LoadWork {
            full_scan: true,
            ..LoadWork::default()
        };
        let mut folders = Vec::new();
        let mut found = Found::new();
        for p in paths {
            collect(p, 0, &mut found, &mut folders, true, &mut work);
        }
        let mut misses = Vec::new();
        let mut gone: Vec<PathBuf> = Vec::new();
        for (file, key) in found.iter() {
            match key {
                // Gone while the folder was read.
                None => gone.extend(self.files.contains_key(file).then(|| file.clone())),
                Some(k) if self.unchanged(file, k, &mut work) => {}
                Some(k) => misses.push((file.clone(), k.clone())),
            }
        }
        gone.extend(
            (self.files.keys())
                .filter(|f| !found.contains_key(*f))
                .cloned(),
        );
        self.scanned = true;
        self.update(Some(folders), misses, gone, work, started)
    }

    /// Like [`Loader::reload`], but looks only where file events said something changed:
    /// `touched` holds the paths the events named, absolute. A named file is looked at; a
    /// named folder is listed (a folder moved in or away); the files naming a PEM file are
    /// looked at when an entry of that PEM file's folder is named; and an entry whose name
    /// starts with `..` (how a Kubernetes volume swaps its `..data` link to update the
    /// files beside it, which are links into it) makes every file of its folder looked at.
    /// The files given as `paths` are always looked at. Hidden entries and other names are
    /// ignored, as a scan would. Falls back to a full [`Loader::reload`] before the first
    /// one, while some folder could not be read, when a given path went away, or when the
    /// folder given itself is named.
    ///
    /// ```
    /// use xdsc_file::load::Loader;
    /// let dir = std::path::absolute(std::env::temp_dir().join(format!("xdsc-touched-doc-{}", std::process::id()))).unwrap();
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("a.yaml"), "kind: Cluster\nname: a\n").unwrap();
    /// std::fs::write(dir.join("b.yaml"), "kind: Cluster\nname: b\n").unwrap();
    /// let mut loader = Loader::default();
    /// loader.reload(&[dir.clone()]);
    /// std::fs::write(dir.join("b.yaml"), "kind: Cluster\nname: b2\n").unwrap();
    /// let touched = [dir.join("b.yaml")].into_iter().collect();
    /// let delta = loader.reload_touched(&[dir.clone()], &touched);
    /// assert_eq!((delta.changes.len(), delta.parsed, delta.work.listed), (2, 1, 0));
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn reload_touched(&mut self, paths: &[PathBuf], touched: &BTreeSet<PathBuf>) -> LoadDelta {
        let started = std::time::Instant::now();
        match self.touched_files(paths, touched) {
            Some((misses, gone, work)) => self.update(None, misses, gone, work, started),
            None => self.reload(paths),
        }
    }

    /// The files to parse again and the files gone, from the paths events named; `None`
    /// when only a full scan can tell.
    #[allow(clippy::type_complexity)]
    fn touched_files(
        &self,
        paths: &[PathBuf],
        touched: &BTreeSet<PathBuf>,
    ) -> Option<(Vec<(PathBuf, FileKey)>, Vec<PathBuf>, LoadWork)> {
        if !self.scanned || !self.folders.is_empty() {
            return None;
        }
        let mut work = LoadWork::default();
        // Files to look at (`None`: not `stat`ed yet), files gone.
        let mut check: Found = Found::new();
        let mut gone: BTreeSet<PathBuf> = BTreeSet::new();
        let mut roots = Vec::new();
        for p in paths {
            work.stats += 1;
            let meta = std::fs::metadata(p).ok()?;
            if meta.is_dir() {
                roots.push((p, absolute(p)));
            } else if meta.is_file() {
                check.insert(p.clone(), Some(FileKey::from(&meta)));
            }
        }
        let with_deps: Vec<(&PathBuf, Vec<PathBuf>)> = (self.files.iter())
            .filter(|(_, (_, r))| !r.deps.is_empty())
            .map(|(f, (_, r))| (f, r.deps.iter().map(|(d, _)| absolute(d)).collect()))
            .collect();
        for event in touched {
            for (file, deps) in &with_deps {
                if deps
                    .iter()
                    .any(|d| d == event || d.parent() == event.parent())
                {
                    check.entry((*file).clone()).or_insert(None);
                }
            }
            for (given, abs) in &roots {
                let Ok(rel) = event.strip_prefix(abs) else {
                    continue;
                };
                let names: Vec<&str> = (rel.components())
                    .map(|c| c.as_os_str().to_str().unwrap_or(""))
                    .collect();
                let (name, folders) = names.split_last()?;
                if names.len() >= 32 {
                    return None;
                }
                if folders.iter().any(|f| f.starts_with('.')) {
                    continue;
                }
                let path = given.join(rel);
                let folder = path.parent().unwrap_or(Path::new(""));
                if name.starts_with("..") {
                    let beside = self
                        .known_under(folder)
                        .filter(|f| f.parent() == Some(folder));
                    for f in beside {
                        check.entry(f.clone()).or_insert(None);
                    }
                    continue;
                }
                work.stats += 1;
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_dir() => {
                        let mut found = Found::new();
                        if !name.starts_with('.') {
                            let mut problems = Vec::new();
                            let depth = names.len();
                            collect_at(&path, &m, depth, &mut found, &mut problems, &mut work);
                            if !problems.is_empty() {
                                return None;
                            }
                        }
                        let missing = self.known_under(&path).filter(|f| !found.contains_key(*f));
                        gone.extend(missing.cloned());
                        check.extend(found);
                    }
                    Ok(m) => {
                        let under = self.known_under(&path).filter(|f| **f != path);
                        gone.extend(under.cloned());
                        if m.is_file() && is_config_file(name) {
                            check.insert(path, Some(FileKey::from(&m)));
                        } else if self.files.contains_key(&path) {
                            gone.insert(path);
                        }
                    }
                    Err(_) => gone.extend(self.known_under(&path).cloned()),
                }
            }
        }
        let mut misses = Vec::new();
        for (file, key) in check {
            if gone.contains(&file) {
                continue;
            }
            let key = key.or_else(|| {
                work.stats += 1;
                FileKey::of(&file)
            });
            match key {
                None if self.files.contains_key(&file) => {
                    gone.insert(file);
                }
                None => {}
                Some(k) if self.unchanged(&file, &k, &mut work) => {}
                Some(k) => misses.push((file, k)),
            }
        }
        Some((misses, gone.into_iter().collect(), work))
    }

    /// The known files at or below `path`.
    fn known_under<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        use std::ops::Bound;
        (self
            .files
            .range::<Path, _>((Bound::Included(path), Bound::Unbounded)))
        .map(|(f, _)| f)
        .take_while(move |f| f.starts_with(path))
    }

    /// Whether a file is as it was parsed: the same key (and, for a key too recent to be
    /// trusted alone, the same content), and the PEM files it names unchanged.
    fn unchanged(&self, file: &Path, key: &FileKey, work: &mut LoadWork) -> bool {
        let Some((k, r)) = self.files.get(file) else {
            return false;
        };
        if k != key {
            return false;
        }
        if k.is_racy() {
            work.read += 1;
            if !read(file).is_ok_and(|t| content_hash(&t) == r.hash) {
                return false;
            }
        }
        r.deps.iter().all(|(p, k)| {
            work.stats += 1;
            FileKey::of(p) == *k
        })
    }

    /// Takes in the files parsed again and the files gone: their objects go to the
    /// translator and the model, their diagnostics are swapped.
    fn update(
        &mut self,
        folders: Option<Vec<Diagnostic>>,
        misses: Vec<(PathBuf, FileKey)>,
        gone: Vec<PathBuf>,
        mut work: LoadWork,
        started: std::time::Instant,
    ) -> LoadDelta {
        let mut clock = Clock(started);
        let mut timing = LoadTiming {
            look: clock.lap(),
            ..LoadTiming::default()
        };
        let mut tally = Tally {
            all: &mut self.diagnostics,
            before: BTreeMap::new(),
        };
        if let Some(folders) = folders {
            tally.swap(&self.folders, &folders);
            self.folders = folders;
        }
        let parsed_files = misses.len();
        let parsed = parse_all(&misses);
        timing.parse = clock.lap();
        work.read += parsed_files;
        work.converted += parsed.iter().map(|r| r.converted).sum::<usize>();
        let mut kube_touched = BTreeSet::new();
        let mut native_touched = BTreeSet::new();
        let mut ignored_changed = false;
        let mut files_changed = false;
        let updates = misses
            .into_iter()
            .zip(parsed)
            .map(|((f, k), r)| (f, Some((k, r))))
            .chain(gone.into_iter().map(|f| (f, None)));
        for (file, update) in updates {
            let old = match &update {
                Some((k, r)) => self.files.insert(file.clone(), (k.clone(), Arc::clone(r))),
                None => self.files.remove(&file),
            };
            let old = old.map(|(_, r)| r);
            let result = update.map(|(_, r)| r);
            let deps = |r: &Option<Arc<FileResult>>| {
                r.as_ref()
                    .map(|r| r.deps.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
            };
            files_changed |= deps(&old) != deps(&result);
            if let Some(old) = &old {
                ignored_changed |= !old.ignored.is_empty();
                for (kind, n) in &old.ignored {
                    if let Some(c) = self.ignored.get_mut(kind) {
                        *c -= n;
                        if *c == 0 {
                            self.ignored.remove(kind);
                        }
                    }
                }
                for (i, k) in old.kube.iter().enumerate() {
                    let id = k.0.id();
                    if let Some(defs) = self.kube.get_mut(&id) {
                        defs.remove(&(file.clone(), i));
                        if defs.is_empty() {
                            self.kube.remove(&id);
                        }
                    }
                    kube_touched.insert(id);
                }
                for (i, (o, _)) in old.native.iter().enumerate() {
                    let key = o.key();
                    if let Some(defs) = self.native.get_mut(&key) {
                        defs.remove(&(file.clone(), i));
                        if defs.is_empty() {
                            self.native.remove(&key);
                        }
                    }
                    native_touched.insert(key);
                }
            }
            let new_diags = result
                .as_ref()
                .map(|r| r.diagnostics.clone())
                .unwrap_or_default();
            let old_diags = self.by_file.remove(&file).unwrap_or_default();
            tally.swap(&old_diags, &new_diags);
            if !new_diags.is_empty() {
                self.by_file.insert(file.clone(), new_diags);
            }
            if let Some(new) = &result {
                ignored_changed |= !new.ignored.is_empty();
                for (kind, n) in &new.ignored {
                    *self.ignored.entry(kind.clone()).or_default() += n;
                }
                for (i, (k, at, site)) in new.kube.iter().enumerate() {
                    let id = k.id();
                    let def = KubeDef {
                        object: Arc::clone(k),
                        at: at.clone(),
                        site: Arc::clone(site),
                    };
                    self.kube
                        .entry(id.clone())
                        .or_default()
                        .insert((file.clone(), i), def);
                    kube_touched.insert(id);
                }
                for (i, (o, at)) in new.native.iter().enumerate() {
                    let key = o.key();
                    let def = (Arc::clone(o), at.clone());
                    self.native
                        .entry(key.clone())
                        .or_default()
                        .insert((file.clone(), i), def);
                    native_touched.insert(key);
                }
            }
        }
        if files_changed {
            self.all_files = self.files.keys().cloned().collect();
            for r in self.files.values() {
                (self.all_files).extend(r.1.deps.iter().map(|(p, _)| p.clone()));
            }
        }
        // Kubernetes objects: the first definition of each identity is translated.
        let mut batch = Vec::new();
        for id in kube_touched {
            let defs = self.kube.get(&id);
            let winner = defs.and_then(|d| d.values().next());
            let mut dups = Vec::new();
            if let (Some(first), Some(defs)) = (winner, defs) {
                for d in defs.values().skip(1) {
                    dups.push(Diagnostic::error(
                        d.at.clone(),
                        Some(Subject::Source(id.clone())),
                        (),
                        format!("defined twice; the one at {} is used", first.at),
                    ));
                }
            }
            let old = self.by_kube.remove(&id).unwrap_or_default();
            tally.swap(&old, &dups);
            if !dups.is_empty() {
                self.by_kube.insert(id.clone(), dups);
            }
            // An object parsed again to the same content at the same place is no change.
            let inputs = self.translator.inputs();
            match winner {
                Some(d) => {
                    let origin = d.at.to_string();
                    let same = inputs.get(&id) == Some(&*d.object)
                        && inputs.origin(&id) == Some(origin.as_str());
                    if !same {
                        let object = translate::KubeObject::clone(&d.object);
                        batch.push(ObjectChange::upsert(object, Some(origin)));
                    }
                }
                None if inputs.get(&id).is_some() => batch.push(ObjectChange::Delete(id)),
                None => {}
            }
        }
        work.translated = batch.len();
        timing.index = clock.lap();
        let delta = self.translator.apply(batch);
        work.translation = delta.work.clone();
        for d in &delta.diagnostics_removed {
            if let Some(shown) = self.by_translation.remove(d) {
                tally.swap(&[shown], &[]);
            }
        }
        for d in &delta.diagnostics_added {
            let def = d.object.source().and_then(|id| self.kube.get(id));
            let location = def
                .and_then(|defs| defs.values().next())
                .map(|def| Location {
                    file: def.at.file.clone(),
                    pos: def.site.position(&d.field).or(def.at.pos),
                });
            let shown = Diagnostic {
                severity: d.severity,
                location,
                object: Some(d.object.clone()),
                from: Vec::new(),
                field: d.field.clone(),
                problem: d.problem.clone(),
            };
            tally.swap(&[], std::slice::from_ref(&shown));
            self.by_translation.insert(d.clone(), shown);
        }
        timing.translate = clock.lap();
        let mut keys = native_touched;
        for c in delta.changes {
            keys.insert(c.key());
            match c {
                Change::Upsert(o) => self.translated.insert(o.key(), o),
                Change::Delete(k) => self.translated.remove(&k),
            };
        }
        // The model: native definitions first (in path order), then the translated object.
        let mut changes = Vec::new();
        for key in keys {
            let natives = self.native.get(&key).into_iter().flat_map(|d| d.values());
            let translated = self.translated.get(&key).map(|o| (o, None));
            let mut all = natives.map(|(o, at)| (o, Some(at))).chain(translated);
            let winner = all.next();
            let mut dups = Vec::new();
            if let Some((_, first_at)) = &winner {
                let first = first_at.map_or_else(
                    || "a translated Kubernetes object".to_owned(),
                    ToString::to_string,
                );
                for (_, at) in all {
                    dups.push(Diagnostic {
                        severity: Severity::Error,
                        location: at.cloned(),
                        object: Some(Subject::Model(key.clone())),
                        from: Vec::new(),
                        field: "name".to_field_path(),
                        problem: Problem::Invalid(format!(
                            "duplicate name: {key} is already defined at {first}"
                        )),
                    });
                }
            }
            let old = self.by_key.remove(&key).unwrap_or_default();
            tally.swap(&old, &dups);
            if !dups.is_empty() {
                self.by_key.insert(key.clone(), dups);
            }
            match winner {
                Some((o, at)) => {
                    match at {
                        Some(at) => self.origins.insert(key.clone(), at.clone()),
                        None => self.origins.remove(&key),
                    };
                    let same = self
                        .objects
                        .get(&key)
                        .is_some_and(|old| Arc::ptr_eq(old, o) || old == o);
                    if !same {
                        self.objects.insert(key, Arc::clone(o));
                        changes.push(Change::Upsert(Arc::clone(o)));
                    }
                }
                None => {
                    self.origins.remove(&key);
                    if self.objects.remove(&key).is_some() {
                        changes.push(Change::Delete(key));
                    }
                }
            }
        }
        let mut out = LoadDelta {
            changes,
            parsed: parsed_files,
            ignored_changed,
            files_changed,
            work,
            ..LoadDelta::default()
        };
        for (d, was) in tally.before {
            match (was, self.diagnostics.contains_key(&d)) {
                (false, true) => out.added.push(d),
                (true, false) => out.removed.push(d),
                _ => {}
            }
        }
        timing.merge = clock.lap();
        out.timing = timing;
        out
    }

    /// Whether reading or translating found an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics().any(Diagnostic::is_error)
    }

    /// See [`Loaded::report`].
    pub fn report(&self, compiled: &Compiled) -> Vec<Diagnostic> {
        report(self.diagnostics(), &self.origins, compiled)
    }
}

/// A stopwatch of consecutive phases.
struct Clock(std::time::Instant);

impl Clock {
    /// The time since the last lap (or the start).
    fn lap(&mut self) -> std::time::Duration {
        let now = std::time::Instant::now();
        now - std::mem::replace(&mut self.0, now)
    }
}

impl LoadTiming {
    /// The time of all phases.
    pub fn total(&self) -> std::time::Duration {
        self.look + self.parse + self.index + self.translate + self.merge
    }
}

/// Parses files on every core; results in the order of `files` whatever thread parsed them.
fn parse_all(files: &[(PathBuf, FileKey)]) -> Vec<Arc<FileResult>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(threads).max(16);
    if files.len() <= chunk {
        // A thread of its own would cost more than the parse (a one-file edit).
        return files.iter().map(|(f, _)| Arc::new(load_file(f))).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let h = scope.spawn(move || part.iter().map(|(f, _)| load_file(f)).collect());
                (part, h)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(part, h)| {
                // A parse never panics; were one to, its files are reported, not lost or
                // paired with another file's objects.
                h.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|(f, _)| FileResult {
                            diagnostics: vec![Diagnostic::error(
                                Location {
                                    file: f.clone(),
                                    pos: None,
                                },
                                None,
                                (),
                                "internal error while parsing this file".into(),
                            )],
                            ..FileResult::default()
                        })
                        .collect::<Vec<FileResult>>()
                })
            })
            .map(Arc::new)
            .collect()
    })
}

/// Reads and parses one file.
fn load_file(file: &Path) -> FileResult {
    let mut out = FileResult::default();
    let whole = |pos| Location {
        file: file.to_owned(),
        pos,
    };
    let text: Arc<str> = match read(file) {
        Ok(t) => {
            out.hash = content_hash(&t);
            t.into()
        }
        Err(message) => {
            out.diagnostics
                .push(Diagnostic::error(whole(None), None, (), message));
            return out;
        }
    };
    let docs = match yaml::parse_values(&text) {
        Ok(d) => d,
        Err(e) => {
            out.diagnostics.push(Diagnostic::error(
                whole(Some(e.pos)),
                None,
                (),
                format!("invalid YAML: {}", e.message),
            ));
            return out;
        }
    };
    let tracked = Arc::new(Tracked {
        text: Arc::clone(&text),
        docs: std::sync::OnceLock::new(),
    });
    // An object's own start (a path of at most two levels: a list item, a `kind: List`
    // item) is known from the fast parse; anything deeper asks for the recording parse.
    let position = |doc: usize, path: &[Segment]| {
        if path.len() <= 2 {
            return docs[doc].position(path);
        }
        tracked
            .position(doc, path)
            .unwrap_or_else(|| docs[doc].position(path))
    };
    let mut pem_files = BTreeSet::new();
    for (index, doc) in docs.iter().enumerate() {
        let mut items = Vec::new();
        unpack(&doc.value, Vec::new(), &mut items);
        for (value, prefix) in items {
            let at = |path: &[Segment]| {
                let mut full = prefix.clone();
                full.extend_from_slice(path);
                whole(Some(position(index, &full)))
            };
            out.converted += 1;
            if value.get("apiVersion").is_some() {
                match translate::KubeObject::from_json(value) {
                    Ok(k) => {
                        let site = Arc::new(Site {
                            file: Arc::clone(&tracked),
                            doc: index,
                            prefix: prefix.clone(),
                        });
                        out.kube.push((Arc::new(k), at(&[]), site));
                    }
                    Err(e) => match kube_error(value, &e, &at) {
                        Some(d) => out.diagnostics.push(d),
                        None => {
                            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
                            *out.ignored.entry(kind.to_owned()).or_default() += 1;
                        }
                    },
                }
                continue;
            }
            match native_object(value.clone(), file, &at, &mut pem_files) {
                Ok(mut o) => {
                    let here = at(&[]);
                    add_origin(&mut o, &here);
                    out.native.push((Arc::new(o), here));
                }
                Err(d) => out.diagnostics.push(*d),
            }
        }
    }
    out.deps = pem_files
        .into_iter()
        .map(|p| {
            let k = FileKey::of(&p);
            (p, k)
        })
        .collect();
    out
}

/// API groups whose objects carry routing: an unsupported kind there (a GRPCRoute, a
/// ReferenceGrant) is warned about; any other unsupported kind (Deployment, ConfigMap, ...)
/// is only counted.
const ROUTING_GROUPS: [&str; 2] = ["networking.k8s.io/", "gateway.networking.k8s.io/"];

/// The diagnostic of a manifest that is not a translated object; `None` for an object of a
/// kind that carries no routing (counted, not reported).
fn kube_error(
    value: &Value,
    e: &translate::ParseError,
    at: &dyn Fn(&[Segment]) -> Location,
) -> Option<Diagnostic> {
    if let translate::ParseError::Unsupported { api_version, .. } = e
        && !ROUTING_GROUPS.iter().any(|g| api_version.starts_with(g))
    {
        return None;
    }
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let (field, message) = match e {
        translate::ParseError::Invalid { path, message, .. } => (path.clone(), message.clone()),
        translate::ParseError::Unsupported { .. } => {
            let supported = translate::KubeKind::ALL.map(translate::KubeKind::as_str);
            let message = format!("{e}; supported: {}", supported.join(", "));
            ("kind".to_field_path(), message)
        }
    };
    // The kind and name as written: the manifest did not parse, so it has no namespace yet.
    let object = SourceRef::new(kind, None, name);
    let mut d = Diagnostic::error(at(field.segments()), Some(object.into()), field, message);
    if matches!(e, translate::ParseError::Unsupported { .. }) {
        // A `kubectl get all -o yaml` dump holds Deployments and Pods: not ours, not wrong.
        d.severity = Severity::Warning;
        d.problem = Problem::Invalid(format!("ignored: {}", d.problem));
    }
    Some(d)
}

/// A `kind: List` of a Kubernetes client, or a top-level array of documents, unpacked into
/// its items; anything else as it is.
fn unpack<'v>(value: &'v Value, prefix: Vec<Segment>, out: &mut Vec<(&'v Value, Vec<Segment>)>) {
    if let (true, Value::Array(items)) = (prefix.is_empty(), value) {
        for (i, item) in items.iter().enumerate() {
            unpack(item, vec![Segment::Index(i)], out);
        }
        return;
    }
    let is_list = value.get("apiVersion").is_some()
        && value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k == "List" || k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if let (true, Some(Value::Array(items))) = (is_list, value.get("items")) {
        for (i, item) in items.iter().enumerate() {
            let mut p = prefix.clone();
            p.push(Segment::Field("items".into()));
            p.push(Segment::Index(i));
            unpack(item, p, out);
        }
        return;
    }
    out.push((value, prefix));
}

fn add_origin(object: &mut Object, at: &Location) {
    let source = model::Source {
        kind: object.kind().to_string(),
        namespace: None,
        name: object.name().to_owned(),
        origin: Some(at.to_string()),
    };
    object.provenance_mut().push(source);
}

fn native_object(
    value: Value,
    file: &Path,
    at: &dyn Fn(&[Segment]) -> Location,
    files: &mut BTreeSet<PathBuf>,
) -> Result<Object, Box<Diagnostic>> {
    let Value::Object(mut map) = value else {
        return Err(Box::new(Diagnostic::error(
            at(&[]),
            None,
            (),
            "a document must be a mapping with a `kind`".into(),
        )));
    };
    // A raw Envoy resource (`kind: EnvoyCluster`, ...) is named by its own name field.
    let name = map
        .get("name")
        .or_else(|| {
            let r = map.get("resource")?;
            r.get("name")
                .or_else(|| r.get("cluster_name"))
                .or_else(|| r.get("clusterName"))
        })
        .and_then(Value::as_str)
        .map(str::to_owned);
    let kind_value = map.remove("kind");
    let kind = kind_value
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|k| Kind::ALL.into_iter().find(|c| c.as_str() == k));
    let Some(kind) = kind else {
        // Not a model kind: the object is named as written.
        let object = match (&kind_value, &name) {
            (Some(Value::String(k)), Some(n)) => Some(Subject::Other(format!("{k}/{n}"))),
            (_, n) => n.clone().map(Subject::Other),
        };
        let message = match kind_value {
            None => "missing `kind` (a model kind such as Cluster, or a Kubernetes manifest with `apiVersion`)".to_owned(),
            Some(k) => format!(
                "unknown kind {k}; expected one of {}, or a Kubernetes manifest with `apiVersion`",
                Kind::ALL.map(Kind::as_str).join(", ")
            ),
        };
        let field = "kind".to_field_path();
        return Err(Box::new(Diagnostic::error(
            at(field.segments()),
            object,
            field,
            message,
        )));
    };
    let object_name = name.map(|n| Subject::Model(ObjectKey::new(kind, n)));
    let fail = |path: FieldPath, message: String| {
        Box::new(Diagnostic::error(
            at(path.segments()),
            object_name.clone(),
            path,
            message,
        ))
    };
    if kind == Kind::Secret {
        let dir = file.parent().unwrap_or(Path::new("."));
        inline_pem_files(&mut map, dir, files).map_err(|(p, m)| fail(p, m))?;
    }
    let value = Value::Object(map);
    let object = match kind {
        Kind::Listener => yaml::typed(value).map(Object::Listener),
        Kind::VirtualHost => yaml::typed(value).map(Object::VirtualHost),
        Kind::Cluster => yaml::typed(value).map(Object::Cluster),
        Kind::Endpoints => yaml::typed(value).map(Object::Endpoints),
        Kind::Secret => yaml::typed(value).map(Object::Secret),
        Kind::EnvoyCluster => yaml::typed(value).map(Object::EnvoyCluster),
        Kind::EnvoyClusterLoadAssignment => {
            yaml::typed(value).map(Object::EnvoyClusterLoadAssignment)
        }
        Kind::EnvoyListener => yaml::typed(value).map(Object::EnvoyListener),
        Kind::EnvoyRouteConfiguration => yaml::typed(value).map(Object::EnvoyRouteConfiguration),
        Kind::EnvoySecret => yaml::typed(value).map(Object::EnvoySecret),
    };
    object.map_err(|(p, m)| fail(p, m))
}

/// The PEM file references of a secret document: (section, file key, inline key).
pub(crate) const PEM_FILE_FIELDS: [(&str, &str, &str); 3] = [
    (
        "tls_certificate",
        "certificate_chain_file",
        "certificate_chain",
    ),
    ("tls_certificate", "private_key_file", "private_key"),
    ("validation_context", "trusted_ca_file", "trusted_ca"),
];

fn inline_pem_files(
    map: &mut Map<String, Value>,
    dir: &Path,
    files: &mut BTreeSet<PathBuf>,
) -> Result<(), (FieldPath, String)> {
    for (section, file_key, inline_key) in PEM_FILE_FIELDS {
        let Some(Value::Object(s)) = map.get_mut(section) else {
            continue;
        };
        let Some(reference) = s.remove(file_key) else {
            continue;
        };
        let path = (section, file_key).to_field_path();
        if s.contains_key(inline_key) {
            return Err((
                path,
                format!("give either {inline_key} or {file_key}, not both"),
            ));
        }
        let Value::String(name) = reference else {
            return Err((path, "must be a file path".into()));
        };
        let full = resolve(&dir.join(&name));
        files.insert(full.clone());
        let pem = read(&full).map_err(|e| (path.clone(), e))?;
        s.insert(inline_key.into(), Value::String(pem));
    }
    Ok(())
}

/// A path made absolute (lexically, as file events name it), or as it is if that fails.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// A referenced file's path with `.` and `..` resolved lexically, so that watching it watches
/// the right folder. Symbolic links are kept: a Kubernetes volume's `tls.crt` is a link into
/// `..data/`, which is swapped on update, and that swap happens in the link's own folder.
fn resolve(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Reads a file of at most [`MAX_FILE_BYTES`]. The limit holds while reading, not only by
/// the size the file reports: a file growing as it is read, or a path naming a device or a
/// pipe (`private_key_file: /dev/zero`), stops at the limit with an error naming it.
pub(crate) fn read(file: &Path) -> Result<String, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let too_large = || {
        format!(
            "{} is larger than {} MiB, the most a file may hold",
            file.display(),
            MAX_FILE_BYTES >> 20
        )
    };
    let f = std::fs::File::open(file).map_err(cannot)?;
    if f.metadata().map_err(cannot)?.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| format!("cannot read {}: not UTF-8 text", file.display()))
}

fn is_config_file(name: &str) -> bool {
    let hidden = name.starts_with('.') || name.starts_with('#') || name.ends_with('~');
    !hidden && [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e))
}

/// The config files a scan found, each with its key (`None`: it went away while being read).
type Found = BTreeMap<PathBuf, Option<FileKey>>;

/// The files a path stands for: itself, or the config files below a folder (depth ≤ 32).
fn collect(
    path: &Path,
    depth: usize,
    found: &mut Found,
    diagnostics: &mut Vec<Diagnostic>,
    given: bool,
    work: &mut LoadWork,
) {
    work.stats += 1;
    match std::fs::metadata(path) {
        Ok(m) => collect_at(path, &m, depth, found, diagnostics, work),
        Err(e) if given => diagnostics.push(folder_problem(path, format!("cannot read: {e}"))),
        // A file that went away while the folder was read: it is simply not there.
        Err(_) => {}
    }
}

fn folder_problem(path: &Path, message: String) -> Diagnostic {
    let file = Location {
        file: path.to_owned(),
        pos: None,
    };
    Diagnostic::error(file, None, (), message)
}

/// [`collect`] of a path whose metadata is known: one `stat` per entry, taken from the
/// folder listing where the entry is not a symbolic link.
fn collect_at(
    path: &Path,
    meta: &std::fs::Metadata,
    depth: usize,
    found: &mut Found,
    diagnostics: &mut Vec<Diagnostic>,
    work: &mut LoadWork,
) {
    if meta.is_file() {
        found.insert(path.to_owned(), Some(FileKey::from(meta)));
        return;
    }
    if !meta.is_dir() {
        return;
    }
    if depth >= 32 {
        let message = "folders nested deeper than 32 levels".into();
        return diagnostics.push(folder_problem(path, message));
    }
    work.listed += 1;
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => return diagnostics.push(folder_problem(path, format!("cannot list: {e}"))),
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        work.stats += 1;
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        let meta = match is_link {
            true => std::fs::metadata(&p),
            false => entry.metadata(),
        };
        // An entry that went away while the folder was read: it is simply not there.
        let Ok(meta) = meta else { continue };
        let wanted = match meta.is_dir() {
            true => !name.starts_with('.'),
            false => is_config_file(name),
        };
        if wanted {
            collect_at(&p, &meta, depth + 1, found, diagnostics, work);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
