//! The route oracle against real Envoy: generated models whose routes answer with their own
//! names are rendered as a static bootstrap, loaded into the pinned Envoy, and every generated
//! request is sent through it; Envoy's answer (status, body, redirect location) must be the
//! oracle's. It lives here for the Envoy harness of `xdsc-server`'s `test-util`; it needs no
//! xDS server. The generated models are served on plain HTTP listeners; HTTPS (certificates
//! chosen by SNI, virtual hosts by `Host`), TLS passthrough (TCP routes by SNI) and both on
//! one port are compared on a fixed model with real certificates, through the `openssl` command as the
//! TLS client and the TLS backends (Debian's `openssl` package; required when `CI=true`).
//!
//! `XDSC_ORACLE_MODELS` sets how many models (default 20) for a longer run.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Change, Kind, ListenerProtocol, Model, Object, ObjectKey};
use xdsc_core::oracle::{self, Action};
use xdsc_core::render::{BootstrapOptions, bootstrap_json};
use xdsc_core::strategy;
use xdsc_test_support::{
    Envoy, TestCa, TlsBackend, find_envoy, find_openssl, free_port, status_and_body, tls_exchange,
    wait_for,
};

/// An HTTP/1.1 answer: status, body, Location.
type Answer = (u16, String, Option<String>);

fn send(port: u16, r: &oracle::Request) -> Option<Answer> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
        r.method, r.path, r.host
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("content-length: 0\r\n\r\n");
    s.write_all(head.as_bytes()).ok()?;
    // Read until the body is complete rather than until EOF: Envoy keeps the connection for
    // its delayed-close timeout (1 s) after answering.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            });
            if r.method == "HEAD" || length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let location = head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.trim().to_owned())
    });
    Some((status, body.to_owned(), location))
}

/// What the oracle says Envoy answers, when it can say it in status, body and Location.
fn expected(outcome: &oracle::Outcome, method: &str) -> Option<Answer> {
    let body = |b: &Option<String>| {
        if method == "HEAD" {
            String::new()
        } else {
            b.clone().unwrap_or_default()
        }
    };
    match &outcome.action {
        Action::Direct {
            status,
            body: b,
            location,
        } => Some((*status, body(b), location.clone())),
        Action::Redirect { location, status } => {
            Some((*status, String::new(), Some(location.clone())))
        }
        Action::NotFound => Some((404, String::new(), None)),
        Action::BadRequest => Some((400, String::new(), None)),
        _ => None,
    }
}

/// A routable model with labelled routes, served only on one plain HTTP listener on `port`.
fn http_only(model: &Model, port: u16) -> Model {
    let mut changes = Vec::new();
    for o in model.of_kind(Kind::Listener) {
        if let Object::Listener(l) = &**o {
            if l.protocol == ListenerProtocol::Http {
                let mut l = l.clone();
                l.address = "127.0.0.1".into();
                l.port = port;
                changes.push(Change::upsert(l));
            } else {
                changes.push(Change::Delete(ObjectKey::new(
                    Kind::Listener,
                    l.name.as_str(),
                )));
            }
        }
    }
    model.apply(changes)
}

#[test]
fn the_oracle_agrees_with_envoy_on_generated_models_and_requests() {
    let Some(binary) = find_envoy() else { return };
    let models: usize = std::env::var("XDSC_ORACLE_MODELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[5; 32]),
    );
    let (mut compared, mut disagreements) = (0usize, Vec::new());
    for m in 0..models {
        let port = free_port();
        let generated = strategy::routable_model()
            .new_tree(&mut runner)
            .expect("model")
            .current();
        let model = http_only(&strategy::label_routes(&generated), port);
        let compiled = Compiled::new(&model);
        let Some(listener) = model
            .of_kind(Kind::Listener)
            .next()
            .map(|o| o.name().to_owned())
        else {
            continue;
        };
        let admin_port = free_port();
        let options = BootstrapOptions {
            admin_port,
            node_id: format!("oracle-{m}"),
            ..BootstrapOptions::default()
        };
        let bootstrap = bootstrap_json(compiled.snapshot(), &options).expect("renders");
        let envoy = Envoy::start(&binary, &bootstrap, admin_port);
        let up = wait_for(Duration::from_secs(20), || {
            let ready = envoy.admin("/ready")?;
            (ready.trim() == "LIVE" && TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok())
                .then_some(())
        });
        assert!(
            up.is_some(),
            "envoy did not start for model {m}:\n{}",
            envoy.log_tail()
        );
        let requests = proptest::collection::vec(strategy::requests(&model), 120);
        let requests = requests.new_tree(&mut runner).expect("requests").current();
        for request in requests
            .into_iter()
            .filter(|r| r.listener == listener && r.sni.is_none())
        {
            if !request.method.bytes().all(|b| b.is_ascii_uppercase())
                || request.method == "CONNECT"
            {
                continue;
            }
            let Ok(outcome) = oracle::evaluate(compiled.snapshot(), &request) else {
                continue;
            };
            let Some(want) = expected(&outcome, &request.method) else {
                continue;
            };
            let answer = send(port, &request);
            let Some(got) = answer else {
                disagreements.push(format!("model {m}: no answer to {request:?}"));
                continue;
            };
            compared += 1;
            // Envoy's own 404 and 400 bodies are not the oracle's business; compare status only.
            let same = if matches!(outcome.action, Action::NotFound | Action::BadRequest) {
                got.0 == want.0
            } else {
                got == want
            };
            if !same {
                disagreements.push(format!(
                    "model {m}: {request:?}\n  oracle: {want:?}\n{outcome}\n  envoy:  {got:?}"
                ));
            }
        }
    }
    assert!(
        compared > models * 5,
        "too few requests compared: {compared}"
    );
    assert!(
        disagreements.is_empty(),
        "{} of {compared} disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n\n")
    );
    eprintln!("oracle and Envoy agree on {compared} requests over {models} models");
}

