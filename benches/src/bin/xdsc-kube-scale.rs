//! `xdsc-kube-scale`: the `xdsc-kube` binary at scale against the in-memory test API server
//! (`xdsc-kube-testserver`, in this process, so its memory is not the controller's).
//!
//! It seeds the server with a shape, starts the controller as a child process and reports
//! the time from start to `/readyz` 200 and the controller's resident memory (`VmRSS`, and
//! the peak `VmHWM`, from `/proc`). Then an ADS client that behaves like Envoy
//! (`xdsc_server::testing::FakeEnvoy`) connects, and EndpointSlices are changed at
//! `--churn-rate` updates a second for `--churn-seconds`: every second it samples the
//! controller's memory, its pending-object gauge (the inbox: one slot per object, so it
//! cannot grow with the event rate), its batches and the xDS pushes, and at the end reports
//! how many updates became how many batches, snapshots and pushes.
//!
//! Shapes: `--shape services` (default): `--services` Services with an EndpointSlice of
//! three endpoints each, spread over namespaces of 100, and one Ingress per namespace whose
//! paths (100 each, `--services` in all) route to them. `--shape tenants`: the 200-tenant
//! shape of `xdsc_kube::strategy::tenants` (`--tenants` namespaces of 60 Services with
//! 3-endpoint EndpointSlices, one Ingress of 20 paths and one TLS host each).
//!
//! ```text
//! cargo build --release -p xdsc-kube-controller --bin xdsc-kube -p xdsc-benches --bin xdsc-kube-scale
//! target/release/xdsc-kube-scale --shape services --services 10000
//! target/release/xdsc-kube-scale --shape tenants --tenants 200
//! ```
//!
//! The controller binary is `--controller PATH`, else `xdsc-kube` beside this program.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use xdsc_kube_testserver::TestServer;
use xdsc_server::testing::{FakeEnvoy, Subscription};
use xdsc_test_support::{TempDir, free_port, http_get};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn num(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What is seeded, and the EndpointSlice update number `n` of the churn.
struct Shape {
    objects: Vec<Value>,
    slices: usize,
    slice: Box<dyn Fn(usize, usize) -> Value + Send>,
    describe: String,
}

fn services_shape(services: usize) -> Shape {
    const PER_NS: usize = 100;
    let namespaces = services.div_ceil(PER_NS);
    let ns = |i: usize| format!("ns-{:03}", i / PER_NS);
    let slice = move |i: usize, version: usize| {
        let n = i * 4;
        let ip = |e: usize| {
            let last = if e == 0 { 100 + version % 100 } else { e };
            format!("10.{}.{}.{last}", n / 256 % 256, n % 256)
        };
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("svc-{:02}-1", i % PER_NS), "namespace": ns(i),
                "labels": {"kubernetes.io/service-name": format!("svc-{:02}", i % PER_NS)}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": (0..3).map(|e| json!({"addresses": [ip(e)], "conditions": {"ready": true}})).collect::<Vec<_>>()})
    };
    let mut objects = vec![xdsc_kube::strategy::ingress_class_manifest()];
    for n in 0..namespaces {
        let name = ns(n * PER_NS);
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
        let range = n * PER_NS..((n + 1) * PER_NS).min(services);
        let mut paths = Vec::new();
        for i in range {
            objects.push(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{:02}", i % PER_NS), "namespace": name},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
            objects.push(slice(i, 0));
            paths.push(json!({"path": format!("/svc-{:02}", i % PER_NS), "pathType": "Prefix",
                "backend": {"service": {"name": format!("svc-{:02}", i % PER_NS), "port": {"number": 80}}}}));
        }
        objects.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": name},
            "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": paths}}]}}));
    }
    Shape {
        objects,
        slices: services,
        slice: Box::new(slice),
        describe: format!(
            "{services} Services + {services} EndpointSlices (3 endpoints), {namespaces} Ingresses with {services} paths"
        ),
    }
}

fn tenants_shape(tenants: usize) -> Shape {
    const SERVICES: usize = 60;
    const PATHS: usize = 20;
    let mut objects = vec![xdsc_kube::strategy::ingress_class_manifest()];
    for t in 0..tenants {
        objects.extend(xdsc_kube::strategy::tenant_manifests(t, SERVICES, PATHS));
    }
    Shape {
        objects,
        slices: tenants * SERVICES,
        slice: Box::new(|i, version| {
            xdsc_kube::strategy::tenant_slice_manifest(i / SERVICES, i % SERVICES, version)
        }),
        describe: format!(
            "{tenants} tenants x {SERVICES} Services with 3-endpoint EndpointSlices, one Ingress of {PATHS} paths and one TLS host each"
        ),
    }
}

/// A `/proc/PID/status` field in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The controller, SIGTERMed (then killed) when dropped.
struct Controller {
    child: Child,
    admin: u16,
    xds: u16,
}

