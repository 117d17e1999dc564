//! `xdsc-load`: N simulated Envoy ADS streams against an xdsc server, measuring how long it
//! takes until every stream has a snapshot change, and what it costs.
//!
//! It starts the server as a child process (`xdsc-load --serve`, so that the server's
//! resident memory is measured alone) with a generated model of `--services` services, opens
//! `--streams` ADS streams (state of the world, or `--delta`) that subscribe to everything and
//! acknowledge every response, waits for the initial sync, then makes `--rounds` changes (one
//! endpoint, or one route with `--change route`) and reports, per round, the time from the
//! change until each stream received it (p50, p99, max), the bytes sent, and the server's RSS.
//! `--sync-permits P` sets how many streams the server lets send large responses at once
//! (`xdsc_server::SyncLimits`; a value as large as `--streams` means no bound).
//!
//! ```text
//! cargo run --release -p xdsc-benches --bin xdsc-load -- --services 1000 --streams 100
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use prost::Message;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use xdsc_core::compile::Compiled;
use xdsc_core::snapshot::ResourceType;

struct Args {
    services: usize,
    endpoints: usize,
    streams: usize,
    connections: usize,
    delta: bool,
    rounds: usize,
    route_change: bool,
    /// The server's sync permits (`SyncLimits::concurrent`); 0 keeps the default.
    sync_permits: usize,
}

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
        return Err("usage: xdsc-load [--services N] [--endpoints-per-service E] [--streams S] [--connections C] [--delta] [--rounds R] [--change endpoint|route] [--sync-permits P]".into());
    }
    let args = Args {
        services: get("--services", 1000)?,
        endpoints: get("--endpoints-per-service", 10)?,
        streams: get("--streams", 100)?,
        connections: get("--connections", 0)?,
        delta: flag("--delta"),
        rounds: get("--rounds", 5)?,
        sync_permits: get("--sync-permits", 0)?,
        route_change: raw
            .windows(2)
            .any(|w| w[0] == "--change" && w[1] == "route"),
    };
    Ok((flag("--serve"), args))
}

