//! The command line of `xdsc-kube` (clap): every flag and its help text, and turning them into
//! a [`xdsc_kube_controller::Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use xdsc_kube::translate::ObjectRef;
use xdsc_kube_controller::Config;
use xdsc_kube_controller::inbox::Timing;
use xdsc_kube_controller::lease::LeaseConfig;
use xdsc_server::cli::duration;

/// The xdsc Kubernetes controller: watches Ingresses, the Gateway API, Services,
/// EndpointSlices and TLS Secrets, and serves them to Envoy over xDS. Every replica serves;
/// the holder of a Lease writes status.
///
/// The API server is found as kubectl finds it: --kubeconfig, else KUBECONFIG, else
/// ~/.kube/config, else the in-cluster service account.
///
/// Exit codes: 0 stopped by SIGTERM or SIGINT; 2 the command line is wrong; 3 something
/// else failed (an address in use, no usable Kubernetes configuration).
#[derive(Parser, Debug)]
#[command(name = "xdsc-kube", version, about, long_about)]
pub(crate) struct Cli {
    /// The kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub(crate) context: Option<String>,
    /// The gRPC xDS listener.
    #[arg(long, default_value = "127.0.0.1:18000")]
    pub(crate) xds_addr: SocketAddr,
    /// The admin HTTP listener (/healthz, /readyz, /metrics, /debug/snapshot,
    /// /debug/clients, /debug/sources).
    #[arg(long, default_value = "127.0.0.1:18001")]
    pub(crate) admin_addr: SocketAddr,
    #[command(flatten)]
    pub(crate) ops: xdsc_server::cli::OpsFlags,
    #[command(flatten)]
    pub(crate) tls: xdsc_server::cli::TlsFlags,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// The fleet snapshots are published to (nodes whose `cluster` names no other fleet
    /// get `default`).
    #[arg(long, default_value = "default")]
    pub(crate) fleet: String,
    /// Watch only this namespace (repeatable; default: every namespace). Cluster-scoped
    /// kinds (IngressClass, GatewayClass) are watched whole; Namespaces by name.
    #[arg(long = "watch-namespace", value_name = "NAMESPACE")]
    pub(crate) watch_namespaces: Vec<String>,
    /// The IngressClass `spec.controller` that is ours: Ingresses of such a class are
    /// served (and, without a class, when such a class is the default).
    #[arg(
        long,
        visible_alias = "ingress-class",
        default_value = "xdsc.dev/ingress-controller"
    )]
    pub(crate) ingress_controller: String,
    /// The GatewayClass `spec.controllerName` that is ours; also the `controllerName` of
    /// the route status entries written.
    #[arg(long, default_value = "xdsc.dev/gateway-controller")]
    pub(crate) gateway_controller: String,
    /// The Envoy port of the Ingress HTTP listener.
    #[arg(long, default_value_t = 8080)]
    pub(crate) ingress_http_port: u16,
    /// The Envoy port of the Ingress HTTPS listener.
    #[arg(long, default_value_t = 8443)]
    pub(crate) ingress_https_port: u16,
    /// Added to a Gateway listener port below 1024 for the port Envoy binds.
    #[arg(long, default_value_t = 10000)]
    pub(crate) gateway_port_offset: u16,
    /// The Service (NAMESPACE/NAME) in front of the Envoys: its `status.loadBalancer`
    /// addresses go into the status of every Ingress served.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = service_ref)]
    pub(crate) publish_service: Option<ObjectRef>,
    /// An address (IP or host name) written into the status of every Ingress served
    /// (repeatable; before those of --publish-service).
    #[arg(long = "status-address", value_name = "ADDRESS")]
    pub(crate) status_addresses: Vec<String>,
    /// The Lease whose holder writes status.
    #[arg(long, default_value = "xdsc-kube")]
    pub(crate) lease_name: String,
    /// The Lease's namespace (default: POD_NAMESPACE, else the kubeconfig's or the service
    /// account's namespace).
    #[arg(long)]
    pub(crate) lease_namespace: Option<String>,
    /// How long a Lease not renewed stays held.
    #[arg(long, default_value = "15s", value_parser = duration)]
    pub(crate) lease_duration: Duration,
    /// The holder stops writing status when it could not renew for this long (less than
    /// --lease-duration).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub(crate) lease_renew_deadline: Duration,
    /// Time between tries to renew or take the Lease.
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub(crate) lease_retry_period: Duration,
    /// This replica's identity in the Lease (default: POD_NAME, else HOSTNAME-PID).
    #[arg(long)]
    pub(crate) identity: Option<String>,
    /// Never write status (and take no part in leader election).
    #[arg(long)]
    pub(crate) no_status: bool,
    /// Quiet time after a watch event before the batch is translated.
    #[arg(long, default_value = "100ms", value_parser = duration)]
    pub(crate) hold_off: Duration,
    /// The longest the first event of a batch waits, however busy the watches.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub(crate) max_delay: Duration,
    /// A watch that has not been watching (listing again, backing off after errors) for
    /// longer than this turns /readyz to 503 with the reason.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub(crate) watch_stale_after: Duration,
    /// On SIGTERM or SIGINT every xDS stream is ended at once (Envoy reconnects to
    /// another replica); connections still open after this long are closed.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub(crate) shutdown_grace: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

fn service_ref(s: &str) -> Result<ObjectRef, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjectRef::new("Service", Some(ns), name))
        }
        _ => Err("expected NAMESPACE/NAME".into()),
    }
}

/// This replica's default identity.
fn identity() -> String {
    if let Some(p) = std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()) {
        return p;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "xdsc-kube".into());
    format!("{host}-{}", std::process::id())
}

impl Cli {
    /// The Kubernetes client configuration, found as kubectl finds it.
    pub(crate) async fn kube_config(&self) -> Result<kube::Config, String> {
        let options = kube::config::KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        match &self.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| e.to_string()),
            None => kube::Config::infer().await.map_err(|e| e.to_string()),
        }
    }

    pub(crate) fn config(self, kube: kube::Config) -> Config {
        let lease_namespace = self
            .lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| kube.default_namespace.clone());
        let mut config = Config::new(kube);
        let t = &mut config.translation;
        t.ingress_http_port = self.ingress_http_port;
        t.ingress_https_port = self.ingress_https_port;
        t.privileged_port_offset = self.gateway_port_offset;
        t.ingress_controller = self.ingress_controller;
        t.gateway_controller = self.gateway_controller;
        t.publish_service = self.publish_service;
        t.ingress_status_addresses = self.status_addresses;
        config.xds_addr = self.xds_addr;
        config.admin_addr = self.admin_addr;
        config.fleet = self.fleet;
        config.shutdown_grace = self.shutdown_grace;
        config.ops = self.ops.operability();
        config.tls = self.tls.files();
        config.namespaces = self.watch_namespaces;
        config.timing = Timing {
            hold_off: self.hold_off,
            max_delay: self.max_delay,
        };
        config.stale_after = self.watch_stale_after;
        config.lease = (!self.no_status).then(|| LeaseConfig {
            name: self.lease_name,
            namespace: lease_namespace,
            identity: self.identity.unwrap_or_else(identity),
            duration: self.lease_duration,
            renew_deadline: self.lease_renew_deadline,
            retry_period: self.lease_retry_period,
        });
        config
    }
}
