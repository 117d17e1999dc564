//! Unit tests of the route oracle: one per Envoy rule. Models are compiled with the real
//! compiler; where the compiler never emits an Envoy feature, the compiled route configuration
//! is edited (`edit_routes`) to exercise it.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3 as eroute;
use envoy_types::pb::envoy::r#type::matcher::v3 as ematcher;
use envoy_types::pb::google::protobuf as pb;
use prost::Message;

use super::re2::{full_regex, global_replace};
use super::*;
use crate::compile::Compiled;
use crate::model::*;
use crate::snapshot::Resource;

fn doc(json: &str) -> Vec<Object> {
    serde_json::from_str(json).expect("test model parses")
}

fn snapshot(json: &str) -> Snapshot {
    let mut objects = doc(r#"[{"kind":"Listener","name":"http","port":8080},
            {"kind":"Cluster","name":"web"},{"kind":"Cluster","name":"api"},{"kind":"Cluster","name":"v2"}]"#);
    objects.extend(doc(json));
    let c = Compiled::new(&Model::from_objects(objects));
    assert!(!c.has_errors(), "{:?}", c.diagnostics());
    c.snapshot().clone()
}

/// The snapshot with the `http` route configuration changed by `f`.
fn edit_routes(mut s: Snapshot, f: impl FnOnce(&mut eroute::RouteConfiguration)) -> Snapshot {
    let r = s.get(ResourceType::Route, "http").expect("routes");
    let mut rc = eroute::RouteConfiguration::decode(r.body().clone()).expect("decodes");
    f(&mut rc);
    s.resources_mut(ResourceType::Route)
        .insert(Arc::new(Resource::new(
            ResourceType::Route,
            "http",
            rc.encode_to_vec(),
            vec![],
        )));
    s
}

/// The first route of the first virtual host.
fn first_route(rc: &mut eroute::RouteConfiguration) -> &mut eroute::Route {
    &mut rc.virtual_hosts[0].routes[0]
}

/// The explanation's first steps for a plain request to `example.com` on the `http` listener
/// with a virtual host "site".
const SITE_PRELUDE: &str = r#"filter chain #0: no server names required
route configuration "http"
host "example.com"
virtual host "site": exact domain "example.com"
"#;

/// [`check`] for a request reaching virtual host "site" by its exact domain.
fn check_site(s: &Snapshot, req: Request, rest: &str) {
    check(s, req, &format!("{SITE_PRELUDE}{rest}"));
}

/// The path forwarded upstream (or the action, when it does not forward).
fn upstream_path(s: &Snapshot, req: Request) -> String {
    match evaluate(s, &req).expect("evaluates").action {
        Action::Forward { path, .. } => path,
        other => other.to_string(),
    }
}

/// The only check: evaluates and compares the whole explanation and action.
fn check(s: &Snapshot, req: Request, expect: &str) {
    let got = match evaluate(s, &req) {
        Ok(out) => out.to_string(),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(got.trim(), expect.trim(), "\n--- got:\n{got}\n");
}

fn get(host: &str, path: &str) -> Request {
    Request::new("http", host, path)
}

const SITE: &str = r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
    {"name":"api","match":{"path":{"prefix":"/api"}},"forward":{"backends":[{"cluster":"api"}]}},
    {"name":"web","forward":{"backends":[{"cluster":"web"}]}}]}]"#;

#[test]
fn host_is_case_insensitive_and_its_port_is_stripped() {
    check_site(
        &snapshot(SITE),
        get("EXAMPLE.com:8080", "/api/x"),
        r#"route "api" matches
=> forward to cluster "api" with path "/api/x" and host "EXAMPLE.com""#,
    );
}

#[test]
fn a_port_that_is_not_a_number_is_kept() {
    check(
        &snapshot(SITE),
        get("example.com:http", "/"),
        r#"
filter chain #0: no server names required
route configuration "http"
host "example.com:http"
no virtual host for this host
=> answer 404 (no route)"#,
    );
}

