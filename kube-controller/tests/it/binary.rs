//! The `xdsc-kube` binary: help, exit codes, and serving as a child process.

use std::process::Command;
use std::time::{Duration, Instant};

use xdsc_kube_testserver::TestServer;
use xdsc_test_support::{TempDir, TestCa, find_openssl, free_port, http_get, tls_handshake};

use crate::support::*;

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xdsc-kube"))
}

#[test]
fn help_explains_every_flag_and_the_exit_codes() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--kubeconfig",
        "--xds-addr",
        "--admin-addr",
        "--log-format",
        "--watch-namespace",
        "--ingress-controller",
        "--ingress-class",
        "--gateway-controller",
        "--lease-name",
        "--lease-namespace",
        "--publish-service",
        "--status-address",
        "--hold-off",
        "--max-delay",
        "--watch-stale-after",
        "--shutdown-grace",
        "--xds-tls-cert",
        "--xds-tls-key",
        "--xds-client-ca",
        "--xds-tls-reload-every",
        "--profiling",
        "Exit codes",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn exit_codes_as_xdsc_file() {
    let bad_flag = bin()
        .args(["--publish-service", "no-slash"])
        .output()
        .unwrap();
    assert_eq!(bad_flag.status.code(), Some(2), "a wrong command line");
    let bad_lease = bin()
        .args(["--lease-duration", "5s", "--lease-renew-deadline", "5s"])
        .output()
        .unwrap();
    assert_eq!(bad_lease.status.code(), Some(2));
    let dir = TempDir::new("xdsc-kube-exit");
    let missing = dir.path().join("missing.kubeconfig");
    let out = bin().arg("--kubeconfig").arg(&missing).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.kubeconfig"));
}

/// A child `xdsc-kube`, killed when dropped.
struct Child(std::process::Child);

impl Child {
    /// Stops it with SIGTERM and returns its exit code.
    fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        self.0.wait().unwrap().code()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child `xdsc-kube` against `server` with `args`, its kubeconfig in `dir`; with its
/// xDS port when it became ready in time, and its admin port.
async fn start(server: &TestServer, dir: &TempDir, args: &[&str]) -> (Child, Option<u16>, u16) {
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(Some("bin"))).unwrap();
    let (xds, admin) = (free_port(), free_port());
    let child = Child(
        bin()
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "--xds-addr",
                &format!("127.0.0.1:{xds}"),
                "--admin-addr",
                &format!("127.0.0.1:{admin}"),
            ])
            .args(args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    loop {
        let got = tokio::task::spawn_blocking(move || http_get(admin, "localhost", "/readyz"))
            .await
            .unwrap();
        if let Some((200, _)) = got {
            return (child, Some(xds), admin);
        }
        if start.elapsed() > PATIENCE {
            return (child, None, admin);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child `xdsc-kube` against the test server: ready, serves, stops on SIGTERM with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_cleanly() {
    let server = TestServer::start().await.unwrap();
    seed(&server).await;
    let dir = TempDir::new("xdsc-kube-bin");
    let (child, ready, admin) = start(&server, &dir, &["--log-format", "json"]).await;
    let ready = ready.is_some();
    let sources =
        tokio::task::spawn_blocking(move || http_get(admin, "localhost", "/debug/sources"))
            .await
            .unwrap();
    let status = child.terminate();
    assert!(ready, "ready in time");
    let (code, body) = sources.unwrap();
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true, "{body}");
    assert!(
        v["watches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["state"] == "watching"),
        "{body}"
    );
    assert_eq!(status, Some(0));
}

/// The shared TLS flags on the controller: its xDS port speaks mutual TLS with the given
/// certificate; a client without a certificate, or in plain text, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_xds_over_mutual_tls() {
    let Some(openssl) = find_openssl() else {
        return;
    };
    let server = TestServer::start().await.unwrap();
    server.put(ingress_class()).unwrap();
    let dir = TempDir::new("xdsc-kube-tls");
    let ca = TestCa::new(openssl, dir.path(), "xdsc-ca");
    let cert = ca.issue("xdsc-kube", &["DNS:xdsc.test"]);
    let client = ca.issue("envoy", &[]);
    let path = |p: &std::path::Path| p.display().to_string();
    let flags = [
        "--xds-tls-cert".to_owned(),
        path(&cert.cert),
        "--xds-tls-key".to_owned(),
        path(&cert.key),
        "--xds-client-ca".to_owned(),
        path(&ca.pem.cert),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (child, xds, admin) = start(&server, &dir, &flags).await;
    let Some(xds) = xds else {
        child.terminate();
        panic!("not ready in time");
    };
    let (ca_pem, c) = (ca.pem.clone(), client.clone());
    let (served, no_cert) = tokio::task::spawn_blocking(move || {
        (
            tls_handshake(openssl, xds, "xdsc.test", &ca_pem, Some(&c)),
            tls_handshake(openssl, xds, "xdsc.test", &ca_pem, None),
        )
    })
    .await
    .unwrap();
    // Plain text: the preface is not a TLS ClientHello.
    let plain = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", xds)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    let metrics = tokio::task::spawn_blocking(move || http_get(admin, "localhost", "/metrics"))
        .await
        .unwrap()
        .map(|(_, body)| body)
        .unwrap_or_default();
    let code = child.terminate();
    assert_eq!(served.as_deref(), Ok("CN=xdsc-kube"), "{served:?}");
    assert!(no_cert.is_err(), "a client without a certificate got in");
    // An HTTP/2 server's first frame is SETTINGS (type 4, the frame header's 4th byte).
    assert_ne!(
        plain.get(3),
        Some(&4),
        "a plain-text client got HTTP/2 settings"
    );
    let refused = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("xdsc_xds_connections_closed_total{reason=\"tls_handshake\"} ")
        })
        .and_then(|v| v.parse::<u64>().ok());
    assert!(refused >= Some(2), "{metrics}");
    assert_eq!(code, Some(0));
}
