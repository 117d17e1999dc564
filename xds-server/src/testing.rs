//! Test support, shipped behind the `test-util` feature: finding the pinned Envoy, free ports,
//! tiny HTTP backends, an Envoy process with an ADS bootstrap, and a plain HTTP/1.1 client.
//!
//! Used by this crate's tests and by the adapters' end-to-end tests; not for production use.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The Envoy binary: `XDSC_ENVOY`, else the virtualenv made by `scripts/install-envoy.sh` at
/// the workspace root. `None` (after saying so on standard error) when there is none, unless
/// `CI=true`, where a missing Envoy panics so that Envoy tests fail instead of skipping.
pub fn find_envoy() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let venv = std::fs::read_dir(root.join(".venv-envoy/lib"))
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"));
    for candidate in std::env::var_os("XDSC_ENVOY")
        .map(PathBuf::from)
        .into_iter()
        .chain(venv)
    {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let msg = "Envoy not found: run `bash scripts/install-envoy.sh` or set XDSC_ENVOY";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: Envoy tests must run)");
    }
    eprintln!("skipping: {msg}");
    None
}

/// A free TCP port on 127.0.0.1 (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A tiny HTTP/1.1 backend on 127.0.0.1 that answers every request with 200 and `name`.
/// It stops when dropped.
#[derive(Debug)]
pub struct Backend {
    /// Its address.
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Backend {
    /// Starts a backend answering `name`.
    pub fn start(name: &str) -> Backend {
        let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a backend");
        let addr = listener.local_addr().expect("backend address");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, name) = (stop.clone(), name.to_owned());
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let name = name.clone();
                        std::thread::spawn(move || serve_one(&mut s, &name));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Backend { addr, stop }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn serve_one(s: &mut TcpStream, name: &str) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    // Keep-alive: answer each request on the connection.
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{name}",
                name.len()
            );
            if s.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// A plain HTTP/1.1 GET; returns the status and body, or `None` if the connection failed.
pub fn http_get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    Some((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    ))
}

/// Decodes an HTTP/1.1 chunked body (Envoy's admin answers that way).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    out
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An Envoy bootstrap that takes everything over ADS from `127.0.0.1:xds_port`.
pub fn ads_bootstrap(
    node_id: &str,
    fleet: &str,
    xds_port: u16,
    admin_port: u16,
    delta: bool,
) -> Value {
    let ads = json!({"ads": {}, "resource_api_version": "V3"});
    json!({
        "node": {"id": node_id, "cluster": fleet},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": if delta { "DELTA_GRPC" } else { "GRPC" },
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xdsc"}}],
                "set_node_on_first_message_only": true
            },
            "cds_config": ads,
            "lds_config": ads
        },
        "static_resources": {"clusters": [{
            "name": "xdsc",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            },
            "load_assignment": {"cluster_name": "xdsc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": xds_port}}}}]}]}
        }]}
    })
}

/// A running Envoy, killed when dropped.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    /// Envoy's own admin port.
    pub admin_port: u16,
    log: PathBuf,
}

impl Envoy {
    /// Starts `binary` with this bootstrap (written to a temporary file).
    pub fn start(binary: &Path, bootstrap: &Value, admin_port: u16) -> Envoy {
        Envoy::start_with(binary, bootstrap, admin_port, &[])
    }

    /// [`Envoy::start`] with more command-line arguments (for example
    /// `--component-log-level config:debug`).
    pub fn start_with(binary: &Path, bootstrap: &Value, admin_port: u16, args: &[&str]) -> Envoy {
        let dir =
            std::env::temp_dir().join(format!("xdsc-envoy-{}-{admin_port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary folder");
        let config = dir.join("bootstrap.json");
        std::fs::write(&config, serde_json::to_vec_pretty(bootstrap).expect("json"))
            .expect("write bootstrap");
        let log = dir.join("envoy.log");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .args([
                "--use-dynamic-base-id",
                "--log-level",
                "info",
                "--concurrency",
                "1",
                "--log-path",
            ])
            .arg(&log)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start envoy");
        Envoy {
            child,
            admin_port,
            log,
        }
    }

    /// GET on Envoy's admin interface.
    pub fn admin(&self, path: &str) -> Option<String> {
        http_get(self.admin_port, "localhost", path).map(|(_, body)| body)
    }

    /// Envoy's whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of Envoy's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
