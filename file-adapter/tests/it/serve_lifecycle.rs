//! `xdsc-file serve` as a process: ready only after the first load, stops cleanly on SIGTERM,
//! exits 3 with a clear message when its address is taken, and `--help` explains the commands.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::bin;
use xdsc_test_support::{TempDir, free_port, http_get, wait_for};

fn temp_config() -> TempDir {
    TempDir::with_files("file-life", &[("c.yaml", "kind: Cluster\nname: web\n")])
}

/// Waits until `/readyz` on `admin` answers 200.
fn until_ready(admin: u16) -> Option<()> {
    wait_for(Duration::from_secs(30), || {
        match http_get(admin, "localhost", "/readyz") {
            Some((200, _)) => Some(()),
            _ => None,
        }
    })
}

#[test]
fn sigterm_stops_it_cleanly() {
    let dir = temp_config();
    let (xds, admin) = (free_port(), free_port());
    let mut child = bin()
        .arg("serve")
        .arg(dir.path())
        .args([
            "--xds-addr",
            &format!("127.0.0.1:{xds}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let ready = until_ready(admin);
    assert!(ready.is_some(), "ready");
    assert_eq!(
        http_get(admin, "localhost", "/healthz").map(|r| r.0),
        Some(200)
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut log).expect("log");
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn a_taken_address_is_exit_3_with_the_address() {
    let dir = temp_config();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let out = bin()
        .arg("serve")
        .arg(dir.path())
        .args([
            "--xds-addr",
            &addr.to_string(),
            "--admin-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn help_explains_commands_and_a_bad_command_line_is_exit_2() {
    let out = bin().arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "check", "render", "schema", "Exit codes"] {
        assert!(help.contains(word), "{help}");
    }
    let out = bin().args(["serve"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "no path is a usage error");
    let out = bin()
        .args(["serve", ".", "--hold-off", "soon"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration"));
}

#[test]
fn the_admin_listener_is_on_loopback_by_default_and_debug_endpoints_can_be_turned_off() {
    let out = bin().args(["serve", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: 127.0.0.1:18001]"), "{help}");
    assert!(help.contains("[default: 127.0.0.1:18000]"), "{help}");
    let dir = temp_config();
    let (xds, admin) = (free_port(), free_port());
    let mut child = bin()
        .arg("serve")
        .arg(&dir)
        .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .arg("--no-debug-endpoints")
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let ready = until_ready(admin);
    let snapshot = http_get(admin, "localhost", "/debug/snapshot").map(|r| r.0);
    let clients = http_get(admin, "localhost", "/debug/clients").map(|r| r.0);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ready.is_some(), "ready");
    assert_eq!((snapshot, clients), (Some(404), Some(404)));
}
