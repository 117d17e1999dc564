//! A regression test of per-stream *resident* memory on the allocator the binaries ship
//! (jemalloc; feature `jemalloc`), counted, not timed: after 200 ADS streams (100 state of the
//! world, 100 delta) have synced a 1,000-service snapshot and the server has returned the
//! freed memory of that sync wave to the OS (`SyncLimits::release_after`, counted by
//! `xdsc_memory_releases_total`), the server process's resident memory has grown by less than
//! 200 x 64 KiB (wildcard) and 200 x 256 KiB (named, as Envoy subscribes).
//!
//! `stream_memory.rs` counts the live heap; this one counts what the operating system
//! charges: without the release, jemalloc kept the freed peak of the sync resident (about
//! 190 KiB per stream here, 0.5-1 MiB at 10,000 services; BENCHMARKS.md, issue 13).
//!
//! The clients run in a child process (this test binary again), so that the resident memory
//! measured is the server's.

use std::time::Duration;

use xdsc_core::compile::Compiled;
use xdsc_server::memory::{
    flush_thread_cache, release_freed_memory, resident_bytes, thread_cache_bytes,
};
use xdsc_server::testing::{Subscription, TestServer};

mod support;

#[global_allocator]
static ALLOCATOR: xdsc_server::memory::Jemalloc = xdsc_server::memory::Jemalloc;

const SERVICES: usize = 1000;
const STREAMS: usize = 200;
/// The aims per idle stream (issue 13).
const PER_WILDCARD_STREAM: u64 = 64 << 10;
const PER_NAMED_STREAM: u64 = 256 << 10;
const CLIENT_PORT: &str = "XDSC_IDLE_RESIDENT_PORT";
const CLIENT_MODE: &str = "XDSC_IDLE_RESIDENT_NAMED";

/// The most the server's idle workers may keep in their allocator caches after the release
/// (they empty them in it; before, they kept what the sync left there, about 16 KiB per
/// stream at 10,000 services).
const WORKER_CACHES: u64 = 64 << 10;

/// How many bytes the server process's resident memory grew by, from before the streams
/// connected until the server returned the freed memory of their sync, and how many bytes
/// the threads' allocator caches grew by.
fn growth(snapshot: &xdsc_core::snapshot::Snapshot, mode: Subscription) -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(TestServer::start(snapshot.clone(), |x| x));
    // What compiling left freed is not the streams'.
    release_freed_memory();
    let before = resident_bytes().expect("VmRSS");
    let cached_before = thread_cache_bytes().expect("on jemalloc");
    let mut child = support::spawn_synced_clients(
        "idle_synced_streams_keep_little_resident_memory",
        (CLIENT_PORT, CLIENT_MODE),
        server.port,
        mode,
        2,
    );
    // Every stream has synced: once the server holds no sync permit and nobody waits for one,
    // the wave is over, and the server releases its freed memory `release_after` later. (The
    // 60 s are only there so that a server that never releases fails below instead of
    // hanging; the release comes a second after the sync.)
    let metric = |name: &str| server.metric(name).unwrap_or_default();
    for _ in 0..3000 {
        if metric("xdsc_sync_permits_held") == 0
            && metric("xdsc_sync_permits_waiting") == 0
            && metric("xdsc_memory_releases_total") > 0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let grown = resident_bytes().expect("VmRSS").saturating_sub(before);
    // This thread's own cache (it read the metrics) is not the server's.
    flush_thread_cache();
    let cached = thread_cache_bytes()
        .expect("on jemalloc")
        .saturating_sub(cached_before);
    drop(child.stdin.take());
    let _ = child.wait();
    println!(
        "{STREAMS} synced streams ({mode:?}) of {SERVICES} services: server RSS grew by {} KiB, {} KiB per stream ({} KiB released; thread caches grew by {} KiB)",
        grown >> 10,
        (grown / STREAMS as u64) >> 10,
        metric("xdsc_memory_released_bytes_total") >> 10,
        cached >> 10,
    );
    drop(server);
    drop(rt);
    (grown, cached)
}

#[test]
fn idle_synced_streams_keep_little_resident_memory() {
    if support::run_as_child(CLIENT_PORT, CLIENT_MODE, STREAMS, Duration::ZERO) {
        return;
    }
    let snapshot = Compiled::new(&xdsc_benches::services(SERVICES, 10, 7))
        .snapshot()
        .clone();
    let (wildcard, wildcard_cached) = growth(&snapshot, Subscription::Wildcard);
    let (named, named_cached) = growth(&snapshot, Subscription::Named);
    for (mode, cached) in [("wildcard", wildcard_cached), ("named", named_cached)] {
        assert!(
            cached < WORKER_CACHES,
            "after the release of {STREAMS} {mode} syncs, the threads' allocator caches hold {cached} bytes more than before"
        );
    }
    assert!(
        wildcard < STREAMS as u64 * PER_WILDCARD_STREAM,
        "{STREAMS} idle wildcard streams keep {wildcard} bytes resident, more than {} KiB each",
        PER_WILDCARD_STREAM >> 10
    );
    assert!(
        named < STREAMS as u64 * PER_NAMED_STREAM,
        "{STREAMS} idle named streams keep {named} bytes resident, more than {} KiB each",
        PER_NAMED_STREAM >> 10
    );
}
