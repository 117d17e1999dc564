//! `xdsc-file-reload`: how long `xdsc-file serve` takes from a saved file to a published
//! snapshot, on a generated folder of `--services` services (one JSON file each: cluster,
//! endpoints, virtual host), with the real file source (inotify, hold-off, reload, compile).
//!
//! It writes the folder, measures a cold load and compile, starts the live source, then makes
//! `--rounds` one-endpoint edits (an editor's atomic save) and reports, for each, the time until
//! the new snapshot is published, and the source's own reload time (read everything, compile
//! incrementally).
//!
//! With `--kube-tenants N` the folder holds the multi-tenant Kubernetes shape instead
//! (`xdsc_kube::strategy::tenants(N, 60, 20)`): per tenant `tNNN/tenant.json` (Namespace,
//! Secret, Ingress), `tNNN/services.json` (60 Services) and `tNNN/endpoints.json` (60
//! EndpointSlices); each edit moves one endpoint of one slice. It also reports resident
//! memory after the first load and after the edits.
//!
//! With `--phases` it also prints where a reload's time goes (medians over the rounds): `look`
//! (finding what changed), `parse` (reading and parsing the changed files), `index`,
//! `translate` (the incremental Kubernetes translation), `merge`, `compile` (the last-good
//! step: the incremental compile and the diagnostics), `log` and `publish`, and their sum.
//!
//! ```text
//! cargo run --release -p xdsc-benches --bin xdsc-file-reload -- --services 10000 --rounds 9
//! cargo run --release -p xdsc-benches --bin xdsc-file-reload -- --kube-tenants 200 --rounds 9
//! ```

use std::sync::mpsc;
use std::time::{Duration, Instant};

use xdsc_core::compile::Compiled;
use xdsc_core::model::{Change, Kind, Object};
use xdsc_file::load::{self, LoadOptions};
use xdsc_file::source::{FileSource, Report, Sink, SourceOptions};
use xdsc_test_support::TempDir;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The JSON file of service `i`: its cluster, endpoints and virtual host.
fn service_file(objects: &[&Object]) -> String {
    serde_json::to_string_pretty(objects).expect("objects serialize")
}

