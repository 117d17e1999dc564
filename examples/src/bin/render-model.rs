//! Compiles native model files (JSON arrays of model objects) and prints the snapshot as an
//! Envoy bootstrap with static resources, which `envoy --mode validate -c FILE` accepts.
//! Diagnostics go to standard error; the exit code is 1 when any is an error.
//!
//! ```text
//! cargo run -p xdsc-examples --bin render-model -- examples/models/http-basic.json > envoy.json
//! ```

use std::process::ExitCode;

use xdsc_core::compile::Compiled;
use xdsc_core::model::{Model, Object};
use xdsc_core::render::{BootstrapOptions, bootstrap_json};

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: render-model MODEL.json...");
        return ExitCode::from(2);
    }
    let mut objects = Vec::new();
    for p in &paths {
        let parsed = std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Vec<Object>>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(o) => objects.extend(o),
            Err(e) => {
                eprintln!("error: {p}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let compiled = Compiled::new(&Model::from_objects(objects));
    for d in compiled.diagnostics() {
        eprintln!("{d}");
    }
    match bootstrap_json(compiled.snapshot(), &BootstrapOptions::default()) {
        Ok(json) => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    eprintln!(
        "snapshot {} ({} resources)",
        compiled.snapshot().version(),
        compiled.snapshot().len()
    );
    if compiled.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
