//! The command-line flags every binary built on this server shares (feature `cli`): clap
//! structs a binary flattens into its own (`#[command(flatten)]`), so `xdsc-file serve` and
//! `xdsc-kube` spell, document and apply them alike.
//!
//! Not here: parsing a whole command line, or flags only one binary has.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// TLS on the xDS listener: `--xds-tls-cert`, `--xds-tls-key`, `--xds-client-ca`,
/// `--xds-tls-reload-every`.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     tls: xdsc_server::cli::TlsFlags,
/// }
/// let cli = Cli::parse_from(["x", "--xds-tls-cert", "c.pem", "--xds-tls-key", "k.pem"]);
/// let files = cli.tls.files().expect("TLS on");
/// assert_eq!(files.reload_every, Some(std::time::Duration::from_secs(5)));
/// assert!(Cli::parse_from(["x"]).tls.files().is_none());
/// ```
#[derive(Args, Debug, Clone)]
pub struct TlsFlags {
    /// Serve xDS over TLS with this certificate chain (PEM, leaf first); Envoy then needs a
    /// `transport_socket` with TLS on its xDS cluster.
    #[arg(long, requires = "xds_tls_key", value_name = "PEM")]
    pub xds_tls_cert: Option<PathBuf>,
    /// The private key of --xds-tls-cert (PEM).
    #[arg(long, requires = "xds_tls_cert", value_name = "PEM")]
    pub xds_tls_key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (PEM): mutual TLS. Clients without
    /// one are refused during the handshake.
    #[arg(long, requires = "xds_tls_cert", value_name = "PEM")]
    pub xds_client_ca: Option<PathBuf>,
    /// Read the TLS files again this often; when they changed and are valid, new
    /// connections get them (open ones keep theirs); when not, the previous ones stay, with
    /// a warning and `xdsc_xds_tls_reloads_total{result="error"}`. 0s: never.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    pub xds_tls_reload_every: Duration,
}

impl TlsFlags {
    /// The files to read, or `None` for plain text.
    pub fn files(self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.xds_tls_cert?,
            key: self.xds_tls_key?,
            client_ca: self.xds_client_ca,
            reload_every: Some(self.xds_tls_reload_every).filter(|d| !d.is_zero()),
        })
    }
}

/// Profiles and memory logs: `--profiling`, `--memory-log-at`, `--memory-summary-every`.
#[derive(Args, Debug, Clone)]
pub struct OpsFlags {
    /// Serve CPU and heap profiles on the admin listener (/debug/pprof/profile?seconds=N,
    /// /debug/pprof/heap) and sample heap allocations from the start.
    #[arg(long)]
    pub profiling: bool,
    /// Log when resident memory crosses these fractions of the container's memory limit.
    #[arg(long, default_value = "0.5,0.75,0.9", value_parser = crate::memory::parse_fractions)]
    pub memory_log_at: std::vec::Vec<f64>,
    /// Log a memory summary this often (0s: never).
    #[arg(long, default_value = "10m", value_parser = duration, value_name = "DURATION")]
    pub memory_summary_every: Duration,
}

impl OpsFlags {
    /// What the admin server and the memory watch are started with.
    pub fn operability(self) -> crate::Operability {
        crate::Operability {
            profiling: self.profiling,
            memory: crate::memory::MemoryWatch {
                fractions: self.memory_log_at,
                summary_every: Some(self.memory_summary_every).filter(|d| !d.is_zero()),
                ..crate::memory::MemoryWatch::default()
            },
        }
    }
}

/// A duration as the model writes it (`100ms`, `5s`, `10m`).
pub fn duration(s: &str) -> Result<Duration, String> {
    let d: xdsc_core::model::Duration = s.parse().map_err(|e| format!("{e}"))?;
    Ok(Duration::from_millis(d.as_millis()))
}
