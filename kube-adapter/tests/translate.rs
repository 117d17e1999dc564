//! The translation end to end: manifests in, diagnostics and where requests go out (compiled
//! by the core and answered by its oracle, so no Envoy is needed).
//!
//! Every test goes through [`check`] (or [`check_model`] for model details), the only code
//! that calls the API.

use serde_json::{Value, json};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Kind, Model};
use xdsc_core::oracle::{Action, Request, evaluate};
use xdsc_kube::translate::{self, Diagnostic, Inputs, KubeKind, KubeObject, Options, Translation};

const HTTP: &str = "k8s:ingress-http";
const HTTPS: &str = "k8s:ingress-https";

fn inputs(manifests: &[Value]) -> Inputs {
    let mut inputs = Inputs::default();
    for (i, m) in manifests.iter().enumerate() {
        let o = KubeObject::from_value(m.clone()).unwrap_or_else(|e| panic!("manifest {i}: {e}"));
        inputs.insert(o, Some(format!("t.yaml:{}", i + 1)));
    }
    inputs
}

fn run(manifests: &[Value], options: &Options) -> Translation {
    translate::full(&inputs(manifests), options)
}

/// A diagnostic as `OBJECT (ORIGIN): FIELD: PROBLEM`, the origin from `inputs`.
fn line(inputs: &Inputs, d: &Diagnostic) -> String {
    let mut out = d.object.to_string();
    if let Some(origin) = d.object.source().and_then(|o| inputs.origin(o)) {
        out = format!("{out} ({origin})");
    }
    out.push_str(": ");
    if !d.field.is_empty() {
        out = format!("{out}{}: ", d.field);
    }
    format!("{out}{}", d.problem)
}

/// Translates, compiles and asks the oracle; compares one line per diagnostic (ours, then
/// the core's prefixed `core:`) and per request (`LISTENER HOST PATH => ACTION`).
fn check(manifests: &[Value], requests: &[Request], expect: &str) {
    check_with(&Options::default(), manifests, requests, expect);
}

fn check_with(options: &Options, manifests: &[Value], requests: &[Request], expect: &str) {
    let inputs = inputs(manifests);
    let t = translate::full(&inputs, options);
    let compiled = Compiled::new(&Model::from_objects(t.objects.clone()));
    let mut lines: Vec<String> = t.diagnostics.iter().map(|d| line(&inputs, d)).collect();
    lines.extend(compiled.diagnostics().iter().map(|d| format!("core: {d}")));
    for r in requests {
        // A connection (no HTTP request): the listener and the SNI.
        let mut what = if r.host.is_empty() && r.path.is_empty() {
            format!("{} sni={}", r.listener, r.sni.as_deref().unwrap_or("-"))
        } else {
            format!("{} {} {}", r.listener, r.host, r.path)
        };
        if r.method != "GET" {
            what = format!("{what} {}", r.method);
        }
        for (n, v) in &r.headers {
            what = format!("{what} {n}={v}");
        }
        let outcome = match evaluate(compiled.snapshot(), r) {
            // The common case, short: one cluster, path and host unchanged.
            Ok(o) => match &o.action {
                Action::Forward {
                    clusters,
                    path,
                    host,
                } if clusters.len() == 1 && *path == r.path && *host == r.host => {
                    clusters[0].0.clone()
                }
                a => a.to_string(),
            },
            Err(e) => format!("oracle error: {e}"),
        };
        lines.push(format!("{what} => {outcome}"));
    }
    let got = lines.join("\n");
    let want: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want.join("\n"), "\n--- got ---\n{got}\n");
}

/// Compares the JSON of the model objects of one kind, one per line.
fn check_model(manifests: &[Value], kind: Kind, expect: &str) {
    let inputs = inputs(manifests);
    let t = translate::full(&inputs, &Options::default());
    let mut lines: Vec<String> = t.diagnostics.iter().map(|d| line(&inputs, d)).collect();
    for o in t.objects.iter().filter(|o| o.kind() == kind) {
        lines.push(serde_json::to_string(o).unwrap());
    }
    let got = lines.join("\n");
    let want: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want.join("\n"), "\n--- got ---\n{got}\n");
}

fn get(host: &str, path: &str) -> Request {
    Request::new(HTTP, host, path)
}

fn tls_get(host: &str, path: &str) -> Request {
    Request::new(HTTPS, host, path).sni(host)
}

/// A Service with named ports `[(name, port, targetPort)]`, and an EndpointSlice with one
/// ready endpoint (10.0.0.1) on each target port.
fn service(name: &str, ports: &[(&str, i32, i32)]) -> [Value; 2] {
    let svc_ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, t)| json!({"name": n, "port": p, "targetPort": t}))
        .collect();
    let slice_ports: Vec<Value> = ports
        .iter()
        .map(|(n, _, t)| json!({"name": n, "port": t}))
        .collect();
    [
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"ports": svc_ports}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": format!("{name}-x"), "labels": {"kubernetes.io/service-name": name}},
               "addressType": "IPv4", "ports": slice_ports,
               "endpoints": [{"addresses": ["10.0.0.1"]}]}),
    ]
}

fn ingress(name: &str, spec: Value) -> Value {
    ingress_meta(json!({"name": name}), spec)
}

fn ingress_meta(metadata: Value, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec})
}

fn rule(host: Option<&str>, paths: &[(&str, &str, &str, i32)]) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(path, ty, svc, port)| {
            json!({"path": path, "pathType": ty,
                   "backend": {"service": {"name": svc, "port": {"number": port}}}})
        })
        .collect();
    let mut r = json!({"http": {"paths": paths}});
    if let Some(h) = host {
        r["host"] = json!(h);
    }
    r
}

fn tls_secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
           "type": "kubernetes.io/tls",
           "stringData": {"tls.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                          "tls.key": "-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n-----END PRIVATE KEY-----\n"}})
}

fn with(mut base: Vec<Value>, more: impl IntoIterator<Item = Value>) -> Vec<Value> {
    base.extend(more);
    base
}

#[test]
fn prefix_paths_match_elements_and_ignore_a_trailing_slash() {
    let m = with(
        service("web", &[("http", 80, 8080)]).into(),
        [ingress(
            "web",
            json!({"rules": [rule(Some("foo.com"), &[("/aaa/bbb/", "Prefix", "web", 80)])]}),
        )],
    );
    check(
        &m,
        &[
            get("foo.com", "/aaa/bbb"),
            get("foo.com", "/aaa/bbb/"),
            get("foo.com", "/aaa/bbb/ccc"),
            get("foo.com", "/aaa/bbbxyz"),
            get("bar.com", "/aaa/bbb"),
        ],
        "k8s:ingress-http foo.com /aaa/bbb => k8s:default/web:80
         k8s:ingress-http foo.com /aaa/bbb/ => k8s:default/web:80
         k8s:ingress-http foo.com /aaa/bbb/ccc => k8s:default/web:80
         k8s:ingress-http foo.com /aaa/bbbxyz => answer 404 (no route)
         k8s:ingress-http bar.com /aaa/bbb => answer 404 (no route)",
    );
}

#[test]
fn exact_beats_prefix_and_the_longest_prefix_wins() {
    let m = with(
        [
            service("a", &[("", 80, 80)]),
            service("b", &[("", 80, 80)]),
            service("c", &[("", 80, 80)]),
        ]
        .concat(),
        [ingress(
            "web",
            json!({"rules": [rule(None, &[
                ("/", "Prefix", "a", 80),
                ("/foo", "Exact", "b", 80),
                ("/foo", "Prefix", "c", 80),
                ("/foo/bar", "ImplementationSpecific", "a", 80),
            ])]}),
        )],
    );
    check(
        &m,
        &[
            get("any.com", "/foo"),
            get("any.com", "/foo/"),
            get("any.com", "/foo/bar/baz"),
            get("any.com", "/foobar"),
        ],
        "k8s:ingress-http any.com /foo => k8s:default/b:80
         k8s:ingress-http any.com /foo/ => k8s:default/c:80
         k8s:ingress-http any.com /foo/bar/baz => k8s:default/a:80
         k8s:ingress-http any.com /foobar => k8s:default/a:80",
    );
}

#[test]
fn a_wildcard_host_matches_exactly_one_label() {
    let m = with(
        [
            service("wild", &[("", 80, 80)]),
            service("any", &[("", 80, 80)]),
        ]
        .concat(),
        [ingress(
            "web",
            json!({"rules": [
                rule(Some("*.foo.com"), &[("/", "Prefix", "wild", 80)]),
                rule(None, &[("/x", "Prefix", "any", 80)]),
            ]}),
        )],
    );
    check(
        &m,
        &[
            get("bar.foo.com", "/x"),
            get("BAR.foo.com:8080", "/"),
            get("baz.bar.foo.com", "/x"),
            get("baz.bar.foo.com", "/"),
            get("foo.com", "/x"),
        ],
        "k8s:ingress-http bar.foo.com /x => k8s:default/wild:80
         k8s:ingress-http BAR.foo.com:8080 / => forward to cluster \"k8s:default/wild:80\" with path \"/\" and host \"BAR.foo.com\"
         k8s:ingress-http baz.bar.foo.com /x => k8s:default/any:80
         k8s:ingress-http baz.bar.foo.com / => answer 404 (no route)
         k8s:ingress-http foo.com /x => k8s:default/any:80",
    );
}

#[test]
fn the_default_backend_catches_what_no_rule_matches_on_both_listeners() {
    let m = with(
        [
            service("web", &[("", 80, 80)]),
            service("fallback", &[("", 80, 80)]),
        ]
        .concat(),
        [
            tls_secret("cert"),
            ingress(
                "web",
                json!({"defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
                       "tls": [{"hosts": ["foo.com"], "secretName": "cert"}],
                       "rules": [rule(Some("foo.com"), &[("/app", "Prefix", "web", 80)])]}),
            ),
        ],
    );
    check(
        &m,
        &[
            get("foo.com", "/app"),
            get("foo.com", "/other"),
            get("bar.com", "/"),
            tls_get("foo.com", "/app"),
            tls_get("foo.com", "/other"),
        ],
        "k8s:ingress-http foo.com /app => k8s:default/web:80
         k8s:ingress-http foo.com /other => k8s:default/fallback:80
         k8s:ingress-http bar.com / => k8s:default/fallback:80
         k8s:ingress-https foo.com /app => k8s:default/web:80
         k8s:ingress-https foo.com /other => k8s:default/fallback:80",
    );
}

#[test]
fn tls_hosts_are_served_on_https_with_their_certificate() {
    let m = with(
        service("web", &[("", 80, 80)]).into(),
        [
            tls_secret("cert"),
            ingress(
                "web",
                json!({"tls": [{"hosts": ["foo.com"], "secretName": "cert"}, {"hosts": ["bar.com"], "secretName": "missing"}],
                       "rules": [rule(Some("foo.com"), &[("/", "Prefix", "web", 80)]),
                                 rule(Some("bar.com"), &[("/", "Prefix", "web", 80)])]}),
            ),
        ],
    );
    check(
        &m,
        &[tls_get("foo.com", "/"), tls_get("bar.com", "/"), get("bar.com", "/")],
        "Ingress default/web (t.yaml:4): spec.tls[1].secretName: secret default/missing does not exist
         k8s:ingress-https foo.com / => k8s:default/web:80
         k8s:ingress-https bar.com / => close the connection
         k8s:ingress-http bar.com / => k8s:default/web:80",
    );
    check_model(
        &m,
        Kind::Listener,
        r#"Ingress default/web (t.yaml:4): spec.tls[1].secretName: secret default/missing does not exist
        {"kind":"Listener","name":"k8s:ingress-http","address":"0.0.0.0","port":8080,"protocol":"http","provenance":[{"kind":"Ingress","namespace":"default","name":"web","origin":"t.yaml:4"}]}
        {"kind":"Listener","name":"k8s:ingress-https","address":"0.0.0.0","port":8443,"protocol":"https","tls":[{"hosts":["foo.com"],"secret":"k8s:default/cert"}],"provenance":[{"kind":"Ingress","namespace":"default","name":"web","origin":"t.yaml:4"}]}"#,
    );
}

