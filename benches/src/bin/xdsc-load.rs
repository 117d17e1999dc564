//! `xdsc-load`: N simulated Envoy ADS streams against an xdsc server, measuring how long it
//! takes until every stream has a snapshot change, and what it costs.
//!
//! It starts the server as a child process (`xdsc-load --serve`, so that the server's
//! resident memory and CPU time are measured alone) with a generated model of `--services`
//! services, opens `--streams` ADS streams over `--connections` HTTP/2 connections (default
//! one per 100 streams), state of the world or `--delta`, each played by
//! `xdsc_server::testing::FakeEnvoy`: subscribing to everything by wildcard, or with
//! `--named` as real Envoy does (clusters and listeners by wildcard, endpoints and route
//! configurations by name), and acknowledging every response; each connection is read
//! 128 KiB at a time, as Envoy reads one ([`ENVOY_READ`]). It waits for the initial sync,
//! then makes `--rounds` changes and reports, per round, the time from the change until each
//! stream received it (p50, p99, max), the bytes sent, and the server's RSS and CPU time.
//! `--change endpoint` (the default) moves one endpoint; `--change route` swaps a route's
//! weights; `--change cluster` adds a service (cluster, endpoints, virtual host) in even
//! rounds and removes it in odd ones, and a stream has it once it has received both clusters
//! and routes since the change; `--change cluster-only` does the same without the virtual
//! host (so no route configuration changes), and a stream has it once it has the clusters and
//! (delta) the endpoints: state of the world sends no endpoint removals, so a wildcard client
//! still holds the endpoints of a cluster added again. The clients' CPU time (this process)
//! is reported beside the server's, to tell which side a run is bound by. `--sync-permits P` sets how many streams the server lets send
//! large responses at once (`xdsc_server::SyncLimits`; a value as large as `--streams` means
//! no bound). `--release-after MS` sets how long after a wave of large responses the server
//! returns freed memory to the OS (`SyncLimits::release_after`; 0: never; default: the
//! server's). `--tls` serves over mutual TLS, as a fleet beyond a trusted network is served:
//! a test CA made by the `openssl` command signs the server's certificate and the one every
//! fake Envoy presents, and the clients speak TLS 1.2 with ALPN `h2`, Envoy's defaults.
//! `XDSC_LOAD_WRAP="heaptrack -o FILE"` runs the server under a profiler.
//!
//! Memory: the server's RSS is read once compiled (before any stream connects, and after the
//! compile's freed memory was returned to the OS: on jemalloc) and once the
//! streams are idle: [`IDLE_WAIT`] after the last stream received its route configuration
//! (its last type), when every acknowledgement has arrived and, with the defaults, the
//! server has released the sync's freed memory. "Per idle stream" is the difference divided
//! by the number of streams. With `--features jemalloc` the allocator's own figures are
//! printed at both moments too (`allocated`: live heap; `resident`: the allocator's
//! resident pages).
//!
//! ```text
//! cargo run --release -p xdsc-benches --bin xdsc-load -- --services 1000 --streams 100 --named
//! ```

/// With `--features jemalloc`: the allocator the binaries ship with.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: xdsc_server::memory::Jemalloc = xdsc_server::memory::Jemalloc;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::Notify;
use tokio_util::either::Either;
use tonic::codegen::http::Uri;
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use xdsc_benches::{cpu_seconds, percentile};
use xdsc_core::compile::Compiled;
use xdsc_core::snapshot::ResourceType;
use xdsc_server::testing::{FakeEnvoy, Subscription};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Endpoint,
    Route,
    Cluster,
    ClusterOnly,
}

struct Args {
    services: usize,
    endpoints: usize,
    streams: usize,
    connections: usize,
    delta: bool,
    rounds: usize,
    change: Change,
    named: bool,
    /// The server's sync permits (`SyncLimits::concurrent`); 0 keeps the default.
    sync_permits: usize,
    /// `SyncLimits::release_after` in milliseconds (0: never); `None` keeps the default.
    release_after: Option<u64>,
    /// `--tls`: serve over mutual TLS.
    tls: bool,
    /// The server process's certificates (`--tls-dir`, given to it by the client process).
    tls_dir: Option<PathBuf>,
}

