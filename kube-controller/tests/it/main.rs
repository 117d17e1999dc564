//! xdsc-kube's integration tests, one binary. `api`: the controller in-process against the
//! test API server (watches, recovery, status, leadership, bursts); `binary`: the `xdsc-kube`
//! binary (flags, exit codes, memory under a burst); `envoy`: end to end with kubectl and the
//! real Envoy; `manifests`: the example deployment parses.

mod api;
mod binary;
mod envoy;
mod manifests;
mod support;