fn class(name: &str, controller: &str, default: bool) -> Value {
    let mut c = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                       "metadata": {"name": name}, "spec": {"controller": controller}});
    if default {
        c["metadata"]["annotations"] =
            json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    }
    c
}

fn classed(name: &str, class: Option<&str>, annotation: Option<&str>, prefix: &str) -> Value {
    let mut spec = json!({"rules": [rule(None, &[(prefix, "Prefix", "web", 80)])]});
    if let Some(c) = class {
        spec["ingressClassName"] = json!(c);
    }
    let mut meta = json!({"name": name});
    if let Some(a) = annotation {
        meta["annotations"] = json!({"kubernetes.io/ingress.class": a});
    }
    ingress_meta(meta, spec)
}

#[test]
fn ingress_classes_decide_what_is_taken() {
    let svc: Vec<Value> = service("web", &[("", 80, 80)]).into();
    let ingresses = [
        classed("ours", Some("xdsc"), None, "/ours"),
        classed("annotated", None, Some("xdsc"), "/annotated"),
        classed("theirs", Some("nginx"), None, "/theirs"),
        classed("unclassed", None, None, "/unclassed"),
        classed("nowhere", Some("nope"), None, "/nowhere"),
    ];
    let probes: Vec<Request> = ["/ours", "/annotated", "/theirs", "/unclassed", "/nowhere"]
        .iter()
        .map(|p| get("h", p))
        .collect();
    // Our class, not default: only Ingresses naming it.
    let classes = [
        class("xdsc", "xdsc.dev/ingress-controller", false),
        class("nginx", "k8s.io/ingress-nginx", false),
    ];
    check(
        &with(with(svc.clone(), classes.clone()), ingresses.clone()),
        &probes,
        r#"Ingress default/nowhere (t.yaml:9): spec.ingressClassName: IngressClass "nope" does not exist; not served
        k8s:ingress-http h /ours => k8s:default/web:80
        k8s:ingress-http h /annotated => k8s:default/web:80
        k8s:ingress-http h /theirs => answer 404 (no route)
        k8s:ingress-http h /unclassed => answer 404 (no route)
        k8s:ingress-http h /nowhere => answer 404 (no route)"#,
    );
    // Our class marked default: unclassed Ingresses too.
    let classes = [
        class("xdsc", "xdsc.dev/ingress-controller", true),
        class("nginx", "k8s.io/ingress-nginx", false),
    ];
    check(
        &with(with(svc.clone(), classes), ingresses[..4].to_vec()),
        &probes[..4],
        "k8s:ingress-http h /ours => k8s:default/web:80
         k8s:ingress-http h /annotated => k8s:default/web:80
         k8s:ingress-http h /theirs => answer 404 (no route)
         k8s:ingress-http h /unclassed => k8s:default/web:80",
    );
    // No IngressClass at all: unclassed Ingresses are taken from files, not in a cluster.
    let only_unclassed = with(svc, [ingresses[3].clone()]);
    check(
        &only_unclassed,
        &probes[3..4],
        "k8s:ingress-http h /unclassed => k8s:default/web:80",
    );
    let cluster = Options {
        take_unclassed_ingress_without_classes: false,
        ..Options::default()
    };
    check_with(&cluster, &only_unclassed, &[], "");
}

#[test]
fn routing_annotations_of_other_controllers_are_reported_and_ignored() {
    let m = with(
        service("web", &[("", 80, 80)]).into(),
        [ingress_meta(
            json!({"name": "web", "annotations": {
                "nginx.ingress.kubernetes.io/rewrite-target": "/",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "team": "payments"}}),
            json!({"rules": [rule(None, &[("/app", "Prefix", "web", 80)])]}),
        )],
    );
    check(
        &m,
        &[get("h", "/app/x")],
        r#"Ingress default/web (t.yaml:3): metadata.annotations["nginx.ingress.kubernetes.io/rewrite-target"]: unsupported annotation "nginx.ingress.kubernetes.io/rewrite-target" ignored
        k8s:ingress-http h /app/x => k8s:default/web:80"#,
    );
}

#[test]
fn missing_services_ports_and_resource_backends_answer_503() {
    let m = with(
        service("web", &[("http", 80, 8080)]).into(),
        [ingress(
            "web",
            json!({"rules": [{"http": {"paths": [
                {"path": "/named", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                {"path": "/grpc", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "grpc"}}}},
                {"path": "/gone", "pathType": "Prefix", "backend": {"service": {"name": "gone", "port": {"number": 80}}}},
                {"path": "/res", "pathType": "Prefix", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}}},
                {"path": "/bad", "pathType": "Regex", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            ]}}]}),
        )],
    );
    check(
        &m,
        &[
            get("h", "/named"),
            get("h", "/grpc"),
            get("h", "/gone"),
            get("h", "/res"),
            get("h", "/bad"),
        ],
        r#"Ingress default/web (t.yaml:3): spec.rules[0].http.paths[1].backend.service.port: service default/web has no port named "grpc"
        Ingress default/web (t.yaml:3): spec.rules[0].http.paths[2].backend.service.port: service default/gone does not exist
        Ingress default/web (t.yaml:3): spec.rules[0].http.paths[3].backend.resource: a resource backend is not supported; answering 503
        Ingress default/web (t.yaml:3): spec.rules[0].http.paths[4].pathType: "Regex" is not a path type (Exact, Prefix, ImplementationSpecific)
        core: warning: VirtualHost/k8s:ingress:~: routes[default/web:r0:p1].forward.backends: no usable backend; the route answers 503
        core: warning: VirtualHost/k8s:ingress:~: routes[default/web:r0:p1].forward.backends[0].cluster: refers to Cluster/k8s:default/web:grpc, which does not exist or is invalid
        core: warning: VirtualHost/k8s:ingress:~: routes[default/web:r0:p2].forward.backends: no usable backend; the route answers 503
        core: warning: VirtualHost/k8s:ingress:~: routes[default/web:r0:p2].forward.backends[0].cluster: refers to Cluster/k8s:default/gone:80, which does not exist or is invalid
        k8s:ingress-http h /named => k8s:default/web:80
        k8s:ingress-http h /grpc => answer 503
        k8s:ingress-http h /gone => answer 503
        k8s:ingress-http h /res => answer 503
        k8s:ingress-http h /bad => answer 404 (no route)"#,
    );
}

#[test]
fn ingresses_for_one_host_merge_and_the_oldest_wins_a_conflict() {
    let at = |ts: &str, name: &str| json!({"name": name, "creationTimestamp": ts});
    let m = with(
        [service("a", &[("", 80, 80)]), service("b", &[("", 80, 80)])].concat(),
        [
            ingress_meta(
                at("2024-01-02T00:00:00Z", "aaa-new"),
                json!({"rules": [rule(Some("foo.com"), &[("/x", "Prefix", "a", 80), ("/a", "Prefix", "a", 80)])]}),
            ),
            ingress_meta(
                at("2024-01-01T00:00:00Z", "zzz-old"),
                json!({"rules": [rule(Some("foo.com"), &[("/x/", "Prefix", "b", 80), ("/b", "Exact", "b", 80)])]}),
            ),
        ],
    );
    check(
        &m,
        &[
            get("foo.com", "/x"),
            get("foo.com", "/a"),
            get("foo.com", "/b"),
        ],
        r#"Ingress default/aaa-new (t.yaml:5): spec.rules[0].http.paths[0]: path "/x" (Prefix) on host "foo.com" is also claimed by Ingress default/zzz-old, which takes precedence
        k8s:ingress-http foo.com /x => k8s:default/b:80
        k8s:ingress-http foo.com /a => k8s:default/a:80
        k8s:ingress-http foo.com /b => k8s:default/b:80"#,
    );
}

fn slice(name: &str, service: &str, port: (&str, i32), endpoints: Value) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4", "ports": [{"name": port.0, "port": port.1}], "endpoints": endpoints})
}

#[test]
fn endpoint_conditions_decide_health_and_priority() {
    let m = vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "admin", "port": 9000}]}}),
        slice(
            "web-a",
            "web",
            ("http", 8080),
            json!([
                {"addresses": ["10.0.0.2"], "zone": "b"},
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "zone": "a"},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.0.0.4"], "conditions": {"ready": false, "serving": false, "terminating": true}},
                {"addresses": ["10.0.0.5"], "conditions": {"ready": false}},
            ]),
        ),
        // A second slice repeating an address, and a slice of another port and service.
        slice(
            "web-b",
            "web",
            ("http", 8080),
            json!([{"addresses": ["10.0.0.1"], "zone": "a"}, {"addresses": ["10.0.0.6"], "zone": "a"}]),
        ),
        slice(
            "web-c",
            "web",
            ("admin", 9000),
            json!([{"addresses": ["10.0.0.9"]}]),
        ),
        slice(
            "other",
            "other",
            ("http", 8080),
            json!([{"addresses": ["10.9.9.9"]}]),
        ),
        ingress(
            "web",
            json!({"defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}}}),
        ),
    ];
    check_model(
        &m,
        Kind::Endpoints,
        r#"{"kind":"Endpoints","name":"k8s:default/web:80","localities":[{"zone":"a","endpoints":[{"address":"10.0.0.1","port":8080,"weight":1},{"address":"10.0.0.6","port":8080,"weight":1}]},{"zone":"b","endpoints":[{"address":"10.0.0.2","port":8080,"weight":1}]},{"priority":1,"endpoints":[{"address":"10.0.0.3","port":8080,"weight":1}]}],"provenance":[{"kind":"EndpointSlice","namespace":"default","name":"web-a","origin":"t.yaml:2"},{"kind":"EndpointSlice","namespace":"default","name":"web-b","origin":"t.yaml:3"},{"kind":"EndpointSlice","namespace":"default","name":"web-c","origin":"t.yaml:4"},{"kind":"Service","namespace":"default","name":"web","origin":"t.yaml:1"}]}"#,
    );
}

