//! `xdsc-file explain` and `xdsc-file test`: the route oracle of `xdsc-core` asked about the
//! files, for one request ([`explain`]) or for a file of cases with expectations ([`test()`]).
//!
//! Both compile the files as `check` does and refuse to answer when that finds an error (an
//! answer from the part that compiles would mislead); warnings are printed and do not stop
//! them. Route and virtual host names are the model's: the compiler gives the Envoy route and
//! virtual host the names written in the model, so `route: api` in a case is the route the
//! user called `api`.
//!
//! Not here: the evaluation itself (`xdsc_core::oracle`, which follows Envoy's matching and
//! says what it does not evaluate), loading (`crate::load`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use xdsc_core::compile::{Compiled, Severity};
use xdsc_core::diagnostic::{FieldPath, Problem, Subject, ToFieldPath};
use xdsc_core::model::{self, Kind, ListenerProtocol, Object};
use xdsc_core::oracle::{self, Action, ChainMatch, DomainMatch, Mismatch, Outcome, Step};

pub use crate::commands::Format;
use crate::commands::{self, EXIT_FAILURE, EXIT_INVALID, EXIT_OK, EXIT_USAGE, Output};
use crate::load::{Diagnostic, LoadOptions, Location};
use crate::yaml::{self, Pos, Segment};

#[cfg(test)]
mod tests;

/// How the client connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain text.
    Http,
    /// TLS, sending a server name (SNI).
    Https,
}

/// A request to ask about, as the command line gives it (a case of a cases file becomes one).
///
/// ```
/// use xdsc_file::oracle::Query;
/// let q = Query::new("shop.example.com", "/api/v1");
/// assert_eq!((q.method.as_str(), q.listener, q.sni), ("GET", None, None));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Query {
    /// The Host header (a port is allowed).
    #[arg(long)]
    pub host: String,
    /// The path, with its query string if any.
    #[arg(long)]
    pub path: String,
    /// The method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// A request header, NAME=VALUE; repeat for more (or for another value of one name).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// The listener the request reaches (default: the only HTTP or HTTPS listener).
    #[arg(long)]
    pub listener: Option<String>,
    /// The TLS server name the client sends; implies --scheme https.
    #[arg(long)]
    pub sni: Option<String>,
    /// http: plain text; https: TLS, sending the host (without port) as server name unless
    /// --sni says otherwise. Default: https with --sni or on an https or tls_passthrough
    /// listener, else http.
    #[arg(long, value_enum)]
    pub scheme: Option<Scheme>,
}

impl Query {
    /// A plain-text `GET` of `path` with this `Host`, on the default listener.
    ///
    /// ```
    /// let q = xdsc_file::oracle::Query::new("example.com:8080", "/");
    /// assert_eq!(q.host, "example.com:8080");
    /// ```
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Query {
        Query {
            host: host.into(),
            path: path.into(),
            method: "GET".to_owned(),
            headers: Vec::new(),
            listener: None,
            sni: None,
            scheme: None,
        }
    }
}

/// Parses `--header NAME=VALUE`.
///
/// ```
/// use xdsc_file::oracle::parse_header;
/// assert_eq!(parse_header("x-env=beta=2"), Ok(("x-env".into(), "beta=2".into())));
/// assert!(parse_header("x-env").is_err());
/// ```
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

/// Why a query could not be answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No listener was named and the files have no HTTP or HTTPS listener to default to.
    #[error("no HTTP or HTTPS listener to default to; the listeners are: {}", list(.0))]
    NoHttpListener(Vec<String>),
    /// No listener was named and there are several HTTP or HTTPS listeners.
    #[error("several HTTP and HTTPS listeners: {}; name one", list(.0))]
    SeveralListeners(Vec<String>),
    /// The listener named is not in the files.
    #[error("no listener {name:?}; the listeners are: {}", list(known))]
    UnknownListener {
        /// The name given.
        name: String,
        /// The listeners there are.
        known: Vec<String>,
    },
    /// A server name was given with scheme `http`.
    #[error("a server name (SNI) is only sent over TLS, not with scheme http")]
    PlainTextSni,
    /// The oracle could not evaluate the request.
    #[error(transparent)]
    Oracle(#[from] oracle::OracleError),
}