const DOMAINS: &str = r#"[
    {"kind":"VirtualHost","name":"exact","listeners":["http"],"domains":["a.b.example.com"],"routes":[{"name":"r","direct_response":{"status":200,"body":"exact"}}]},
    {"kind":"VirtualHost","name":"short-suffix","listeners":["http"],"domains":["*.example.com"],"routes":[{"name":"r","direct_response":{"status":200,"body":"short-suffix"}}]},
    {"kind":"VirtualHost","name":"long-suffix","listeners":["http"],"domains":["*.b.example.com"],"routes":[{"name":"r","direct_response":{"status":200,"body":"long-suffix"}}]},
    {"kind":"VirtualHost","name":"short-prefix","listeners":["http"],"domains":["a.*"],"routes":[{"name":"r","direct_response":{"status":200,"body":"short-prefix"}}]},
    {"kind":"VirtualHost","name":"long-prefix","listeners":["http"],"domains":["a.b.*"],"routes":[{"name":"r","direct_response":{"status":200,"body":"long-prefix"}}]},
    {"kind":"VirtualHost","name":"any","listeners":["http"],"domains":["*"],"routes":[{"name":"r","direct_response":{"status":200,"body":"any"}}]}]"#;

fn vhost_of(s: &Snapshot, host: &str) -> String {
    let out = evaluate(s, &get(host, "/")).expect("evaluates");
    out.virtual_host.unwrap_or_default()
}

#[test]
fn exact_domain_beats_suffix_beats_prefix_beats_any() {
    let s = snapshot(DOMAINS);
    assert_eq!(vhost_of(&s, "a.b.example.com"), "exact");
    // The longest suffix wildcard wins over a shorter one and over every prefix wildcard.
    assert_eq!(vhost_of(&s, "x.a.b.example.com"), "long-suffix");
    assert_eq!(vhost_of(&s, "a.b.example.org.example.com"), "short-suffix");
    // No suffix wildcard: the longest prefix wildcard.
    assert_eq!(vhost_of(&s, "a.b.example.org"), "long-prefix");
    assert_eq!(vhost_of(&s, "a.c.example.org"), "short-prefix");
    assert_eq!(vhost_of(&s, "other.org"), "any");
    check(
        &s,
        get("a.b.test", "/"),
        r#"
filter chain #0: no server names required
route configuration "http"
host "a.b.test"
virtual host "long-prefix": prefix wildcard "a.b.*"
route "r" matches
=> answer 200 with body "long-prefix""#,
    );
}

#[test]
fn a_wildcard_matches_at_least_one_character() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"w","listeners":["http"],"domains":["*.example.com","api.*"],"routes":[{"name":"r","direct_response":{"status":200}}]}]"#,
    );
    assert_eq!(vhost_of(&s, "x.example.com"), "w");
    assert_eq!(vhost_of(&s, "api.x"), "w");
    for host in [".example.com", "api."] {
        check(
            &s,
            get(host, "/"),
            &format!(
                r#"
filter chain #0: no server names required
route configuration "http"
host "{host}"
no virtual host for this host
=> answer 404 (no route)"#
            ),
        );
    }
}

#[test]
fn routes_are_tried_in_order_and_the_skipped_ones_say_why() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"exact","match":{"path":{"exact":"/a"}},"direct_response":{"status":200}},
            {"name":"regex","match":{"path":{"regex":"/[0-9]+"}},"direct_response":{"status":201}},
            {"name":"long","match":{"path":{"prefix":"/a/b"}},"direct_response":{"status":202}},
            {"name":"short","match":{"path":{"prefix":"/a"}},"direct_response":{"status":203}}]}]"#,
    );
    check_site(
        &s,
        get("example.com", "/a/c"),
        r#"route "exact" skipped: path "/a/c" does not match path "/a"
route "regex" skipped: path "/a/c" does not match regex "/[0-9]+"
route "long" skipped: path "/a/c" does not match prefix "/a/b"
route "short" matches
=> answer 203"#,
    );
    check_site(
        &s,
        get("example.com", "/b"),
        r#"route "exact" skipped: path "/b" does not match path "/a"
route "regex" skipped: path "/b" does not match regex "/[0-9]+"
route "long" skipped: path "/b" does not match prefix "/a/b"
route "short" skipped: path "/b" does not match prefix "/a"
no route matches
=> answer 404 (no route)"#,
    );
}

#[test]
fn paths_are_case_sensitive_unless_configured_otherwise() {
    let s = snapshot(SITE);
    let out = evaluate(&s, &get("example.com", "/API")).expect("evaluates");
    assert_eq!(out.route.as_deref(), Some("web"));
    let s = edit_routes(s, |rc| {
        first_route(rc)
            .r#match
            .as_mut()
            .expect("match")
            .case_sensitive = Some(pb::BoolValue { value: false });
        first_route(rc).action = Some(eroute::route::Action::Route(eroute::RouteAction {
            cluster_specifier: Some(eroute::route_action::ClusterSpecifier::Cluster(
                "api".into(),
            )),
            prefix_rewrite: "/v1".into(),
            ..Default::default()
        }));
    });
    check_site(
        &s,
        get("example.com", "/APIs?x=1"),
        r#"route "api" matches
=> forward to cluster "api" with path "/v1s?x=1" and host "example.com""#,
    );
}

