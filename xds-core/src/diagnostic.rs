//! The words every part of xdsc reports problems in: what is wrong ([`Problem`]), how
//! serious it is ([`Severity`]), which object it is in ([`Subject`]) and where in that object
//! ([`FieldPath`]).
//!
//! The compiler, the Kubernetes translation and the file adapter all speak this vocabulary,
//! so a diagnostic keeps its structure from where it is found to where it is shown: the file
//! adapter finds the line of a field from its typed path, never by parsing the path's text.
//!
//! Field paths are cheap to build where nothing is wrong: code that might report passes a
//! borrowed [`ToFieldPath`] (a tuple such as `("routes", Named(name), "forward")`), which is
//! turned into an owned [`FieldPath`] only when a diagnostic is actually made, and formatted
//! only when it is shown. Every type here is `Ord + Eq + Hash`, so sets of diagnostics can be
//! compared cheaply (what was added, what went away).
//!
//! Not here: finding problems (see [`crate::compile`]) or knowing any source's format: a
//! [`SourceRef`] names a Kubernetes object without the core knowing what Kubernetes is.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use crate::model::ObjectKey;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object, or the part of it named by the field, was left out.
    Error,
    /// Served, but probably not as intended.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// What is wrong with a value; the `Display` of a [`Diagnostic`] adds the object and field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum Problem {
    /// The value is malformed, out of range or not supported; the text says how.
    #[error("{0}")]
    Invalid(String),
    /// A regular expression that Envoy's RE2 engine would reject.
    #[error("invalid regular expression {regex:?}: {reason}")]
    InvalidRegex {
        /// The expression.
        regex: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A reference to a model object that does not exist or is invalid.
    #[error("refers to {0}, which does not exist or is invalid")]
    Dangling(ObjectKey),
    /// Something is claimed by two objects; the other one wins.
    #[error("{what} is also claimed by {winner}, which takes precedence")]
    Conflict {
        /// What is claimed (a domain, an address).
        what: String,
        /// The object that keeps it.
        winner: ObjectKey,
    },
    /// A route whose match equals an earlier route's, so it can never match.
    #[error("never matches: route {by:?} has the same match and comes first")]
    Shadowed {
        /// The earlier route.
        by: String,
    },
}

impl Problem {
    /// A [`Problem::Invalid`] with this text.
    ///
    /// ```
    /// use xdsc_core::diagnostic::Problem;
    /// assert_eq!(Problem::invalid("must be at least 1").to_string(), "must be at least 1");
    /// ```
    pub fn invalid(text: impl Into<String>) -> Problem {
        Problem::Invalid(text.into())
    }
}

/// The identity of an object in a source that is not a model object, such as a Kubernetes
/// object: a kind, a namespace (`None` when the kind has none) and a name. Shown as
/// `Kind namespace/name` (or `Kind name`).
///
/// ```
/// use xdsc_core::diagnostic::SourceRef;
/// let r = SourceRef::new("Ingress", Some("default"), "web");
/// assert_eq!(r.to_string(), "Ingress default/web");
/// assert_eq!(r.qualified_name(), "default/web");
/// assert_eq!(SourceRef::new("IngressClass", None, "xdsc").to_string(), "IngressClass xdsc");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceRef {
    /// The kind, e.g. `Ingress` or `HTTPRoute`.
    pub kind: String,
    /// The namespace; `None` for objects of a kind without namespaces.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl SourceRef {
    /// A reference from its parts.
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> SourceRef {
        SourceRef {
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// `namespace/name`, or `name` without a namespace.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(&self.name)
    }
}

/// The object a diagnostic is about.
///
/// ```
/// use xdsc_core::diagnostic::{SourceRef, Subject};
/// use xdsc_core::model::{Kind, ObjectKey};
/// let model = Subject::from(ObjectKey::new(Kind::Cluster, "web"));
/// assert_eq!(model.to_string(), "Cluster/web");
/// assert_eq!(model, ObjectKey::new(Kind::Cluster, "web"));
/// let source = Subject::from(SourceRef::new("Service", Some("shop"), "web"));
/// assert_eq!(source.to_string(), "Service shop/web");
/// assert_eq!(Subject::Other("case \"a\"".into()).to_string(), "case \"a\"");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A model object, shown as `Kind/name`.
    Model(ObjectKey),
    /// An object of a source (such as a Kubernetes object), shown as `Kind namespace/name`.
    Source(SourceRef),
    /// Something named only as written, such as a document whose kind is not a model kind
    /// (`Clustr/web`) or a test case; shown as the text.
    Other(String),
}

