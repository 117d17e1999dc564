//! Loopback networking for tests: free ports, a tiny HTTP/1.1 backend and client, polling.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, never the same twice in one process.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`), so neither
/// another test's `bind(0)` nor an outgoing connection's local port can take one between this
/// call and the caller's bind: a port handed out by asking the OS for port 0 could be handed
/// out again, or used as a connection's local port, before the test bound it. Each process
/// starts at its own offset, so test binaries running at once rarely meet.
///
/// ```
/// let (a, b) = (xdsc_test_support::free_port(), xdsc_test_support::free_port());
/// assert!(a != 0 && a != b);
/// ```
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = below_ephemeral();
    let span = u32::from(high - low);
    // The first call of a process picks its offset from the process id.
    let _ = NEXT.compare_exchange(
        0,
        1 + std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = low + u16::try_from(n % span).expect("below the span");
        if StdListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {low}..{high}")
}

/// A range of ports the kernel does not hand out by itself: below the ephemeral range.
fn below_ephemeral() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let high = start.clamp(12_000, 49_152);
    (high - 10_000, high)
}

/// A tiny HTTP/1.1 backend on 127.0.0.1 that answers every request with 200 and `name`.
/// It stops when dropped.
///
/// ```
/// let b = xdsc_test_support::Backend::start("one");
/// assert!(b.addr.ip().is_loopback() && b.addr.port() != 0);
/// ```
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
///
/// ```
/// use std::time::Duration;
/// let mut n = 0;
/// assert_eq!(xdsc_test_support::wait_for(Duration::from_secs(5), || { n += 1; (n == 2).then_some(n) }), Some(2));
/// ```
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
