//! The Gateway API's non-HTTP paths end to end with the real Envoy: `xdsc-file serve` on a
//! folder of Gateway API manifests, Envoy over ADS, and backends written here.
//!
//! - TLS passthrough: two TLS backends (`openssl s_server`, each with its own certificate)
//!   behind one TLS listener; a TLS client with SNI (`openssl s_client`) reaches the backend
//!   of its name and sees that backend's certificate, so Envoy did not terminate.
//! - HTTPS and TLS passthrough on one port, by SNI, across two Gateways: one name reaches
//!   its TLS backend unterminated, the other is terminated with xdsc's certificate and
//!   answered over HTTP.
//! - TCP: an echo backend behind a TCP listener and a TCPRoute.
//! - gRPC: a tonic server (Envoy's rate-limit service, answered here) behind a GRPCRoute;
//!   a tonic client's call is answered by it over HTTP/2 through Envoy.
//! - Hostnames: on one listener, a request to `a.example.com` for a path only the
//!   `*.example.com` route serves reaches that route's backend (less specific hostnames
//!   serve what the more specific do not); with listeners `*.example.com` and
//!   `a.example.com`, it does not (listener isolation).
//! - A missing Service beside a valid one, weights 1:1: some requests answer 500 (the
//!   missing one keeps its share), the others reach the valid backend.
//! - Bad inputs beside the good ones: a refused cross-namespace backend, an unsupported
//!   listener protocol and a TLSRoute on an HTTP listener are reported with their spec
//!   reasons by `xdsc-file check` while the rest serves.
//!
//! The TLS test needs the `openssl` command (Debian's `openssl` package); like Envoy, it must
//! be there when `CI=true`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use xdsc_test_support::{
    Backend, Envoy, TestCa, TlsBackend, ads_bootstrap, find_envoy, find_openssl, free_port,
    http_get, status_and_body, tls_exchange, wait_for,
};

use crate::serve_envoy::Served;
use crate::support::{Dir, bin};

const WAIT: Duration = Duration::from_secs(30);
const GW: &str = "gateway.networking.k8s.io/v1";

/// Writes every manifest as one YAML file (JSON is YAML).
fn write_manifests(dir: &Dir, name: &str, manifests: &[Value]) {
    let text: Vec<String> = manifests.iter().map(|m| m.to_string()).collect();
    dir.write(name, &text.join("\n---\n"));
}

fn class() -> Value {
    json!({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "xdsc"},
           "spec": {"controllerName": "xdsc.dev/gateway-controller"}})
}

fn gateway(listeners: Value) -> Value {
    named_gateway("gw", listeners)
}

fn named_gateway(name: &str, listeners: Value) -> Value {
    json!({"apiVersion": GW, "kind": "Gateway", "metadata": {"name": name, "namespace": "default"},
           "spec": {"gatewayClassName": "xdsc", "listeners": listeners}})
}