impl Subject {
    /// The model object's key, when the subject is one.
    pub fn model(&self) -> Option<&ObjectKey> {
        match self {
            Subject::Model(k) => Some(k),
            _ => None,
        }
    }

    /// The source object, when the subject is one.
    pub fn source(&self) -> Option<&SourceRef> {
        match self {
            Subject::Source(s) => Some(s),
            _ => None,
        }
    }
}

impl From<ObjectKey> for Subject {
    fn from(k: ObjectKey) -> Subject {
        Subject::Model(k)
    }
}

impl From<SourceRef> for Subject {
    fn from(s: SourceRef) -> Subject {
        Subject::Source(s)
    }
}

impl PartialEq<ObjectKey> for Subject {
    fn eq(&self, other: &ObjectKey) -> bool {
        self.model() == Some(other)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Model(k) => fmt::Display::fmt(k, f),
            Subject::Source(s) => fmt::Display::fmt(s, f),
            Subject::Other(s) => f.write_str(s),
        }
    }
}

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// A field, or a mapping key written as one: `.name` (no dot at the start).
    Field(Arc<str>),
    /// A list item by position: `[0]`.
    Index(usize),
    /// A list item by its `name` field: `[api]` (the model's routes are named so).
    Named(Arc<str>),
    /// A map entry by key, quoted: `["kubernetes.io/ingress.class"]`.
    Key(Arc<str>),
}

/// A path to a field within an object, such as `routes[api].match.path.regex` or
/// `spec.rules[0].http.paths[1].backend`; empty for the object as a whole.
///
/// Cloning is one reference count. Paths are equal when their segments are; they are ordered
/// as their text (so sorted diagnostics read in text order), segments breaking ties.
///
/// ```
/// use xdsc_core::diagnostic::{FieldPath, Key, Named, Segment, ToFieldPath};
/// let p = ("routes", Named("api"), "match", "headers", 0).to_field_path();
/// assert_eq!(p.to_string(), "routes[api].match.headers[0]");
/// assert_eq!(p, "routes[api].match.headers[0]");
/// assert_eq!(p.segments()[1], Segment::Named("api".into()));
/// let k = ("metadata", "annotations", Key("a.b/c")).to_field_path();
/// assert_eq!(k.to_string(), r#"metadata.annotations["a.b/c"]"#);
/// assert!(FieldPath::default().is_empty());
/// // Text order: `[10]` sorts before `[2]`, as the strings do.
/// assert!(("l", 10).to_field_path() < ("l", 2).to_field_path());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Option<Arc<[Segment]>>);

impl FieldPath {
    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// Whether this is the object as a whole.
    pub fn is_empty(&self) -> bool {
        self.segments().is_empty()
    }

    /// The path of a `serde_path_to_error` error (typed deserialization): map keys and enum
    /// variants become fields, sequence positions indexes; unknown segments are left out.
    ///
    /// ```
    /// use xdsc_core::diagnostic::FieldPath;
    /// #[derive(Debug, serde::Deserialize)]
    /// struct S { #[allow(dead_code)] ports: Vec<u16> }
    /// let v = serde_json::json!({"ports": [80, "x"]});
    /// let e = serde_path_to_error::deserialize::<_, S>(v).unwrap_err();
    /// assert_eq!(FieldPath::from_serde(e.path()).to_string(), "ports[1]");
    /// ```
    pub fn from_serde(path: &serde_path_to_error::Path) -> FieldPath {
        use serde_path_to_error::Segment as S;
        path.iter()
            .filter_map(|s| match s {
                S::Seq { index } => Some(Segment::Index(*index)),
                S::Map { key } => Some(Segment::Field(key.as_str().into())),
                S::Enum { variant } => Some(Segment::Field(variant.as_str().into())),
                S::Unknown => None,
            })
            .collect()
    }
}