#[test]
fn tls_secrets_become_model_secrets_without_leaking_keys() {
    let mut base64_secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b64"},
        "type": "kubernetes.io/tls",
        // A certificate "MIIC" and a key "KEY2", PEM, in base64.
        "data": {"tls.crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=",
                 "tls.key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCktFWTIKLS0tLS1FTkQgUFJJVkFURSBLRVktLS0tLQo="}});
    let opaque = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "opaque"}, "type": "Opaque",
        "stringData": {"tls.crt": "x", "tls.key": "SECRETKEYBYTES"}});
    let m = with(
        service("web", &[("", 80, 80)]).into(),
        [
            tls_secret("cert"),
            base64_secret.take(),
            opaque,
            ingress(
                "web",
                json!({"tls": [{"secretName": "cert"}, {"hosts": ["b.com"], "secretName": "b64"}, {"hosts": ["o.com"], "secretName": "opaque"}],
                                  "rules": [rule(Some("a.com"), &[("/", "Prefix", "web", 80)])]}),
            ),
        ],
    );
    check_model(
        &m,
        Kind::Secret,
        r#"Ingress default/web (t.yaml:6): spec.tls[2].secretName: secret default/opaque is not of type kubernetes.io/tls
        {"kind":"Secret","name":"k8s:default/b64","tls_certificate":{"certificate_chain":"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n","private_key":"-----BEGIN PRIVATE KEY-----\nKEY2\n-----END PRIVATE KEY-----\n"},"provenance":[{"kind":"Secret","namespace":"default","name":"b64","origin":"t.yaml:4"}]}
        {"kind":"Secret","name":"k8s:default/cert","tls_certificate":{"certificate_chain":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","private_key":"-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n-----END PRIVATE KEY-----\n"},"provenance":[{"kind":"Secret","namespace":"default","name":"cert","origin":"t.yaml:3"}]}"#,
    );
    // The host of an Ingress with a certificate for any host is served on HTTPS.
    check(
        &m,
        &[tls_get("a.com", "/")],
        "Ingress default/web (t.yaml:6): spec.tls[2].secretName: secret default/opaque is not of type kubernetes.io/tls\nk8s:ingress-https a.com / => k8s:default/web:80",
    );
    let t = run(&m, &Options::default());
    assert!(!format!("{:?}", t.diagnostics).contains("SECRETKEYBYTES"));
}

#[test]
fn malformed_manifests_name_the_field() {
    let bad = ingress(
        "web",
        json!({"rules": [{"http": {"paths": [{"path": "/"}, {"path": "/", "pathType": 7}]}}]}),
    );
    let err = KubeObject::from_value(bad).unwrap_err().to_string();
    assert!(
        err.starts_with("Ingress: spec.rules[0].http.paths[1].pathType: "),
        "{err}"
    );
    let bad = ingress(
        "web",
        json!({"rules": [{"http": {"paths": [{"path": "/", "pathType": 7, "backend": {}}]}}]}),
    );
    let err = KubeObject::from_value(bad).unwrap_err().to_string();
    assert!(
        err.starts_with("Ingress: spec.rules[0].http.paths[0].pathType: "),
        "{err}"
    );
    let err = KubeObject::from_value(
        json!({"apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress"}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unsupported object: apiVersion "networking.k8s.io/v1beta1", kind "Ingress""#
    );
}

/// Every rotation and the reversal of the manifests: byte-identical output. (Ids are unique,
/// so this checks that nothing depends on arrival order, and conflicts resolve by age.)
fn assert_deterministic(manifests: &[Value]) {
    let show = |t: &Translation| {
        format!(
            "{}\n{:?}",
            serde_json::to_string(&t.objects).unwrap(),
            t.diagnostics
        )
    };
    let first = show(&run(manifests, &Options::default()));
    let mut orders: Vec<Vec<Value>> = (0..manifests.len())
        .map(|i| {
            let mut m = manifests.to_vec();
            m.rotate_left(i);
            m
        })
        .collect();
    orders.push(manifests.iter().rev().cloned().collect());
    for m in orders {
        // Origins follow the position, so compare without them.
        let mut inputs = Inputs::default();
        for v in &m {
            let o = KubeObject::from_value(v.clone()).unwrap();
            let i = manifests.iter().position(|x| x == v).unwrap();
            inputs.insert(o, Some(format!("t.yaml:{}", i + 1)));
        }
        assert_eq!(show(&translate::full(&inputs, &Options::default())), first);
    }
}

#[test]
fn ingress_output_does_not_depend_on_input_order() {
    let at = |ts: &str, name: &str| json!({"name": name, "creationTimestamp": ts});
    assert_deterministic(&with(
        [service("a", &[("", 80, 80)]), service("b", &[("", 80, 80)])].concat(),
        [
            tls_secret("cert"),
            ingress_meta(
                at("2024-01-02T00:00:00Z", "x"),
                json!({"tls": [{"hosts": ["foo.com"], "secretName": "cert"}],
                "defaultBackend": {"service": {"name": "a", "port": {"number": 80}}},
                "rules": [rule(Some("foo.com"), &[("/x", "Prefix", "a", 80)]), rule(Some("*.foo.com"), &[("/", "Prefix", "b", 80)])]}),
            ),
            ingress_meta(
                at("2024-01-01T00:00:00Z", "y"),
                json!({"defaultBackend": {"service": {"name": "b", "port": {"number": 80}}},
                "rules": [rule(Some("foo.com"), &[("/x", "Prefix", "b", 80)]), rule(None, &[("/", "Prefix", "b", 80)])]}),
            ),
        ],
    ));
}

const GW: &str = "gateway.networking.k8s.io/v1";

fn gateway_class() -> Value {
    json!({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "xdsc"},
           "spec": {"controllerName": "xdsc.dev/gateway-controller"}})
}

/// A Gateway `gw` of our class with these listeners.
fn gateway(listeners: Value) -> Value {
    json!({"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "gw"},
           "spec": {"gatewayClassName": "xdsc", "listeners": listeners}})
}

/// An HTTPRoute created at `ts` (no creation time when empty).
fn http_route(name: &str, ts: &str, spec: Value) -> Value {
    let mut metadata = json!({"name": name});
    if !ts.is_empty() {
        metadata["creationTimestamp"] = json!(ts);
    }
    json!({"apiVersion": GW, "kind": "HTTPRoute", "metadata": metadata, "spec": spec})
}

/// The services `a`, `b`, `c` (port 80), our class and a Gateway with one HTTP listener on
/// port 80 (Envoy port 10080).
fn gateway_base() -> Vec<Value> {
    with(
        [
            service("a", &[("", 80, 80)]),
            service("b", &[("", 80, 80)]),
            service("c", &[("", 80, 80)]),
        ]
        .concat(),
        [
            gateway_class(),
            gateway(json!([{"name": "http", "port": 80, "protocol": "HTTP"}])),
        ],
    )
}

const GW_HTTP: &str = "k8s:gateway:10080";

fn gw_get(host: &str, path: &str) -> Request {
    Request::new(GW_HTTP, host, path)
}

fn to(svc: &str) -> Value {
    json!([{"name": svc, "port": 80}])
}

#[test]
fn httproute_matches_follow_the_spec_precedence() {
    let m = with(
        gateway_base(),
        [
            http_route(
                "old",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/p"}, "headers": [{"name": "x", "value": "1"}, {"name": "y", "value": "1"}]}], "backendRefs": to("a")},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/p"}, "method": "POST"}], "backendRefs": to("b")},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/p"}}], "backendRefs": to("a")},
                    {"matches": [{"path": {"type": "RegularExpression", "value": "/r/[0-9]+"}}], "backendRefs": to("c")},
                ]}),
            ),
            http_route(
                "new",
                "2024-01-02T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "rules": [
                    {"matches": [{"path": {"type": "Exact", "value": "/p"}}, {"path": {"value": "/p/long"}}], "backendRefs": to("c")},
                    {"matches": [{"path": {"value": "/p"}, "queryParams": [{"name": "q", "value": "1"}]}], "backendRefs": to("c")},
                    // Same match as "old"'s third rule: the older route wins.
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/p"}}], "backendRefs": to("c")},
                ]}),
            ),
        ],
    );
    check(
        &m,
        &[
            gw_get("h", "/p"),
            gw_get("h", "/p/long/x"),
            gw_get("h", "/p/x")
                .method("POST")
                .header("x", "1")
                .header("y", "1"),
            gw_get("h", "/p/x").header("x", "1").header("y", "1"),
            gw_get("h", "/p/x?q=1"),
            gw_get("h", "/p/x"),
            gw_get("h", "/r/12"),
        ],
        r#"HTTPRoute default/new (t.yaml:10): spec.rules[2].matches[0]: on host "*", HTTPRoute default/old rule 2 match 0 has the same match and takes precedence; never used
        k8s:gateway:10080 h /p => k8s:default/c:80
        k8s:gateway:10080 h /p/long/x => k8s:default/c:80
        k8s:gateway:10080 h /p/x POST x=1 y=1 => k8s:default/b:80
        k8s:gateway:10080 h /p/x x=1 y=1 => k8s:default/a:80
        k8s:gateway:10080 h /p/x?q=1 => k8s:default/c:80
        k8s:gateway:10080 h /p/x => k8s:default/a:80
        k8s:gateway:10080 h /r/12 => k8s:default/c:80"#,
    );
}

#[test]
fn route_hostnames_intersect_the_listener_hostname() {
    let m = with(
        [service("a", &[("", 80, 80)]), service("b", &[("", 80, 80)])].concat(),
        [
            gateway_class(),
            gateway(json!([
                {"name": "wild", "port": 80, "protocol": "HTTP", "hostname": "*.foo.com"},
                {"name": "bar", "port": 80, "protocol": "HTTP", "hostname": "bar.com"},
            ])),
            http_route(
                "a",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}],
                "hostnames": ["x.foo.com", "*.y.foo.com", "bar.com", "other.com"], "rules": [{"backendRefs": to("a")}]}),
            ),
            http_route(
                "b",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw", "sectionName": "wild"}],
                "rules": [{"backendRefs": to("b")}]}),
            ),
            http_route(
                "none",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}],
                "hostnames": ["nope.com"], "rules": [{"backendRefs": to("b")}]}),
            ),
        ],
    );
    check(
        &m,
        &[
            gw_get("x.foo.com", "/"),
            gw_get("z.y.foo.com", "/"),
            gw_get("q.foo.com", "/"),
            gw_get("bar.com", "/"),
            gw_get("other.com", "/"),
        ],
        "HTTPRoute default/none (t.yaml:9): spec.parentRefs[0]: no hostname of the route intersects the hostnames of the listeners of Gateway default/gw; not attached
         k8s:gateway:10080 x.foo.com / => k8s:default/a:80
         k8s:gateway:10080 z.y.foo.com / => k8s:default/a:80
         k8s:gateway:10080 q.foo.com / => k8s:default/b:80
         k8s:gateway:10080 bar.com / => k8s:default/a:80
         k8s:gateway:10080 other.com / => answer 404 (no route)",
    );
}

/// HTTPRouteHostnameIntersection / HTTPRouteMatchingAcrossRoutes: a request takes the rules
/// of every route whose hostname matches its host, the most specific hostname's first, so a
/// path only `*.example.com`'s route has still serves `foo.example.com`.
#[test]
fn less_specific_hostnames_serve_what_the_more_specific_do_not() {
    let m = with(
        [
            service("a", &[("", 80, 80)]),
            service("b", &[("", 80, 80)]),
            service("c", &[("", 80, 80)]),
        ]
        .concat(),
        [
            gateway_class(),
            gateway(json!([{"name": "http", "port": 80, "protocol": "HTTP"}])),
            http_route(
                "exact",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "hostnames": ["foo.example.com"],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/a"}}], "backendRefs": to("a")}]}),
            ),
            http_route(
                "wild",
                "2024-01-02T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "hostnames": ["*.example.com"],
                "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/a"}}], "backendRefs": to("b")},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/b"}}], "backendRefs": to("b")},
                ]}),
            ),
            http_route(
                "any",
                "2024-01-03T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/a/longer"}}], "backendRefs": to("c")},
                          {"backendRefs": to("c")}]}),
            ),
        ],
    );
    check(
        &m,
        &[
            gw_get("foo.example.com", "/a"),
            gw_get("foo.example.com", "/a/longer"),
            gw_get("foo.example.com", "/b"),
            gw_get("foo.example.com", "/x"),
            gw_get("bar.example.com", "/a"),
            gw_get("bar.example.com", "/x"),
            gw_get("other.org", "/a"),
        ],
        // The more specific host's rules first, whatever their paths: foo.example.com's
        // `/a` wins over the catch-all's longer `/a/longer`.
        "k8s:gateway:10080 foo.example.com /a => k8s:default/a:80
         k8s:gateway:10080 foo.example.com /a/longer => k8s:default/a:80
         k8s:gateway:10080 foo.example.com /b => k8s:default/b:80
         k8s:gateway:10080 foo.example.com /x => k8s:default/c:80
         k8s:gateway:10080 bar.example.com /a => k8s:default/b:80
         k8s:gateway:10080 bar.example.com /x => k8s:default/c:80
         k8s:gateway:10080 other.org /a => k8s:default/c:80",
    );
}

