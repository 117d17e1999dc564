//! Criterion benches of the compiler on seeded models of 1,000 and 10,000 services with 10
//! endpoints each (see `xdsc_benches::services`).
//!
//! - `full_compile/<n>`: `Compiled::new(&model)`.
//! - `encode_only/<n>`: the floor a full compile cannot beat: prost-encoding every resource of
//!   the compiled snapshot from already-built envoy-types messages (decoded once, untimed).
//! - `incremental_endpoint/<n>`: one endpoint of one service moves; apply the change to a
//!   compiled result and diff the two snapshots, as the server does.
//! - `incremental_route/<n>`: the weights of one route of one virtual host are swapped; apply
//!   and diff (re-encodes one virtual host and reassembles the route configuration).
//!
//! The outputs of `full_compile` and `encode_only` are dropped outside the timed region (a
//! compile keeps what it encodes), so their ratio compares like with like. Every incremental
//! iteration applies one of 64 precomputed changes to the same immutable compiled result, so
//! each one is a real change (checked before timing), never a no-op; its result and diff are
//! dropped inside the timed loop, as a server drops one old snapshot per new one.

/// With `--features jemalloc`: the allocator the binaries ship with.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: xdsc_server::memory::Jemalloc = xdsc_server::memory::Jemalloc;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::{
    cluster::v3 as cluster, endpoint::v3 as endpoint, listener::v3 as listener, route::v3 as route,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use prost::Message;
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Change, Model};
use xdsc_core::snapshot::{ResourceType, Snapshot};

/// The seed of every model here: change it and every number changes.
const SEED: u64 = 0x5EED_0001;
const ENDPOINTS_PER_SERVICE: usize = 10;
const SIZES: [usize; 2] = [1_000, 10_000];

fn model(n: usize) -> Model {
    xdsc_benches::services(n, ENDPOINTS_PER_SERVICE, SEED)
}

fn full_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("full_compile");
    // One compile of 10k services takes long enough that one iteration per sample is precise.
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    for n in SIZES {
        let m = model(n);
        assert_eq!(
            Compiled::new(&m).diagnostics(),
            [],
            "the model compiles cleanly"
        );
        g.bench_with_input(BenchmarkId::from_parameter(n), &m, |b, m| {
            b.iter_with_large_drop(|| Compiled::new(black_box(m)))
        });
    }
    g.finish();
}

/// Every resource of a snapshot as envoy-types messages.
#[derive(Default)]
struct Decoded {
    clusters: Vec<cluster::Cluster>,
    endpoints: Vec<endpoint::ClusterLoadAssignment>,
    listeners: Vec<listener::Listener>,
    routes: Vec<route::RouteConfiguration>,
    secrets: Vec<tls::Secret>,
}

impl Decoded {
    fn of(snapshot: &Snapshot) -> Decoded {
        fn all<M: Message + Default>(s: &Snapshot, t: ResourceType) -> Vec<M> {
            s.resources(t)
                .iter()
                .map(|r| M::decode(r.body().as_ref()).expect("the compiler emits valid protobuf"))
                .collect()
        }
        Decoded {
            clusters: all(snapshot, ResourceType::Cluster),
            endpoints: all(snapshot, ResourceType::Endpoint),
            listeners: all(snapshot, ResourceType::Listener),
            routes: all(snapshot, ResourceType::Route),
            secrets: all(snapshot, ResourceType::Secret),
        }
    }

    /// Encodes every message, each into its own buffer as the compiler does.
    fn encode(&self) -> Vec<Vec<u8>> {
        fn all<M: Message>(out: &mut Vec<Vec<u8>>, ms: &[M]) {
            out.extend(ms.iter().map(Message::encode_to_vec));
        }
        let mut out = Vec::new();
        all(&mut out, &self.clusters);
        all(&mut out, &self.endpoints);
        all(&mut out, &self.listeners);
        all(&mut out, &self.routes);
        all(&mut out, &self.secrets);
        out
    }
}

fn encode_only(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_only");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    for n in SIZES {
        let compiled = Compiled::new(&model(n));
        let decoded = Decoded::of(compiled.snapshot());
        // Nothing was lost in decoding: the floor encodes exactly the compiled bytes' worth.
        let bytes: usize = compiled.snapshot().iter().map(|r| r.body().len()).sum();
        assert_eq!(decoded.encode().iter().map(Vec::len).sum::<usize>(), bytes);
        g.bench_with_input(BenchmarkId::from_parameter(n), &decoded, |b, d| {
            b.iter_with_large_drop(|| d.encode())
        });
    }
    g.finish();
}

/// Benches applying one of 64 seeded changes (`change(model, service, seed)`) to a compiled
/// result and diffing the snapshots.
fn incremental(
    c: &mut Criterion,
    name: &str,
    expect: ResourceType,
    change: impl Fn(&Model, usize, u64) -> Change,
) {
    let mut g = c.benchmark_group(name);
    // 30 samples keep the slowest (a route change at 10k, ~5 ms) within the measurement time.
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let m = model(n);
        let base = Compiled::new(&m);
        // Services spread over the whole model (7919 is prime, so they are distinct for n > 64).
        let changes: Vec<Change> = (0..64u64)
            .map(|k| change(&m, (k as usize * 7919 + 13) % n, k))
            .collect();
        for ch in &changes {
            let next = base.apply([ch.clone()]);
            let diff = base.snapshot().diff(next.snapshot());
            assert_eq!(diff.changed_types().collect::<Vec<_>>(), [expect]);
            assert_eq!(next.diagnostics(), []);
        }
        let mut k = 0;
        g.bench_with_input(BenchmarkId::from_parameter(n), &base, |b, base| {
            b.iter(|| {
                let ch = changes[k % changes.len()].clone();
                k += 1;
                let next = base.apply([ch]);
                let diff = base.snapshot().diff(next.snapshot());
                (next, diff)
            })
        });
    }
    g.finish();
}

fn incremental_endpoint(c: &mut Criterion) {
    incremental(
        c,
        "incremental_endpoint",
        ResourceType::Endpoint,
        xdsc_benches::endpoint_change,
    );
}

fn incremental_route(c: &mut Criterion) {
    incremental(c, "incremental_route", ResourceType::Route, |m, i, _| {
        xdsc_benches::route_change(m, i)
    });
}

criterion_group!(
    benches,
    full_compile,
    encode_only,
    incremental_endpoint,
    incremental_route
);
criterion_main!(benches);
