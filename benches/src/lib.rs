//! xdsc-benches: Criterion benchmarks and scale runs for xdsc.