/// A Service `name` (port `port`, `appProtocol` when given) whose one endpoint is a local
/// backend on `target`.
fn service(name: &str, port: u16, target: u16) -> [Value; 2] {
    [
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
               "spec": {"ports": [{"port": port}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": format!("{name}-1"), "namespace": "default",
                            "labels": {"kubernetes.io/service-name": name}},
               "addressType": "IPv4", "ports": [{"port": target}],
               "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]}),
    ]
}

/// `xdsc-file serve` on the folder and an Envoy connected to it.
fn serve(tag: &str, dir: &Dir) -> Option<(Served, Envoy)> {
    let envoy_bin = find_envoy()?;
    let served = Served::start(dir.path(), &[]);
    let admin = free_port();
    let envoy = Envoy::start(
        &envoy_bin,
        &ads_bootstrap(tag, "default", served.xds_port, admin, false),
        admin,
    );
    Some((served, envoy))
}

/// The subject of the certificate a TLS handshake with SNI `sni` through `port` presents
/// (`None` when the handshake fails).
fn handshake_subject(openssl: &str, port: u16, sni: &str) -> Option<String> {
    let out = Command::new(openssl)
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", sni])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(|s| s.replace(' ', ""))
}

#[test]
fn tls_passthrough_reaches_the_backend_of_the_sni_name() {
    let Some(openssl) = find_openssl() else {
        return;
    };
    let dir = Dir::with_files("gw-tls", &[]);
    let certs = Dir::with_files("gw-tls-certs", &[]);
    let ca = TestCa::new(openssl, certs.path(), "backends-ca");
    let a = TlsBackend::start(openssl, &ca.issue("a.example.com", &[]));
    let b = TlsBackend::start(openssl, &ca.issue("b.example.com", &[]));
    let (a_port, b_port) = (a.port, b.port);
    let listen = free_port();
    let route = |name: &str, host: &str| {
        json!({"apiVersion": GW, "kind": "TLSRoute", "metadata": {"name": name, "namespace": "default"},
               "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                        "rules": [{"backendRefs": [{"name": name, "port": 443}]}]}})
    };
    let mut m = vec![
        class(),
        gateway(json!([{"name": "tls", "port": listen, "protocol": "TLS",
                        "hostname": "*.example.com", "tls": {"mode": "Passthrough"}}])),
        route("a", "a.example.com"),
        route("b", "b.example.com"),
    ];
    m.extend(service("a", 443, a_port));
    m.extend(service("b", 443, b_port));
    write_manifests(&dir, "gateway.yaml", &m);
    let Some((served, envoy)) = serve("gw-tls", &dir) else {
        return;
    };
    for host in ["a.example.com", "b.example.com"] {
        let want = format!("CN={host}");
        let got = wait_for(WAIT, || {
            handshake_subject(openssl, listen, host).filter(|s| *s == want)
        });
        assert!(
            got.is_some(),
            "SNI {host} never reached its backend: last {:?}\n{}\n{}",
            handshake_subject(openssl, listen, host),
            served.log_text(),
            envoy.log_tail()
        );
    }
    // A name no route takes: the connection is closed, no certificate is seen.
    assert_eq!(handshake_subject(openssl, listen, "c.example.com"), None);
}

/// The issue's multi-tenant case: on one Envoy port, SNI a.example.com is passed through to
/// tenant a's TLS backend (its own certificate is seen) and SNI b.example.com is terminated
/// with tenant b's certificate and answered by its HTTP backend.
#[test]
fn https_and_tls_passthrough_share_one_port_by_sni() {
    let Some(openssl) = find_openssl() else {
        return;
    };
    let dir = Dir::with_files("gw-mixed", &[]);
    let certs = Dir::with_files("gw-mixed-certs", &[]);
    let ca = TestCa::new(openssl, certs.path(), "mixed-ca");
    let a = TlsBackend::start(openssl, &ca.issue("backend-a", &[]));
    let web = Backend::start("tenant-b-web");
    let b_cert = ca.issue("b.example.com", &[]);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("PEM");
    let listen = free_port();
    let mut m = vec![
        class(),
        named_gateway(
            "tenant-a",
            json!([{"name": "tls", "port": listen, "protocol": "TLS",
                    "hostname": "a.example.com", "tls": {"mode": "Passthrough"}}]),
        ),
        named_gateway(
            "tenant-b",
            json!([{"name": "https", "port": listen, "protocol": "HTTPS",
                    "hostname": "b.example.com", "tls": {"certificateRefs": [{"name": "b-cert"}]}}]),
        ),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b-cert", "namespace": "default"},
               "type": "kubernetes.io/tls",
               "stringData": {"tls.crt": read(&b_cert.cert), "tls.key": read(&b_cert.key)}}),
        json!({"apiVersion": GW, "kind": "TLSRoute", "metadata": {"name": "a", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "tenant-a"}],
                        "rules": [{"backendRefs": [{"name": "a", "port": 443}]}]}}),
        json!({"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "b", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "tenant-b"}],
                        "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}),
    ];
    m.extend(service("a", 443, a.port));
    m.extend(service("web", 80, web.addr.port()));
    write_manifests(&dir, "gateway.yaml", &m);
    let Some((served, envoy)) = serve("gw-mixed", &dir) else {
        return;
    };
    let logs = || format!("{}\n{}", served.log_text(), envoy.log_tail());
    let passed = wait_for(WAIT, || {
        handshake_subject(openssl, listen, "a.example.com").filter(|s| s == "CN=backend-a")
    });
    assert!(
        passed.is_some(),
        "SNI a.example.com never reached its TLS backend: last {:?}\n{}",
        handshake_subject(openssl, listen, "a.example.com"),
        logs()
    );
    let http = "GET / HTTP/1.1\r\nhost: b.example.com\r\nconnection: close\r\n\r\n";
    let exchange = || tls_exchange(openssl, listen, Some("b.example.com"), Some(http));
    let terminated = wait_for(WAIT, || {
        let (subject, response) = exchange();
        (subject.as_deref() == Some("CN=b.example.com")
            && status_and_body(&response) == Some((200, "tenant-b-web".to_owned())))
        .then_some(())
    });
    assert!(
        terminated.is_some(),
        "SNI b.example.com was never terminated and answered: last {:?}\n{}",
        exchange(),
        logs()
    );
    // A name neither tenant has: closed, no certificate.
    assert_eq!(handshake_subject(openssl, listen, "c.example.com"), None);
}

/// An echo backend on a free port, answering each connection until it closes.
fn echo_backend() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn echo_through(port: u16, text: &str) -> Option<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(text.as_bytes()).ok()?;
    let mut buf = vec![0u8; text.len()];
    s.read_exact(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

#[test]
fn a_tcp_route_carries_an_echo() {
    let dir = Dir::with_files("gw-tcp", &[]);
    let backend = echo_backend();
    let listen = free_port();
    let mut m = vec![
        class(),
        gateway(json!([{"name": "tcp", "port": listen, "protocol": "TCP"}])),
        json!({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
               "metadata": {"name": "echo", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "echo", "port": 7}]}]}}),
    ];
    m.extend(service("echo", 7, backend));
    write_manifests(&dir, "gateway.yaml", &m);
    let Some((served, envoy)) = serve("gw-tcp", &dir) else {
        return;
    };
    let got = wait_for(WAIT, || {
        echo_through(listen, "ping through envoy").filter(|s| s == "ping through envoy")
    });
    assert!(
        got.is_some(),
        "the echo never came back\n{}\n{}",
        served.log_text(),
        envoy.log_tail()
    );
}