#[test]
fn the_query_string_is_not_part_of_the_path() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"exact","match":{"path":{"exact":"/a"}},"direct_response":{"status":200}},
            {"name":"regex","match":{"path":{"regex":"/b"}},"direct_response":{"status":201}}]}]"#,
    );
    for (path, route) in [
        ("/a?x=/b", "exact"),
        ("/a#frag", "exact"),
        ("/b?q", "regex"),
    ] {
        let out = evaluate(&s, &get("example.com", path)).expect("evaluates");
        assert_eq!(out.route.as_deref(), Some(route), "{path}");
    }
}

#[test]
fn path_separated_prefix_matches_whole_segments() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"api","match":{"path":{"path_prefix":"/api/"}},"forward":{"backends":[{"cluster":"api"}],"rewrite":{"prefix":"/v2"}}}]}]"#,
    );
    for (path, upstream) in [
        ("/api", Some("/v2")),
        ("/api/", Some("/v2/")),
        ("/api/x?y=1", Some("/v2/x?y=1")),
        ("/api?y=1", Some("/v2?y=1")),
        ("/apis", None),
        ("/API", None),
    ] {
        let out = evaluate(&s, &get("example.com", path)).expect("evaluates");
        match (&out.action, upstream) {
            (Action::Forward { path, .. }, Some(want)) => assert_eq!(path, want),
            (Action::NotFound, None) => {}
            (other, _) => panic!("{path}: {other}"),
        }
    }
    check_site(
        &s,
        get("example.com", "/apis"),
        r#"route "api" skipped: path "/apis" does not match path_separated_prefix "/api"
no route matches
=> answer 404 (no route)"#,
    );
}

#[test]
fn a_regex_must_match_the_whole_path() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"num","match":{"path":{"regex":"/[0-9]+"}},"direct_response":{"status":200}}]}]"#,
    );
    let route = |p: &str| evaluate(&s, &get("example.com", p)).expect("ok").route;
    assert_eq!(route("/123").as_deref(), Some("num"));
    assert_eq!(route("/123/x"), None);
    assert_eq!(route("/x/123"), None);
}

const HEADERS: &str = r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
    {"name":"beta","match":{"headers":[{"name":"X-Env","value":{"exact":"beta"}}]},"direct_response":{"status":200,"body":"beta"}},
    {"name":"not-v1","match":{"path":{"prefix":"/n"},"headers":[{"name":"x-version","value":{"exact":"v1"},"invert":true}]},"direct_response":{"status":200,"body":"not-v1"}},
    {"name":"tenant","match":{"path":{"prefix":"/t"},"headers":[{"name":"x-tenant","value":"present"}]},"direct_response":{"status":200,"body":"tenant"}},
    {"name":"rest","direct_response":{"status":404,"body":"rest"}}]}]"#;

fn body(s: &Snapshot, req: Request) -> String {
    match evaluate(s, &req).expect("evaluates").action {
        Action::Direct { body, .. } => body.unwrap_or_default(),
        other => other.to_string(),
    }
}

#[test]
fn header_names_are_case_insensitive_and_values_are_not() {
    let s = snapshot(HEADERS);
    assert_eq!(
        body(&s, get("example.com", "/").header("x-ENV", "beta")),
        "beta"
    );
    assert_eq!(
        body(&s, get("example.com", "/").header("x-env", "Beta")),
        "rest"
    );
    check_site(
        &s,
        get("example.com", "/").header("x-env", "Beta"),
        r#"route "not-v1" skipped: path "/" does not match prefix "/n"
route "tenant" skipped: path "/" does not match prefix "/t"
route "beta" skipped: header x-env: "Beta" does not match exact "beta"
route "rest" matches
=> answer 404 with body "rest""#,
    );
}

#[test]
fn an_inverted_match_does_not_match_a_missing_header() {
    let s = snapshot(HEADERS);
    assert_eq!(
        body(&s, get("example.com", "/n").header("x-version", "v2")),
        "not-v1"
    );
    assert_eq!(
        body(&s, get("example.com", "/n").header("x-version", "v1")),
        "rest"
    );
    check_site(
        &s,
        get("example.com", "/n"),
        r#"route "not-v1" skipped: header x-version is absent, wanted not exact "v1"
route "tenant" skipped: path "/n" does not match prefix "/t"
route "beta" skipped: header x-env is absent, wanted exact "beta"
route "rest" matches
=> answer 404 with body "rest""#,
    );
}