impl Error {
    /// The exit code: the command line's fault (2) or the configuration's (1).
    fn code(&self) -> u8 {
        match self {
            Error::Oracle(oracle::OracleError::InvalidRequest(_)) => EXIT_USAGE,
            Error::Oracle(_) => EXIT_INVALID,
            _ => EXIT_USAGE,
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// The oracle's request for `query`: the listener defaulted, the server name derived from
/// the scheme or, without one, from the listener (TLS for `https` and `tls_passthrough`).
fn request(model: &model::Model, query: &Query) -> Result<oracle::Request, Error> {
    let listeners: Vec<&model::Listener> = model
        .of_kind(Kind::Listener)
        .filter_map(|o| match o.as_ref() {
            Object::Listener(l) => Some(l),
            _ => None,
        })
        .collect();
    let listener = match &query.listener {
        Some(name) => {
            *listeners
                .iter()
                .find(|l| &l.name == name)
                .ok_or_else(|| Error::UnknownListener {
                    name: name.clone(),
                    known: listeners.iter().map(|l| l.name.clone()).collect(),
                })?
        }
        None => {
            let http: Vec<&model::Listener> = listeners
                .iter()
                .copied()
                .filter(|l| matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https))
                .collect();
            match http.as_slice() {
                [one] => *one,
                [] => {
                    return Err(Error::NoHttpListener(
                        listeners.iter().map(|l| l.name.clone()).collect(),
                    ));
                }
                many => {
                    return Err(Error::SeveralListeners(
                        many.iter().map(|l| l.name.clone()).collect(),
                    ));
                }
            }
        }
    };
    let tls_listener = matches!(
        listener.protocol,
        ListenerProtocol::Https | ListenerProtocol::TlsPassthrough
    );
    let host_sni = || Some(host_without_port(&query.host).to_owned());
    let sni = match (query.scheme, &query.sni) {
        (Some(Scheme::Http), Some(_)) => return Err(Error::PlainTextSni),
        (Some(Scheme::Http), None) => None,
        (_, Some(sni)) => Some(sni.clone()),
        (Some(Scheme::Https), None) => host_sni(),
        (None, None) => tls_listener.then(host_sni).flatten(),
    };
    let mut r =
        oracle::Request::new(&listener.name, &query.host, &query.path).method(&query.method);
    r.sni = sni;
    for (name, value) in &query.headers {
        r = r.header(name, value);
    }
    Ok(r)
}

/// `example.com:8443` without its port (an IPv6 literal is left as it is).
fn host_without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Loads and compiles the files: the compilation and the warnings as text, or, when there is
/// an error, the output that reports it.
fn compile(paths: &[PathBuf], options: &LoadOptions) -> Result<(Compiled, String), Output> {
    let (_, compiled, report) = commands::compile(paths, options);
    let mut stderr = commands::diagnostics_text(&report);
    if report.iter().any(Diagnostic::is_error) {
        stderr.push_str("error: the configuration has errors; fix them to get an answer\n");
        return Err(Output {
            stdout: String::new(),
            stderr,
            code: EXIT_INVALID,
        });
    }
    Ok((compiled, stderr))
}

fn evaluate(compiled: &Compiled, query: &Query) -> Result<(oracle::Request, Outcome), Error> {
    let r = request(compiled.model(), query)?;
    let outcome = oracle::evaluate(compiled.snapshot(), &r)?;
    Ok((r, outcome))
}

/// `xdsc-file explain`: where `query` goes with the configuration in `paths`, and why (the
/// filter chain, the virtual host and the domain that chose it, each route skipped and why,
/// the route that matched and its action).
///
/// Exits 0 with an answer, "no route: 404" included; 1 when the files have errors (printed to
/// standard error) or the oracle cannot evaluate the configuration; 2 when the request is at
/// fault (an unknown listener, none named among several, an SNI over plain text).
///
/// ```
/// use xdsc_file::oracle::{explain, Format, Query};
/// let dir = std::env::temp_dir().join(format!("xdsc-explain-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("m.yaml"), "kind: Listener\nname: http\nport: 8080\n---
/// kind: VirtualHost\nname: site\nlisteners: [http]\ndomains: [example.com]
/// routes:\n- name: hello\n  direct_response: {status: 200, body: hi}\n").unwrap();
/// let out = explain(&[dir.clone()], &Default::default(), &Query::new("example.com", "/"), Format::Text);
/// assert_eq!(out.code, 0, "{}", out.stderr);
/// assert!(out.stdout.contains("route \"hello\" matches\n=> answer 200 with body \"hi\""), "{}", out.stdout);
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn explain(paths: &[PathBuf], options: &LoadOptions, query: &Query, format: Format) -> Output {
    let (compiled, mut stderr) = match compile(paths, options) {
        Ok(c) => c,
        Err(out) => return out,
    };
    match evaluate(&compiled, query) {
        Ok((r, outcome)) => Output {
            stdout: match format {
                Format::Text => text(&r, query.listener.is_none(), &outcome),
                Format::Json => json(&r, query.listener.is_none(), &outcome),
            },
            stderr,
            code: EXIT_OK,
        },
        Err(e) => {
            stderr.push_str(&format!("error: {e}\n"));
            Output {
                stdout: String::new(),
                stderr,
                code: e.code(),
            }
        }
    }
}

fn scheme(r: &oracle::Request) -> &'static str {
    if r.sni.is_some() { "https" } else { "http" }
}

/// The request on one line, then the oracle's explanation and action. `default_listener`:
/// the listener was not named but taken as the only HTTP one.
fn text(r: &oracle::Request, default_listener: bool, outcome: &Outcome) -> String {
    let mut out = format!(
        "{} {}://{}{} on listener {:?}",
        r.method,
        scheme(r),
        r.host,
        r.path,
        r.listener
    );
    if default_listener {
        out.push_str(" (the only HTTP or HTTPS listener)");
    }
    if let Some(sni) = &r.sni {
        out.push_str(&format!(" with server name {sni:?}"));
    }
    for (name, value) in &r.headers {
        out.push_str(&format!(", {name}: {value}"));
    }
    out.push_str(&format!("\n{outcome}\n"));
    out
}

#[derive(Serialize)]
struct View<'a> {
    request: RequestView<'a>,
    filter_chain: Option<ChainView<'a>>,
    route_configuration: Option<&'a str>,
    host: Option<&'a str>,
    virtual_host: Option<VirtualHostView<'a>>,
    skipped: Vec<SkippedView<'a>>,
    route: Option<&'a str>,
    action: ActionView<'a>,
    explanation: Vec<String>,
}

