//! `xdsc-file render`: the same folder given with its files in different orders prints
//! byte-identical output, and the real Envoy's `--mode validate` accepts it.

use std::path::{Path, PathBuf};

use xdsc_test_support::{find_envoy, validate};

use crate::support::bin;

fn render(args: &[PathBuf]) -> String {
    let out = bin().arg("render").args(args).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn check_folder(dir: &Path) {
    let mut forward = files(dir);
    assert!(forward.len() >= 2, "{} has several files", dir.display());
    let whole = render(&[dir.to_owned()]);
    let a = render(&forward);
    forward.reverse();
    let b = render(&forward);
    forward.rotate_left(1);
    let c = render(&forward);
    assert_eq!(whole, a, "the folder and its files give the same bootstrap");
    assert_eq!(a, b, "file order does not matter");
    assert_eq!(a, c, "file order does not matter");
    assert!(a.contains("static_resources"));

    let Some(envoy) = find_envoy() else { return };
    if let Err(e) = validate(&envoy, a.as_bytes()) {
        panic!("the bootstrap of {}: {e}", dir.display());
    }
}

#[test]
fn native_models_render_deterministically_and_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    check_folder(&root.join("examples/models"));
    check_folder(&root.join("examples/quickstart/config"));
}

#[test]
fn kubernetes_manifests_render_deterministically_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/k8s");
    check_folder(&dir);
    let out = render(&[dir]);
    // The Ingress, its TLS host, the wildcard rule and the Gateway's shifted port are there.
    for want in [
        "k8s:ingress-http",
        "k8s:ingress-https",
        "shop.example.com",
        "port_value\": 10080",
        "store.example.org",
    ] {
        assert!(out.contains(want), "{want} missing from the bootstrap");
    }
}
