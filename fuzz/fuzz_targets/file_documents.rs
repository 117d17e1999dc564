//! Bytes -> a config file -> `xdsc-file`'s loader (YAML with positions, native documents and
//! Kubernetes manifests, diagnostics placed at file and line) -> compile -> the report that
//! `xdsc-file check` prints. Nothing may panic, and loading the same file twice gives the
//! same objects and diagnostics.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xdsc_core::compile::Compiled;
use xdsc_file::load::{LoadOptions, load};

/// One file per fuzzing process, rewritten for every input (the loader reads files).
fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("xdsc-fuzz-docs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        dir.join("input.yaml")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = file();
    std::fs::write(path, data).expect("the input file is written");
    let options = LoadOptions::default();
    let loaded = load(std::slice::from_ref(path), &options);
    let compiled = Compiled::new(&loaded.model());
    let report: Vec<String> = loaded
        .report(&compiled)
        .iter()
        .map(ToString::to_string)
        .collect();
    let again = load(std::slice::from_ref(path), &options);
    assert_eq!(loaded.objects, again.objects, "the same file loads the same objects");
    let again: Vec<String> = again
        .report(&Compiled::new(&again.model()))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(report, again, "the same file gets the same report");
    let _ = xdsc_core::render::debug_json(compiled.snapshot());
});
