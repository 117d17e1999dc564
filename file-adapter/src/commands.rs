//! The one-shot commands: `check`, `render` and `schema` (`explain` and `test` are in
//! [`crate::oracle`]). Each returns what to print and an exit code, so the binary stays a thin
//! shell and the commands are tested without it.
//!
//! What every command shares lives here too ([`Output`], the exit codes, [`Format`],
//! [`compile`]): `oracle` builds on this module, never the other way round.

use std::path::PathBuf;

use xdsc_core::compile::Compiled;
use xdsc_core::render::{BootstrapOptions, bootstrap_json};
use xdsc_kube::translate::KubeKind;

use crate::load::{self, Diagnostic, LoadOptions, Loaded};

/// The exit code for success.
pub const EXIT_OK: u8 = 0;
/// The exit code when the input has errors (or, for `test`, a case fails).
pub const EXIT_INVALID: u8 = 1;
/// The exit code for a command line that does not parse (clap's).
pub const EXIT_USAGE: u8 = 2;
/// The exit code when something outside the input failed (an address in use, I/O).
pub const EXIT_FAILURE: u8 = 3;

/// How `check` and `explain` print their answer (`--output`).
///
/// ```
/// use xdsc_file::commands::Format;
/// assert_eq!(Format::default(), Format::Text);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// What a command printed and how it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit code.
    pub code: u8,
}

/// Loads and compiles `paths`: the compilation and every diagnostic, placed at its file.
pub fn compile(paths: &[PathBuf], options: &LoadOptions) -> (Loaded, Compiled, Vec<Diagnostic>) {
    let loaded = load::load(paths, options);
    let compiled = Compiled::new(&loaded.model());
    let report = loaded.report(&compiled);
    (loaded, compiled, report)
}

pub(crate) fn diagnostics_text(report: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in report {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

/// `xdsc-file check`: every error and warning, one a line, each naming file, line, column,
/// object and field (standard error), and the status the Kubernetes objects would get
/// (standard output); exit 1 when any diagnostic is an error. See [`check_as`].
///
/// ```
/// use xdsc_file::commands::{check, EXIT_INVALID};
/// let out = check(&["/nonexistent".into()], &Default::default());
/// assert_eq!(out.code, EXIT_INVALID);
/// assert!(out.stderr.contains("/nonexistent: cannot read"));
/// ```
pub fn check(paths: &[PathBuf], options: &LoadOptions) -> Output {
    check_as(paths, options, Format::Text)
}

/// `xdsc-file check --output FORMAT`. Text: diagnostics and the summary on standard error,
/// the computed status on standard output, one line per object part (`Gateway ns/name
/// (file:line): listener http: Accepted=True Accepted; ...`). JSON: one object on standard
/// output, `{"diagnostics": [...], "statuses": [{"kind", "namespace", "name", "origin",
/// "status"}], "summary": {...}}`, each `status` in the shape the API server holds it
/// (Gateway API conditions without `lastTransitionTime`, which the writer sets).
///
/// ```
/// use xdsc_file::commands::{check_as, Format};
/// let out = check_as(&["/nonexistent".into()], &Default::default(), Format::Json);
/// let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
/// assert_eq!(v["summary"]["errors"], 1);
/// ```
pub fn check_as(paths: &[PathBuf], options: &LoadOptions, format: Format) -> Output {
    let (loaded, compiled, report) = compile(paths, options);
    let errors = report.iter().filter(|d| d.is_error()).count();
    let code = if errors > 0 { EXIT_INVALID } else { EXIT_OK };
    let origin = |id: &xdsc_kube::translate::ObjectRef| loaded.kube.origin(id).map(str::to_owned);
    if format == Format::Json {
        let controller = &options.kube.gateway_controller;
        let diagnostics: Vec<serde_json::Value> = report
            .iter()
            .map(|d| {
                serde_json::json!({
                    "severity": if d.is_error() { "error" } else { "warning" },
                    "location": d.location.as_ref().map(ToString::to_string),
                    "object": d.object.as_ref().map(ToString::to_string),
                    "field": d.field.to_string(),
                    "message": d.problem.to_string(),
                })
            })
            .collect();
        let statuses: Vec<serde_json::Value> = loaded
            .statuses
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "kind": id.kind, "namespace": id.namespace, "name": id.name,
                    "origin": origin(id), "status": KubeKind::named(&id.kind).map(|k| s.to_json(k, controller)),
                })
            })
            .collect();
        let v = serde_json::json!({
            "diagnostics": diagnostics,
            "statuses": statuses,
            "summary": {
                "files": loaded.files.len(), "objects": loaded.objects.len(),
                "resources": compiled.snapshot().len(),
                "snapshot": compiled.snapshot().version().to_string(),
                "errors": errors, "warnings": report.len() - errors,
            },
        });
        let mut stdout = serde_json::to_string_pretty(&v).unwrap_or_default();
        stdout.push('\n');
        return Output {
            stdout,
            stderr: String::new(),
            code,
        };
    }
    let mut stderr = diagnostics_text(&report);
    stderr.push_str(&format!(
        "{} file(s), {} object(s), {} resource(s), snapshot {}: {} error(s), {} warning(s)\n",
        loaded.files.len(),
        loaded.objects.len(),
        compiled.snapshot().len(),
        compiled.snapshot().version(),
        errors,
        report.len() - errors
    ));
    let mut stdout = String::new();
    for (id, s) in &loaded.statuses {
        let who = match origin(id) {
            Some(o) => format!("{id} ({o})"),
            None => id.to_string(),
        };
        for line in s.text_lines() {
            stdout.push_str(&format!("{who}: {line}\n"));
        }
    }
    Output {
        stdout,
        stderr,
        code,
    }
}

/// `xdsc-file render`: the snapshot as an Envoy bootstrap with static resources (what
/// `envoy --mode validate -c FILE` checks), for a node of `fleet`. The bootstrap of what
/// compiles is printed even when there are errors; the exit code says whether there were.
pub fn render(paths: &[PathBuf], options: &LoadOptions, fleet: &str, admin_port: u16) -> Output {
    let (_, compiled, report) = compile(paths, options);
    let mut out = Output {
        stderr: diagnostics_text(&report),
        code: if report.iter().any(Diagnostic::is_error) {
            EXIT_INVALID
        } else {
            EXIT_OK
        },
        ..Output::default()
    };
    let options = BootstrapOptions {
        node_cluster: fleet.to_owned(),
        admin_port,
        ..BootstrapOptions::default()
    };
    match bootstrap_json(compiled.snapshot(), &options) {
        Ok(json) => {
            out.stdout = serde_json::to_string_pretty(&json).unwrap_or_default();
            out.stdout.push('\n');
        }
        Err(e) => {
            out.stderr
                .push_str(&format!("error: cannot render the snapshot: {e}\n"));
            out.code = EXIT_INVALID;
        }
    }
    out
}

/// `xdsc-file schema`: the JSON Schema of native documents.
pub fn schema() -> Output {
    Output {
        stdout: serde_json::to_string_pretty(&crate::schema::document_schema()).unwrap_or_default()
            + "\n",
        ..Output::default()
    }
}