impl Controller {
    fn metrics(&self) -> String {
        http_get(self.admin, "localhost", "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    fn rss(&self) -> u64 {
        proc_kib(self.child.id(), "VmRSS:")
    }
}

fn sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn controller_path() -> PathBuf {
    arg("--controller").map(PathBuf::from).unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("xdsc-kube")
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let shape = match arg("--shape").as_deref().unwrap_or("services") {
        "services" => services_shape(num("--services", 10_000)),
        "tenants" => tenants_shape(num("--tenants", 200)),
        other => panic!("--shape services|tenants, not {other}"),
    };
    let rate = num("--churn-rate", 1000);
    let seconds = num("--churn-seconds", 60);
    let binary = controller_path();
    assert!(
        binary.is_file(),
        "no controller at {} (build it: cargo build --release -p xdsc-kube-controller --bin xdsc-kube)",
        binary.display()
    );
    println!(
        "shape: {} ({} objects)",
        shape.describe,
        shape.objects.len()
    );

    let server = TestServer::builder()
        .history(rate * 30)
        .start()
        .await
        .expect("test API server");
    let seeding = Instant::now();
    for o in &shape.objects {
        server.put(o.clone()).expect("seed");
    }
    println!(
        "seeded the API server in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let dir = TempDir::new("xdsc-kube-scale");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(Some("scale"))).unwrap();

    let (xds, admin) = (free_port(), free_port());
    let started = Instant::now();
    let child = Command::new(&binary)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(["--lease-namespace", "default", "--log-format", "json"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("controller.log")).unwrap())
        .spawn()
        .expect("start xdsc-kube");
    let c = Controller { child, admin, xds };
    let ready = loop {
        let admin = c.admin;
        let got = tokio::task::spawn_blocking(move || http_get(admin, "localhost", "/readyz"))
            .await
            .unwrap();
        if let Some((200, _)) = got {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not ready in 10 minutes: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let pid = c.child.id();
    println!(
        "ready in {:.2} s; resident {:.0} MiB (peak {:.0} MiB)",
        ready.as_secs_f64(),
        mib(c.rss()),
        mib(proc_kib(pid, "VmHWM:"))
    );

    // An Envoy: counts what it is sent.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", c.xds))
        .unwrap()
        .connect()
        .await
        .expect("connect to xdsc-kube");
    let mut envoy = FakeEnvoy::start(channel, "scale", false, Subscription::Named)
        .await
        .expect("ADS stream");
    let synced = Instant::now();
    envoy.until_synced().await.expect("initial sync");
    println!(
        "an Envoy synced in {:.2} s; resident {:.0} MiB",
        synced.elapsed().as_secs_f64(),
        mib(c.rss())
    );
    let (eds_tx, eds_rx) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok(Some(r)) = envoy.step().await {
            if r.resource_type() == Some(xdsc_core::snapshot::ResourceType::Endpoint) {
                n += 1;
                let _ = eds_tx.send(n);
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    if seconds == 0 || rate == 0 {
        return;
    }
    let before = c.metrics();
    let rss_start = c.rss();
    println!(
        "churn: {rate} EndpointSlice updates/s for {seconds} s (hold-off 100 ms, max delay 1 s)"
    );
    println!("  t(s)  sent  rss(MiB)  pending  batches  snapshots  pushes");
    let tick = Duration::from_millis(10);
    let per_tick = rate / 100;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let churn = Instant::now();
    let (mut sent, mut next_sample, mut samples) = (0usize, 1, Vec::new());
    let mut pending_max = 0f64;
    while churn.elapsed() < Duration::from_secs(seconds as u64) {
        interval.tick().await;
        for _ in 0..per_tick {
            let i = sent % shape.slices;
            server
                .put((shape.slice)(i, 1 + sent / shape.slices))
                .expect("update");
            sent += 1;
        }
        if churn.elapsed() >= Duration::from_secs(next_sample) {
            let m = c.metrics();
            let rss = c.rss();
            let pending = sum(&m, "xdsc_kube_pending_objects");
            pending_max = pending_max.max(pending);
            let d = |name: &str| sum(&m, name) - sum(&before, name);
            println!(
                "  {next_sample:4}  {sent:5}  {:8.0}  {pending:7}  {:7}  {:9}  {:6}",
                mib(rss),
                d("xdsc_kube_batches_total"),
                d("xdsc_snapshot_publishes_total"),
                d("xdsc_pushes_total")
            );
            samples.push(rss);
            next_sample += 1;
        }
    }
    let took = churn.elapsed();
    // Let the last batch through.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = c.metrics();
    let d = |name: &str| sum(&after, name) - sum(&before, name);
    let rss_end = c.rss();
    let (lo, hi) = (
        samples.iter().copied().min().unwrap_or(0),
        samples.iter().copied().max().unwrap_or(0),
    );
    println!(
        "sent {sent} updates in {:.1} s ({:.0}/s)",
        took.as_secs_f64(),
        sent as f64 / took.as_secs_f64()
    );
    println!(
        "watch events {:.0}, coalesced in the inbox {:.0}, batches {:.0} (objects {:.0}), snapshots {:.0}, xDS pushes {:.0}, EDS responses to the Envoy {}",
        d("xdsc_kube_watch_events_total"),
        d("xdsc_kube_coalesced_events_total"),
        d("xdsc_kube_batches_total"),
        d("xdsc_kube_batch_objects_total"),
        d("xdsc_snapshot_publishes_total"),
        d("xdsc_pushes_total"),
        *eds_rx.borrow()
    );
    println!(
        "pending objects: max sampled {pending_max}, max seen by the controller {}, now {}",
        sum(&after, "xdsc_kube_pending_objects_max"),
        sum(&after, "xdsc_kube_pending_objects")
    );
    println!(
        "resident: {:.0} MiB at churn start, {:.0}..{:.0} MiB sampled (spread {:.1}% of the start), {:.0} MiB after; peak {:.0} MiB",
        mib(rss_start),
        mib(lo),
        mib(hi),
        (hi - lo) as f64 * 100.0 / rss_start.max(1) as f64,
        mib(rss_end),
        mib(proc_kib(pid, "VmHWM:"))
    );
}
