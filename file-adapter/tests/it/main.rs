//! xdsc-file's integration tests, one binary: each module tests one area through the real
//! `xdsc-file` binary (and, where it says so, the real Envoy).

mod check_corpus;
mod faults;
mod gateway_envoy;
mod oracle_cli;
mod render;
mod schema;
mod serve_envoy;
mod serve_lifecycle;
mod status_page;
mod support;
mod tls_envoy;
