//! Operability end to end, on the real binary (which runs on jemalloc): CPU and heap profiles
//! fetched while the source recompiles in a loop, decoded as pprof; and the status page as
//! the real Chromium (Debian's `chromium`, headless) renders it, with a real Envoy connected
//! that rejects a listener: the page shows the Envoy's node, Envoy's NACK message and the file
//! and line the rejected listener was read from. The screenshot is saved under
//! `target/tmp/status-page/`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;
use xdsc_server::profile::proto::Profile;
use xdsc_test_support::{Envoy, ads_bootstrap, find_envoy, free_port, http_get, wait_for};

use crate::serve_envoy::Served;
use crate::support::Dir;

const WAIT: Duration = Duration::from_secs(30);

/// GET over HTTP/1.1, the body as bytes (profiles are binary).
fn get_bytes(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read");
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, all[end..].to_vec())
}

fn model(listener_port: u16, cluster: &str) -> String {
    format!(
        "kind: Listener\nname: http\nport: {listener_port}\n---\nkind: VirtualHost\nname: site\nlisteners: [http]\ndomains: [\"*\"]\nroutes:\n  - name: all\n    forward:\n      backends: [{{cluster: {cluster}}}]\n---\nkind: Cluster\nname: {cluster}\n---\nkind: Endpoints\nname: {cluster}\nlocalities: [{{endpoints: [{{address: 127.0.0.1, port: 9}}]}}]\n"
    )
}

fn decode(bytes: &[u8]) -> Profile {
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        bytes.to_vec()
    };
    Profile::decode(&raw[..]).expect("a pprof Profile")
}

