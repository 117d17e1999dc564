//! `xdsc-file explain` and `xdsc-file test` end to end: the real binary on the committed shop
//! (`tests/data/oracle/model.yaml` and `cases.yaml`) and on small temporary files.

use std::path::Path;

use crate::support::{Dir, bin, path};

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/oracle")
        .join(name)
        .display()
        .to_string()
}

/// Runs `xdsc-file` with `args`: the exit code, standard output and standard error.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().expect("xdsc-file runs");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

#[test]
fn explain_prints_the_route_and_why_each_earlier_route_was_skipped() {
    let model = data("model.yaml");
    let (code, stdout, stderr) = run(&[
        "explain",
        &model,
        "--host",
        "www.shop.example.com:8080",
        "--path",
        "/api/orders",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        r#"GET http://www.shop.example.com:8080/api/orders on listener "http" (the only HTTP or HTTPS listener)
filter chain #0: no server names required
route configuration "http"
host "www.shop.example.com"
virtual host "shop": suffix wildcard "*.shop.example.com"
route "health" skipped: path "/api/orders" does not match path "/healthz"
route "old" skipped: path "/api/orders" does not match path "/old"
route "api" skipped: header x-version is absent, wanted exact "2"
route "web" matches
=> forward to clusters "web-v1" (weight 90), "web-v2" (weight 10) with path "/api/orders" and host "www.shop.example.com"
"#
    );
}

#[test]
fn explain_json_has_the_rewrite_and_the_skipped_routes() {
    let model = data("model.yaml");
    let args = [
        "explain",
        &model,
        "--host",
        "shop.example.com",
        "--path",
        "/api/orders",
        "--header",
        "x-version=2",
        "--output",
        "json",
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["route"], "api");
    assert_eq!(v["virtual_host"]["matched_by"], "exact");
    assert_eq!(v["action"]["path"], "/v2/orders");
    assert_eq!(v["action"]["clusters"][0]["name"], "api");
    assert_eq!(v["skipped"].as_array().map(Vec::len), Some(2));
}

#[test]
fn explain_answers_404_for_an_unknown_host_and_exits_0() {
    let model = data("model.yaml");
    let (code, stdout, _) = run(&["explain", &model, "--host", "example.org", "--path", "/"]);
    assert_eq!(code, 0);
    assert!(
        stdout.ends_with("no virtual host for this host\n=> answer 404 (no route)\n"),
        "{stdout}"
    );
}

#[test]
fn explain_refuses_a_configuration_with_errors() {
    let dir = Dir::with_files(
        "oracle",
        &[(
            "m.yaml",
            "kind: Listener\nname: http\nport: 8080\n---\nkind: Cluster\nname: web\nlbb: x\n",
        )],
    );
    let (code, stdout, stderr) = run(&[
        "explain",
        &path(&dir, "m.yaml"),
        "--host",
        "a",
        "--path",
        "/",
    ]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(stderr.contains("m.yaml:7:1: Cluster/web"), "{stderr}");
}

#[test]
fn explain_asks_for_a_listener_among_several() {
    let dir = Dir::with_files(
        "oracle",
        &[(
            "m.yaml",
            "- {kind: Listener, name: public, port: 8080}\n- {kind: Listener, name: internal, port: 9090}\n",
        )],
    );
    let m = path(&dir, "m.yaml");
    let (code, _, stderr) = run(&["explain", &m, "--host", "a", "--path", "/"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("several HTTP and HTTPS listeners: internal, public; name one"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(&[
        "explain",
        &m,
        "--host",
        "a",
        "--path",
        "/",
        "--listener",
        "internal",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("GET http://a/ on listener \"internal\"\n"),
        "{stdout}"
    );
}

#[test]
fn test_passes_the_committed_cases() {
    let (code, stdout, stderr) =
        run(&["test", &data("model.yaml"), "--cases", &data("cases.yaml")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ok old moved\n"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("5 passed, 0 failed"));
}

#[test]
fn test_reports_a_failing_case_and_exits_1() {
    let dir = Dir::with_files(
        "oracle",
        &[(
            "cases.yaml",
            "- {name: health, host: shop.example.com, path: /healthz, expect: {status: 200}}
- {name: api, host: shop.example.com, path: /api, expect: {route: api, cluster: api}}\n",
        )],
    );
    let (code, stdout, _) = run(&[
        "test",
        &data("model.yaml"),
        "--cases",
        &path(&dir, "cases.yaml"),
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        r#"ok health
FAIL api: expected route "api", got "web"; expected cluster "api", got clusters {"web-v1": 90, "web-v2": 10}
1 passed, 1 failed
"#
    );
}

#[test]
fn test_names_the_line_of_an_invalid_case() {
    let dir = Dir::with_files(
        "oracle",
        &[(
            "cases.yaml",
            "- name: fine\n  host: a\n  path: /\n  expect: {status: 404}\n- name: typo\n  host: a\n  path: /\n  expect: {stauts: 404}\n",
        )],
    );
    let cases = path(&dir, "cases.yaml");
    let (code, stdout, stderr) = run(&["test", &data("model.yaml"), "--cases", &cases]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!(
            "{cases}:8:12: case \"typo\": expect.stauts: unknown field `stauts`"
        )),
        "{stderr}"
    );
}

#[test]
fn test_without_a_readable_cases_file_exits_3() {
    let (code, _, stderr) = run(&[
        "test",
        &data("model.yaml"),
        "--cases",
        "/nonexistent/cases.yaml",
    ]);
    assert_eq!(code, 3);
    assert!(
        stderr.contains("cannot read /nonexistent/cases.yaml"),
        "{stderr}"
    );
}