#[test]
fn present_and_absent_header_matches() {
    let s = snapshot(HEADERS);
    assert_eq!(
        body(&s, get("example.com", "/t").header("x-tenant", "")),
        "tenant"
    );
    assert_eq!(body(&s, get("example.com", "/t")), "rest");
    // present_match: false (not emitted by the compiler) matches an absent header.
    let s = edit_routes(s, |rc| {
        let tenant = rc.virtual_hosts[0]
            .routes
            .iter_mut()
            .find(|r| r.name == "tenant")
            .expect("tenant route");
        tenant.r#match.as_mut().expect("match").headers[0].header_match_specifier = Some(
            eroute::header_matcher::HeaderMatchSpecifier::PresentMatch(false),
        );
    });
    assert_eq!(body(&s, get("example.com", "/t")), "tenant");
    assert_eq!(
        body(&s, get("example.com", "/t").header("x-tenant", "a")),
        "rest"
    );
}

#[test]
fn range_matches_and_missing_headers_treated_as_empty() {
    use eroute::header_matcher::HeaderMatchSpecifier as H;
    let s = edit_routes(snapshot(HEADERS), |rc| {
        let beta = rc.virtual_hosts[0]
            .routes
            .iter_mut()
            .find(|r| r.name == "beta")
            .expect("beta route");
        let m = beta.r#match.as_mut().expect("match");
        m.headers[0].header_match_specifier = Some(H::RangeMatch(
            envoy_types::pb::envoy::r#type::v3::Int64Range { start: -10, end: 0 },
        ));
        m.headers[0].invert_match = true;
        m.headers[0].treat_missing_header_as_empty = true;
    });
    let b = |v: Option<&str>| {
        let req = get("example.com", "/");
        body(
            &s,
            match v {
                Some(v) => req.header("x-env", v),
                None => req,
            },
        )
    };
    // Inverted range [-10, 0): in range is a miss, out of range or not a number is a match.
    assert_eq!(b(Some("-1")), "rest");
    assert_eq!(b(Some("+5")), "beta");
    assert_eq!(b(Some("1.5")), "beta");
    // Missing, treated as empty: not a number, so the inverted range matches.
    assert_eq!(b(None), "beta");
}

#[test]
fn repeated_headers_are_matched_one_value_at_a_time() {
    let s = snapshot(HEADERS);
    let req = get("example.com", "/")
        .header("x-env", "alpha")
        .header("x-env", "beta");
    assert_eq!(body(&s, req), "beta");
    // One header line holding both values is one value.
    assert_eq!(
        body(&s, get("example.com", "/").header("x-env", "alpha,beta")),
        "rest"
    );
}

#[test]
fn methods_are_matched_as_the_method_header() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"write","match":{"methods":["POST","PUT"]},"direct_response":{"status":201}},
            {"name":"get","match":{"methods":["GET"]},"direct_response":{"status":200}}]}]"#,
    );
    let route = |m: &str| {
        evaluate(&s, &get("example.com", "/").method(m))
            .expect("ok")
            .route
    };
    assert_eq!(route("PUT").as_deref(), Some("write"));
    assert_eq!(route("POST").as_deref(), Some("write"));
    assert_eq!(route("GET").as_deref(), Some("get"));
    assert_eq!(route("get"), None);
    check_site(
        &s,
        get("example.com", "/").method("DELETE"),
        r#"route "get" skipped: header :method: "DELETE" does not match exact "GET"
route "write" skipped: header :method: "DELETE" does not match regex "POST|PUT"
no route matches
=> answer 404 (no route)"#,
    );
}

const QUERY: &str = r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
    {"name":"debug","match":{"query":[{"name":"debug","value":"present"}]},"direct_response":{"status":200,"body":"debug"}},
    {"name":"v2","match":{"query":[{"name":"v","value":{"exact":"2"}}]},"direct_response":{"status":200,"body":"v2"}},
    {"name":"rest","direct_response":{"status":200,"body":"rest"}}]}]"#;