/// GatewayHTTPListenerIsolation: listeners `*.example.com`, `foo.example.com` and none on one
/// port; a request goes only to the routes of the most specific listener matching its host,
/// even where a route of a less specific listener names that host.
#[test]
fn a_request_takes_only_the_routes_of_its_most_specific_listener() {
    let m = with(
        [
            service("a", &[("", 80, 80)]),
            service("b", &[("", 80, 80)]),
            service("c", &[("", 80, 80)]),
        ]
        .concat(),
        [
            gateway_class(),
            gateway(json!([
                {"name": "empty", "port": 80, "protocol": "HTTP"},
                {"name": "wild", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"},
                {"name": "foo", "port": 80, "protocol": "HTTP", "hostname": "foo.example.com"},
            ])),
            http_route(
                "to-empty",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw", "sectionName": "empty"}],
                "hostnames": ["foo.example.com", "bar.example.com", "other.org"],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/empty"}}], "backendRefs": to("c")}]}),
            ),
            http_route(
                "to-wild",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw", "sectionName": "wild"}],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/wild"}}], "backendRefs": to("b")}]}),
            ),
            http_route(
                "to-foo",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw", "sectionName": "foo"}],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/foo"}}], "backendRefs": to("a")}]}),
            ),
        ],
    );
    check(
        &m,
        &[
            gw_get("foo.example.com", "/foo"),
            gw_get("foo.example.com", "/wild"),
            gw_get("foo.example.com", "/empty"),
            gw_get("bar.example.com", "/wild"),
            gw_get("bar.example.com", "/empty"),
            gw_get("other.org", "/empty"),
        ],
        "k8s:gateway:10080 foo.example.com /foo => k8s:default/a:80
         k8s:gateway:10080 foo.example.com /wild => answer 404 (no route)
         k8s:gateway:10080 foo.example.com /empty => answer 404 (no route)
         k8s:gateway:10080 bar.example.com /wild => k8s:default/b:80
         k8s:gateway:10080 bar.example.com /empty => answer 404 (no route)
         k8s:gateway:10080 other.org /empty => k8s:default/c:80",
    );
}

#[test]
fn backend_weights_default_to_one_and_zero_means_never() {
    let m = with(
        gateway_base(),
        [http_route(
            "r",
            "2024-01-01T00:00:00Z",
            json!({"parentRefs": [{"name": "gw"}], "rules": [
                {"matches": [{"path": {"value": "/split"}}], "backendRefs": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "weight": 3}, {"name": "c", "port": 80, "weight": 0}]},
                {"matches": [{"path": {"value": "/zero"}}], "backendRefs": [{"name": "a", "port": 80, "weight": 0}]},
                {"matches": [{"path": {"value": "/none"}}]},
                {"matches": [{"path": {"value": "/noport"}}], "backendRefs": [{"name": "a"}]},
                {"matches": [{"path": {"value": "/kind"}}], "backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "a"}]},
            ]}),
        )],
    );
    check(
        &m,
        &[
            gw_get("h", "/split"),
            gw_get("h", "/zero"),
            gw_get("h", "/none"),
            gw_get("h", "/noport"),
            gw_get("h", "/kind"),
        ],
        r#"HTTPRoute default/r (t.yaml:9): spec.rules[3].backendRefs[0].port: a Service backend needs a port
        HTTPRoute default/r (t.yaml:9): spec.rules[4].backendRefs[0]: backend kind "Bucket" is not supported (only Services are)
        k8s:gateway:10080 h /split => forward to clusters "k8s:default/a:80" (weight 1), "k8s:default/b:80" (weight 3) with path "/split" and host "h"
        k8s:gateway:10080 h /zero => answer 500
        k8s:gateway:10080 h /none => answer 500
        k8s:gateway:10080 h /noport => answer 500
        k8s:gateway:10080 h /kind => answer 500"#,
    );
}

/// HTTPRouteInvalidNonExistentBackendRef, ...UnknownKind, ...CrossNamespaceBackendRef beside
/// a valid backend: the invalid one keeps its weight, and its share answers 500.
#[test]
fn an_invalid_backend_beside_valid_ones_keeps_its_share_and_answers_500() {
    let m = with(
        gateway_base(),
        [http_route(
            "r",
            T1,
            json!({"parentRefs": [{"name": "gw"}], "rules": [
                {"matches": [{"path": {"value": "/missing"}}], "backendRefs": [{"name": "a", "port": 80}, {"name": "gone", "port": 80}]},
                {"matches": [{"path": {"value": "/mixed"}}], "backendRefs": [{"name": "a", "port": 80, "weight": 2}, {"group": "example.com", "kind": "Bucket", "name": "x", "weight": 1}, {"name": "b", "namespace": "other", "port": 80, "weight": 3}]},
                {"matches": [{"path": {"value": "/zero"}}], "backendRefs": [{"name": "a", "port": 80, "weight": 0}, {"name": "gone", "port": 80}]},
            ]}),
        )],
    );
    check(
        &m,
        &[
            gw_get("h", "/missing"),
            gw_get("h", "/mixed"),
            gw_get("h", "/zero"),
        ],
        r#"HTTPRoute default/r (t.yaml:9): spec.rules[0].backendRefs[1]: service default/gone does not exist
        HTTPRoute default/r (t.yaml:9): spec.rules[1].backendRefs[1]: backend kind "Bucket" is not supported (only Services are)
        HTTPRoute default/r (t.yaml:9): spec.rules[1].backendRefs[2]: service other/b is in another namespace and no ReferenceGrant there allows it
        HTTPRoute default/r (t.yaml:9): spec.rules[2].backendRefs[1]: service default/gone does not exist
        k8s:gateway:10080 h /missing => forward to clusters "k8s:default/a:80" (weight 1), "xdsc!internal-server-error" (weight 1) with path "/missing" and host "h"
        k8s:gateway:10080 h /mixed => forward to clusters "k8s:default/a:80" (weight 2), "xdsc!internal-server-error" (weight 4) with path "/mixed" and host "h"
        k8s:gateway:10080 h /zero => answer 500"#,
    );
    // The oracle says what Envoy does with the error share: 500.
    let inputs = inputs(&m);
    let t = translate::full(&inputs, &Options::default());
    let compiled = Compiled::new(&Model::from_objects(t.objects.clone()));
    let out = evaluate(compiled.snapshot(), &gw_get("h", "/missing")).expect("evaluates");
    assert!(
        out.explanation.iter().any(|s| matches!(s,
            xdsc_core::oracle::Step::MissingCluster { cluster, status: Some(500) }
                if cluster == xdsc_core::compile::ERROR_CLUSTER)),
        "{out}"
    );
    // No Cluster or Endpoints for the error share; the status reasons stay.
    assert!(!t.objects.iter().any(|o| o.name().contains("gone")));
    check_status(
        &m,
        r#"HTTPRoute default/r (t.yaml:9): spec.rules[0].backendRefs[1]: service default/gone does not exist
        HTTPRoute default/r (t.yaml:9): spec.rules[1].backendRefs[1]: backend kind "Bucket" is not supported (only Services are)
        HTTPRoute default/r (t.yaml:9): spec.rules[1].backendRefs[2]: service other/b is in another namespace and no ReferenceGrant there allows it
        HTTPRoute default/r (t.yaml:9): spec.rules[2].backendRefs[1]: service default/gone does not exist
        Gateway default/gw: Accepted=True Accepted; Programmed=True Programmed
        Gateway default/gw: listener http: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=1; supportedKinds=[GRPCRoute,HTTPRoute]
        GatewayClass xdsc: Accepted=True Accepted
        HTTPRoute default/r: parent default/gw: Accepted=True Accepted; ResolvedRefs=False BackendNotFound (service default/gone does not exist)"#,
    );
}

#[test]
fn httproute_filters_modify_redirect_rewrite_and_mirror() {
    let m = with(
        gateway_base(),
        [http_route(
            "r",
            "2024-01-01T00:00:00Z",
            json!({"parentRefs": [{"name": "gw"}], "rules": [
                {"matches": [{"path": {"value": "/old"}}], "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "hostname": "new.com", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
                {"matches": [{"path": {"value": "/moved"}}], "filters": [{"type": "RequestRedirect", "requestRedirect": {"port": 8443, "statusCode": 301, "path": {"type": "ReplaceFullPath", "replaceFullPath": "/here"}}}]},
                {"matches": [{"path": {"value": "/api"}}], "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "api.internal", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}], "backendRefs": to("a")},
                {"matches": [{"path": {"value": "/v1"}}], "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}], "backendRefs": to("a")},
                {"matches": [{"path": {"value": "/full"}}], "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/one"}}}], "backendRefs": to("a")},
                {"matches": [{"path": {"value": "/ext"}}], "filters": [{"type": "ExtensionRef", "extensionRef": {"group": "x", "kind": "y", "name": "z"}}], "backendRefs": to("a")},
            {"filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/root"}}}], "backendRefs": to("b")},
            ]}),
        )],
    );
    check(
        &m,
        &[
            gw_get("h", "/old/x"),
            gw_get("h", "/moved/x"),
            gw_get("h", "/api/users"),
            gw_get("h", "/v1/users"),
            gw_get("h", "/full/x"),
            gw_get("h", "/ext"),
            gw_get("h", "/other"),
        ],
        r#"HTTPRoute default/r (t.yaml:9): spec.rules[5].filters[0]: filter "ExtensionRef" is not supported (or lacks its settings); the rule answers 500
        k8s:gateway:10080 h /old/x => redirect 302 to https://new.com/new/x
        k8s:gateway:10080 h /moved/x => redirect 301 to http://h:8443/here
        k8s:gateway:10080 h /api/users => forward to cluster "k8s:default/a:80" with path "/users" and host "api.internal"
        k8s:gateway:10080 h /v1/users => forward to cluster "k8s:default/a:80" with path "/v2/users" and host "h"
        k8s:gateway:10080 h /full/x => forward to cluster "k8s:default/a:80" with path "/one" and host "h"
        k8s:gateway:10080 h /ext => answer 500
        k8s:gateway:10080 h /other => forward to cluster "k8s:default/b:80" with path "/root/other" and host "h""#,
    );
}

#[test]
fn https_gateway_listeners_terminate_tls_on_offset_ports() {
    let m = with(
        gateway_base()[..2].to_vec(),
        [
            tls_secret("cert"),
            gateway_class(),
            gateway(json!([
                {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "foo.com",
                 "tls": {"certificateRefs": [{"name": "cert"}]}},
                {"name": "other", "port": 443, "protocol": "HTTPS", "hostname": "bar.com",
                 "tls": {"certificateRefs": [{"name": "missing"}]}},
                {"name": "big", "port": 8000, "protocol": "HTTP"},
                {"name": "tcp", "port": 9000, "protocol": "TCP"},
            ])),
            http_route(
                "r",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw", "port": 443}], "rules": [{"backendRefs": to("a")}]}),
            ),
        ],
    );
    check(
        &m,
        &[Request::new("k8s:gateway:10443", "foo.com", "/").sni("foo.com")],
        r#"Gateway default/gw (t.yaml:5): spec.listeners[1].tls.certificateRefs[0]: secret default/missing does not exist
        k8s:gateway:10443 foo.com / => k8s:default/a:80"#,
    );
    check_model(
        &m,
        Kind::Listener,
        r#"Gateway default/gw (t.yaml:5): spec.listeners[1].tls.certificateRefs[0]: secret default/missing does not exist
        {"kind":"Listener","name":"k8s:gateway:10443","address":"0.0.0.0","port":10443,"protocol":"https","tls":[{"hosts":["foo.com"],"secret":"k8s:default/cert"}],"provenance":[{"kind":"Gateway","namespace":"default","name":"gw","origin":"t.yaml:5"}]}
        {"kind":"Listener","name":"k8s:gateway:8000","address":"0.0.0.0","port":8000,"protocol":"http","provenance":[{"kind":"Gateway","namespace":"default","name":"gw","origin":"t.yaml:5"}]}"#,
    );
}