#[derive(Serialize)]
struct RequestView<'a> {
    listener: &'a str,
    default_listener: bool,
    scheme: &'static str,
    sni: Option<&'a str>,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    headers: Vec<HeaderView<'a>>,
}

#[derive(Serialize)]
struct HeaderView<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct ChainView<'a> {
    index: Option<usize>,
    name: &'a str,
    matched_by: &'static str,
    server_name: Option<&'a str>,
}

#[derive(Serialize)]
struct VirtualHostView<'a> {
    name: &'a str,
    domain: &'a str,
    matched_by: &'static str,
}

#[derive(Serialize)]
struct SkippedView<'a> {
    route: &'a str,
    criterion: &'static str,
    reason: String,
}

#[derive(Serialize)]
struct ClusterView<'a> {
    name: &'a str,
    weight: u32,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ActionView<'a> {
    Forward {
        clusters: Vec<ClusterView<'a>>,
        path: &'a str,
        host: &'a str,
    },
    Redirect {
        status: u16,
        location: &'a str,
    },
    DirectResponse {
        status: u16,
        body: Option<&'a str>,
        location: Option<&'a str>,
    },
    NotFound {
        status: u16,
    },
    BadRequest {
        status: u16,
    },
    TcpProxy {
        clusters: Vec<ClusterView<'a>>,
    },
    Closed,
}