impl FromIterator<Segment> for FieldPath {
    fn from_iter<I: IntoIterator<Item = Segment>>(iter: I) -> FieldPath {
        FieldPath::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl From<Vec<Segment>> for FieldPath {
    fn from(v: Vec<Segment>) -> FieldPath {
        FieldPath((!v.is_empty()).then(|| v.into()))
    }
}

fn write_segment(f: &mut impl fmt::Write, first: bool, s: &Segment) -> fmt::Result {
    match s {
        Segment::Field(n) => {
            if !first {
                f.write_char('.')?;
            }
            f.write_str(n)
        }
        Segment::Index(i) => write!(f, "[{i}]"),
        Segment::Named(n) => write!(f, "[{n}]"),
        Segment::Key(k) => write!(f, "[{k:?}]"),
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments().iter().enumerate() {
            write_segment(f, i == 0, s)?;
        }
        Ok(())
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldPath({:?})", self.to_string())
    }
}

/// A `fmt::Write` that compares what is written with a string, without allocating.
struct Compare<'a> {
    rest: &'a str,
    order: Ordering,
}

impl fmt::Write for Compare<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.order != Ordering::Equal {
            return Ok(());
        }
        let n = s.len().min(self.rest.len());
        self.order = s.as_bytes()[..n].cmp(&self.rest.as_bytes()[..n]);
        if self.order == Ordering::Equal {
            if s.len() > self.rest.len() {
                self.order = Ordering::Greater;
            } else {
                self.rest = &self.rest[n..];
            }
        }
        Ok(())
    }
}

/// Compares the text of `display` with `text`.
fn cmp_text(display: &dyn fmt::Display, text: &str) -> Ordering {
    let mut c = Compare {
        rest: text,
        order: Ordering::Equal,
    };
    // Writing into `Compare` never fails.
    let _ = write!(c, "{display}");
    match c.order {
        Ordering::Equal if !c.rest.is_empty() => Ordering::Less,
        o => o,
    }
}

impl PartialEq<str> for FieldPath {
    fn eq(&self, other: &str) -> bool {
        cmp_text(self, other) == Ordering::Equal
    }
}

impl PartialEq<&str> for FieldPath {
    fn eq(&self, other: &&str) -> bool {
        cmp_text(self, other) == Ordering::Equal
    }
}

impl Ord for FieldPath {
    fn cmp(&self, other: &FieldPath) -> Ordering {
        let (a, b) = (self.segments(), other.segments());
        let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        if common == a.len() || common == b.len() {
            // One is a prefix of the other: so is its text.
            return a.len().cmp(&b.len());
        }
        // The texts agree up to the first differing segment; compare from there.
        let mut rest = String::new();
        for (i, s) in b[common..].iter().enumerate() {
            let _ = write_segment(&mut rest, common + i == 0, s);
        }
        let tail = Tail(&a[common..], common == 0);
        cmp_text(&tail, &rest).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for FieldPath {
    fn partial_cmp(&self, other: &FieldPath) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The text of some segments of a path, `first` when they start it.
struct Tail<'a>(&'a [Segment], bool);

impl fmt::Display for Tail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            write_segment(f, self.1 && i == 0, s)?;
        }
        Ok(())
    }
}

/// A list item by its name, in a [`ToFieldPath`]: `("routes", Named("api"))` is
/// `routes[api]`.
#[derive(Clone, Copy, Debug)]
pub struct Named<'a>(pub &'a str);

/// A map entry by key, in a [`ToFieldPath`]: `("metadata", "annotations", Key("a/b"))` is
/// `metadata.annotations["a/b"]`.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a>(pub &'a str);

/// Something that names a field path without building it: a field name (`&str`), a list
/// index (`usize`), [`Named`], [`Key`], a [`FieldPath`], or a tuple of these (nested tuples
/// too). Reporting code takes `impl ToFieldPath`, so a path costs nothing until a diagnostic
/// is made of it.
///
/// ```
/// use xdsc_core::diagnostic::{Named, ToFieldPath};
/// let route = ("routes", Named("api"));
/// let i = 2;
/// assert_eq!((route, "forward", "backends", i, "cluster").to_field_path().to_string(),
///            "routes[api].forward.backends[2].cluster");
/// ```
pub trait ToFieldPath {
    /// Appends this path's segments to `out`.
    fn push_segments(&self, out: &mut Vec<Segment>);