#[test]
fn routes_attach_only_where_the_gateway_allows() {
    let other_ns = |name: &str, parent: Value| {
        json!({"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": "team"},
               "spec": {"parentRefs": [parent], "rules": [{"backendRefs": [{"name": "a", "port": 80}]}]}})
    };
    let m = with(
        vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "team"}, "spec": {"ports": [{"port": 80}]}}),
            gateway_class(),
            json!({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "theirs"}, "spec": {"controllerName": "example.com/other"}}),
            gateway(json!([
                {"name": "same", "port": 80, "protocol": "HTTP", "hostname": "same.com"},
                {"name": "all", "port": 80, "protocol": "HTTP", "hostname": "all.com", "allowedRoutes": {"namespaces": {"from": "All"}}},
            ])),
            json!({"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "theirs"}, "spec": {"gatewayClassName": "theirs", "listeners": [{"name": "x", "port": 80, "protocol": "HTTP"}]}}),
        ],
        [
            other_ns(
                "to-same",
                json!({"name": "gw", "namespace": "default", "sectionName": "same"}),
            ),
            other_ns("to-any", json!({"name": "gw", "namespace": "default"})),
            other_ns(
                "to-theirs",
                json!({"name": "theirs", "namespace": "default"}),
            ),
            other_ns("to-nothing", json!({"name": "nothing"})),
        ],
    );
    check(
        &m,
        &[gw_get("same.com", "/"), gw_get("all.com", "/")],
        r#"HTTPRoute team/to-nothing (t.yaml:9): spec.parentRefs[0]: Gateway team/nothing does not exist
        HTTPRoute team/to-same (t.yaml:6): spec.parentRefs[0]: no listener of Gateway default/gw admits a HTTPRoute from namespace "team" (allowedRoutes); not attached
        k8s:gateway:10080 same.com / => answer 404 (no route)
        k8s:gateway:10080 all.com / => k8s:team/a:80"#,
    );
}

#[test]
fn header_modifiers_and_mirrors_reach_the_model() {
    let m = with(
        gateway_base(),
        [http_route(
            "r",
            "2024-01-01T00:00:00Z",
            json!({"parentRefs": [{"name": "gw"}], "rules": [
                {"filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-set", "value": "1"}], "add": [{"name": "x-add", "value": "2"}], "remove": ["x-gone"]}},
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "x-resp", "value": "3"}]}},
                    {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "b", "port": 80}, "percent": 10}},
                ], "backendRefs": to("a")},
            ]}),
        )],
    );
    check_model(
        &m,
        Kind::VirtualHost,
        r#"{"kind":"VirtualHost","name":"k8s:gateway:10080:~","listeners":["k8s:gateway:10080"],"domains":["*"],"routes":[{"name":"0000:default/r:r0:m0","match":{"path":{"prefix":"/"}},"forward":{"backends":[{"cluster":"k8s:default/a:80","weight":1}],"mirror":[{"cluster":"k8s:default/b:80","percent":10}]},"request_headers":{"add":[{"name":"x-set","value":"1"},{"name":"x-add","value":"2","append":true}],"remove":["x-gone"]},"response_headers":{"add":[{"name":"x-resp","value":"3","append":true}]}}],"provenance":[{"kind":"Gateway","namespace":"default","name":"gw","origin":"t.yaml:8"},{"kind":"HTTPRoute","namespace":"default","name":"r","origin":"t.yaml:9"}]}"#,
    );
}

#[test]
fn gateway_output_does_not_depend_on_input_order() {
    assert_deterministic(&with(
        gateway_base(),
        [
            tls_secret("cert"),
            http_route(
                "x",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "hostnames": ["a.com"], "rules": [
                {"matches": [{"path": {"value": "/p"}}], "backendRefs": to("a")}]}),
            ),
            http_route(
                "y",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "hostnames": ["a.com", "*.b.com"], "rules": [
                {"matches": [{"path": {"value": "/p"}}], "backendRefs": to("b")},
                {"matches": [{"path": {"value": "/q"}, "method": "GET"}], "backendRefs": [{"name": "c", "port": 80, "weight": 2}, {"name": "a", "port": 80}]}]}),
            ),
        ],
    ));
}

#[test]
fn equally_old_routes_tie_break_by_namespace_and_name() {
    let m = with(
        gateway_base(),
        [
            http_route(
                "b",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": to("b")}]}),
            ),
            http_route(
                "a",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": to("a")}]}),
            ),
            // No creation time: after every route that has one.
            http_route(
                "0",
                "",
                json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": to("c")}]}),
            ),
        ],
    );
    check(
        &m,
        &[gw_get("h", "/")],
        r#"HTTPRoute default/0 (t.yaml:11): spec.rules[0].matches[0]: on host "*", HTTPRoute default/a rule 0 match 0 has the same match and takes precedence; never used
        HTTPRoute default/b (t.yaml:9): spec.rules[0].matches[0]: on host "*", HTTPRoute default/a rule 0 match 0 has the same match and takes precedence; never used
        k8s:gateway:10080 h / => k8s:default/a:80"#,
    );
}

#[test]
fn a_redirect_without_scheme_or_port_keeps_the_listener_port() {
    let m = with(
        gateway_base()[..2].to_vec(),
        [
            gateway_class(),
            gateway(
                json!([{"name": "web", "port": 80, "protocol": "HTTP"}, {"name": "alt", "port": 8000, "protocol": "HTTP"}]),
            ),
            http_route(
                "r",
                "2024-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "gw"}], "rules": [
                    {"filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}}}]},
                ]}),
            ),
        ],
    );
    check(
        &m,
        &[
            gw_get("h", "/old"),
            Request::new("k8s:gateway:8000", "h:8000", "/old"),
        ],
        "k8s:gateway:10080 h /old => redirect 302 to http://h/new
         k8s:gateway:8000 h:8000 /old => redirect 302 to http://h:8000/new",
    );
}

#[test]
fn external_name_services_and_fqdn_slices_are_reported() {
    let m = vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
               "spec": {"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-fqdn", "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "FQDN", "ports": [{"port": 80}], "endpoints": [{"addresses": ["a.example.com"]}]}),
        ingress(
            "web",
            json!({"rules": [rule(None, &[("/ext", "Prefix", "ext", 80), ("/web", "Prefix", "web", 80)])]}),
        ),
    ];
    check(
        &m,
        &[get("h", "/ext"), get("h", "/web")],
        r#"EndpointSlice default/web-fqdn (t.yaml:3): addressType: address type FQDN is not supported; slice ignored
        Ingress default/web (t.yaml:4): spec.rules[0].http.paths[0].backend.service.port: service default/ext is of type ExternalName, which is not supported
        core: warning: VirtualHost/k8s:ingress:~: routes[default/web:r0:p0].forward.backends: no usable backend; the route answers 503
        core: warning: VirtualHost/k8s:ingress:~: routes[default/web:r0:p0].forward.backends[0].cluster: refers to Cluster/k8s:default/ext:80, which does not exist or is invalid
        k8s:ingress-http h /ext => answer 503
        k8s:ingress-http h /web => k8s:default/web:80"#,
    );
}

#[test]
fn a_tls_host_claimed_with_two_secrets_goes_to_the_oldest_ingress() {
    let at = |ts: &str, name: &str| json!({"name": name, "creationTimestamp": ts});
    let m = with(
        service("web", &[("", 80, 80)]).into(),
        [
            tls_secret("old-cert"),
            tls_secret("new-cert"),
            ingress_meta(
                at("2024-01-02T00:00:00Z", "new"),
                json!({"tls": [{"hosts": ["foo.com", "*.bar.com"], "secretName": "new-cert"}],
                "rules": [rule(Some("a.bar.com"), &[("/", "Prefix", "web", 80)])]}),
            ),
            ingress_meta(
                at("2024-01-01T00:00:00Z", "old"),
                json!({"tls": [{"hosts": ["FOO.com"], "secretName": "old-cert"}],
                "rules": [rule(Some("foo.com"), &[("/", "Prefix", "web", 80)])]}),
            ),
        ],
    );
    check(
        &m,
        &[tls_get("foo.com", "/"), tls_get("a.bar.com", "/")],
        r#"Ingress default/new (t.yaml:5): spec.tls[0].hosts[0]: TLS host "foo.com" is also claimed by Ingress default/old, which takes precedence
        k8s:ingress-https foo.com / => k8s:default/web:80
        k8s:ingress-https a.bar.com / => k8s:default/web:80"#,
    );
    check_model(
        &m,
        Kind::Listener,
        r#"Ingress default/new (t.yaml:5): spec.tls[0].hosts[0]: TLS host "foo.com" is also claimed by Ingress default/old, which takes precedence
        {"kind":"Listener","name":"k8s:ingress-http","address":"0.0.0.0","port":8080,"protocol":"http","provenance":[{"kind":"Ingress","namespace":"default","name":"new","origin":"t.yaml:5"},{"kind":"Ingress","namespace":"default","name":"old","origin":"t.yaml:6"}]}
        {"kind":"Listener","name":"k8s:ingress-https","address":"0.0.0.0","port":8443,"protocol":"https","tls":[{"hosts":["*.bar.com"],"secret":"k8s:default/new-cert"},{"hosts":["foo.com"],"secret":"k8s:default/old-cert"}],"provenance":[{"kind":"Ingress","namespace":"default","name":"new","origin":"t.yaml:5"},{"kind":"Ingress","namespace":"default","name":"old","origin":"t.yaml:6"}]}"#,
    );
}

/// The computed status of every Gateway API object, one line per part (see
/// `ObjectStatus::text_lines`), after the diagnostics.
fn check_status(manifests: &[Value], expect: &str) {
    let inputs = inputs(manifests);
    let t = translate::full(&inputs, &Options::default());
    let mut lines: Vec<String> = t.diagnostics.iter().map(|d| line(&inputs, d)).collect();
    for (id, s) in &t.statuses {
        if id.kind == "Ingress" {
            continue;
        }
        for line in s.text_lines() {
            lines.push(format!("{id}: {line}"));
        }
    }
    let got = lines.join("\n");
    let want: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want.join("\n"), "\n--- got ---\n{got}\n");
}

/// A Gateway in the default namespace of our class.
fn named_gateway(name: &str, ts: &str, listeners: Value) -> Value {
    let mut metadata = json!({"name": name});
    if !ts.is_empty() {
        metadata["creationTimestamp"] = json!(ts);
    }
    json!({"apiVersion": GW, "kind": "Gateway", "metadata": metadata,
           "spec": {"gatewayClassName": "xdsc", "listeners": listeners}})
}

/// A route of any Gateway API kind and version, in the default namespace unless `name` is
/// `NS/NAME`.
fn route(api_version: &str, kind: &str, name: &str, ts: &str, spec: Value) -> Value {
    let (ns, name) = name.split_once('/').unwrap_or(("default", name));
    let mut metadata = json!({"name": name, "namespace": ns});
    if !ts.is_empty() {
        metadata["creationTimestamp"] = json!(ts);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec})
}

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-01-02T00:00:00Z";

/// A TLS (or plain TCP) connection to an Envoy listener, with this SNI.
fn connect(listener: &str, sni: Option<&str>) -> Request {
    let r = Request::new(listener, "", "");
    match sni {
        Some(s) => r.sni(s),
        None => r,
    }
}