#[test]
fn only_the_first_value_of_a_query_parameter_counts() {
    let s = snapshot(QUERY);
    assert_eq!(body(&s, get("example.com", "/?v=2")), "v2");
    assert_eq!(body(&s, get("example.com", "/?v=1&v=2")), "rest");
    assert_eq!(body(&s, get("example.com", "/?v=2&v=1")), "v2");
    // Values are not decoded, and names are case-sensitive.
    assert_eq!(body(&s, get("example.com", "/?v=%32")), "rest");
    assert_eq!(body(&s, get("example.com", "/?V=2")), "rest");
    check_site(
        &s,
        get("example.com", "/?v=1&v=2"),
        r#"route "debug" skipped: query parameter debug is absent, wanted present
route "v2" skipped: query parameter v="1" does not match exact "2"
route "rest" matches
=> answer 200 with body "rest""#,
    );
}

#[test]
fn a_query_parameter_without_value_is_present_and_empty() {
    let s = snapshot(QUERY);
    assert_eq!(body(&s, get("example.com", "/?debug")), "debug");
    assert_eq!(body(&s, get("example.com", "/x?a=1&debug=")), "debug");
    assert_eq!(body(&s, get("example.com", "/?v")), "rest");
}

#[test]
fn weighted_clusters_are_forwarded_with_their_weights() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"split","forward":{"backends":[{"cluster":"web","weight":3},{"cluster":"v2","weight":1},{"cluster":"api","weight":0}]}}]}]"#,
    );
    check_site(
        &s,
        get("example.com", "/"),
        r#"route "split" matches
=> forward to clusters "web" (weight 3), "v2" (weight 1) with path "/" and host "example.com""#,
    );
}

#[test]
fn an_error_weight_keeps_its_share_and_answers_500() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"split","forward":{"backends":[{"cluster":"web","weight":2}],"error_weight":1}},
            {"name":"none","match":{"path":{"exact":"/none"}},"forward":{"backends":[{"cluster":"web","weight":0}],"error_weight":1}}]}]"#,
    );
    check_site(
        &s,
        get("example.com", "/"),
        r#"route "none" skipped: path "/" does not match path "/none"
route "split" matches
cluster "xdsc!internal-server-error" is not in the snapshot: its share answers 500
=> forward to clusters "web" (weight 2), "xdsc!internal-server-error" (weight 1) with path "/" and host "example.com""#,
    );
    check_site(
        &s,
        get("example.com", "/none"),
        r#"route "none" matches
=> answer 500"#,
    );
}

#[test]
fn a_cluster_missing_from_the_snapshot_is_reported() {
    let s = edit_routes(snapshot(SITE), |rc| {
        first_route(rc).action = Some(eroute::route::Action::Route(eroute::RouteAction {
            cluster_specifier: Some(eroute::route_action::ClusterSpecifier::Cluster(
                "gone".into(),
            )),
            ..Default::default()
        }));
    });
    check_site(
        &s,
        get("example.com", "/api"),
        r#"route "api" matches
cluster "gone" is not in the snapshot: its share answers 503
=> forward to cluster "gone" with path "/api" and host "example.com""#,
    );
}

#[test]
fn prefix_rewrite_replaces_the_matched_prefix() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"exact","match":{"path":{"exact":"/login"}},"forward":{"backends":[{"cluster":"web"}],"rewrite":{"prefix":"/auth/login"}}},
            {"name":"segments","match":{"path":{"path_prefix":"/old"}},"forward":{"backends":[{"cluster":"web"}],"rewrite":{"prefix":"/"}}},
            {"name":"plain","match":{"path":{"prefix":"/api/"}},"forward":{"backends":[{"cluster":"api"}],"rewrite":{"prefix":"/"}}}]}]"#,
    );
    let path = |p: &str| upstream_path(&s, get("example.com", p));
    assert_eq!(path("/login?next=/"), "/auth/login?next=/");
    assert_eq!(path("/api/users"), "/users");
    // The compiler keeps "/" for a segment prefix; Envoy then leaves "//x".
    assert_eq!(path("/old/x"), "//x");
    assert_eq!(path("/old"), "/");
}

