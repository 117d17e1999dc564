//! Allocation counts of the compiler (not a Criterion bench: it prints numbers).
//!
//! A counting global allocator (`stats_alloc`, wrapping the system allocator) measures a full
//! compile and a one-endpoint incremental compile plus snapshot diff of the seeded model of
//! 10,000 services with 10 endpoints each. Under `cargo bench` it measures 10,000 services;
//! run as a test (`cargo test --benches`), it checks itself on 100.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use xdsc_core::compile::Compiled;
use xdsc_core::snapshot::ResourceType;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The seed of the model, the same as `benches/compile.rs`'s.
const SEED: u64 = 0x5EED_0001;

/// How many single-endpoint changes the incremental figures average over.
const CHANGES: usize = 64;

/// Runs `f` and returns its result, how many allocations (including reallocations) it made,
/// how many bytes they asked for, and how many bytes it left allocated.
///
/// `stats_alloc` already counts a reallocation's growth in `bytes_allocated` and its
/// shrinking in `bytes_deallocated`; `bytes_reallocated` is the same net change again, so it
/// must not be added to either figure.
fn count<T>(f: impl FnOnce() -> T) -> (T, usize, usize, isize) {
    let region = Region::new(GLOBAL);
    let out = f();
    let s = region.change();
    (
        out,
        s.allocations + s.reallocations,
        s.bytes_allocated,
        s.bytes_allocated as isize - s.bytes_deallocated as isize,
    )
}

/// The counting itself, on allocations whose sizes are known: a vector grown by
/// reallocation and kept retains exactly its capacity; one dropped retains nothing.
fn check_count() {
    let (kept, allocs, bytes, retained) = count(|| {
        let mut v: Vec<u64> = Vec::with_capacity(1);
        for i in 0..1000 {
            v.push(i);
        }
        v
    });
    let size = kept.capacity() * 8;
    assert!(allocs > 1, "the vector was reallocated");
    // Each growth asks for the difference only: together, the final size.
    assert_eq!((bytes, retained), (size, size as isize), "bytes, retained");
    let ((), _, _, retained) = count(|| drop(std::hint::black_box(kept)));
    assert_eq!(
        retained,
        -(size as isize),
        "the drop frees the whole capacity"
    );
}

fn main() {
    check_count();
    let n = if std::env::args().any(|a| a == "--bench") {
        10_000
    } else {
        100
    };
    let model = xdsc_benches::services(n, 10, SEED);
    println!("allocations, {n} services x 10 endpoints (seed {SEED:#x})");
    println!(
        "{:<34} {:>12} {:>14} {:>14}",
        "", "allocations", "bytes", "retained"
    );

    let (base, allocs, bytes, retained) = count(|| Compiled::new(&model));
    assert_eq!(base.diagnostics(), []);
    println!(
        "{:<34} {allocs:>12} {bytes:>14} {retained:>14}",
        "full_compile"
    );

    let changes: Vec<_> = (0..CHANGES)
        .map(|k| xdsc_benches::endpoint_change(&model, (k * 7919 + 13) % n, k as u64))
        .collect();
    let (mut allocs, mut bytes, mut retained) = (0, 0, 0);
    for ch in changes {
        let ((next, diff), a, b, r) = count(|| {
            let next = base.apply([ch]);
            let diff = base.snapshot().diff(next.snapshot());
            (next, diff)
        });
        assert!(!diff.is_empty());
        drop((next, diff));
        (allocs, bytes, retained) = (allocs + a, bytes + b, retained + r);
    }
    let per = |x: usize| x / CHANGES;
    println!(
        "{:<34} {:>12} {:>14} {:>14}",
        "incremental_endpoint (mean of 64)",
        per(allocs),
        per(bytes),
        retained / CHANGES as isize
    );
    println!(
        "retained: bytes still allocated when the step ends (for incremental: the new result's \
         own nodes and resource, before the old result is dropped)"
    );
    println!("the compiled snapshot:");
    for t in ResourceType::ALL {
        let r = base.snapshot().resources(t);
        let size: usize = r.iter().map(|r| r.body().len()).sum();
        println!("  {t}: {} resources, {size} bytes encoded", r.len());
    }
}
