//! The command line of `xdsc-file` (clap): every command, flag and its help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use xdsc_file::load::LoadOptions;
use xdsc_file::{commands, oracle};
use xdsc_server::cli::duration;

/// Serve folders of Envoy configuration (xdsc model documents or Kubernetes manifests, YAML or
/// JSON) to Envoy over xDS, live.
///
/// Exit codes: 0 success; 1 the input has errors (check, render, explain, test) or a case
/// failed (test); 2 the command line is wrong; 3 something else failed (an address in use, I/O).
#[derive(Parser, Debug)]
#[command(name = "xdsc-file", version, about, long_about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Watch the files and folders and serve them over xDS; a change applies when it adds no
    /// error, otherwise the last good configuration stays served.
    Serve {
        #[command(flatten)]
        input: Input,
        /// The gRPC xDS listener.
        #[arg(long, default_value = "127.0.0.1:18000")]
        xds_addr: SocketAddr,
        /// The admin HTTP listener (/healthz, /readyz, /metrics, /debug/snapshot, /debug/clients).
        #[arg(long, default_value = "127.0.0.1:18001")]
        admin_addr: SocketAddr,
        /// The fleet the snapshots are published to (nodes whose `cluster` names no other
        /// fleet get `default`).
        #[arg(long, default_value = "default")]
        fleet: String,
        /// Quiet time after a file event before reloading, e.g. 100ms.
        #[arg(long, default_value = "100ms", value_parser = duration)]
        hold_off: std::time::Duration,
        /// The longest a reload waits after the first event of a burst.
        #[arg(long, default_value = "1s", value_parser = duration)]
        max_delay: std::time::Duration,
        /// Reload on this period even without file events (a safety net for missed events).
        #[arg(long, default_value = "10s", value_parser = duration)]
        rescan: std::time::Duration,
        /// On SIGTERM or SIGINT every xDS stream is ended at once (Envoy reconnects to
        /// another replica); connections still open after this long are closed and the
        /// process exits 0.
        #[arg(long, default_value = "5s", value_parser = duration)]
        shutdown_grace: std::time::Duration,
        /// Answer 404 on /, /debug/snapshot and /debug/clients (they show configuration,
        /// node identities and addresses; secrets are always redacted).
        #[arg(long)]
        no_debug_endpoints: bool,
        #[command(flatten)]
        ops: xdsc_server::cli::OpsFlags,
        #[command(flatten)]
        tls: xdsc_server::cli::TlsFlags,
    },
    /// Validate the files; print every error and warning (file:line:column, object, field)
    /// to standard error, and to standard output the status each Kubernetes object would
    /// get in a cluster (Gateway API conditions with the spec's reasons, Ingress addresses);
    /// exit 1 if there is any error.
    Check {
        #[command(flatten)]
        input: Input,
        /// Output format: `json` prints one object (diagnostics, statuses in the API's
        /// shape, summary) to standard output.
        #[arg(long, value_enum, default_value_t = commands::Format::Text)]
        output: commands::Format,
    },
    /// Print the compiled snapshot as an Envoy bootstrap with static resources, which
    /// `envoy --mode validate -c FILE` accepts; diagnostics go to standard error.
    Render {
        #[command(flatten)]
        input: Input,
        /// The fleet (the bootstrap's node cluster).
        #[arg(long, default_value = "default")]
        fleet: String,
        /// The port of Envoy's admin interface in the bootstrap.
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
    },
    /// Print the JSON Schema of native documents (for editors and CI).
    Schema,
    /// Explain where a request goes: the filter chain, the virtual host and the domain that
    /// chose it, why each earlier route did not match, the route that matches and what it does.
    ///
    /// Exit codes: 0 an answer was produced (no route, answered 404, is an answer); 1 the files
    /// have errors (printed to standard error, no answer) or use something the oracle does not
    /// evaluate; 2 the request is wrong (an unknown listener, no --listener among several HTTP
    /// listeners, --sni with --scheme http).
    Explain {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        request: oracle::Query,
        /// Output format.
        #[arg(long, value_enum, default_value_t = commands::Format::Text)]
        output: commands::Format,
    },
    /// Run the cases of a cases file (YAML or JSON: a list of requests with expected outcomes)
    /// against the files; print `ok NAME` or `FAIL NAME: expected X, got Y` per case, then
    /// `N passed, M failed`.
    ///
    /// A case: name, host, path, and optionally method, headers (a map), listener, sni, scheme;
    /// then `expect` with any of cluster, clusters (name: weight), virtual_host, route, status,
    /// redirect (the Location), path and host (as sent upstream).
    ///
    /// Exit codes: 0 every case passed; 1 a case failed, the cases file is invalid (each problem
    /// at its file:line:column) or the files have errors; 3 the cases file cannot be read.
    Test {
        #[command(flatten)]
        input: Input,
        /// The cases file.
        #[arg(long)]
        cases: PathBuf,
    },
}

/// The files to read and how to read Kubernetes manifests.
#[derive(Args, Debug)]
pub(crate) struct Input {
    /// Files and folders (read recursively: *.yaml, *.yml, *.json).
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,
    /// The Envoy port of the Ingress HTTP listener.
    #[arg(long, default_value_t = 8080)]
    pub(crate) ingress_http_port: u16,
    /// The Envoy port of the Ingress HTTPS listener.
    #[arg(long, default_value_t = 8443)]
    pub(crate) ingress_https_port: u16,
    /// Added to a Gateway listener port below 1024 for the port Envoy binds.
    #[arg(long, default_value_t = 10000)]
    pub(crate) gateway_port_offset: u16,
    /// The IngressClass `spec.controller` that is ours.
    #[arg(long, default_value = "xdsc.dev/ingress-controller")]
    pub(crate) ingress_controller: String,
    /// The GatewayClass `spec.controllerName` that is ours.
    #[arg(long, default_value = "xdsc.dev/gateway-controller")]
    pub(crate) gateway_controller: String,
}

impl Input {
    pub(crate) fn options(&self) -> LoadOptions {
        let mut options = LoadOptions::default();
        let kube = &mut options.kube;
        kube.ingress_http_port = self.ingress_http_port;
        kube.ingress_https_port = self.ingress_https_port;
        kube.privileged_port_offset = self.gateway_port_offset;
        kube.ingress_controller.clone_from(&self.ingress_controller);
        kube.gateway_controller.clone_from(&self.gateway_controller);
        options
    }
}