fn cluster_views(clusters: &[(String, u32)]) -> Vec<ClusterView<'_>> {
    clusters
        .iter()
        .map(|(name, weight)| ClusterView {
            name,
            weight: *weight,
        })
        .collect()
}

fn action_view(action: &Action) -> ActionView<'_> {
    match action {
        Action::Forward {
            clusters,
            path,
            host,
        } => ActionView::Forward {
            clusters: cluster_views(clusters),
            path,
            host,
        },
        Action::Redirect { location, status } => ActionView::Redirect {
            status: *status,
            location,
        },
        Action::Direct {
            status,
            body,
            location,
        } => ActionView::DirectResponse {
            status: *status,
            body: body.as_deref(),
            location: location.as_deref(),
        },
        Action::NotFound => ActionView::NotFound { status: 404 },
        Action::BadRequest => ActionView::BadRequest { status: 400 },
        Action::TcpProxy { clusters } => ActionView::TcpProxy {
            clusters: cluster_views(clusters),
        },
        Action::Closed => ActionView::Closed,
    }
}

/// The answer as one JSON object: the request, each part of the explanation as a field, the
/// action, and the explanation's lines.
fn json(r: &oracle::Request, default_listener: bool, outcome: &Outcome) -> String {
    let mut view = View {
        request: RequestView {
            listener: &r.listener,
            default_listener,
            scheme: scheme(r),
            sni: r.sni.as_deref(),
            method: &r.method,
            host: &r.host,
            path: &r.path,
            headers: r
                .headers
                .iter()
                .map(|(name, value)| HeaderView { name, value })
                .collect(),
        },
        filter_chain: None,
        route_configuration: None,
        host: None,
        virtual_host: None,
        skipped: Vec::new(),
        route: outcome.route.as_deref(),
        action: action_view(&outcome.action),
        explanation: outcome
            .explanation
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    for step in &outcome.explanation {
        match step {
            Step::FilterChain { index, name, why } => {
                let (matched_by, server_name) = match why {
                    ChainMatch::ServerName(s) => ("server_name", Some(s.as_str())),
                    ChainMatch::Wildcard(w) => ("wildcard_server_name", Some(w.as_str())),
                    ChainMatch::AnyServerName => ("any_server_name", None),
                    ChainMatch::Default => ("default_chain", None),
                };
                view.filter_chain = Some(ChainView {
                    index: *index,
                    name,
                    matched_by,
                    server_name,
                });
            }
            Step::RouteConfiguration { name } => view.route_configuration = Some(name),
            Step::Host { host } => view.host = Some(host),
            Step::VirtualHost { name, domain, how } => {
                view.virtual_host = Some(VirtualHostView {
                    name,
                    domain,
                    matched_by: match how {
                        DomainMatch::Exact => "exact",
                        DomainMatch::Suffix => "suffix_wildcard",
                        DomainMatch::Prefix => "prefix_wildcard",
                        DomainMatch::Any => "any",
                    },
                });
            }
            Step::Skipped { route, why } => view.skipped.push(SkippedView {
                route,
                criterion: match why {
                    Mismatch::Path { .. } => "path",
                    Mismatch::Header { .. } => "header",
                    Mismatch::Query { .. } => "query",
                },
                reason: why.to_string(),
            }),
            _ => {}
        }
    }
    serde_json::to_string_pretty(&view).unwrap_or_default() + "\n"
}

/// The fields a case's `expect` may hold.
const EXPECT_FIELDS: &str = "cluster, clusters, virtual_host, route, status, redirect, path, host";

/// One case of a cases file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    host: String,
    path: String,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    listener: Option<String>,
    #[serde(default)]
    sni: Option<String>,
    #[serde(default)]
    scheme: Option<Scheme>,
    expect: Expect,
}

fn get() -> String {
    "GET".to_owned()
}

/// What a case expects; each field given is compared, the others are not.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The single cluster forwarded to.
    cluster: Option<String>,
    /// The weighted clusters forwarded to, name to weight.
    clusters: Option<BTreeMap<String, u32>>,
    virtual_host: Option<String>,
    route: Option<String>,
    /// A redirect's or direct response's status, 404 for no route, 400 for a bad request.
    status: Option<u16>,
    /// A redirect's `Location`.
    redirect: Option<String>,
    /// The path sent upstream, after rewrites.
    path: Option<String>,
    /// The host sent upstream, after rewrites.
    host: Option<String>,
}