/// What a reload reported: its time and its phases.
type Reloaded = (Duration, Vec<(&'static str, Duration)>);

struct Channel(mpsc::Sender<Instant>, mpsc::Sender<Reloaded>);

impl Sink for Channel {
    fn publish(&mut self, _: xdsc_core::snapshot::Snapshot) {
        let _ = self.0.send(Instant::now());
    }
    fn report(&mut self, report: Report<'_>) {
        let _ = self.1.send((report.took, report.phases.to_vec()));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// With `--phases`: the median of each phase over the rounds, and of their sum (the end of
/// the hold-off to the snapshot handed to the publisher).
fn print_phases(rounds: &[Vec<(&'static str, Duration)>]) {
    if !std::env::args().any(|a| a == "--phases") {
        return;
    }
    let Some(first) = rounds.first() else { return };
    let of = |i: usize| median(rounds.iter().map(|r| ms(r[i].1)).collect());
    let parts: Vec<String> = (first.iter().enumerate())
        .map(|(i, (name, _))| format!("{name} {:.3}", of(i)))
        .collect();
    let total = median(
        (rounds.iter())
            .map(|r| r.iter().map(|(_, d)| ms(*d)).sum())
            .collect(),
    );
    println!(
        "phases, median ms: {}; hold-off end -> published median {total:.2} ms",
        parts.join(", ")
    );
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / (1 << 20) as f64)
}

/// The file of tenant `t`'s slices, in the multi-tenant Kubernetes folder.
fn endpoints_file(t: usize) -> String {
    format!("t{t:03}/endpoints.json")
}

/// Writes the multi-tenant Kubernetes folder.
fn write_tenants(dir: &TempDir, tenants: usize) {
    for (path, text) in xdsc_kube::strategy::tenant_files(tenants, 60, 20) {
        dir.write(&path, &text);
    }
}

fn kube_main(tenants: usize, rounds: usize) {
    let tmp = TempDir::new("file-reload-kube");
    write_tenants(&tmp, tenants);
    let dir = tmp.path().to_owned();
    let started = Instant::now();
    let loaded = load::load(std::slice::from_ref(&dir), &LoadOptions::default());
    let compiled = Compiled::new(&loaded.model());
    let cold = started.elapsed();
    assert!(
        !loaded.has_errors() && !compiled.has_errors(),
        "the generated folder is valid: {:?}",
        loaded.diagnostics.first()
    );
    println!(
        "{tenants} tenants: {} files, {} model objects, {} resources, {} warnings; cold read+translate+compile {:.0} ms",
        loaded.files.len(),
        loaded.objects.len(),
        compiled.snapshot().len(),
        loaded.diagnostics.len(),
        ms(cold)
    );
    drop((loaded, compiled));
    let (ptx, prx) = mpsc::channel();
    let (rtx, rrx) = mpsc::channel();
    let source = FileSource {
        paths: vec![dir.clone()],
        load: LoadOptions::default(),
        options: SourceOptions::default(),
    };
    let started = Instant::now();
    let running = source.start(Channel(ptx, rtx)).expect("source starts");
    prx.recv_timeout(Duration::from_secs(600))
        .expect("first snapshot");
    let first = started.elapsed();
    let _ = rrx.try_iter().count();
    let rss_first = rss_mib();
    let (mut latency, mut reload, mut phases) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let t = (round * 37) % tenants;
        let mut slices: Vec<serde_json::Value> = (0..60)
            .map(|s| xdsc_kube::strategy::tenant_slice_manifest(t, s, 0))
            .collect();
        slices[round % 20] = xdsc_kube::strategy::tenant_slice_manifest(t, round % 20, round + 1);
        let saved = Instant::now();
        tmp.write(
            &endpoints_file(t),
            &serde_json::to_string_pretty(&slices).expect("json"),
        );
        let published = prx
            .recv_timeout(Duration::from_secs(600))
            .expect("a new snapshot");
        latency.push(ms(published - saved));
        let (took, parts) = rrx
            .recv_timeout(Duration::from_secs(600))
            .expect("a report");
        reload.push(ms(took));
        phases.push(parts);
        let _ = rrx.try_iter().count();
    }
    print_phases(&phases);
    println!(
        "first load (source start to first publish) {:.0} ms; one-endpoint edit, {rounds} rounds: saved -> published median {:.1} ms (max {:.1}); reload median {:.2} ms (max {:.2}); hold-off {} ms; RSS after first load {:.0} MiB, after {rounds} edits {:.0} MiB",
        ms(first),
        median(latency.clone()),
        latency.iter().copied().fold(0.0, f64::max),
        median(reload.clone()),
        reload.iter().copied().fold(0.0, f64::max),
        SourceOptions::default().hold_off.as_millis(),
        rss_first,
        rss_mib()
    );
    running.stop();
}

fn main() {
    let tenants = arg("--kube-tenants", 0);
    if tenants > 0 {
        return kube_main(tenants, arg("--rounds", 5));
    }
    let n = arg("--services", 1000);
    let rounds = arg("--rounds", 5);
    let seed = 0x5EED_0001;
    let model = xdsc_benches::services(n, 10, seed);
    let tmp = TempDir::new("file-reload");
    let dir = tmp.path().to_owned();
    for o in model.of_kind(Kind::Listener) {
        tmp.write("listener.json", &service_file(&[o]));
    }
    let file_of = |i: usize, m: &xdsc_core::model::Model| {
        let name = xdsc_benches::service_name(i);
        let vh = xdsc_benches::vhost_name(i);
        let get = |kind: Kind, name: &str| {
            m.get(&xdsc_core::model::ObjectKey::new(kind, name))
                .map(|o| &**o)
        };
        let objects: Vec<&Object> = [
            get(Kind::Cluster, &name),
            get(Kind::Endpoints, &name),
            get(Kind::VirtualHost, &vh),
        ]
        .into_iter()
        .flatten()
        .collect();
        service_file(&objects)
    };
    for i in 0..n {
        tmp.write(&format!("svc-{i:05}.json"), &file_of(i, &model));
    }

    let started = Instant::now();
    let loaded = load::load(std::slice::from_ref(&dir), &LoadOptions::default());
    let read = started.elapsed();
    let compiled = Compiled::new(&loaded.model());
    let cold = started.elapsed();
    assert!(
        !loaded.has_errors() && !compiled.has_errors(),
        "the generated folder is valid"
    );
    println!(
        "{n} services: {} files, {} objects, {} resources; cold read {:.0} ms, read+compile {:.0} ms",
        loaded.files.len(),
        loaded.objects.len(),
        compiled.snapshot().len(),
        ms(read),
        ms(cold)
    );
    drop((loaded, compiled));

    let (ptx, prx) = mpsc::channel();
    let (rtx, rrx) = mpsc::channel();
    let source = FileSource {
        paths: vec![dir.clone()],
        load: LoadOptions::default(),
        options: SourceOptions::default(),
    };
    let running = source.start(Channel(ptx, rtx)).expect("source starts");
    prx.recv_timeout(Duration::from_secs(600))
        .expect("first snapshot");
    let _ = rrx.try_iter().count();
    let mut model = model;
    let (mut latency, mut reload, mut phases) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let i = (round * 7919) % n;
        let Change::Upsert(o) = xdsc_benches::endpoint_change(&model, i, seed + round as u64)
        else {
            unreachable!("an upsert")
        };
        model = model.apply([Change::Upsert(o)]);
        let saved = Instant::now();
        tmp.write(&format!("svc-{i:05}.json"), &file_of(i, &model));
        let published = prx
            .recv_timeout(Duration::from_secs(600))
            .expect("a new snapshot");
        latency.push(ms(published - saved));
        let (took, parts) = rrx
            .recv_timeout(Duration::from_secs(600))
            .expect("a report");
        reload.push(ms(took));
        phases.push(parts);
        let _ = rrx.try_iter().count();
    }
    print_phases(&phases);
    println!(
        "one-endpoint edit, {rounds} rounds: saved -> published median {:.0} ms (max {:.0}); reload (read all + compile) median {:.0} ms; hold-off {} ms; RSS {:.0} MiB",
        median(latency.clone()),
        latency.iter().copied().fold(0.0, f64::max),
        median(reload),
        SourceOptions::default().hold_off.as_millis(),
        rss_mib()
    );
    running.stop();
}