/// Less specific route hostnames serve what the more specific do not, through Envoy: on
/// one listener, `a.example.com`'s request for `/wild` reaches the `*.example.com` route's
/// backend; on a port with listeners `*.example.com` and `a.example.com` the same request
/// takes only the `a.example.com` listener's routes (listener isolation) and is not found.
#[test]
fn less_specific_hostnames_serve_what_the_more_specific_do_not_through_envoy() {
    let dir = Dir::with_files("gw-fallback", &[]);
    let (exact, wild) = (Backend::start("exact"), Backend::start("wild"));
    let (one, two) = (free_port(), free_port());
    let route = |name: &str, section: &str, hostnames: Value, path: &str, to: &str| {
        json!({"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": "default"},
               "spec": {"parentRefs": [{"name": "gw", "sectionName": section}], "hostnames": hostnames,
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                                   "backendRefs": [{"name": to, "port": 80}]}]}})
    };
    let mut m = vec![
        class(),
        gateway(json!([
            {"name": "one", "port": one, "protocol": "HTTP"},
            {"name": "two-wild", "port": two, "protocol": "HTTP", "hostname": "*.example.com"},
            {"name": "two-a", "port": two, "protocol": "HTTP", "hostname": "a.example.com"},
        ])),
        route("exact", "one", json!(["a.example.com"]), "/own", "exact"),
        route("wild", "one", json!(["*.example.com"]), "/wild", "wild"),
        route("two-exact", "two-a", json!([]), "/own", "exact"),
        route("two-wild", "two-wild", json!([]), "/wild", "wild"),
    ];
    m.extend(service("exact", 80, exact.addr.port()));
    m.extend(service("wild", 80, wild.addr.port()));
    write_manifests(&dir, "gateway.yaml", &m);
    let Some((served, envoy)) = serve("gw-fallback", &dir) else {
        return;
    };
    let logs = || format!("{}\n{}", served.log_text(), envoy.log_tail());
    let ready = wait_for(WAIT, || {
        (http_get(one, "a.example.com", "/own")? == (200, "exact".to_owned())
            && http_get(two, "b.example.com", "/wild")? == (200, "wild".to_owned()))
            .then_some(())
    });
    assert!(ready.is_some(), "the routes never served\n{}", logs());
    for (port, host, path, want) in [
        (one, "a.example.com", "/wild", Some("wild")),
        (one, "b.example.com", "/wild", Some("wild")),
        (one, "b.example.com", "/own", None),
        (two, "a.example.com", "/own", Some("exact")),
        (two, "a.example.com", "/wild", None),
    ] {
        let want = match want {
            Some(body) => (200, body.to_owned()),
            None => (404, String::new()),
        };
        let got = http_get(port, host, path);
        assert_eq!(
            got.as_ref().map(|(status, body)| (*status, body.clone())),
            Some(want),
            "{host}{path} on {}\n{}",
            if port == one {
                "one listener"
            } else {
                "two listeners"
            },
            logs()
        );
    }
}