#[test]
fn regex_rewrite_substitutes_groups_and_keeps_the_query() {
    let mut vh = VirtualHost::new("site", ["http"], ["example.com"]);
    let mut r = Route::forward_prefix("users", "/users/", "api");
    if let Some(f) = r.forward.as_mut() {
        f.rewrite.regex = Some(RegexRewrite {
            pattern: "^/users/([0-9]+)/(.*)$".into(),
            substitution: r"/u/\2/\1".into(),
        });
    }
    vh.routes.push(r);
    let mut every = Route::forward_prefix("every", "/", "web");
    if let Some(f) = every.forward.as_mut() {
        f.rewrite.regex = Some(RegexRewrite {
            pattern: "o".into(),
            substitution: "0".into(),
        });
    }
    vh.routes.push(every);
    let s = snapshot(&serde_json::to_string(&[Object::VirtualHost(vh)]).expect("json"));
    let path = |p: &str| upstream_path(&s, get("example.com", p));
    assert_eq!(path("/users/42/profile?o=1"), "/u/profile/42?o=1");
    assert_eq!(path("/foo/boo?o"), "/f00/b00?o");
}

#[test]
fn global_replace_follows_re2_on_empty_matches() {
    let r = |re: &str, v: &str, sub: &str| global_replace(re, v, sub).expect("valid");
    assert_eq!(r("a*", "baaac", "-"), "-b-c-");
    assert_eq!(r("x*", "", "-"), "-");
    assert_eq!(r("(b)", "abc", r"[\1\\\0]"), r"a[b\b]c");
    assert_eq!(r("z", "abc", "-"), "abc");
    assert!(global_replace("(a)", "a", r"\2").is_err());
    assert!(global_replace("a", "a", r"\q").is_err());
}

#[test]
fn regexes_use_re2_ascii_classes_and_envoys_limits() {
    let full = |re: &str, v: &str| full_regex(re).expect("valid").is_match(v);
    assert!(full(r"/\d+", "/123"));
    assert!(!full(r"/\d+", "/١٢٣")); // Arabic-Indic digits are not RE2 digits
    assert!(!full(r"\w+", "é"));
    assert!(full(r"[\w.]+", "a.b"));
    assert!(!full(r"[^\W]+", "é"));
    assert!(full(r"\s", "\t"));
    assert!(!full(r"\s", "\u{0B}")); // RE2's \s has no vertical tab
    assert!(full(r".*\bb", "é b"));
    // Wrapping must not make an invalid expression valid, and the program size counts.
    assert!(full_regex("a)(b").is_err());
    assert!(full_regex("[a-z]{1,200}").is_err());
}

#[test]
fn host_rewrite_replaces_the_host_header() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"r","forward":{"backends":[{"cluster":"web"}],"rewrite":{"host":"backend.internal"}}}]}]"#,
    );
    check_site(
        &s,
        get("example.com:8080", "/x"),
        r#"route "r" matches
=> forward to cluster "web" with path "/x" and host "backend.internal""#,
    );
}

const REDIRECTS: &str = r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
    {"name":"moved","match":{"path":{"path_prefix":"/old"}},"redirect":{"scheme":"https","host":"new.test","port":8443,"prefix":"/new","code":307}},
    {"name":"page","match":{"path":{"exact":"/page"}},"redirect":{"path":"/other"}},
    {"name":"secure","redirect":{"scheme":"https","code":308}}]}]"#;

#[test]
fn redirects_build_the_location_like_envoy() {
    let s = snapshot(REDIRECTS);
    let location = |req: Request| match evaluate(&s, &req).expect("ok").action {
        Action::Redirect { location, status } => format!("{status} {location}"),
        other => other.to_string(),
    };
    assert_eq!(
        location(get("example.com", "/old/a?x=1")),
        "307 https://new.test:8443/new/a?x=1"
    );
    assert_eq!(
        location(get("example.com", "/page?x=1")),
        "301 http://example.com/other?x=1"
    );
    assert_eq!(
        location(get("example.com:8080", "/a")),
        "308 https://example.com/a"
    );
    assert_eq!(
        location(get("example.com", "/a").header("x-forwarded-proto", "https")),
        "308 https://example.com/a"
    );
}

#[test]
fn redirect_strip_query_and_regex_rewrite() {
    use eroute::redirect_action::PathRewriteSpecifier;
    let s = edit_routes(snapshot(REDIRECTS), |rc| {
        let moved = rc.virtual_hosts[0]
            .routes
            .iter_mut()
            .find(|r| r.name == "moved")
            .expect("moved route");
        if let Some(eroute::route::Action::Redirect(rd)) = &mut moved.action {
            rd.strip_query = true;
            rd.path_rewrite_specifier = Some(PathRewriteSpecifier::RegexRewrite(
                ematcher::RegexMatchAndSubstitute {
                    pattern: Some(ematcher::RegexMatcher {
                        regex: "^/old/(.*)$".into(),
                        ..Default::default()
                    }),
                    substitution: r"/archive/\1".into(),
                },
            ));
        }
    });
    check_site(
        &s,
        get("example.com", "/old/a?x=1"),
        r#"route "page" skipped: path "/old/a" does not match path "/page"
route "moved" matches
=> redirect 307 to https://new.test:8443/archive/a"#,
    );
}