#[test]
fn tls_routes_pass_connections_through_by_sni() {
    let m = with(
        [
            service("a", &[("", 443, 8443)]),
            service("b", &[("", 443, 8443)]),
        ]
        .concat(),
        [
            gateway_class(),
            gateway(json!([
                {"name": "tls", "port": 443, "protocol": "TLS", "hostname": "*.example.com",
                 "tls": {"mode": "Passthrough"}},
            ])),
            route(
                GW,
                "TLSRoute",
                "a",
                T1,
                json!({"parentRefs": [{"name": "gw"}],
                "hostnames": ["a.example.com"], "rules": [{"backendRefs": [{"name": "a", "port": 443}]}]}),
            ),
            // The v1alpha2 shape is read too; no hostnames means the listener's.
            route(
                "gateway.networking.k8s.io/v1alpha2",
                "TLSRoute",
                "b",
                T2,
                json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "b", "port": 443}]}]}),
            ),
            // Outside the listener's hostname: not attached.
            route(
                GW,
                "TLSRoute",
                "other",
                T2,
                json!({"parentRefs": [{"name": "gw"}],
                "hostnames": ["other.com"], "rules": [{"backendRefs": [{"name": "a", "port": 443}]}]}),
            ),
        ],
    );
    check(
        &m,
        &[
            connect("k8s:gateway:10443", Some("a.example.com")),
            connect("k8s:gateway:10443", Some("b.example.com")),
            connect("k8s:gateway:10443", Some("other.com")),
            connect("k8s:gateway:10443", None),
        ],
        r#"TLSRoute default/other (t.yaml:9): spec.parentRefs[0]: no hostname of the route intersects the hostnames of the listeners of Gateway default/gw; not attached
        k8s:gateway:10443 sni=a.example.com => proxy the connection to cluster "k8s:default/a:443"
        k8s:gateway:10443 sni=b.example.com => proxy the connection to cluster "k8s:default/b:443"
        k8s:gateway:10443 sni=other.com => close the connection
        k8s:gateway:10443 sni=- => close the connection"#,
    );
    check_status(
        &m,
        r#"TLSRoute default/other (t.yaml:9): spec.parentRefs[0]: no hostname of the route intersects the hostnames of the listeners of Gateway default/gw; not attached
        Gateway default/gw: Accepted=True Accepted; Programmed=True Programmed
        Gateway default/gw: listener tls: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=3; supportedKinds=[TLSRoute]
        GatewayClass xdsc: Accepted=True Accepted
        TLSRoute default/a: parent default/gw: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs
        TLSRoute default/b: parent default/gw: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs
        TLSRoute default/other: parent default/gw: Accepted=False NoMatchingListenerHostname (no hostname of the route intersects the hostnames of the listeners of Gateway default/gw); ResolvedRefs=True ResolvedRefs"#,
    );
}

#[test]
fn a_tcp_listener_forwards_to_its_oldest_tcp_route() {
    let m = with(
        [
            service("a", &[("", 5432, 5432)]),
            service("b", &[("", 5432, 5432)]),
        ]
        .concat(),
        [
            gateway_class(),
            gateway(json!([{"name": "pg", "port": 5432, "protocol": "TCP"}])),
            route(
                "gateway.networking.k8s.io/v1alpha2",
                "TCPRoute",
                "old",
                T1,
                json!({
                "parentRefs": [{"name": "gw", "sectionName": "pg"}],
                "rules": [{"backendRefs": [{"name": "a", "port": 5432, "weight": 3}, {"name": "b", "port": 5432}]}]}),
            ),
            route(
                "gateway.networking.k8s.io/v1alpha2",
                "TCPRoute",
                "new",
                T2,
                json!({
                "parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "b", "port": 5432}]}]}),
            ),
        ],
    );
    check(
        &m,
        &[connect("k8s:gateway:5432", None)],
        r#"TCPRoute default/new (t.yaml:8): spec.parentRefs[0]: the listener already forwards to TCPRoute default/old; a TCP listener takes one route; not used
        k8s:gateway:5432 sni=- => proxy the connection to clusters "k8s:default/a:5432" (weight 3), "k8s:default/b:5432" (weight 1)"#,
    );
    check_status(
        &m,
        r#"TCPRoute default/new (t.yaml:8): spec.parentRefs[0]: the listener already forwards to TCPRoute default/old; a TCP listener takes one route; not used
        Gateway default/gw: Accepted=True Accepted; Programmed=True Programmed
        Gateway default/gw: listener pg: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=2; supportedKinds=[TCPRoute]
        GatewayClass xdsc: Accepted=True Accepted
        TCPRoute default/new: parent default/gw: Accepted=False UnsupportedValue (the listener already forwards to TCPRoute default/old; a TCP listener takes one route); ResolvedRefs=True ResolvedRefs
        TCPRoute default/old: parent default/gw sectionName=pg: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs"#,
    );
}

#[test]
fn grpc_routes_match_services_methods_and_headers_over_http2() {
    let m = with(
        [
            service("a", &[("grpc", 50051, 50051)]),
            service("b", &[("grpc", 50051, 50051)]),
        ]
        .concat(),
        [
            gateway_class(),
            gateway(json!([{"name": "grpc", "port": 80, "protocol": "HTTP"}])),
            route(
                GW,
                "GRPCRoute",
                "r",
                T1,
                json!({"parentRefs": [{"name": "gw"}], "rules": [
                    {"matches": [{"method": {"service": "echo.Echo", "method": "Say"}}], "backendRefs": [{"name": "a", "port": 50051}]},
                    {"matches": [{"method": {"service": "echo.Echo"}, "headers": [{"name": "version", "value": "2"}]}], "backendRefs": [{"name": "b", "port": 50051}]},
                    {"matches": [{"method": {"type": "RegularExpression", "method": "Get.*"}}], "backendRefs": [{"name": "b", "port": 50051}]},
                    {"filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "x"}}], "backendRefs": [{"name": "a", "port": 50051}]},
                ]}),
            ),
        ],
    );
    check(
        &m,
        &[
            gw_get("h", "/echo.Echo/Say").method("POST"),
            gw_get("h", "/echo.Echo/Other")
                .method("POST")
                .header("version", "2"),
            gw_get("h", "/echo.Echo/Other").method("POST"),
            gw_get("h", "/kv.Store/GetAll").method("POST"),
            gw_get("h", "/kv.Store/Put").method("POST"),
        ],
        r#"GRPCRoute default/r (t.yaml:7): spec.rules[3].filters[0]: filter "URLRewrite" is not supported (or lacks its settings); the rule answers 500
        k8s:gateway:10080 h /echo.Echo/Say POST => k8s:default/a:50051:h2c
        k8s:gateway:10080 h /echo.Echo/Other POST version=2 => k8s:default/b:50051:h2c
        k8s:gateway:10080 h /echo.Echo/Other POST => answer 500
        k8s:gateway:10080 h /kv.Store/GetAll POST => k8s:default/b:50051:h2c
        k8s:gateway:10080 h /kv.Store/Put POST => answer 500"#,
    );
    let t = run(&m, &Options::default());
    let h2: Vec<String> = t
        .objects
        .iter()
        .filter_map(|o| match o {
            xdsc_core::model::Object::Cluster(c) => Some(format!("{} {:?}", c.name, c.protocol)),
            _ => None,
        })
        .collect();
    assert_eq!(
        h2,
        [
            "k8s:default/a:50051:h2c Http2",
            "k8s:default/b:50051:h2c Http2"
        ]
    );
}

fn reference_grant(ns: &str, from_kind: &str, from_ns: &str, to_kind: &str) -> Value {
    json!({"apiVersion": GW, "kind": "ReferenceGrant", "metadata": {"name": "grant", "namespace": ns},
           "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": from_kind, "namespace": from_ns}],
                    "to": [{"group": "", "kind": to_kind}]}})
}

#[test]
fn reference_grants_open_backends_and_certificates_in_other_namespaces() {
    let svc = |ns: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": ns},
               "spec": {"ports": [{"port": 80}]}})
    };
    let mut cert = tls_secret("cert");
    cert["metadata"]["namespace"] = json!("certs");
    let base = vec![
        svc("open"),
        svc("closed"),
        cert,
        gateway_class(),
        gateway(json!([
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.com",
             "tls": {"certificateRefs": [{"name": "cert", "namespace": "certs"}]}},
        ])),
        route(
            GW,
            "HTTPRoute",
            "r",
            T1,
            json!({"parentRefs": [{"name": "gw", "sectionName": "http"}], "rules": [
                {"matches": [{"path": {"value": "/open"}}], "backendRefs": [{"name": "api", "namespace": "open", "port": 80}]},
                {"matches": [{"path": {"value": "/closed"}}], "backendRefs": [{"name": "api", "namespace": "closed", "port": 80}]},
            ]}),
        ),
        reference_grant("open", "HTTPRoute", "default", "Service"),
        // A grant for another kind opens nothing to HTTPRoutes.
        reference_grant("closed", "GRPCRoute", "default", "Service"),
    ];
    check(
        &base,
        &[gw_get("h", "/open"), gw_get("h", "/closed")],
        r#"Gateway default/gw (t.yaml:5): spec.listeners[1].tls.certificateRefs[0]: secret certs/cert is in another namespace and no ReferenceGrant there allows it; listener not served
        HTTPRoute default/r (t.yaml:6): spec.rules[1].backendRefs[0]: service closed/api is in another namespace and no ReferenceGrant there allows it
        k8s:gateway:10080 h /open => k8s:open/api:80
        k8s:gateway:10080 h /closed => answer 500"#,
    );
    let granted = with(
        base,
        [reference_grant("certs", "Gateway", "default", "Secret")],
    );
    check(
        &granted,
        &[Request::new("k8s:gateway:10443", "secure.com", "/").sni("secure.com")],
        r#"HTTPRoute default/r (t.yaml:6): spec.rules[1].backendRefs[0]: service closed/api is in another namespace and no ReferenceGrant there allows it
        k8s:gateway:10443 secure.com / => answer 404 (no route)"#,
    );
}

#[test]
fn listeners_of_several_gateways_on_one_port_merge_and_conflicts_are_per_listener() {
    let m = with(
        [service("a", &[("", 80, 80)]), service("b", &[("", 80, 80)])].concat(),
        [
            gateway_class(),
            named_gateway(
                "one",
                T1,
                json!([{"name": "a", "port": 80, "protocol": "HTTP", "hostname": "a.com"}]),
            ),
            // Port 10080 is Envoy's port for 80: the same port.
            named_gateway(
                "two",
                T2,
                json!([
                    {"name": "b", "port": 10080, "protocol": "HTTP", "hostname": "b.com"},
                    {"name": "dup", "port": 80, "protocol": "HTTP", "hostname": "a.com"},
                    {"name": "tcp", "port": 80, "protocol": "TCP"},
                    {"name": "udp", "port": 53, "protocol": "UDP"},
                ]),
            ),
            route(
                GW,
                "HTTPRoute",
                "ra",
                T1,
                json!({"parentRefs": [{"name": "one"}], "rules": [{"backendRefs": to("a")}]}),
            ),
            route(
                GW,
                "HTTPRoute",
                "rb",
                T1,
                json!({"parentRefs": [{"name": "two"}], "rules": [{"backendRefs": to("b")}]}),
            ),
        ],
    );
    check(
        &m,
        &[gw_get("a.com", "/"), gw_get("b.com", "/")],
        r#"Gateway default/two (t.yaml:7): spec.listeners[1]: listener "a" of Gateway default/one has the same hostname on the port; listener not served
        Gateway default/two (t.yaml:7): spec.listeners[2]: listener "a" of Gateway default/one uses the port with another protocol; listener not served
        Gateway default/two (t.yaml:7): spec.listeners[3].protocol: protocol "UDP" is not supported; listener not served
        k8s:gateway:10080 a.com / => k8s:default/a:80
        k8s:gateway:10080 b.com / => k8s:default/b:80"#,
    );
    check_status(
        &m,
        r#"Gateway default/two (t.yaml:7): spec.listeners[1]: listener "a" of Gateway default/one has the same hostname on the port; listener not served
        Gateway default/two (t.yaml:7): spec.listeners[2]: listener "a" of Gateway default/one uses the port with another protocol; listener not served
        Gateway default/two (t.yaml:7): spec.listeners[3].protocol: protocol "UDP" is not supported; listener not served
        Gateway default/one: Accepted=True Accepted; Programmed=True Programmed
        Gateway default/one: listener a: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=1; supportedKinds=[GRPCRoute,HTTPRoute]
        Gateway default/two: Accepted=True ListenersNotValid (some listeners are not valid); Programmed=True Programmed
        Gateway default/two: listener b: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=1; supportedKinds=[GRPCRoute,HTTPRoute]
        Gateway default/two: listener dup: Accepted=False Invalid (listener "a" of Gateway default/one has the same hostname on the port); Conflicted=True HostnameConflict (listener "a" of Gateway default/one has the same hostname on the port); Programmed=False Invalid (not served); ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[GRPCRoute,HTTPRoute]
        Gateway default/two: listener tcp: Accepted=False Invalid (listener "a" of Gateway default/one uses the port with another protocol); Conflicted=True ProtocolConflict (listener "a" of Gateway default/one uses the port with another protocol); Programmed=False Invalid (not served); ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[TCPRoute]
        Gateway default/two: listener udp: Accepted=False UnsupportedProtocol (protocol "UDP" is not supported); Conflicted=False NoConflicts; Programmed=False Invalid (not served); ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[]
        GatewayClass xdsc: Accepted=True Accepted
        HTTPRoute default/ra: parent default/one: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs
        HTTPRoute default/rb: parent default/two: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs"#,
    );
}