#[test]
fn a_missing_backend_keeps_its_share_and_answers_500() {
    let dir = Dir::with_files("gw-missing-backend", &[]);
    let web = Backend::start("web");
    let listen = free_port();
    let mut m = vec![
        class(),
        gateway(json!([{"name": "http", "port": listen, "protocol": "HTTP"}])),
        json!({"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "split", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [
                   {"name": "web", "port": 80, "weight": 1}, {"name": "gone", "port": 80, "weight": 1}]}]}}),
    ];
    m.extend(service("web", 80, web.addr.port()));
    write_manifests(&dir, "gateway.yaml", &m);
    let Some((served, envoy)) = serve("gw-missing-backend", &dir) else {
        return;
    };
    let logs = || format!("{}\n{}", served.log_text(), envoy.log_tail());
    let reached = wait_for(WAIT, || {
        http_get(listen, "h", "/").filter(|(status, body)| *status == 200 && body.contains("web"))
    });
    assert!(
        reached.is_some(),
        "the valid backend was never reached\n{}",
        logs()
    );
    // 1:1 over 40 requests: at most 5 on one side has a chance of about 1e-6.
    let (mut ok, mut errors, mut other) = (0, 0, Vec::new());
    for _ in 0..40 {
        match http_get(listen, "h", "/") {
            Some((200, body)) if body.contains("web") => ok += 1,
            Some((500, _)) => errors += 1,
            got => other.push(format!("{got:?}")),
        }
    }
    assert!(other.is_empty(), "unexpected answers {other:?}\n{}", logs());
    assert!(
        ok > 5 && errors > 5,
        "{ok} reached web, {errors} answered 500\n{}",
        logs()
    );
}

mod grpc {
    //! A gRPC backend written here: Envoy's rate-limit service (a unary call from the
    //! envoy-types crate), answering with a header that names the backend.
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
        RateLimitService, RateLimitServiceServer,
    };
    use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};

    pub(super) struct Named(pub(super) &'static str);

    #[tonic::async_trait]
    impl RateLimitService for Named {
        async fn should_rate_limit(
            &self,
            _: tonic::Request<RateLimitRequest>,
        ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
            Ok(tonic::Response::new(RateLimitResponse {
                overall_code: 1,
                response_headers_to_add: vec![HeaderValue {
                    key: "x-backend".into(),
                    value: self.0.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }))
        }
    }

    /// Serves the backend on a free port, on a runtime of its own thread.
    pub(super) fn start(name: &'static str) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let service = RateLimitServiceServer::new(Named(name));
                while let Ok((stream, _)) = listener.accept().await {
                    let service = service.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let mut service = service.clone();
                                async move {
                                    use tonic::codegen::Service;
                                    service.call(req.map(tonic::body::Body::new)).await
                                }
                            },
                        );
                        let builder = hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        );
                        let _ = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        port
    }

    /// One call through `port` (with `x-canary: 1` when `canary`): the backend that
    /// answered, or the error.
    pub(super) fn call(port: u16, canary: bool) -> Result<String, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let mut client = RateLimitServiceClient::connect(format!("http://127.0.0.1:{port}"))
                .await
                .map_err(|e| e.to_string())?;
            let mut request = tonic::Request::new(RateLimitRequest {
                domain: "test".into(),
                ..Default::default()
            });
            if canary {
                request
                    .metadata_mut()
                    .insert("x-canary", "1".parse().expect("ascii"));
            }
            let answer = client
                .should_rate_limit(request)
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer
                .into_inner()
                .response_headers_to_add
                .first()
                .map(|h| h.value.clone())
                .unwrap_or_default())
        })
    }
}