/// The server side: compile, serve on a free port, print it, apply a change per stdin line.
fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Runtime::new()?;
    let model = xdsc_benches::services(args.services, args.endpoints, 7);
    let mut compiled = Compiled::new(&model);
    let publisher = xdsc_server::Publisher::new();
    publisher.publish("default", compiled.snapshot().clone());
    let mut server = xdsc_server::XdsServer::new(publisher.clone());
    if args.sync_permits > 0 {
        server = server.with_sync_limits(xdsc_server::SyncLimits {
            concurrent: args.sync_permits,
            ..Default::default()
        });
    }
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    println!("listening {}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    rt.spawn(server.serve(listener, std::future::pending()));
    for (round, line) in std::io::stdin().lock().lines().enumerate() {
        if line?.trim() != "change" {
            continue;
        }
        let i = (round * 7919) % args.services;
        let change = if args.route_change {
            xdsc_benches::route_change(compiled.model(), i)
        } else {
            xdsc_benches::endpoint_change(compiled.model(), i, round as u64 + 1)
        };
        compiled = compiled.apply([change]);
        publisher.publish("default", compiled.snapshot().clone());
        println!("published {}", compiled.snapshot().version());
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// What every client stream reports.
#[derive(Default)]
struct Shared {
    /// Per stream: when it last received each type.
    last: Mutex<Vec<[Option<Instant>; 5]>>,
    bytes: AtomicU64,
    notify: Notify,
}

fn index(t: ResourceType) -> usize {
    ResourceType::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

async fn client_stream(
    id: usize,
    channel: tonic::transport::Channel,
    delta: bool,
    shared: Arc<Shared>,
) -> Result<(), tonic::Status> {
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(1 << 30);
    let node = Node {
        id: format!("load-{id}"),
        cluster: "default".into(),
        ..Default::default()
    };
    let order = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ];
    let record = |t: Option<ResourceType>, bytes: usize| {
        shared.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Some(t) = t {
            if let Ok(mut last) = shared.last.lock() {
                last[id][index(t)] = Some(Instant::now());
            }
            shared.notify.notify_waiters();
        }
    };
    if delta {
        let (tx, rx) = mpsc::channel(16);
        for t in order {
            let _ = tx
                .send(DeltaDiscoveryRequest {
                    node: Some(node.clone()),
                    type_url: t.type_url().into(),
                    ..Default::default()
                })
                .await;
        }
        let mut inbound = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await?
            .into_inner();
        while let Some(r) = inbound.message().await? {
            record(ResourceType::from_type_url(&r.type_url), r.encoded_len());
            let ack = DeltaDiscoveryRequest {
                type_url: r.type_url,
                response_nonce: r.nonce,
                ..Default::default()
            };
            if tx.send(ack).await.is_err() {
                break;
            }
        }
    } else {
        let (tx, rx) = mpsc::channel(16);
        for t in order {
            let _ = tx
                .send(DiscoveryRequest {
                    node: Some(node.clone()),
                    type_url: t.type_url().into(),
                    ..Default::default()
                })
                .await;
        }
        let mut inbound = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await?
            .into_inner();
        while let Some(r) = inbound.message().await? {
            record(ResourceType::from_type_url(&r.type_url), r.encoded_len());
            let ack = DiscoveryRequest {
                type_url: r.type_url,
                version_info: r.version_info,
                response_nonce: r.nonce,
                ..Default::default()
            };
            if tx.send(ack).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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

/// Waits until `done` holds for every stream, or the timeout; returns each stream's time.
async fn until_all(
    shared: &Shared,
    since: Instant,
    t: ResourceType,
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
                    .map(|s| s[index(t)].filter(|at| *at >= since).map(|at| at - since))
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
    let mut child = Command::new(exe)
        .args(std::env::args().skip(1))
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
    let mut stdin = child.stdin.take().ok_or("no child stdin")?;
    let mut line = String::new();
    out.read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .ok_or("server did not start")?;
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
    let start = Instant::now();
    rt.block_on(async {
        let mut channels = Vec::new();
        for _ in 0..connections {
            channels.push(
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
                    .connect()
                    .await?,
            );
        }
        for id in 0..args.streams {
            let (ch, shared) = (channels[id % channels.len()].clone(), shared.clone());
            tokio::spawn(async move {
                if let Err(e) = client_stream(id, ch, args.delta, shared).await
                    && !e.message().contains("error reading a body")
                {
                    eprintln!("stream {id}: {e}");
                }
            });
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let variant = if args.delta { "delta" } else { "sotw" };
    let initial = rt.block_on(until_all(
        &shared,
        start,
        ResourceType::Route,
        Duration::from_secs(600),
    ));
    println!(
        "{variant}: {} services, {} streams over {connections} connections: initial sync of {} streams p50 {:?} p99 {:?} max {:?}; {:.1} MiB sent; server RSS {:.1} MiB",
        args.services,
        args.streams,
        initial.len(),
        percentile(&initial, 0.5),
        percentile(&initial, 0.99),
        initial.last().copied().unwrap_or_default(),
        shared.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
        rss_mib(child.id()),
    );
    let changed = if args.route_change {
        ResourceType::Route
    } else {
        ResourceType::Endpoint
    };
    let mut all = Vec::new();
    for _ in 0..args.rounds {
        std::thread::sleep(Duration::from_millis(200));
        let before = shared.bytes.load(Ordering::Relaxed);
        let t0 = Instant::now();
        writeln!(stdin, "change")?;
        stdin.flush()?;
        line.clear();
        out.read_line(&mut line)?;
        let times = rt.block_on(until_all(&shared, t0, changed, Duration::from_secs(120)));
        println!(
            "  change ({}): {} of {} streams have it: p50 {:?} p99 {:?} max {:?}; {:.1} KiB sent",
            changed.short_name(),
            times.len(),
            args.streams,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.last().copied().unwrap_or_default(),
            (shared.bytes.load(Ordering::Relaxed) - before) as f64 / 1024.0,
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "SUMMARY | {variant} | {} | {} | {:?} | {:?} | {:?} | {:.1} |",
        args.services,
        args.streams,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default(),
        rss_mib(child.id()),
    );
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
