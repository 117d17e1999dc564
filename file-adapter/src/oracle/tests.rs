//! Tests of explain and test: listener choice, expectations, cases files.

use super::*;

use xdsc_core::model::{Listener, Model};

/// The shop of `tests/data/oracle/model.yaml`, compiled.
fn shop() -> Compiled {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oracle/model.yaml");
    let (compiled, warnings) =
        compile(&[model], &LoadOptions::default()).expect("the shop compiles");
    assert_eq!(warnings, "");
    compiled
}

/// Runs one case written in YAML against the shop: its failures, or its problems as a case.
fn check_case(case: &str) -> Vec<String> {
    let cases = parse_cases(Path::new("cases.yaml"), case).expect("a valid case");
    let [case] = <[Case; 1]>::try_from(cases).expect("one case");
    match evaluate(&shop(), &case.query()) {
        Ok((_, outcome)) => compare(&case.expect, &outcome),
        Err(e) => vec![format!("error: {e}")],
    }
}

/// The problems of an invalid cases file, as text.
fn check_invalid(text: &str) -> Vec<String> {
    let problems = parse_cases(Path::new("cases.yaml"), text).expect_err("an invalid file");
    problems.iter().map(ToString::to_string).collect()
}

fn listeners(listeners: &[(&str, ListenerProtocol)]) -> Model {
    Model::from_objects(listeners.iter().map(|(name, protocol)| {
        let mut l = Listener::new(*name, 8080);
        l.protocol = *protocol;
        Object::Listener(l)
    }))
}

#[test]
fn the_only_http_listener_is_the_default() {
    let model = listeners(&[
        ("tcp", ListenerProtocol::Tcp),
        ("web", ListenerProtocol::Http),
    ]);
    let r = request(&model, &Query::new("example.com", "/")).unwrap();
    assert_eq!(r.listener, "web");
}

#[test]
fn several_http_listeners_must_be_chosen_from() {
    let model = listeners(&[
        ("a", ListenerProtocol::Http),
        ("b", ListenerProtocol::Https),
    ]);
    let err = request(&model, &Query::new("example.com", "/")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "several HTTP and HTTPS listeners: a, b; name one"
    );
    assert_eq!(err.code(), EXIT_USAGE);
    let mut q = Query::new("example.com", "/");
    q.listener = Some("c".into());
    let err = request(&model, &q).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"no listener "c"; the listeners are: a, b"#
    );
}

#[test]
fn https_sends_the_host_without_port_as_server_name() {
    let model = listeners(&[("tls", ListenerProtocol::Https)]);
    let mut q = Query::new("a.example.com:8443", "/");
    q.scheme = Some(Scheme::Https);
    assert_eq!(
        request(&model, &q).unwrap().sni.as_deref(),
        Some("a.example.com")
    );
    q.sni = Some("b.example.com".into());
    assert_eq!(
        request(&model, &q).unwrap().sni.as_deref(),
        Some("b.example.com")
    );
    q.scheme = Some(Scheme::Http);
    assert_eq!(request(&model, &q).unwrap_err(), Error::PlainTextSni);
    q.scheme = None;
    q.sni = None;
    assert_eq!(
        request(&model, &q).unwrap().sni.as_deref(),
        Some("a.example.com"),
        "an https listener is spoken to in TLS by default"
    );
    let model = listeners(&[("web", ListenerProtocol::Http)]);
    assert_eq!(request(&model, &q).unwrap().sni, None);
    q.scheme = Some(Scheme::Https);
    assert!(request(&model, &q).unwrap().sni.is_some());
}

#[test]
fn passing_expectations_report_nothing() {
    let fails = check_case(
        "- name: v2\n  host: shop.example.com\n  path: /api/a?b=c\n  headers: {X-Version: '2'}
  expect: {virtual_host: shop, route: api, cluster: api, clusters: {api: 1}, path: /v2/a?b=c, host: shop.example.com}\n",
    );
    assert_eq!(fails, Vec::<String>::new());
}

#[test]
fn weighted_clusters_are_not_one_cluster() {
    let fails = check_case(
        "- {name: w, host: shop.example.com, path: /, expect: {cluster: web-v1, clusters: {web-v1: 50, web-v2: 50}}}",
    );
    assert_eq!(
        fails,
        [
            r#"expected cluster "web-v1", got clusters {"web-v1": 90, "web-v2": 10}"#,
            r#"expected clusters {"web-v1": 50, "web-v2": 50}, got {"web-v1": 90, "web-v2": 10}"#,
        ]
    );
}