#[test]
fn a_grpc_call_goes_through_a_grpc_route() {
    let dir = Dir::with_files("gw-grpc", &[]);
    let (one, two) = (grpc::start("one"), grpc::start("two"));
    let listen = free_port();
    let service_name = "envoy.service.ratelimit.v3.RateLimitService";
    let mut m = vec![
        class(),
        gateway(json!([{"name": "grpc", "port": listen, "protocol": "HTTP"}])),
        json!({"apiVersion": GW, "kind": "GRPCRoute", "metadata": {"name": "rl", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "gw"}], "rules": [
                   {"matches": [{"method": {"service": service_name, "method": "ShouldRateLimit"},
                                 "headers": [{"name": "x-canary", "value": "1"}]}],
                    "backendRefs": [{"name": "two", "port": 9000}]},
                   {"matches": [{"method": {"service": service_name}}],
                    "backendRefs": [{"name": "one", "port": 9000}]}]}}),
    ];
    m.extend(service("one", 9000, one));
    m.extend(service("two", 9000, two));
    write_manifests(&dir, "gateway.yaml", &m);
    let Some((served, envoy)) = serve("gw-grpc", &dir) else {
        return;
    };
    let got = wait_for(WAIT, || {
        grpc::call(listen, false).ok().filter(|b| b == "one")
    });
    assert!(
        got.is_some(),
        "the call never reached backend one: last {:?}\n{}\n{}",
        grpc::call(listen, false),
        served.log_text(),
        envoy.log_tail()
    );
    // The header match of the first rule: the canary goes to backend two.
    assert_eq!(grpc::call(listen, true), Ok("two".to_owned()));
}

#[test]
fn check_reports_bad_inputs_with_their_spec_reasons_and_the_rest_serves() {
    let dir = Dir::with_files("gw-bad", &[]);
    let backend = echo_backend();
    let listen = free_port();
    let mut m = vec![
        class(),
        gateway(json!([
            {"name": "tcp", "port": listen, "protocol": "TCP"},
            {"name": "http", "port": free_port(), "protocol": "HTTP"},
            {"name": "udp", "port": 5353, "protocol": "UDP"},
        ])),
        json!({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
               "metadata": {"name": "echo", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "gw", "sectionName": "tcp"}],
                        "rules": [{"backendRefs": [{"name": "echo", "port": 7}]}]}}),
        json!({"apiVersion": GW, "kind": "TLSRoute", "metadata": {"name": "tls", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "gw", "sectionName": "http"}], "hostnames": ["a.com"],
                        "rules": [{"backendRefs": [{"name": "echo", "port": 7}]}]}}),
        json!({"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "cross", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "gw", "sectionName": "http"}],
                        "rules": [{"backendRefs": [{"name": "api", "namespace": "other", "port": 80}]}]}}),
    ];
    m.extend(service("echo", 7, backend));
    write_manifests(&dir, "gateway.yaml", &m);
    let out = bin()
        .args(["check", "--output", "json"])
        .arg(dir.path())
        .output()
        .expect("xdsc-file check runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let status = |kind: &str, name: &str| {
        v["statuses"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["kind"] == kind && s["name"] == name))
            .map(|s| s["status"].clone())
            .unwrap_or_default()
    };
    let condition = |conditions: &Value, t: &str| {
        conditions
            .as_array()
            .and_then(|a| a.iter().find(|c| c["type"] == t))
            .map(|c| {
                format!(
                    "{} {}",
                    c["status"].as_str().unwrap_or(""),
                    c["reason"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_default()
    };
    let gw = status("Gateway", "gw");
    let listener = |name: &str| {
        gw["listeners"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["name"] == name))
            .map(|l| l["conditions"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        condition(&listener("udp"), "Accepted"),
        "False UnsupportedProtocol",
        "{v:#}"
    );
    assert_eq!(
        condition(&listener("tcp"), "Programmed"),
        "True Programmed",
        "{v:#}"
    );
    let parent = |kind: &str, name: &str| status(kind, name)["parents"][0]["conditions"].clone();
    assert_eq!(
        condition(&parent("TLSRoute", "tls"), "Accepted"),
        "False NotAllowedByListeners"
    );
    assert_eq!(
        condition(&parent("HTTPRoute", "cross"), "ResolvedRefs"),
        "False RefNotPermitted"
    );
    assert_eq!(
        condition(&parent("TCPRoute", "echo"), "Accepted"),
        "True Accepted"
    );
    assert_eq!(
        status("HTTPRoute", "cross")["parents"][0]["controllerName"],
        "xdsc.dev/gateway-controller"
    );
    assert_eq!(out.status.code(), Some(1), "the errors fail check");

    // Served anyway: the TCP route carries traffic.
    let Some((served, envoy)) = serve("gw-bad", &dir) else {
        return;
    };
    let got = wait_for(WAIT, || {
        echo_through(listen, "still").filter(|s| s == "still")
    });
    assert!(
        got.is_some(),
        "the good route never served\n{}\n{}",
        served.log_text(),
        envoy.log_tail()
    );
}