/// How long after the last stream's initial sync the idle figures are read: the last
/// acknowledgements arrive, and the server's release of freed memory (1 s after the last
/// sync permit is given back, by default) is done.
const IDLE_WAIT: Duration = Duration::from_secs(5);

fn parse() -> Result<(bool, Args), String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str, default: usize| -> Result<usize, String> {
        match raw.iter().position(|a| a == name) {
            Some(i) => raw
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} takes a number")),
            None => Ok(default),
        }
    };
    let flag = |name: &str| raw.iter().any(|a| a == name);
    if flag("--help") {
        return Err("usage: xdsc-load [--services N] [--endpoints-per-service E] [--streams S] [--connections C] [--delta] [--named] [--rounds R] [--change endpoint|route|cluster|cluster-only] [--sync-permits P] [--release-after MS] [--tls]".into());
    }
    let args = Args {
        services: get("--services", 1000)?,
        endpoints: get("--endpoints-per-service", 10)?,
        streams: get("--streams", 100)?,
        connections: get("--connections", 0)?,
        delta: flag("--delta"),
        rounds: get("--rounds", 5)?,
        sync_permits: get("--sync-permits", 0)?,
        release_after: match raw.iter().any(|a| a == "--release-after") {
            true => Some(get("--release-after", 0)? as u64),
            false => None,
        },
        named: flag("--named"),
        tls: flag("--tls"),
        tls_dir: raw
            .iter()
            .position(|a| a == "--tls-dir")
            .and_then(|i| raw.get(i + 1))
            .map(PathBuf::from),
        change: match raw.iter().position(|a| a == "--change") {
            None => Change::Endpoint,
            Some(i) => match raw.get(i + 1).map(String::as_str) {
                Some("endpoint") => Change::Endpoint,
                Some("route") => Change::Route,
                Some("cluster") => Change::Cluster,
                Some("cluster-only") => Change::ClusterOnly,
                _ => {
                    return Err("--change takes endpoint, route, cluster or cluster-only".into());
                }
            },
        },
    };
    Ok((flag("--serve"), args))
}

/// The model's seed.
const SEED: u64 = 7;

/// `--tls`: the name the server's certificate is issued to and the clients verify.
const SERVER_NAME: &str = "xdsc.test";
/// `--tls`: the test CA's name (its files in the certificates' folder).
const CA_NAME: &str = "xdsc-load-ca";
/// `--tls`: the certificate every fake Envoy presents.
const CLIENT_NAME: &str = "xdsc-load-envoy";

/// `--tls`: a test CA in `dir` and the certificates it signs, made by the `openssl` command.
fn make_certificates(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let openssl = xdsc_test_support::find_openssl().ok_or("--tls needs the openssl command")?;
    let ca = xdsc_test_support::TestCa::new(openssl, dir, CA_NAME);
    ca.issue(SERVER_NAME, &[&format!("DNS:{SERVER_NAME}")]);
    ca.issue(CLIENT_NAME, &[]);
    Ok(())
}

/// `--tls`: the fake Envoys' TLS: TLS 1.2 and ALPN `h2` (Envoy's client defaults), the test
/// CA trusted and the client certificate presented.
fn client_tls(dir: &Path) -> Result<Arc<rustls::ClientConfig>, Box<dyn std::error::Error>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join(format!("{CA_NAME}.crt")))? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(dir.join(format!("{CLIENT_NAME}.crt")))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{CLIENT_NAME}.key")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// How much a fake Envoy reads from a plain connection at once: what Envoy reserves for one
/// read of a connection's socket (8 slices of 16 KiB: `Buffer::OwnedImpl::reserveForRead`).
/// h2 alone reads a frame at a time (16 KiB, the largest frame Envoy accepts), so the fake
/// Envoys had spent a system call per frame where Envoy spends one per 128 KiB.
const ENVOY_READ: usize = 128 * 1024;