impl Case {
    fn query(&self) -> Query {
        Query {
            host: self.host.clone(),
            path: self.path.clone(),
            method: self.method.clone(),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
            listener: self.listener.clone(),
            sni: self.sni.clone(),
            scheme: self.scheme,
        }
    }
}

/// The cases of a cases file (every YAML document in it is a list of cases), or every
/// problem with them, each at its file, line and column.
fn parse_cases(file: &Path, text: &str) -> Result<Vec<Case>, Vec<Diagnostic>> {
    let error = |pos: Pos, object: Option<Subject>, field: FieldPath, message: String| Diagnostic {
        severity: Severity::Error,
        location: Some(Location {
            file: file.to_owned(),
            pos: Some(pos),
        }),
        object,
        from: Vec::new(),
        field,
        problem: Problem::Invalid(message),
    };
    let docs = yaml::parse(text).map_err(|e| {
        vec![error(
            e.pos,
            None,
            FieldPath::default(),
            format!("invalid YAML: {}", e.message),
        )]
    })?;
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for doc in &docs {
        let Value::Array(items) = &doc.value else {
            errors.push(error(
                doc.start,
                None,
                FieldPath::default(),
                "a cases file is a list of cases (`- name: ...`)".into(),
            ));
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let object = item
                .get("name")
                .and_then(Value::as_str)
                .map(|n| Subject::Other(format!("case {n:?}")));
            let at = |path: &FieldPath| {
                let mut full = vec![Segment::Index(i)];
                full.extend_from_slice(path.segments());
                doc.position(&full)
            };
            match yaml::typed::<Case>(item.clone()) {
                Err((path, message)) => {
                    errors.push(error(at(&path), object, path, message));
                }
                Ok(c) if c.expect == Expect::default() => errors.push(error(
                    at(&"expect".to_field_path()),
                    object,
                    "expect".to_field_path(),
                    format!("expects nothing; give at least one of {EXPECT_FIELDS}"),
                )),
                Ok(c) if !names.insert(c.name.clone()) => errors.push(error(
                    at(&"name".to_field_path()),
                    object,
                    "name".to_field_path(),
                    "another case has this name".into(),
                )),
                Ok(c) => cases.push(c),
            }
        }
    }
    if errors.is_empty() && cases.is_empty() {
        errors.push(error(
            Pos { line: 1, column: 1 },
            None,
            FieldPath::default(),
            "no cases".into(),
        ));
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Clusters and weights, sorted by name: `{"a": 90, "b": 10}`.
fn weights<'a>(clusters: impl IntoIterator<Item = (&'a str, u32)>) -> String {
    let sorted: BTreeMap<&str, u32> = clusters.into_iter().collect();
    let items: Vec<String> = sorted.iter().map(|(c, w)| format!("{c:?}: {w}")).collect();
    format!("{{{}}}", items.join(", "))
}

/// The status Envoy answers with itself, if it does.
fn status(action: &Action) -> Option<u16> {
    match action {
        Action::Redirect { status, .. } | Action::Direct { status, .. } => Some(*status),
        Action::NotFound => Some(404),
        Action::BadRequest => Some(400),
        Action::Forward { .. } | Action::TcpProxy { .. } | Action::Closed => None,
    }
}