#[test]
fn a_redirect_has_a_status_and_a_location_but_no_cluster() {
    let fails = check_case(
        "- {name: r, host: shop.example.com, path: /old, expect: {status: 302, redirect: /new, cluster: web, path: /new}}",
    );
    let got = "redirect 301 to http://shop.example.com/new";
    assert_eq!(
        fails,
        [
            format!("expected cluster \"web\", got {got}"),
            "expected status 302, got 301".to_owned(),
            r#"expected redirect "/new", got "http://shop.example.com/new""#.to_owned(),
            format!("expected path \"/new\", got {got}"),
        ]
    );
}

#[test]
fn no_virtual_host_is_status_404() {
    let fails = check_case(
        "- {name: n, host: example.org, path: /, expect: {status: 404, virtual_host: shop, route: web}}",
    );
    assert_eq!(
        fails,
        [
            r#"expected virtual_host "shop", got no virtual host"#,
            r#"expected route "web", got no route"#,
        ]
    );
}

#[test]
fn a_forward_has_no_status() {
    let fails = check_case("- {name: f, host: shop.example.com, path: /, expect: {status: 200}}");
    assert_eq!(fails.len(), 1);
    assert!(
        fails[0]
            .starts_with(r#"expected status 200, got forward to clusters "web-v1" (weight 90)"#),
        "{fails:?}"
    );
}

#[test]
fn a_case_naming_an_unknown_listener_fails() {
    let fails = check_case(
        "- {name: l, host: shop.example.com, path: /, listener: https, expect: {status: 200}}",
    );
    assert_eq!(
        fails,
        [r#"error: no listener "https"; the listeners are: http"#]
    );
}

#[test]
fn unknown_fields_are_errors_at_their_line() {
    let problems = check_invalid(
        "- name: ok\n  host: a\n  path: /\n  expect: {status: 200}\n- name: typo\n  host: a\n  path: /\n  expect:\n    clsuter: web\n",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            r#"error: cases.yaml:9:5: case "typo": expect.clsuter: unknown field `clsuter`"#
        ),
        "{problems:?}"
    );
    let problems = check_invalid("- {name: a, host: a, path: /, expect: {}, timeout: 5s}\n");
    assert!(
        problems[0]
            .starts_with(r#"error: cases.yaml:1:43: case "a": timeout: unknown field `timeout`"#),
        "{problems:?}"
    );
}

#[test]
fn a_case_must_expect_something_and_be_named_once() {
    let problems = check_invalid(
        "- {name: a, host: a, path: /, expect: {}}\n- {name: b, host: a, path: /, expect: {status: 1}}\n- {name: b, host: a, path: /, expect: {status: 1}}\n",
    );
    assert_eq!(
        problems,
        [
            format!(
                r#"error: cases.yaml:1:31: case "a": expect: expects nothing; give at least one of {EXPECT_FIELDS}"#
            ),
            r#"error: cases.yaml:3:4: case "b": name: another case has this name"#.to_owned(),
        ]
    );
}

#[test]
fn a_cases_file_is_a_list() {
    assert_eq!(
        check_invalid("name: a\nhost: a\n"),
        ["error: cases.yaml:1:1: a cases file is a list of cases (`- name: ...`)"]
    );
    assert_eq!(
        check_invalid("# nothing\n"),
        ["error: cases.yaml:1:1: no cases"]
    );
    let syntax = check_invalid("- [");
    assert!(syntax[0].contains("invalid YAML"), "{syntax:?}");
}

#[test]
fn json_names_the_wildcard_and_each_skipped_route() {
    let mut q = Query::new("www.shop.example.com", "/api/x");
    q.headers.push(("x-version".into(), "1".into()));
    let (r, outcome) = evaluate(&shop(), &q).unwrap();
    let v: Value = serde_json::from_str(&json(&r, true, &outcome)).unwrap();
    assert_eq!(v["virtual_host"]["matched_by"], "suffix_wildcard");
    assert_eq!(v["virtual_host"]["domain"], "*.shop.example.com");
    assert_eq!(v["filter_chain"]["matched_by"], "any_server_name");
    assert_eq!(v["route"], "web");
    assert_eq!(v["action"]["type"], "forward");
    assert_eq!(v["action"]["clusters"][1]["weight"], 10);
    assert_eq!(v["request"]["headers"][0]["value"], "1");
    assert_eq!(v["request"]["default_listener"], true);
    let skipped: Vec<(&str, &str)> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["route"].as_str().unwrap(),
                s["criterion"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [("health", "path"), ("old", "path"), ("api", "header")]
    );
    assert_eq!(
        v["skipped"][2]["reason"],
        r#"header x-version: "1" does not match exact "2""#
    );
}
