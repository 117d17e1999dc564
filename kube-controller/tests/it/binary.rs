//! The `xdsc-kube` binary: help, exit codes, and serving as a child process.

use std::process::Command;
use std::time::{Duration, Instant};

use xdsc_kube_testserver::TestServer;
use xdsc_test_support::{TempDir, free_port, http_get};

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

/// A child `xdsc-kube` against the test server: ready, serves, stops on SIGTERM with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_cleanly() {
    let server = TestServer::start().await.unwrap();
    for o in [
        ingress_class(),
        service("shop", "web"),
        slice("shop", "web", 1),
        ingress("shop", "web", "web.example", "web"),
    ] {
        server.put(o).unwrap();
    }
    let dir = TempDir::new("xdsc-kube-bin");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(Some("bin"))).unwrap();
    let (xds, admin) = (free_port(), free_port());
    let mut child = bin()
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--xds-addr",
            &format!("127.0.0.1:{xds}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
        ])
        .args(["--log-format", "json"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let ready = loop {
        let got = tokio::task::spawn_blocking(move || http_get(admin, "localhost", "/readyz"))
            .await
            .unwrap();
        if let Some((200, _)) = got {
            break true;
        }
        if start.elapsed() > PATIENCE {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sources =
        tokio::task::spawn_blocking(move || http_get(admin, "localhost", "/debug/sources"))
            .await
            .unwrap();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
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
    assert_eq!(status.code(), Some(0));
}