/// Each expectation `outcome` does not meet, as `expected X, got Y`.
fn compare(expect: &Expect, outcome: &Outcome) -> Vec<String> {
    let mut fails = Vec::new();
    let mut check = |what: &str, want: Option<String>, got: String| {
        if let Some(want) = want
            && want != got
        {
            fails.push(format!("expected {what} {want}, got {got}"));
        }
    };
    let action = outcome.action.to_string();
    let clusters = match &outcome.action {
        Action::Forward { clusters, .. } | Action::TcpProxy { clusters } => Some(clusters),
        _ => None,
    };
    let pairs = |c: &'_ [(String, u32)]| weights(c.iter().map(|(n, w)| (n.as_str(), *w)));
    let forward = match &outcome.action {
        Action::Forward { path, host, .. } => Some((path, host)),
        _ => None,
    };
    check(
        "virtual_host",
        expect.virtual_host.as_deref().map(quote),
        outcome
            .virtual_host
            .as_deref()
            .map_or_else(|| "no virtual host".to_owned(), quote),
    );
    check(
        "route",
        expect.route.as_deref().map(quote),
        outcome
            .route
            .as_deref()
            .map_or_else(|| "no route".to_owned(), quote),
    );
    check(
        "cluster",
        expect.cluster.as_deref().map(quote),
        match clusters.map(Vec::as_slice) {
            Some([(one, _)]) => quote(one),
            Some(many) => format!("clusters {}", pairs(many)),
            None => action.clone(),
        },
    );
    check(
        "clusters",
        expect
            .clusters
            .as_ref()
            .map(|c| weights(c.iter().map(|(n, w)| (n.as_str(), *w)))),
        clusters.map_or_else(|| action.clone(), |c| pairs(c)),
    );
    check(
        "status",
        expect.status.map(|s| s.to_string()),
        status(&outcome.action).map_or_else(|| action.clone(), |s| s.to_string()),
    );
    check(
        "redirect",
        expect.redirect.as_deref().map(quote),
        match &outcome.action {
            Action::Redirect { location, .. } => quote(location),
            _ => action.clone(),
        },
    );
    check(
        "path",
        expect.path.as_deref().map(quote),
        forward.map_or_else(|| action.clone(), |(path, _)| quote(path)),
    );
    check(
        "host",
        expect.host.as_deref().map(quote),
        forward.map_or_else(|| action.clone(), |(_, host)| quote(host)),
    );
    fails
}

/// `xdsc-file test`: runs every case of the cases file `cases` against the configuration in
/// `paths`, printing `ok NAME` or `FAIL NAME: expected X, got Y` for each and then
/// `N passed, M failed`.
///
/// Exits 0 when every case passes; 1 when one fails, when the cases file is invalid (each
/// problem printed at its file:line:column, and no case run) or the files have errors; 3 when
/// the cases file cannot be read.
///
/// ```
/// use xdsc_file::oracle::test;
/// let out = test(&[], &Default::default(), "/nonexistent/cases.yaml".as_ref());
/// assert_eq!(out.code, xdsc_file::commands::EXIT_FAILURE);
/// assert!(out.stderr.contains("cannot read /nonexistent/cases.yaml"));
/// ```
pub fn test(paths: &[PathBuf], options: &LoadOptions, cases: &Path) -> Output {
    let fail = |stderr: String, code: u8| Output {
        stdout: String::new(),
        stderr,
        code,
    };
    let text = match crate::load::read(cases) {
        Ok(t) => t,
        Err(e) => return fail(format!("error: {e}\n"), EXIT_FAILURE),
    };
    let cases = match parse_cases(cases, &text) {
        Ok(c) => c,
        Err(problems) => return fail(commands::diagnostics_text(&problems), EXIT_INVALID),
    };
    let (compiled, stderr) = match compile(paths, options) {
        Ok(c) => c,
        Err(out) => return out,
    };
    let mut stdout = String::new();
    let mut failed = 0;
    for case in &cases {
        let fails = match evaluate(&compiled, &case.query()) {
            Ok((_, outcome)) => compare(&case.expect, &outcome),
            Err(e) => vec![format!("error: {e}")],
        };
        if fails.is_empty() {
            stdout.push_str(&format!("ok {}\n", case.name));
        } else {
            failed += 1;
            stdout.push_str(&format!("FAIL {}: {}\n", case.name, fails.join("; ")));
        }
    }
    stdout.push_str(&format!(
        "{} passed, {failed} failed\n",
        cases.len() - failed
    ));
    Output {
        stdout,
        stderr,
        code: if failed == 0 { EXIT_OK } else { EXIT_INVALID },
    }
}