#[test]
fn direct_responses_answer_with_status_body_and_location() {
    let s = snapshot(
        r#"[{"kind":"VirtualHost","name":"site","listeners":["http"],"domains":["example.com"],"routes":[
            {"name":"gone","match":{"path":{"prefix":"/gone"}},"direct_response":{"status":410,"body":"gone"}},
            {"name":"moved","direct_response":{"status":301}}]}]"#,
    );
    check_site(
        &s,
        get("example.com", "/gone"),
        r#"route "gone" matches
=> answer 410 with body "gone""#,
    );
    let out = evaluate(&s, &get("example.com", "/x?y")).expect("ok");
    assert_eq!(
        out.action,
        Action::Direct {
            status: 301,
            body: None,
            location: Some("http://example.com/x?y".into())
        }
    );
}

#[test]
fn a_host_that_is_not_an_authority_gets_400() {
    check(
        &snapshot(SITE),
        get("bad host", "/"),
        r#"
filter chain #0: no server names required
route configuration "http"
the host is not a valid authority
=> answer 400 (bad request)"#,
    );
}

#[test]
/// Regression: `GET x HTTP/1.1` is answered 400 by Envoy's HTTP/1.1 codec (the differential
/// test against Envoy found the oracle saying 404).
fn a_request_target_that_is_not_a_path_gets_400() {
    check(
        &snapshot(SITE),
        get("example.com", "x"),
        r#"
filter chain #0: no server names required
route configuration "http"
the path does not start with /
=> answer 400 (bad request)"#,
    );
}

fn tls_objects() -> Vec<Object> {
    let cert = |name: &str| {
        Object::Secret(Secret {
            name: name.into(),
            tls_certificate: Some(TlsCertificate {
                certificate_chain: crate::strategy::TEST_CERT.into(),
                private_key: crate::strategy::TEST_KEY.into(),
            }),
            validation_context: None,
            provenance: vec![],
        })
    };
    let mut objects = vec![cert("a"), cert("b"), cert("default")];
    objects.extend(doc(
        r#"[{"kind":"Listener","name":"https","port":8443,"protocol":"https","tls":[
                {"hosts":["a.example.com"],"secret":"a"},{"hosts":["*.example.com"],"secret":"b"}]},
            {"kind":"Listener","name":"strict","port":8444,"protocol":"https","tls":[{"hosts":["a.example.com"],"secret":"a"}]},
            {"kind":"Listener","name":"fallback","port":8445,"protocol":"https","tls":[{"hosts":["a.example.com"],"secret":"a"},{"secret":"default"}]},
            {"kind":"VirtualHost","name":"site","listeners":["https","strict","fallback"],"domains":["*"],"routes":[{"name":"r","forward":{"backends":[{"cluster":"web"}]}}]}]"#,
    ));
    objects
}

#[test]
fn https_filter_chains_are_chosen_by_sni() {
    let s = snapshot(&serde_json::to_string(&tls_objects()).expect("json"));
    let chain = |listener: &str, sni: Option<&str>| {
        let mut req = Request::new(listener, "example.com", "/");
        req.sni = sni.map(str::to_owned);
        match evaluate(&s, &req).expect("ok").explanation.first() {
            Some(step) => step.to_string(),
            None => String::new(),
        }
    };
    assert_eq!(
        chain("https", Some("A.Example.com")),
        r#"filter chain #0: server name "a.example.com""#
    );
    assert_eq!(
        chain("https", Some("b.a.example.com")),
        r#"filter chain #1: wildcard server name "*.example.com""#
    );
    assert_eq!(
        chain("https", Some("example.com")),
        r#"no filter chain for server name "example.com""#
    );
    assert_eq!(
        chain("fallback", Some("b.example.com")),
        "filter chain #1: no server names required"
    );
    assert_eq!(
        chain("fallback", Some("")),
        "filter chain #1: no server names required"
    );
    check(
        &s,
        Request::new("strict", "a.example.com", "/").sni("b.example.com"),
        r#"
no filter chain for server name "b.example.com"
=> close the connection"#,
    );
    // TLS and plain text do not mix.
    check(
        &s,
        Request::new("fallback", "a.example.com", "/"),
        r#"
filter chain #1: no server names required
a plain-text client on a chain that terminates TLS
=> close the connection"#,
    );
    check(
        &s,
        get("a.example.com", "/").sni("a.example.com"),
        r#"
filter chain #0: no server names required
a TLS client on a plain-text HTTP chain
=> close the connection"#,
    );
    // Routes of an HTTPS listener come from its own route configuration.
    check(
        &s,
        Request::new("strict", "a.example.com", "/").sni("a.example.com"),
        r#"
filter chain #0: server name "a.example.com"
route configuration "strict"
host "a.example.com"
virtual host "site": catch-all domain "*"
route "r" matches
=> forward to cluster "web" with path "/" and host "a.example.com""#,
    );
}

