//! The release after a wave of initial syncs empties the allocator cache of every runtime
//! worker, counted, not timed: idle workers never allocate, so the freed objects jemalloc
//! keeps per thread (its `tcache`) stayed cached for good, about 16 KiB per stream after 100
//! initial syncs of 10,000 services (BENCHMARKS.md, issue 13), and no purge of the arenas
//! could return the pages under them.
//!
//! Its own test binary (jemalloc as the global allocator), so that no other test's threads
//! fill caches while this one counts them.

use xdsc_server::memory::{flush_thread_cache, release_freed_memory_on, thread_cache_bytes};

#[global_allocator]
static ALLOCATOR: xdsc_server::memory::Jemalloc = xdsc_server::memory::Jemalloc;

const WORKERS: usize = 2;

/// Allocates and frees small objects on the calling thread, as a stream's encoding does, so
/// that the thread's cache fills.
fn churn() {
    for size in [16_usize, 48, 96, 256, 640, 1024, 2048, 4096] {
        let held: Vec<Vec<u8>> = (0..200).map(|i| vec![i as u8; size]).collect();
        drop(held);
    }
}

#[test]
fn every_worker_empties_its_allocator_cache_on_release() {
    // What other threads (the test harness's) keep cached is not the workers'.
    flush_thread_cache();
    let baseline = thread_cache_bytes().expect("on jemalloc");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("runtime");
    // Fill both workers' caches: the tasks wait for each other, so they run on different
    // workers.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(WORKERS));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let barrier = barrier.clone();
            rt.spawn(async move {
                barrier.wait();
                churn();
            })
        })
        .collect();
    rt.block_on(async {
        for t in tasks {
            t.await.expect("churn task");
        }
    });
    // This thread's own cache is not the workers'.
    flush_thread_cache();
    let cached = thread_cache_bytes()
        .expect("on jemalloc")
        .saturating_sub(baseline);
    assert!(
        cached > 256 << 10,
        "the workers' churn left only {cached} bytes cached: the test does not fill the caches"
    );
    let (_, workers) = std::thread::scope(|s| {
        s.spawn(|| release_freed_memory_on(rt.handle()))
            .join()
            .expect("release thread")
    });
    flush_thread_cache();
    let left = thread_cache_bytes()
        .expect("on jemalloc")
        .saturating_sub(baseline);
    println!(
        "the workers' caches: {cached} bytes before the release, {left} after ({baseline} cached by other threads)"
    );
    assert_eq!(workers, WORKERS, "every worker thread emptied its cache");
    assert!(
        left < cached / 10,
        "{left} of {cached} cached bytes are still in the workers' caches after the release"
    );
}