#[test]
fn the_oracle_agrees_with_envoy_on_https_and_passthrough() {
    use xdsc_core::model::{
        Cluster, DirectResponse, Endpoint, Endpoints, Health, ListenerTls, Locality, Route, Secret,
        TcpRoute, TlsCertificate, VirtualHost,
    };
    let Some(binary) = find_envoy() else { return };
    let Some(openssl) = find_openssl() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("xdsc-oracle-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    // The HTTPS listener's certificates, by SNI: one exact, one wildcard, one default.
    let names = ["a.example.com", "*.w.example.com", "default.example.com"];
    let mut objects: Vec<Object> = Vec::new();
    let (https_port, passthrough_port) = (free_port(), free_port());
    let mut https = xdsc_core::model::Listener::new("https", https_port);
    https.address = "127.0.0.1".into();
    https.protocol = ListenerProtocol::Https;
    let ca = TestCa::new(openssl, &dir, "oracle-ca");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("PEM");
    for (i, cn) in names.iter().enumerate() {
        let pem = ca.issue(cn, &[]);
        let (chain, key) = (read(&pem.cert), read(&pem.key));
        objects.push(Object::Secret(Secret {
            name: format!("cert-{i}"),
            tls_certificate: Some(TlsCertificate {
                certificate_chain: chain,
                private_key: key,
            }),
            validation_context: None,
            provenance: Vec::new(),
        }));
        let hosts = if i == 2 {
            Vec::new()
        } else {
            vec![(*cn).to_owned()]
        };
        https.tls.push(ListenerTls {
            hosts,
            secret: format!("cert-{i}"),
        });
    }
    let answer = |name: &str, prefix: &str| {
        let mut r = Route::forward_prefix(name, prefix, "unused");
        r.forward = None;
        r.direct_response = Some(DirectResponse {
            status: 200,
            body: Some(name.to_owned()),
        });
        r
    };
    let mut a = VirtualHost::new("a", ["https"], ["a.example.com"]);
    a.routes = vec![answer("a-x", "/x"), answer("a-root", "/")];
    let mut w = VirtualHost::new("w", ["https"], ["*.w.example.com"]);
    w.routes = vec![answer("w", "/")];
    let mut any = VirtualHost::new("any", ["https"], ["*"]);
    any.routes = vec![answer("any", "/only")];
    objects.extend([a, w, any].map(Object::VirtualHost));
    // The passthrough listener's backends: TLS servers, each with its own certificate.
    let mut passthrough = xdsc_core::model::Listener::new("passthrough", passthrough_port);
    passthrough.address = "127.0.0.1".into();
    passthrough.protocol = ListenerProtocol::TlsPassthrough;
    let mut backends = Vec::new();
    for (name, sni) in [
        ("pa", Some("a.example.com")),
        ("pw", Some("*.w.example.com")),
        ("pd", None),
    ] {
        let backend = TlsBackend::start(openssl, &ca.issue(&format!("backend-{name}"), &[]));
        let port = backend.port;
        backends.push(backend);
        objects.push(Object::Cluster(Cluster::new(name)));
        objects.push(Object::Endpoints(Endpoints {
            name: name.into(),
            localities: vec![Locality {
                endpoints: vec![Endpoint {
                    address: "127.0.0.1".into(),
                    port,
                    weight: 1,
                    health: Health::Healthy,
                }],
                ..Locality::default()
            }],
            provenance: Vec::new(),
        }));
        passthrough.tcp_routes.push(TcpRoute {
            name: name.into(),
            sni: sni.map(str::to_owned).into_iter().collect(),
            backends: vec![xdsc_core::model::Backend {
                cluster: name.into(),
                weight: 1,
            }],
        });
    }
    objects.push(Object::Listener(passthrough));
    // HTTPS and passthrough on one port: a name no certificate claims passed through.
    https.tcp_routes.push(TcpRoute {
        name: "mixed".into(),
        sni: vec!["pass.example.com".into()],
        backends: vec![xdsc_core::model::Backend {
            cluster: "pa".into(),
            weight: 1,
        }],
    });
    objects.push(Object::Listener(https));
    let model = Model::from_objects(objects);
    let compiled = Compiled::new(&model);
    assert!(
        compiled.diagnostics().is_empty(),
        "{:?}",
        compiled.diagnostics()
    );
    let admin_port = free_port();
    let options = BootstrapOptions {
        admin_port,
        node_id: "oracle-tls".into(),
        ..BootstrapOptions::default()
    };
    let bootstrap = bootstrap_json(compiled.snapshot(), &options).expect("renders");
    let envoy = Envoy::start(&binary, &bootstrap, admin_port);
    let up = wait_for(Duration::from_secs(20), || {
        let ready = envoy.admin("/ready")?;
        (ready.trim() == "LIVE"
            && TcpStream::connect((Ipv4Addr::LOCALHOST, https_port)).is_ok()
            && TcpStream::connect((Ipv4Addr::LOCALHOST, passthrough_port)).is_ok())
        .then_some(())
    });
    assert!(up.is_some(), "envoy did not start:\n{}", envoy.log_tail());
    let mut compared = 0;
    // HTTPS: the certificate by SNI, then the virtual host by Host.
    let cases = [
        (Some("a.example.com"), "a.example.com", "/x/1"),
        (Some("a.example.com"), "a.example.com", "/y"),
        (Some("x.w.example.com"), "x.w.example.com", "/"),
        (Some("x.w.example.com"), "a.example.com", "/x"),
        (Some("other.com"), "other.com", "/only"),
        (Some("other.com"), "other.com", "/nothing"),
        (None, "a.example.com", "/"),
    ];
    for (sni, host, path) in cases {
        let request = oracle::Request::new("https", host, path).sni(sni.unwrap_or(""));
        let outcome = oracle::evaluate(compiled.snapshot(), &request).expect("the oracle answers");
        let chain = outcome.explanation.iter().find_map(|s| match s {
            oracle::Step::FilterChain { index, .. } => *index,
            _ => None,
        });
        let want_cert = chain.map(|i| format!("CN={}", names[i]));
        let want = expected(&outcome, "GET").map(|(status, body, _)| (status, body));
        let http = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        let (cert, response) = tls_exchange(openssl, https_port, sni, Some(&http));
        let got = status_and_body(&response);
        let same_answer = match (&want, &got) {
            (Some((404, _)), Some((404, _))) => true,
            (w, g) => w == g,
        };
        assert!(
            cert == want_cert && same_answer,
            "{request:?}\n  oracle: certificate {want_cert:?}, {want:?}\n{outcome}\n  envoy: certificate {cert:?}, {got:?}"
        );
        compared += 1;
    }
    // Passthrough: the backend (seen by its certificate) by SNI; no SNI or an unknown one goes
    // to the route without names. On the HTTPS port, the name passed through.
    for (listener, port, sni) in [
        ("passthrough", passthrough_port, Some("a.example.com")),
        ("passthrough", passthrough_port, Some("z.w.example.com")),
        ("passthrough", passthrough_port, Some("other.com")),
        ("passthrough", passthrough_port, None),
        ("https", https_port, Some("pass.example.com")),
    ] {
        let request = oracle::Request::new(listener, "", "").sni(sni.unwrap_or(""));
        let outcome = oracle::evaluate(compiled.snapshot(), &request).expect("the oracle answers");
        let want = match &outcome.action {
            Action::TcpProxy { clusters } => Some(format!("CN=backend-{}", clusters[0].0)),
            _ => None,
        };
        let (cert, _) = tls_exchange(openssl, port, sni, None);
        assert_eq!(cert, want, "{request:?}\n{outcome}");
        compared += 1;
    }
    drop(backends);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("oracle and Envoy agree on {compared} TLS connections");
}
