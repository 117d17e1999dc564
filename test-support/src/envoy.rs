//! The pinned Envoy: finding it, validating a configuration with it, and running it with an
//! ADS bootstrap.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::TempDir;

/// The Envoy binary: `XDSC_ENVOY`, else the virtualenv made by `scripts/install-envoy.sh` at
/// the workspace root. `None` (after saying so on standard error) when there is none, unless
/// `CI=true`, where a missing Envoy panics so that Envoy tests fail instead of skipping.
///
/// ```
/// if let Some(envoy) = xdsc_test_support::find_envoy() {
///     assert!(envoy.is_file());
/// }
/// ```
pub fn find_envoy() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let venv = std::fs::read_dir(root.join(".venv-envoy/lib"))
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"));
    for candidate in std::env::var_os("XDSC_ENVOY")
        .map(PathBuf::from)
        .into_iter()
        .chain(venv)
    {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let msg = "Envoy not found: run `bash scripts/install-envoy.sh` or set XDSC_ENVOY";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: Envoy tests must run)");
    }
    eprintln!("skipping: {msg}");
    None
}

/// Runs `envoy --mode validate` on a configuration (JSON or YAML text). On failure the
/// configuration is kept in the temporary folder and the error names it, with Envoy's output.
///
/// ```no_run
/// let envoy = xdsc_test_support::find_envoy().unwrap();
/// let bootstrap = br#"{"static_resources": {}}"#;
/// xdsc_test_support::validate(&envoy, bootstrap).unwrap();
/// ```
pub fn validate(envoy: &Path, config: &[u8]) -> Result<(), String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let file = std::env::temp_dir().join(format!(
        "xdsc-validate-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, config).map_err(|e| format!("write {}: {e}", file.display()))?;
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", envoy.display()))?;
    if out.status.success() {
        let _ = std::fs::remove_file(&file);
        return Ok(());
    }
    Err(format!(
        "envoy rejects {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// An Envoy bootstrap that takes everything over ADS (state of the world, or delta) from
/// `127.0.0.1:xds_port`, with its admin interface on `admin_port`.
///
/// ```
/// let b = xdsc_test_support::ads_bootstrap("n1", "default", 18000, 19000, true);
/// assert_eq!(b["dynamic_resources"]["ads_config"]["api_type"], "DELTA_GRPC");
/// ```
pub fn ads_bootstrap(
    node_id: &str,
    fleet: &str,
    xds_port: u16,
    admin_port: u16,
    delta: bool,
) -> Value {
    let ads = json!({"ads": {}, "resource_api_version": "V3"});
    json!({
        "node": {"id": node_id, "cluster": fleet},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": if delta { "DELTA_GRPC" } else { "GRPC" },
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xdsc"}}],
                "set_node_on_first_message_only": true
            },
            "cds_config": ads,
            "lds_config": ads
        },
        "static_resources": {"clusters": [{
            "name": "xdsc",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            },
            "load_assignment": {"cluster_name": "xdsc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": xds_port}}}}]}]}
        }]}
    })
}

/// A running Envoy, killed when dropped.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    /// Envoy's own admin port.
    pub admin_port: u16,
    dir: TempDir,
}

impl Envoy {
    /// Starts `binary` with this bootstrap (written to a temporary folder, with its log).
    pub fn start(binary: &Path, bootstrap: &Value, admin_port: u16) -> Envoy {
        Envoy::start_with(binary, bootstrap, admin_port, &[])
    }

    /// [`Envoy::start`] with more command-line arguments (for example
    /// `--component-log-level config:debug`).
    pub fn start_with(binary: &Path, bootstrap: &Value, admin_port: u16, args: &[&str]) -> Envoy {
        let dir = TempDir::new(&format!("envoy-{admin_port}"));
        let config = dir.join("bootstrap.json");
        std::fs::write(&config, serde_json::to_vec_pretty(bootstrap).expect("json"))
            .expect("write bootstrap");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .args([
                "--use-dynamic-base-id",
                "--log-level",
                "info",
                "--concurrency",
                "1",
                "--log-path",
            ])
            .arg(dir.join("envoy.log"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start envoy");
        Envoy {
            child,
            admin_port,
            dir,
        }
    }

    /// GET on Envoy's admin interface.
    pub fn admin(&self, path: &str) -> Option<String> {
        crate::http_get(self.admin_port, "localhost", path).map(|(_, body)| body)
    }

    /// Envoy's whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// The end of Envoy's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