/// A fake Envoy's connection: plain TCP read [`ENVOY_READ`] at a time, or `--tls`.
type Connection = Either<
    tokio::io::BufReader<tokio::net::TcpStream>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
>;

/// tonic's connector for a fake Envoy's connection: TCP to the server (no Nagle, as Envoy's
/// connections), then, with `--tls`, the TLS handshake.
#[derive(Clone)]
struct Connect {
    tls: Option<Arc<rustls::ClientConfig>>,
    port: u16,
}

impl Service<Uri> for Connect {
    type Response = TokioIo<Connection>;
    type Error = std::io::Error;
    type Future = BoxFuture<Self::Response, std::io::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (tls, port) = (self.tls.clone(), self.port);
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            tcp.set_nodelay(true)?;
            let Some(config) = tls else {
                let plain = tokio::io::BufReader::with_capacity(ENVOY_READ, tcp);
                return Ok(TokioIo::new(Either::Left(plain)));
            };
            let name = ServerName::try_from(SERVER_NAME)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(Either::Right(tls)))
        })
    }
}

/// The server side: compile, serve on a free port, print it, apply a change per stdin line.
fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    // Logs as the binaries write them (to standard error; warnings unless RUST_LOG says).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new()?;
    let model = xdsc_benches::services(args.services, args.endpoints, SEED);
    let mut compiled = Compiled::new(&model);
    let publisher = xdsc_server::Publisher::new();
    publisher.publish("default", compiled.snapshot().clone());
    let mut server = xdsc_server::XdsServer::new(publisher.clone());
    let mut limits = xdsc_server::SyncLimits::default();
    if args.sync_permits > 0 {
        limits.concurrent = args.sync_permits;
    }
    if let Some(ms) = args.release_after {
        limits.release_after = Some(Duration::from_millis(ms)).filter(|d| !d.is_zero());
    }
    server = server.with_sync_limits(limits);
    if let Some(dir) = &args.tls_dir {
        let files = xdsc_server::tls::TlsFiles::new(
            dir.join(format!("{SERVER_NAME}.crt")),
            dir.join(format!("{SERVER_NAME}.key")),
            Some(dir.join(format!("{CA_NAME}.crt"))),
        );
        server = server.with_tls(files.load()?);
    }
    // What compiling freed is not the streams': the compiled figures are read without it.
    xdsc_server::memory::release_freed_memory();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    println!("listening {}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    rt.spawn(server.serve(listener, std::future::pending()));
    let mut round = 0;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "change" => round += 1,
            "memory" => {
                // The allocator's figures, read in the server process.
                let a = xdsc_server::memory::MemoryFigures::now().allocator;
                let mib = |f: fn(&xdsc_server::memory::AllocatorFigures) -> u64| {
                    a.as_ref()
                        .map(|a| f(a) as f64 / 1048576.0)
                        .unwrap_or(f64::NAN)
                };
                println!(
                    "memory {:.1} {:.1} {:.1} {:.1}",
                    mib(|a| a.allocated),
                    mib(|a| a.active),
                    mib(|a| a.resident),
                    mib(|a| a.retained),
                );
                // How often the shared whole-map bodies were encoded, and used.
                let text = publisher.metrics().render();
                let counter = |name: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                        .unwrap_or("?")
                        .to_owned()
                };
                eprintln!(
                    "server: shared response bodies encoded {}, responses written from one {}",
                    counter("xdsc_response_bodies_encoded_total"),
                    counter("xdsc_response_bodies_shared_total")
                );
                std::io::stdout().flush()?;
                continue;
            }
            _ => continue,
        }
        let round = round - 1;
        let i = (round * 7919) % args.services;
        let changes = match args.change {
            Change::Route => vec![xdsc_benches::route_change(compiled.model(), i)],
            Change::Endpoint => vec![xdsc_benches::endpoint_change(
                compiled.model(),
                i,
                round as u64 + 1,
            )],
            Change::Cluster if round % 2 == 0 => {
                xdsc_benches::service_added(args.services, args.endpoints, SEED)
            }
            Change::Cluster => xdsc_benches::service_removed(args.services),
            Change::ClusterOnly if round % 2 == 0 => {
                xdsc_benches::cluster_added(args.services, args.endpoints, SEED)
            }
            Change::ClusterOnly => xdsc_benches::cluster_removed(args.services),
        };
        compiled = compiled.apply(changes);
        publisher.publish("default", compiled.snapshot().clone());
        println!("published {}", compiled.snapshot().version());
        std::io::stdout().flush()?;
    }
    // Standard input closed: the run is over. Exit with the streams still open, so that a
    // profiler wrapping this process (`XDSC_LOAD_WRAP`) writes its data, and what the streams
    // hold is what it reports as not freed.
    std::process::exit(0)
}