/// The issue's multi-tenant case: HTTPS and TLS passthrough on one port, by SNI, across
/// Gateways; a hostname already taken on the port conflicts.
#[test]
fn https_and_tls_passthrough_listeners_share_a_port_by_sni() {
    let m = with(
        [
            service("a", &[("", 443, 8443)]),
            service("b", &[("", 80, 80)]),
        ]
        .concat(),
        [
            tls_secret("cert"),
            gateway_class(),
            named_gateway(
                "tenant-a",
                T1,
                json!([{"name": "tls", "port": 443, "protocol": "TLS", "hostname": "a.example.com",
                        "tls": {"mode": "Passthrough"}}]),
            ),
            named_gateway(
                "tenant-b",
                T2,
                json!([
                    {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "b.example.com",
                     "tls": {"certificateRefs": [{"name": "cert"}]}},
                    // a.example.com is passed through by tenant-a: not terminated here too.
                    {"name": "steal", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com",
                     "tls": {"certificateRefs": [{"name": "cert"}]}},
                    {"name": "again", "port": 443, "protocol": "TLS", "hostname": "a.example.com",
                     "tls": {"mode": "Passthrough"}},
                ]),
            ),
            route(
                GW,
                "TLSRoute",
                "a",
                T1,
                json!({"parentRefs": [{"name": "tenant-a"}],
                "rules": [{"backendRefs": [{"name": "a", "port": 443}]}]}),
            ),
            route(
                GW,
                "HTTPRoute",
                "b",
                T1,
                json!({"parentRefs": [{"name": "tenant-b", "sectionName": "https"}],
                "rules": [{"backendRefs": to("b")}]}),
            ),
        ],
    );
    let port = "k8s:gateway:10443";
    check(
        &m,
        &[
            connect(port, Some("a.example.com")),
            Request::new(port, "b.example.com", "/").sni("b.example.com"),
            connect(port, Some("c.example.com")),
        ],
        r#"Gateway default/tenant-b (t.yaml:8): spec.listeners[1]: listener "tls" of Gateway default/tenant-a has the same hostname on the port with another protocol; listener not served
        Gateway default/tenant-b (t.yaml:8): spec.listeners[2]: listener "tls" of Gateway default/tenant-a has the same hostname on the port; listener not served
        k8s:gateway:10443 sni=a.example.com => proxy the connection to cluster "k8s:default/a:443"
        k8s:gateway:10443 b.example.com / => k8s:default/b:80
        k8s:gateway:10443 sni=c.example.com => close the connection"#,
    );
    check_status(
        &m,
        r#"Gateway default/tenant-b (t.yaml:8): spec.listeners[1]: listener "tls" of Gateway default/tenant-a has the same hostname on the port with another protocol; listener not served
        Gateway default/tenant-b (t.yaml:8): spec.listeners[2]: listener "tls" of Gateway default/tenant-a has the same hostname on the port; listener not served
        Gateway default/tenant-a: Accepted=True Accepted; Programmed=True Programmed
        Gateway default/tenant-a: listener tls: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=1; supportedKinds=[TLSRoute]
        Gateway default/tenant-b: Accepted=True ListenersNotValid (some listeners are not valid); Programmed=True Programmed
        Gateway default/tenant-b: listener again: Accepted=False Invalid (listener "tls" of Gateway default/tenant-a has the same hostname on the port); Conflicted=True HostnameConflict (listener "tls" of Gateway default/tenant-a has the same hostname on the port); Programmed=False Invalid (not served); ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[TLSRoute]
        Gateway default/tenant-b: listener https: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=1; supportedKinds=[GRPCRoute,HTTPRoute]
        Gateway default/tenant-b: listener steal: Accepted=False Invalid (listener "tls" of Gateway default/tenant-a has the same hostname on the port with another protocol); Conflicted=True ProtocolConflict (listener "tls" of Gateway default/tenant-a has the same hostname on the port with another protocol); Programmed=False Invalid (not served); ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[GRPCRoute,HTTPRoute]
        GatewayClass xdsc: Accepted=True Accepted
        HTTPRoute default/b: parent default/tenant-b sectionName=https: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs
        TLSRoute default/a: parent default/tenant-a: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs"#,
    );
}

/// The upstream GatewayListenerProtocolAndRouteKindConflicts: an HTTPS and a TLS listener of
/// one Gateway on one port without hostnames are both conflicted and neither serves; an
/// HTTPRoute on a listener that takes only TLSRoutes is not allowed; the rest serves.
#[test]
fn conflicting_listeners_of_one_gateway_are_all_marked() {
    let m = with(
        [
            service("tcp-backend", &[("", 8443, 8443)]),
            service("infra-backend-v1", &[("", 8080, 8080)]),
        ]
        .concat(),
        [
            tls_secret("cert"),
            gateway_class(),
            named_gateway(
                "tlsroutes-only",
                T1,
                json!([
                    {"name": "tls", "port": 443, "protocol": "TLS", "hostname": "abc.example.com",
                     "tls": {"mode": "Passthrough"}, "allowedRoutes": {"kinds": [{"kind": "TLSRoute"}]}},
                    {"name": "conflicted-https", "port": 8443, "protocol": "HTTPS",
                     "allowedRoutes": {"kinds": [{"kind": "HTTPRoute"}]},
                     "tls": {"certificateRefs": [{"name": "cert"}]}},
                    {"name": "conflicted-tls", "port": 8443, "protocol": "TLS",
                     "allowedRoutes": {"kinds": [{"kind": "TLSRoute"}]}, "tls": {"mode": "Passthrough"}},
                ]),
            ),
            route(
                GW,
                "HTTPRoute",
                "disallowed-kind",
                T1,
                json!({"parentRefs": [{"name": "tlsroutes-only", "sectionName": "tls"}],
                "rules": [{"backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}]}),
            ),
            route(
                GW,
                "TLSRoute",
                "mixed-protocol-conflict-control",
                T1,
                json!({"parentRefs": [{"name": "tlsroutes-only", "sectionName": "tls"}],
                "hostnames": ["abc.example.com"],
                "rules": [{"backendRefs": [{"name": "tcp-backend", "port": 8443}]}]}),
            ),
        ],
    );
    let diagnostics = r#"Gateway default/tlsroutes-only (t.yaml:7): spec.listeners[1]: listener "conflicted-tls" of Gateway default/tlsroutes-only has the same hostname on the port with another protocol; listener not served
        Gateway default/tlsroutes-only (t.yaml:7): spec.listeners[2]: listener "conflicted-https" of Gateway default/tlsroutes-only has the same hostname on the port with another protocol; listener not served
        HTTPRoute default/disallowed-kind (t.yaml:8): spec.parentRefs[0]: no listener of Gateway default/tlsroutes-only admits a HTTPRoute from namespace "default" (allowedRoutes); not attached"#;
    check(
        &m,
        &[
            connect("k8s:gateway:10443", Some("abc.example.com")),
            Request::new("k8s:gateway:8443", "https.example.org", "/").sni("https.example.org"),
        ],
        &format!(
            r#"{diagnostics}
            k8s:gateway:10443 sni=abc.example.com => proxy the connection to cluster "k8s:default/tcp-backend:8443"
            k8s:gateway:8443 https.example.org / => oracle error: no listener "k8s:gateway:8443" in the snapshot"#
        ),
    );
    check_status(
        &m,
        &format!(
            r#"{diagnostics}
        Gateway default/tlsroutes-only: Accepted=True ListenersNotValid (some listeners are not valid); Programmed=True Programmed
        Gateway default/tlsroutes-only: listener conflicted-https: Accepted=False Invalid (listener "conflicted-tls" of Gateway default/tlsroutes-only has the same hostname on the port with another protocol); Conflicted=True ProtocolConflict (listener "conflicted-tls" of Gateway default/tlsroutes-only has the same hostname on the port with another protocol); Programmed=False Invalid (not served); ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[HTTPRoute]
        Gateway default/tlsroutes-only: listener conflicted-tls: Accepted=False Invalid (listener "conflicted-https" of Gateway default/tlsroutes-only has the same hostname on the port with another protocol); Conflicted=True ProtocolConflict (listener "conflicted-https" of Gateway default/tlsroutes-only has the same hostname on the port with another protocol); Programmed=False Invalid (not served); ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[TLSRoute]
        Gateway default/tlsroutes-only: listener tls: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=1; supportedKinds=[TLSRoute]
        GatewayClass xdsc: Accepted=True Accepted
        HTTPRoute default/disallowed-kind: parent default/tlsroutes-only sectionName=tls: Accepted=False NotAllowedByListeners (no listener of Gateway default/tlsroutes-only admits a HTTPRoute from namespace "default" (allowedRoutes)); ResolvedRefs=True ResolvedRefs
        TLSRoute default/mixed-protocol-conflict-control: parent default/tlsroutes-only sectionName=tls: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs"#
        ),
    );
}

#[test]
fn bad_inputs_get_their_spec_reasons_and_the_rest_serves() {
    let m = with(
        service("a", &[("", 80, 80)]).into(),
        [
            gateway_class(),
            gateway(json!([
                {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "web.com"},
                {"name": "kinds", "port": 8080, "protocol": "HTTP",
                 "allowedRoutes": {"kinds": [{"kind": "HTTPRoute"}, {"kind": "FooRoute"}]}},
                {"name": "udp", "port": 5353, "protocol": "UDP"},
            ])),
            route(
                GW,
                "HTTPRoute",
                "good",
                T1,
                json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
                "rules": [{"backendRefs": to("a")}]}),
            ),
            route(
                GW,
                "TLSRoute",
                "tls-on-http",
                T1,
                json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
                "hostnames": ["web.com"], "rules": [{"backendRefs": [{"name": "a", "port": 80}]}]}),
            ),
            route(
                GW,
                "HTTPRoute",
                "no-section",
                T1,
                json!({"parentRefs": [{"name": "gw", "sectionName": "nope"}],
                "rules": [{"backendRefs": to("a")}]}),
            ),
            route(
                GW,
                "HTTPRoute",
                "no-host",
                T1,
                json!({"parentRefs": [{"name": "gw", "sectionName": "http"}],
                "hostnames": ["other.com"], "rules": [{"backendRefs": to("a")}]}),
            ),
            route(
                GW,
                "HTTPRoute",
                "bad-backends",
                T1,
                json!({"parentRefs": [{"name": "gw", "sectionName": "kinds"}],
                "rules": [{"backendRefs": [{"name": "missing", "port": 80}]}]}),
            ),
        ],
    );
    check(
        &m,
        &[
            gw_get("web.com", "/"),
            Request::new("k8s:gateway:8080", "x", "/"),
        ],
        r#"Gateway default/gw (t.yaml:4): spec.listeners[1].allowedRoutes.kinds[1]: route kind "FooRoute" is not supported on a HTTP listener
        Gateway default/gw (t.yaml:4): spec.listeners[2].protocol: protocol "UDP" is not supported; listener not served
        HTTPRoute default/bad-backends (t.yaml:9): spec.rules[0].backendRefs[0]: service default/missing does not exist
        HTTPRoute default/no-host (t.yaml:8): spec.parentRefs[0]: no hostname of the route intersects the hostnames of the listeners of Gateway default/gw; not attached
        HTTPRoute default/no-section (t.yaml:7): spec.parentRefs[0]: Gateway default/gw has no listener that the parent reference names (sectionName, port); not attached
        TLSRoute default/tls-on-http (t.yaml:6): spec.parentRefs[0]: no listener of Gateway default/gw admits a TLSRoute from namespace "default" (allowedRoutes); not attached
        k8s:gateway:10080 web.com / => k8s:default/a:80
        k8s:gateway:8080 x / => answer 500"#,
    );
    check_status(
        &m,
        r#"Gateway default/gw (t.yaml:4): spec.listeners[1].allowedRoutes.kinds[1]: route kind "FooRoute" is not supported on a HTTP listener
        Gateway default/gw (t.yaml:4): spec.listeners[2].protocol: protocol "UDP" is not supported; listener not served
        HTTPRoute default/bad-backends (t.yaml:9): spec.rules[0].backendRefs[0]: service default/missing does not exist
        HTTPRoute default/no-host (t.yaml:8): spec.parentRefs[0]: no hostname of the route intersects the hostnames of the listeners of Gateway default/gw; not attached
        HTTPRoute default/no-section (t.yaml:7): spec.parentRefs[0]: Gateway default/gw has no listener that the parent reference names (sectionName, port); not attached
        TLSRoute default/tls-on-http (t.yaml:6): spec.parentRefs[0]: no listener of Gateway default/gw admits a TLSRoute from namespace "default" (allowedRoutes); not attached
        Gateway default/gw: Accepted=True ListenersNotValid (some listeners are not valid); Programmed=True Programmed
        Gateway default/gw: listener http: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=2; supportedKinds=[GRPCRoute,HTTPRoute]
        Gateway default/gw: listener kinds: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=False InvalidRouteKinds (route kind "FooRoute" is not supported on a HTTP listener); attachedRoutes=1; supportedKinds=[HTTPRoute]
        Gateway default/gw: listener udp: Accepted=False UnsupportedProtocol (protocol "UDP" is not supported); Conflicted=False NoConflicts; Programmed=False Invalid (not served); ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[]
        GatewayClass xdsc: Accepted=True Accepted
        HTTPRoute default/bad-backends: parent default/gw sectionName=kinds: Accepted=True Accepted; ResolvedRefs=False BackendNotFound (service default/missing does not exist)
        HTTPRoute default/good: parent default/gw sectionName=http: Accepted=True Accepted; ResolvedRefs=True ResolvedRefs
        HTTPRoute default/no-host: parent default/gw sectionName=http: Accepted=False NoMatchingListenerHostname (no hostname of the route intersects the hostnames of the listeners of Gateway default/gw); ResolvedRefs=True ResolvedRefs
        HTTPRoute default/no-section: parent default/gw sectionName=nope: Accepted=False NoMatchingParent (Gateway default/gw has no listener that the parent reference names (sectionName, port)); ResolvedRefs=True ResolvedRefs
        TLSRoute default/tls-on-http: parent default/gw sectionName=http: Accepted=False NotAllowedByListeners (no listener of Gateway default/gw admits a TLSRoute from namespace "default" (allowedRoutes)); ResolvedRefs=True ResolvedRefs"#,
    );
}