    /// The owned path.
    fn to_field_path(&self) -> FieldPath {
        let mut v = Vec::new();
        self.push_segments(&mut v);
        FieldPath::from(v)
    }
}

impl ToFieldPath for str {
    fn push_segments(&self, out: &mut Vec<Segment>) {
        out.push(Segment::Field(self.into()));
    }
}

impl ToFieldPath for String {
    fn push_segments(&self, out: &mut Vec<Segment>) {
        self.as_str().push_segments(out);
    }
}

impl ToFieldPath for usize {
    fn push_segments(&self, out: &mut Vec<Segment>) {
        out.push(Segment::Index(*self));
    }
}

impl ToFieldPath for Named<'_> {
    fn push_segments(&self, out: &mut Vec<Segment>) {
        out.push(Segment::Named(self.0.into()));
    }
}

impl ToFieldPath for Key<'_> {
    fn push_segments(&self, out: &mut Vec<Segment>) {
        out.push(Segment::Key(self.0.into()));
    }
}

impl ToFieldPath for Segment {
    fn push_segments(&self, out: &mut Vec<Segment>) {
        out.push(self.clone());
    }
}

impl ToFieldPath for FieldPath {
    fn push_segments(&self, out: &mut Vec<Segment>) {
        out.extend_from_slice(self.segments());
    }

    fn to_field_path(&self) -> FieldPath {
        self.clone()
    }
}

impl ToFieldPath for () {
    fn push_segments(&self, _: &mut Vec<Segment>) {}
}

impl<T: ToFieldPath + ?Sized> ToFieldPath for &T {
    fn push_segments(&self, out: &mut Vec<Segment>) {
        (**self).push_segments(out);
    }

    fn to_field_path(&self) -> FieldPath {
        (**self).to_field_path()
    }
}

macro_rules! tuple_paths {
    ($($name:ident)+) => {
        impl<$($name: ToFieldPath),+> ToFieldPath for ($($name,)+) {
            #[allow(non_snake_case, reason = "the type parameters name the tuple's parts")]
            fn push_segments(&self, out: &mut Vec<Segment>) {
                let ($($name,)+) = self;
                $($name.push_segments(out);)+
            }
        }
    };
}

tuple_paths!(A B);
tuple_paths!(A B C);
tuple_paths!(A B C D);
tuple_paths!(A B C D E);
tuple_paths!(A B C D E F);
tuple_paths!(A B C D E F G);
tuple_paths!(A B C D E F G H);
tuple_paths!(A B C D E F G H I);
tuple_paths!(A B C D E F G H I J);

/// A problem found in an object, naming the object and the field it is about.
///
/// ```
/// use xdsc_core::compile::Compiled;
/// use xdsc_core::model::{Cluster, Model, Object};
/// let mut c = Cluster::new("web");
/// c.connect_timeout = Some(xdsc_core::model::Duration::from_millis(0));
/// let out = Compiled::new(&Model::from_objects([Object::Cluster(c)]));
/// let d = &out.diagnostics()[0];
/// assert_eq!(d.to_string(), "error: Cluster/web: connect_timeout: must be greater than 0");
/// assert_eq!(d.field, "connect_timeout");
/// assert!(out.snapshot().is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// The object the problem is in.
    pub object: Subject,
    /// Error or warning.
    pub severity: Severity,
    /// The field path within the object; empty for the object as a whole.
    pub field: FieldPath,
    /// What is wrong. Never holds key material.
    pub problem: Problem,
}

impl Diagnostic {
    /// A diagnostic from its parts; `field` is built here.
    ///
    /// ```
    /// use xdsc_core::diagnostic::{Diagnostic, Problem, Severity, SourceRef};
    /// let d = Diagnostic::new(
    ///     SourceRef::new("Ingress", Some("default"), "web"),
    ///     Severity::Error,
    ///     ("spec", "rules", 0, "host"),
    ///     Problem::invalid("\"a b\" is not a host name"),
    /// );
    /// assert_eq!(d.to_string(), "error: Ingress default/web: spec.rules[0].host: \"a b\" is not a host name");
    /// ```
    pub fn new(
        object: impl Into<Subject>,
        severity: Severity,
        field: impl ToFieldPath,
        problem: Problem,
    ) -> Diagnostic {
        Diagnostic {
            object: object.into(),
            severity,
            field: field.to_field_path(),
            problem,
        }
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.severity, self.object)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.problem)
    }
}