/// What every client stream reports.
#[derive(Default)]
struct Shared {
    /// Per stream: when it last received each type.
    last: Mutex<Vec<[Option<Instant>; 5]>>,
    bytes: AtomicU64,
    notify: Notify,
    /// The run is over: the server ends, and the streams' errors are expected.
    over: AtomicBool,
}

fn index(t: ResourceType) -> usize {
    ResourceType::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

async fn client_stream(
    id: usize,
    channel: tonic::transport::Channel,
    delta: bool,
    mode: Subscription,
    shared: Arc<Shared>,
) -> Result<(), tonic::Status> {
    // The names each fake Envoy holds are not needed here (only when responses arrive).
    let mut envoy = FakeEnvoy::start(channel, &format!("load-{id}"), delta, mode)
        .await?
        .without_names();
    while let Some(r) = envoy.step().await? {
        shared
            .bytes
            .fetch_add(r.encoded_len() as u64, Ordering::Relaxed);
        if let Some(t) = r.resource_type() {
            if let Ok(mut last) = shared.last.lock() {
                last[id][index(t)] = Some(Instant::now());
            }
            shared.notify.notify_waiters();
        }
    }
    Ok(())
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The server's allocator figures (allocated, active, resident, retained MiB; NaN when it
/// does not run on jemalloc), asked for on its standard input.
fn allocator_mib(
    stdin: &mut impl Write,
    out: &mut impl BufRead,
) -> Result<[f64; 4], Box<dyn std::error::Error>> {
    writeln!(stdin, "memory")?;
    stdin.flush()?;
    let mut line = String::new();
    out.read_line(&mut line)?;
    let mut figures = [f64::NAN; 4];
    let values = line
        .trim()
        .strip_prefix("memory ")
        .ok_or("no memory line")?;
    for (f, v) in figures.iter_mut().zip(values.split_whitespace()) {
        *f = v.parse()?;
    }
    Ok(figures)
}

/// Waits until every stream has received each of `types` since `since`, or the timeout;
/// returns each stream's time (until the last of the types arrived), sorted.
async fn until_all(
    shared: &Shared,
    since: Instant,
    types: &[ResourceType],
    timeout: Duration,
) -> Vec<Duration> {
    let deadline = Instant::now() + timeout;
    loop {
        let notified = shared.notify.notified();
        let times: Vec<Option<Duration>> = shared
            .last
            .lock()
            .map(|l| {
                l.iter()
                    .map(|s| {
                        types
                            .iter()
                            .map(|t| s[index(*t)].filter(|at| *at >= since).map(|at| at - since))
                            .try_fold(Duration::ZERO, |acc, d| d.map(|d| acc.max(d)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if times.iter().all(Option::is_some) || Instant::now() > deadline {
            let mut out: Vec<Duration> = times.into_iter().flatten().collect();
            out.sort();
            return out;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (serve_mode, args) = match parse() {
        Ok(p) => p,
        Err(usage) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if serve_mode {
        return serve(&args);
    }
    let exe = std::env::current_exe()?;
    // `XDSC_LOAD_WRAP="heaptrack -o FILE"` runs the server under a profiler (its RSS and CPU
    // figures are then the wrapper's).
    let wrap: Vec<String> = std::env::var("XDSC_LOAD_WRAP")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut command = match wrap.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    // `--tls`: the certificates, in a folder that lives as long as the run.
    let certificates = args
        .tls
        .then(|| xdsc_test_support::TempDir::new("xdsc-load-tls"));
    if let Some(dir) = &certificates {
        make_certificates(dir.path())?;
        command.arg("--tls-dir").arg(dir.path());
    }
    let mut child = command
        .args(std::env::args().skip(1))
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
    let mut stdin = child.stdin.take().ok_or("no child stdin")?;
    let mut line = String::new();
    // A wrapper may print lines of its own first.
    let port: u16 = loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            return Err("server did not start".into());
        }
        if let Some(p) = line.trim().strip_prefix("listening ") {
            break p.parse()?;
        }
    };
    // The server has compiled and published its snapshot: what streams add is beyond this.
    let (rss_compiled, cpu_compiled) = (rss_mib(pid), cpu_seconds(pid));
    let heap_compiled = allocator_mib(&mut stdin, &mut out)?;
    let rt = tokio::runtime::Runtime::new()?;
    let shared = Arc::new(Shared {
        last: Mutex::new(vec![[None; 5]; args.streams]),
        ..Default::default()
    });
    let connections = if args.connections == 0 {
        args.streams.div_ceil(100).max(1)
    } else {
        args.connections
    };
    let mode = if args.named {
        Subscription::Named
    } else {
        Subscription::Wildcard
    };
    let client_start = cpu_seconds(std::process::id());
    let start = Instant::now();
    let tls = certificates
        .as_ref()
        .map(|dir| client_tls(dir.path()))
        .transpose()?;
    rt.block_on(async {
        let mut channels = Vec::new();
        for _ in 0..connections {
            let connect = Connect {
                tls: tls.clone(),
                port,
            };
            let endpoint = xdsc_server::testing::envoy_endpoint(port);
            channels.push(endpoint.connect_with_connector(connect).await?);
        }
        for id in 0..args.streams {
            let (ch, shared) = (channels[id % channels.len()].clone(), shared.clone());
            tokio::spawn(async move {
                if let Err(e) = client_stream(id, ch, args.delta, mode, shared.clone()).await
                    && !e.message().contains("error reading a body")
                    && !shared.over.load(Ordering::Relaxed)
                {
                    eprintln!("stream {id}: {e}");
                }
            });
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let variant = match (args.delta, args.named) {
        (false, false) => "sotw",
        (true, false) => "delta",
        (false, true) => "sotw-named",
        (true, true) => "delta-named",
    };
    let variant = match args.tls {
        true => format!("{variant}-tls"),
        false => variant.to_owned(),
    };
    let initial = rt.block_on(until_all(
        &shared,
        start,
        &[ResourceType::Route],
        Duration::from_secs(900),
    ));
    // Let the last acknowledgements arrive (and the server release the sync's freed memory)
    // before measuring what idle streams hold.
    std::thread::sleep(IDLE_WAIT);
    let rss_synced = rss_mib(pid);
    let heap_synced = allocator_mib(&mut stdin, &mut out)?;
    println!(
        "{variant}: {} services, {} streams over {connections} connections: initial sync of {} streams p50 {:?} p99 {:?} max {:?}; {:.1} MiB sent; server RSS {rss_compiled:.1} MiB compiled, {rss_synced:.1} MiB idle ({IDLE_WAIT:?} after the last stream synced): {:.1} KiB per idle stream beyond the compiled snapshot",
        args.services,
        args.streams,
        initial.len(),
        percentile(&initial, 0.5),
        percentile(&initial, 0.99),
        initial.last().copied().unwrap_or_default(),
        shared.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
        (rss_synced - rss_compiled) * 1024.0 / args.streams.max(1) as f64,
    );
    let per_stream = |a: f64, b: f64| (b - a) * 1024.0 / args.streams.max(1) as f64;
    println!(
        "  allocator (MiB, compiled -> idle): allocated {:.1} -> {:.1} ({:.1} KiB per stream), active {:.1} -> {:.1}, resident {:.1} -> {:.1} ({:.1} KiB per stream), retained {:.1} -> {:.1}",
        heap_compiled[0],
        heap_synced[0],
        per_stream(heap_compiled[0], heap_synced[0]),
        heap_compiled[1],
        heap_synced[1],
        heap_compiled[2],
        heap_synced[2],
        per_stream(heap_compiled[2], heap_synced[2]),
        heap_compiled[3],
        heap_synced[3],
    );
    let label = match args.change {
        Change::Endpoint => "endpoint",
        Change::Route => "route",
        Change::Cluster => "cluster",
        Change::ClusterOnly => "cluster-only",
    };
    let (cpu_before, client_before) = (cpu_seconds(pid), cpu_seconds(std::process::id()));
    let mut all = Vec::new();
    for round in 0..args.rounds {
        std::thread::sleep(Duration::from_millis(200));
        let before = shared.bytes.load(Ordering::Relaxed);
        let (cpu0, client0) = (cpu_seconds(pid), cpu_seconds(std::process::id()));
        let t0 = Instant::now();
        writeln!(stdin, "change")?;
        stdin.flush()?;
        line.clear();
        out.read_line(&mut line)?;
        // What a stream must receive to have the change. A cluster and its endpoints reach a
        // state-of-the-world stream as clusters only: it sends no endpoint removals, so a
        // wildcard client still holds the endpoints of a cluster added again.
        let changed: &[ResourceType] = match args.change {
            Change::Endpoint => &[ResourceType::Endpoint],
            Change::Route => &[ResourceType::Route],
            Change::Cluster => &[ResourceType::Cluster, ResourceType::Route],
            Change::ClusterOnly if args.delta => &[ResourceType::Cluster, ResourceType::Endpoint],
            Change::ClusterOnly => &[ResourceType::Cluster],
        };
        let times = rt.block_on(until_all(&shared, t0, changed, Duration::from_secs(300)));
        let what = match (args.change, round % 2) {
            (Change::Cluster, 0) => "cluster added",
            (Change::Cluster, _) => "cluster removed",
            (Change::ClusterOnly, 0) => "cluster and endpoints added",
            (Change::ClusterOnly, _) => "cluster and endpoints removed",
            _ => label,
        };
        let sent = (shared.bytes.load(Ordering::Relaxed) - before) as f64 / 1024.0;
        println!(
            "  change ({what}): {} of {} streams have it: p50 {:?} p99 {:?} max {:?}; {sent:.1} KiB sent ({:.1} KiB per stream); CPU server {:.3} s, clients {:.3} s",
            times.len(),
            args.streams,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.last().copied().unwrap_or_default(),
            sent / args.streams.max(1) as f64,
            cpu_seconds(pid) - cpu0,
            cpu_seconds(std::process::id()) - client0,
        );
        all.extend(times);
    }
    all.sort();
    let (rss_end, cpu_end) = (rss_mib(pid), cpu_seconds(pid));
    // The server prints its shared-body counters again: how the changes were written.
    allocator_mib(&mut stdin, &mut out)?;
    let client_end = cpu_seconds(std::process::id());
    println!(
        "server CPU: {:.2} s to compile, {:.2} s for the initial sync, {:.2} s for the changes; RSS at the end {rss_end:.1} MiB; clients' CPU (this process): {:.2} s for the initial sync, {:.2} s for the changes",
        cpu_compiled,
        cpu_before - cpu_compiled,
        cpu_end - cpu_before,
        client_before - client_start,
        client_end - client_before,
    );
    println!(
        "SUMMARY | {variant} | {label} | {} | {} | sync p50 {:?} max {:?} | change p50 {:?} p99 {:?} max {:?} | RSS compiled {rss_compiled:.1} idle {rss_synced:.1} end {rss_end:.1} MiB |",
        args.services,
        args.streams,
        percentile(&initial, 0.5),
        initial.last().copied().unwrap_or_default(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default(),
    );
    // Closing the server's standard input ends it (and a profiler wrapping it writes its
    // data); one that has not ended after a minute is killed.
    shared.over.store(true, Ordering::Relaxed);
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    Ok(())
}