#[test]
fn a_redirect_replacing_a_prefix_with_the_root_does_not_double_the_slash() {
    let m = with(
        gateway_base(),
        [http_route(
            "r",
            T1,
            json!({"parentRefs": [{"name": "gw"}], "rules": [
                {"matches": [{"path": {"value": "/old"}}], "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]},
                {"filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "x.com", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
            ]}),
        )],
    );
    check(
        &m,
        &[
            gw_get("h", "/old"),
            gw_get("h", "/old/x?q=1"),
            gw_get("h", "/oldx"),
            gw_get("h", "/y"),
        ],
        "k8s:gateway:10080 h /old => redirect 302 to http://h/
         k8s:gateway:10080 h /old/x?q=1 => redirect 302 to http://h/x?q=1
         k8s:gateway:10080 h /oldx => redirect 302 to http://x.com/new/oldx
         k8s:gateway:10080 h /y => redirect 302 to http://x.com/new/y",
    );
}

#[test]
fn status_carries_the_observed_generation() {
    let mut class = gateway_class();
    class["metadata"]["generation"] = json!(2);
    let mut gw = gateway(json!([{"name": "http", "port": 80, "protocol": "HTTP"}]));
    gw["metadata"]["generation"] = json!(3);
    let mut r = http_route(
        "r",
        T1,
        json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": to("a")}]}),
    );
    r["metadata"]["generation"] = json!(5);
    let m = with(service("a", &[("", 80, 80)]).into(), [class, gw, r]);
    let t = run(&m, &Options::default());
    let generations = |kind: &str, name: &str| -> Vec<i64> {
        let (id, s) = t
            .statuses
            .iter()
            .find(|(id, _)| id.kind == kind && id.name == name)
            .expect("a status");
        let kind = KubeKind::named(&id.kind).expect("a kind read");
        let v = s.to_json(kind, "xdsc.dev/gateway-controller");
        let mut out = Vec::new();
        let mut collect = |cs: &Value| {
            for c in cs.as_array().into_iter().flatten() {
                out.push(c["observedGeneration"].as_i64().unwrap_or(-1));
            }
        };
        collect(&v["conditions"]);
        for l in v["listeners"].as_array().into_iter().flatten() {
            collect(&l["conditions"]);
        }
        for p in v["parents"].as_array().into_iter().flatten() {
            collect(&p["conditions"]);
        }
        out
    };
    assert_eq!(generations("GatewayClass", "xdsc"), [2]);
    assert_eq!(
        generations("Gateway", "gw"),
        [3; 6],
        "2 own and 4 listener conditions"
    );
    assert_eq!(generations("HTTPRoute", "r"), [5, 5]);
}

#[test]
fn certificate_problems_have_their_reasons() {
    let in_ns = |mut v: Value, ns: &str| {
        v["metadata"]["namespace"] = json!(ns);
        v
    };
    let mut opaque = tls_secret("opaque");
    opaque["type"] = json!("Opaque");
    let grant_for = |name: &str| {
        let mut g = reference_grant("certs", "Gateway", "default", "Secret");
        g["metadata"]["name"] = json!(format!("for-{name}"));
        g["spec"]["to"][0]["name"] = json!(name);
        g
    };
    let https = |name: &str, host: &str, secret: &str, ns: Option<&str>| {
        let mut cert = json!({"name": secret});
        if let Some(ns) = ns {
            cert["namespace"] = json!(ns);
        }
        json!({"name": name, "port": 443, "protocol": "HTTPS", "hostname": host,
               "tls": {"certificateRefs": [cert]}})
    };
    let m = vec![
        in_ns(tls_secret("named"), "certs"),
        in_ns(tls_secret("other"), "certs"),
        opaque,
        gateway_class(),
        gateway(json!([
            https("missing", "a.com", "nope", None),
            https("opaque", "b.com", "opaque", None),
            https("ungranted", "c.com", "other", Some("certs")),
            https("granted", "d.com", "named", Some("certs")),
        ])),
        grant_for("named"),
    ];
    check_status(
        &m,
        r#"Gateway default/gw (t.yaml:5): spec.listeners[0].tls.certificateRefs[0]: secret default/nope does not exist
        Gateway default/gw (t.yaml:5): spec.listeners[1].tls.certificateRefs[0]: secret default/opaque is not of type kubernetes.io/tls
        Gateway default/gw (t.yaml:5): spec.listeners[2].tls.certificateRefs[0]: secret certs/other is in another namespace and no ReferenceGrant there allows it; listener not served
        Gateway default/gw: Accepted=True ListenersNotValid (some listeners are not valid); Programmed=True Programmed
        Gateway default/gw: listener granted: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=0; supportedKinds=[GRPCRoute,HTTPRoute]
        Gateway default/gw: listener missing: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=False Invalid (not served); ResolvedRefs=False InvalidCertificateRef (secret default/nope is not usable); attachedRoutes=0; supportedKinds=[GRPCRoute,HTTPRoute]
        Gateway default/gw: listener opaque: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=False Invalid (not served); ResolvedRefs=False InvalidCertificateRef (secret default/opaque is not usable); attachedRoutes=0; supportedKinds=[GRPCRoute,HTTPRoute]
        Gateway default/gw: listener ungranted: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=False Invalid (not served); ResolvedRefs=False RefNotPermitted (secret certs/other is in another namespace and no ReferenceGrant there allows it; listener not served); attachedRoutes=0; supportedKinds=[GRPCRoute,HTTPRoute]
        GatewayClass xdsc: Accepted=True Accepted"#,
    );
}

#[test]
fn backend_problems_have_their_reasons() {
    let m = with(
        gateway_base(),
        [http_route(
            "r",
            T1,
            json!({"parentRefs": [{"name": "gw"}], "rules": [
            {"backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "a"}]}]}),
        )],
    );
    check_status(
        &m,
        r#"HTTPRoute default/r (t.yaml:9): spec.rules[0].backendRefs[0]: backend kind "Bucket" is not supported (only Services are)
        Gateway default/gw: Accepted=True Accepted; Programmed=True Programmed
        Gateway default/gw: listener http: Accepted=True Accepted; Conflicted=False NoConflicts; Programmed=True Programmed; ResolvedRefs=True ResolvedRefs; attachedRoutes=1; supportedKinds=[GRPCRoute,HTTPRoute]
        GatewayClass xdsc: Accepted=True Accepted
        HTTPRoute default/r: parent default/gw: Accepted=True Accepted; ResolvedRefs=False InvalidKind (backend kind "Bucket" is not supported (only Services are))"#,
    );
}

#[test]
fn stream_route_backends_need_grants() {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "data"},
                     "spec": {"ports": [{"port": 443}]}});
    let base = vec![
        svc,
        gateway_class(),
        gateway(
            json!([{"name": "tls", "port": 443, "protocol": "TLS", "tls": {"mode": "Passthrough"}}]),
        ),
        route(
            GW,
            "TLSRoute",
            "db",
            T1,
            json!({"parentRefs": [{"name": "gw"}], "hostnames": ["db.com"],
            "rules": [{"backendRefs": [{"name": "db", "namespace": "data", "port": 443}]}]}),
        ),
    ];
    check(
        &base,
        &[connect("k8s:gateway:10443", Some("db.com"))],
        r#"TLSRoute default/db (t.yaml:4): spec.rules: no usable backend; connections are refused
        TLSRoute default/db (t.yaml:4): spec.rules[0].backendRefs[0]: service data/db is in another namespace and no ReferenceGrant there allows it
        k8s:gateway:10443 sni=db.com => oracle error: no listener "k8s:gateway:10443" in the snapshot"#,
    );
    let granted = with(
        base,
        [reference_grant("data", "TLSRoute", "default", "Service")],
    );
    check(
        &granted,
        &[connect("k8s:gateway:10443", Some("db.com"))],
        r#"k8s:gateway:10443 sni=db.com => proxy the connection to cluster "k8s:data/db:443""#,
    );
}
