//! The `xdsc-kube-testserver` binary: serves the in-memory API server on a loopback port and
//! writes a kubeconfig for kubectl and `xdsc-kube --kubeconfig`; state lives until exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

/// An in-memory Kubernetes API server for trying xdsc-kube and kubectl without a cluster.
///
/// Plain HTTP, no authentication (a bearer token is only recorded), no persistence.
#[derive(Parser, Debug)]
#[command(name = "xdsc-kube-testserver", version)]
struct Cli {
    /// Address to listen on (a loopback address; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    addr: SocketAddr,
    /// Where to write the kubeconfig pointing at this server.
    #[arg(long, default_value = "xdsc-testserver.kubeconfig")]
    kubeconfig: PathBuf,
    /// Bearer token to put in the kubeconfig (the server records it with each write).
    #[arg(long)]
    token: Option<String>,
    /// Watch events kept per resource; a watch from an older version gets 410 Expired.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Seconds between bookmarks on an idle watch that asked for them.
    #[arg(long, default_value_t = 5)]
    bookmark_interval: u64,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    anyhow::ensure!(
        cli.addr.ip().is_loopback(),
        "--addr must be a loopback address: the server has no authentication"
    );
    let server = xdsc_kube_testserver::TestServer::builder()
        .addr(cli.addr)
        .history(cli.history)
        .bookmark_interval(Duration::from_secs(cli.bookmark_interval.max(1)))
        .start()
        .await
        .with_context(|| format!("listening on {}", cli.addr))?;
    std::fs::write(&cli.kubeconfig, server.kubeconfig(cli.token.as_deref()))
        .with_context(|| format!("writing {}", cli.kubeconfig.display()))?;
    tracing::info!(url = %server.url(), kubeconfig = %cli.kubeconfig.display(), "serving");
    println!(
        "serving {} (kubeconfig {})",
        server.url(),
        cli.kubeconfig.display()
    );
    signal().await;
    tracing::info!("stopping");
    Ok(())
}