/// Collects the diagnostics of one model object, for the compiler.
pub(crate) struct Diags {
    object: ObjectKey,
    list: Vec<Diagnostic>,
}

impl Diags {
    pub(crate) fn new(object: ObjectKey) -> Diags {
        Diags {
            object,
            list: Vec::new(),
        }
    }

    fn push(&mut self, severity: Severity, field: impl ToFieldPath, problem: Problem) {
        self.list.push(Diagnostic {
            object: Subject::Model(self.object.clone()),
            severity,
            field: field.to_field_path(),
            problem,
        });
    }

    /// Records an error. `field` is a borrowed path (such as `("routes", Named(n), "name")`),
    /// built into a [`FieldPath`](crate::diagnostic::FieldPath) only here, so the (hot) path
    /// where everything is fine pays nothing for it.
    pub(crate) fn error(&mut self, field: impl ToFieldPath, problem: Problem) {
        self.push(Severity::Error, field, problem);
    }

    /// Records a warning.
    pub(crate) fn warn(&mut self, field: impl ToFieldPath, problem: Problem) {
        self.push(Severity::Warning, field, problem);
    }

    /// The diagnostics recorded, in order.
    pub(crate) fn finish(self) -> Vec<Diagnostic> {
        self.list
    }

    /// Records an error if `result` is one; returns whether it was fine.
    pub(crate) fn check(&mut self, field: impl ToFieldPath, result: Result<(), Problem>) -> bool {
        match result {
            Ok(()) => true,
            Err(p) => {
                self.error(field, p);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: impl ToFieldPath) -> FieldPath {
        t.to_field_path()
    }

    #[test]
    fn paths_show_as_they_always_have() {
        assert_eq!(p(()).to_string(), "");
        assert_eq!(p("name").to_string(), "name");
        assert_eq!(p(("tls", "sni")).to_string(), "tls.sni");
        assert_eq!(
            p(("localities", 1, "endpoints", 2, "port")).to_string(),
            "localities[1].endpoints[2].port"
        );
        assert_eq!(p((0, "a")).to_string(), "[0].a");
        assert_eq!(
            p((("routes", Named("a b")), ("match", "path"), "regex")).to_string(),
            "routes[a b].match.path.regex"
        );
        assert_eq!(
            p(("metadata", "annotations", Key("x\"y"))).to_string(),
            r#"metadata.annotations["x\"y"]"#
        );
    }

    #[test]
    fn paths_order_as_their_text() {
        let mut paths = vec![
            p(("tls", 0, "secret")),
            p(("tls", "sni")),
            p("tls"),
            p(("routes", 10)),
            p(("routes", 2)),
            p(("routes", Named("a"), "name")),
            p(("routes", Named("a"), "forward")),
            p(("a", "b")),
            p("a-c"),
            p(("x", Key("k"))),
            p(("x", Named("\"k\""))),
            p(()),
        ];
        let mut texts: Vec<String> = paths.iter().map(ToString::to_string).collect();
        paths.sort();
        texts.sort();
        let sorted: Vec<String> = paths.iter().map(ToString::to_string).collect();
        assert_eq!(sorted, texts);
        // Same text, different segments: ordered, not equal.
        let (k, n) = (p(("x", Key("k"))), p(("x", Named("\"k\""))));
        assert_eq!(k.to_string(), n.to_string());
        assert_ne!(k, n);
        assert_ne!(k.cmp(&n), Ordering::Equal);
        assert_eq!(k.cmp(&n), n.cmp(&k).reverse());
    }

    #[test]
    fn paths_compare_with_text() {
        assert_eq!(p(("a", 1)), "a[1]");
        assert_ne!(p(("a", 1)), "a[1].b");
        assert_ne!(p(("a", 1, "b")), "a[1]");
        assert_ne!(p(("a", 1)), "a[2]");
        assert_eq!(p(()), "");
    }

    #[test]
    fn building_a_path_allocates_nothing_until_asked() {
        // A borrowed path is a tuple of references and numbers: `Copy`, no heap.
        fn is_copy<T: Copy>(_: T) {}
        let name = String::from("api");
        is_copy(("routes", Named(&name), "forward", "backends", 3usize));
    }
}