/// The names of the functions a profile's samples pass through.
fn functions(p: &Profile) -> Vec<String> {
    let mut names: Vec<String> = p
        .function
        .iter()
        .filter_map(|f| p.string_table.get(usize::try_from(f.name).ok()?).cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn cpu_and_heap_profiles_during_a_compile_loop() {
    let dir = Dir::new("profiles");
    std::fs::write(dir.join("site.yaml"), model(free_port(), "a")).expect("write");
    let served = Served::start(dir.path(), &["--profiling".to_owned()]);
    // Off unless asked: another server without the flag answers 404.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, file) = (stop.clone(), dir.join("site.yaml"));
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Many services per save, so each reload compiles something worth sampling.
                let mut text = model(18080, "a");
                for s in 0..300 {
                    text.push_str(&format!(
                        "---\nkind: Cluster\nname: s{s}-{i}\n---\nkind: Endpoints\nname: s{s}-{i}\nlocalities: [{{endpoints: [{{address: 10.0.{}.{}, port: 80}}]}}]\n",
                        s / 250,
                        s % 250 + 1
                    ));
                }
                let _ = std::fs::write(&file, text);
                i += 1;
                std::thread::sleep(Duration::from_millis(120));
            }
        })
    };
    let (status, cpu) = get_bytes(served.admin_port(), "/debug/pprof/profile?seconds=3");
    let (heap_status, heap) = get_bytes(served.admin_port(), "/debug/pprof/heap");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.join();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&cpu));
    let cpu = decode(&cpu);
    assert_eq!(cpu.string_table.first().map(String::as_str), Some(""));
    assert!(!cpu.sample.is_empty(), "no CPU samples");
    assert!(
        cpu.duration_nanos >= 2_900_000_000,
        "{}",
        cpu.duration_nanos
    );
    let types: Vec<&str> = cpu
        .sample_type
        .iter()
        .map(|t| cpu.string_table[t.r#type as usize].as_str())
        .collect();
    assert_eq!(types, ["samples", "cpu"]);
    let names = functions(&cpu);
    assert!(
        names.iter().any(|n| n.contains("xdsc_core")),
        "the compile loop is not in the CPU profile: {names:?}"
    );
    assert_eq!(heap_status, 200, "{}", String::from_utf8_lossy(&heap));
    let heap = decode(&heap);
    assert!(!heap.sample.is_empty(), "no heap samples");
    assert!(
        heap.sample.iter().all(|s| !s.location_id.is_empty()),
        "heap samples without stacks"
    );
    let bytes: i64 = heap.sample.iter().filter_map(|s| s.value.last()).sum();
    assert!(bytes > 0, "heap samples of no bytes");
    assert!(
        served.log_text().contains("profiling on"),
        "{}",
        served.log_text()
    );
}

#[test]
fn profiles_are_off_by_default() {
    let dir = Dir::new("no-profiles");
    std::fs::write(dir.join("site.yaml"), model(free_port(), "a")).expect("write");
    let served = Served::start(dir.path(), &[]);
    for path in ["/debug/pprof/profile?seconds=1", "/debug/pprof/heap"] {
        assert_eq!(get_bytes(served.admin_port(), path).0, 404, "{path}");
    }
}

/// Debian's Chromium: `XDSC_CHROMIUM` or `chromium` on the PATH. `None` (skip) only without
/// `CI=true`; with it, a missing browser fails the test.
fn find_chromium() -> Option<PathBuf> {
    let candidate = std::env::var_os("XDSC_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("chromium"))
                    .find(|p| p.is_file())
            })
        });
    if candidate.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed (apt-get install chromium; scripts/test.sh does as root)"
        );
        eprintln!("skipping: chromium is not installed");
    }
    candidate
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=...`).
fn chromium(binary: &Path, profile: &Path, args: &[String], url: &str) -> String {
    let out = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1280,1600", "--hide-scrollbars"])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text a reader sees: the DOM without tags, entities decoded.
fn visible_text(dom: &str) -> String {
    let body = dom.split("<body").nth(1).unwrap_or(dom);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_status_page_in_chromium_shows_the_envoy_its_nack_and_where_it_comes_from() {
    let Some(browser) = find_chromium() else {
        return;
    };
    let Some(envoy_bin) = find_envoy() else {
        return;
    };
    // A port taken by another socket: Envoy cannot bind the listener and rejects it.
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let dir = Dir::new("status-page");
    std::fs::write(dir.join("site.yaml"), model(port, "web")).expect("write");
    let served = Served::start(dir.path(), &[]);
    let envoy_admin = free_port();
    let envoy = Envoy::start(
        &envoy_bin,
        &ads_bootstrap(
            "status-page-envoy",
            "default",
            served.xds_port,
            envoy_admin,
            false,
        ),
        envoy_admin,
    );
    let nack = wait_for(WAIT, || {
        let (_, body) = http_get(served.admin_port(), "localhost", "/debug/status")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["clients"]
            .as_array()?
            .iter()
            .flat_map(|c| c["types"].as_array().cloned().unwrap_or_default())
            .find(|t| !t["last_nack"].is_null())
            .map(|t| t["last_nack"].clone())
    })
    .unwrap_or_else(|| panic!("no NACK recorded; envoy log:\n{}", envoy.log_tail()));
    let detail = nack["detail"].as_str().unwrap_or_default().to_owned();
    assert!(!detail.is_empty(), "{nack:#}");
    let origin = format!("{}:1:1", dir.join("site.yaml").display());
    assert!(
        nack["origins"].as_array().is_some_and(|o| o
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains(&origin)))),
        "the NACK does not trace to {origin}: {nack:#}"
    );
    let url = format!("http://127.0.0.1:{}/", served.admin_port());
    let profile = Dir::new("chromium-profile");
    let dom = chromium(&browser, profile.path(), &["--dump-dom".to_owned()], &url);
    let text = visible_text(&dom);
    // Envoy's message as the page shows it (its first line: the page wraps nothing).
    let first_line = detail.lines().next().unwrap_or_default();
    for want in [
        "status-page-envoy",
        first_line,
        origin.as_str(),
        "Listener http",
    ] {
        assert!(
            text.contains(want),
            "the page does not show {want:?}:\n{text}"
        );
    }
    assert!(!dom.contains("<script"), "the page has a script");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&out).expect("output folder");
    let shot = out.join("status.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &browser,
        profile.path(),
        &[format!("--screenshot={}", shot.display())],
        &url,
    );
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    let started = Instant::now();
    drop((envoy, taken));
    assert!(started.elapsed() < WAIT);
}
