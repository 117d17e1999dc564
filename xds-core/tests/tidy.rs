//! Repository hygiene that the compiler does not check: every Rust source file of the
//! workspace starts with a `//!` doc comment saying what it is for.

// Tests read fixtures and run Envoy: the I/O bans of xdsc-core are for the library.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_rust_file_starts_with_module_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut files = Vec::new();
    for dir in [
        "xds-core",
        "xds-server",
        "kube-adapter",
        "kube-testserver",
        "file-adapter",
        "benches",
        "examples",
        "fuzz",
        "test-support",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 5, "found only {files:?}");
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with("#!["))
                .unwrap_or("");
            !first.starts_with("//!")
                && !f.to_string_lossy().contains("/tests/")
                && !f.ends_with("build.rs")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc comment: {missing:#?}"
    );
}