#[test]
fn tcp_listeners_proxy_connections_by_sni() {
    let s = snapshot(
        r#"[{"kind":"Listener","name":"tls","port":9443,"protocol":"tls_passthrough","tcp_routes":[
              {"name":"b","sni":["*.b.test"],"backends":[{"cluster":"web"},{"cluster":"api","weight":2}]},
              {"name":"a","sni":["a.test"],"backends":[{"cluster":"api"}]}]},
            {"kind":"Listener","name":"tcp","port":6379,"protocol":"tcp","tcp_routes":[{"name":"all","backends":[{"cluster":"v2"}]}]}]"#,
    );
    check(
        &s,
        Request::new("tls", "", "").sni("x.b.test"),
        r#"
filter chain #1 "b": wildcard server name "*.b.test"
=> proxy the connection to clusters "web" (weight 1), "api" (weight 2)"#,
    );
    check(
        &s,
        Request::new("tls", "", "").sni("c.test"),
        r#"
no filter chain for server name "c.test"
=> close the connection"#,
    );
    check(
        &s,
        Request::new("tcp", "", ""),
        r#"
filter chain #0 "all": no server names required
=> proxy the connection to cluster "v2""#,
    );
}

#[test]
fn what_cannot_be_evaluated_is_an_error() {
    let s = snapshot(SITE);
    check(
        &s,
        Request::new("nope", "example.com", "/"),
        r#"error: no listener "nope" in the snapshot"#,
    );
    check(
        &s,
        get("example.com", "/").header(":path", "/x"),
        r#"error: invalid request: header ":path": set the host, path and method with their own fields"#,
    );
    let runtime = edit_routes(s.clone(), |rc| {
        first_route(rc)
            .r#match
            .as_mut()
            .expect("match")
            .runtime_fraction = Some(Default::default());
    });
    check(
        &runtime,
        get("example.com", "/"),
        "error: unsupported: route matches on runtime fractions, gRPC, TLS context, metadata, filter state or cookies",
    );
    let twice = edit_routes(s, |rc| {
        let vh = rc.virtual_hosts[0].clone();
        rc.virtual_hosts.push(vh);
    });
    check(
        &twice,
        get("example.com", "/"),
        r#"error: Envoy would reject the configuration: domain "example.com" appears twice in route configuration "http""#,
    );
}

#[test]
fn a_virtual_host_requiring_tls_redirects_plain_requests() {
    let s = edit_routes(snapshot(SITE), |rc| {
        rc.virtual_hosts[0].require_tls = eroute::virtual_host::TlsRequirementType::All as i32;
    });
    check_site(
        &s,
        get("example.com:8080", "/a?b"),
        r#"the virtual host requires TLS
=> redirect 301 to https://example.com/a?b"#,
    );
    let out = evaluate(
        &s,
        &get("example.com", "/").header("x-forwarded-proto", "https"),
    )
    .expect("ok");
    assert_eq!(out.route.as_deref(), Some("web"));
}

#[test]
fn ports_and_dots_are_stripped_like_envoy() {
    assert_eq!(strip_port("example.com:80", None, true), "example.com");
    assert_eq!(strip_port("example.com:", None, true), "example.com:");
    assert_eq!(strip_port("[::1]:80", None, true), "[::1]");
    assert_eq!(strip_port("[::1]", None, true), "[::1]");
    assert_eq!(
        strip_port("example.com:80", Some(8080), false),
        "example.com:80"
    );
    assert_eq!(
        strip_port("example.com:8080", Some(8080), false),
        "example.com"
    );
    assert_eq!(strip_trailing_dot("example.com."), "example.com");
    assert_eq!(strip_trailing_dot("example.com.:80"), "example.com:80");
}
