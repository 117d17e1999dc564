//! `xdsc-file check` on a corpus of bad inputs (`tests/data/bad`): each file says, in
//! `# expect:` lines, what the output must contain. Every one exits 1 (never a panic's 101),
//! and no private key ever reaches the output.

use std::path::Path;

use crate::support::bin;

#[test]
fn every_bad_input_fails_with_a_precise_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus is there");
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let text = String::from_utf8_lossy(&std::fs::read(file).expect("read")).into_owned();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(!expects.is_empty(), "{name} says what it expects");
        let out = bin()
            .args(["check", name])
            .current_dir(&dir)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{name}: exit {:?}, want 1\n{stderr}",
                out.status.code()
            ));
        }
        for want in expects {
            if !stderr.contains(want) {
                failures.push(format!("{name}: missing {want:?} in\n{stderr}"));
            }
        }
        if stderr.contains("inline-key-is-never-printed") {
            failures.push(format!("{name}: a private key reached the output"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn good_examples_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = bin()
        .args(["check", "examples/models"])
        .current_dir(&root)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 error(s)"), "{stderr}");
}
