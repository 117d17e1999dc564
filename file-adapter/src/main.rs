//! The `xdsc-file` binary: flags, logging and the runtime; the work is in the library.

mod cli;

/// jemalloc: its statistics are metrics, and with --profiling its sampled heap profiles are
/// served (BENCHMARKS.md has what it costs).
#[global_allocator]
static ALLOCATOR: xdsc_server::memory::Jemalloc = xdsc_server::memory::Jemalloc;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, LogFormat};
use xdsc_file::commands::{self, EXIT_FAILURE, Output};
use xdsc_file::oracle;
use xdsc_file::serve::{ServeConfig, serve};
use xdsc_file::source::{FileSource, SourceOptions};

fn print(out: Output) -> ExitCode {
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    ExitCode::from(out.code)
}

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
    match cli.command {
        Command::Check { input, output } => {
            print(commands::check_as(&input.paths, &input.options(), output))
        }
        Command::Render {
            input,
            fleet,
            admin_port,
        } => print(commands::render(
            &input.paths,
            &input.options(),
            &fleet,
            admin_port,
        )),
        Command::Schema => print(commands::schema()),
        Command::Explain {
            input,
            request,
            output,
        } => print(oracle::explain(
            &input.paths,
            &input.options(),
            &request,
            output,
        )),
        Command::Test { input, cases } => {
            print(oracle::test(&input.paths, &input.options(), &cases))
        }
        Command::Serve {
            input,
            xds_addr,
            admin_addr,
            fleet,
            hold_off,
            max_delay,
            rescan,
            shutdown_grace,
            no_debug_endpoints,
            ops,
            tls,
        } => {
            init_logs(cli.log_format);
            let config = ServeConfig {
                source: FileSource {
                    load: input.options(),
                    paths: input.paths,
                    options: SourceOptions {
                        hold_off,
                        max_delay,
                        rescan,
                    },
                },
                xds_addr,
                admin_addr,
                fleet,
                shutdown_grace,
                debug_endpoints: !no_debug_endpoints,
                ops: ops.operability(),
                tls: tls.files(),
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(EXIT_FAILURE);
                }
            };
            let result = runtime.block_on(serve(config, xdsc_server::shutdown_signal()));
            // Tasks still running (admin requests in flight) do not hold the exit up.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => {
                    tracing::info!("stopped");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!(error = %e, "xdsc-file stopped");
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}
