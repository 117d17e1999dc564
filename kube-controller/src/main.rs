//! The `xdsc-kube` binary: flags, logging, the TLS provider and the runtime; the work is in
//! the library (`xdsc_kube_controller::run`).

mod cli;

/// jemalloc: its statistics are metrics, and with --profiling its sampled heap profiles are
/// served (BENCHMARKS.md has what it costs).
#[global_allocator]
static ALLOCATOR: xdsc_server::memory::Jemalloc = xdsc_server::memory::Jemalloc;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use cli::{Cli, LogFormat};

/// Something other than the command line failed (as `xdsc-file`'s exit code 3).
const EXIT_FAILURE: u8 = 3;

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.lease_renew_deadline >= cli.lease_duration {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--lease-renew-deadline must be shorter than --lease-duration",
            )
            .exit();
    }
    init_logs(cli.log_format);
    // kube builds its rustls configurations with the process's provider: ring, the only one
    // compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        let kube = cli.kube_config().await.map_err(anyhow::Error::msg)?;
        let config = cli.config(kube);
        xdsc_kube_controller::run(config, xdsc_server::shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "xdsc-kube stopped");
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
