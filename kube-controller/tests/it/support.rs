//! What the integration tests share: fixtures, a controller started in-process against a
//! test API server, and waiting for snapshots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;
use xdsc_core::snapshot::{ResourceType, Snapshot};
use xdsc_kube_controller::{Config, lease::LeaseConfig};
use xdsc_kube_testserver::TestServer;
use xdsc_server::Publisher;
use xdsc_test_support::{free_port, http_get};

/// How long a test waits for something that should happen in well under a second.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn ingress_class() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "xdsc"}, "spec": {"controller": "xdsc.dev/ingress-controller"}})
}

pub(crate) fn ingress(ns: &str, name: &str, host: &str, service: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ingressClassName": "xdsc", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}})
}

pub(crate) fn service(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

/// An EndpointSlice of `service` with `endpoints` ready endpoints, 10.0.0.1 and up.
pub(crate) fn slice(ns: &str, service: &str, endpoints: usize) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": (0..endpoints).map(|i| json!({
            "addresses": [format!("10.0.0.{}", i + 1)], "conditions": {"ready": true}})).collect::<Vec<_>>()})
}

/// A controller running in this process.
pub(crate) struct Controller {
    pub(crate) publisher: Publisher,
    pub(crate) admin_port: u16,
    pub(crate) xds_port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), xdsc_kube_controller::Error>>>,
}

/// One Ingress class and the Ingress `shop/web` (host `web.example`) routing to Service
/// `shop/web` with one endpoint.
pub(crate) async fn seed(server: &TestServer) {
    for o in [
        ingress_class(),
        service("shop", "web"),
        slice("shop", "web", 1),
        ingress("shop", "web", "web.example", "web"),
    ] {
        server.put(o).unwrap();
    }
}

/// Short Lease timing for tests.
pub(crate) fn quick_lease(identity: &str) -> LeaseConfig {
    LeaseConfig {
        duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new("xdsc-kube", "default", identity)
    }
}

impl Controller {
    /// Starts a controller whose client sends `token`; `tweak` adjusts the configuration.
    pub(crate) fn start(
        server: &TestServer,
        token: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> Controller {
        let mut config = Config::new(server.config(Some(token)));
        let (xds_port, admin_port) = (free_port(), free_port());
        config.xds_addr = ([127, 0, 0, 1], xds_port).into();
        config.admin_addr = ([127, 0, 0, 1], admin_port).into();
        config.lease = Some(quick_lease(token));
        config.stale_after = Duration::from_secs(5);
        tweak(&mut config);
        let publisher = Publisher::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(xdsc_kube_controller::run_with(
            config,
            publisher.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Controller {
            publisher,
            admin_port,
            xds_port,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops it as SIGTERM would (the Lease is released).
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let r = tokio::time::timeout(PATIENCE, t)
                .await
                .expect("stops in time");
            r.expect("the task did not panic").expect("stopped cleanly");
        }
    }

    /// Stops it abruptly, as a crash would (the Lease is not released).
    pub(crate) fn kill(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub(crate) fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.publisher.snapshot("default")
    }

    /// Waits until the published snapshot satisfies `f`.
    pub(crate) async fn wait(&self, what: &str, f: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.snapshot()
                && f(&s)
            {
                return s;
            }
            assert!(start.elapsed() < PATIENCE, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET on the admin endpoints: status and body.
    pub(crate) async fn admin(&self, path: &str) -> (u16, String) {
        let (port, path) = (self.admin_port, path.to_owned());
        tokio::task::spawn_blocking(move || http_get(port, "localhost", &path))
            .await
            .unwrap()
            .unwrap_or((0, String::new()))
    }

    /// Waits until `/readyz` answers 200.
    pub(crate) async fn ready(&self) {
        let start = Instant::now();
        loop {
            let (code, body) = self.admin("/readyz").await;
            if code == 200 {
                return;
            }
            let ended = self.task.as_ref().is_some_and(|t| t.is_finished());
            assert!(
                !ended,
                "the controller ended before it was ready (a port taken?): {body}"
            );
            assert!(start.elapsed() < PATIENCE, "not ready in time: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One metric's value (the first sample of that name).
    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.admin("/metrics").await;
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The version of each resource type.
pub(crate) fn versions(s: &Snapshot) -> Vec<(ResourceType, String)> {
    ResourceType::ALL
        .iter()
        .map(|t| (*t, s.resources(*t).version().to_string()))
        .collect()
}

/// The endpoint addresses of an EDS resource, from its Envoy JSON.
pub(crate) fn endpoint_addresses(s: &Snapshot, cluster: &str) -> Vec<String> {
    let Some(r) = s.get(ResourceType::Endpoint, cluster) else {
        return Vec::new();
    };
    let v = xdsc_core::render::resource_json(r).unwrap();
    let mut out = Vec::new();
    for l in v["endpoints"].as_array().into_iter().flatten() {
        for e in l["lb_endpoints"].as_array().into_iter().flatten() {
            if let Some(a) = e["endpoint"]["address"]["socket_address"]["address"].as_str() {
                out.push(a.to_owned());
            }
        }
    }
    out.sort();
    out
}

/// Whether the snapshot has a resource of this type and name.
pub(crate) fn has(s: &Snapshot, t: ResourceType, name: &str) -> bool {
    s.get(t, name).is_some()
}

/// Every domain of every virtual host of every route configuration.
pub(crate) fn domains(s: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for r in s.resources(ResourceType::Route).iter() {
        let v = xdsc_core::render::resource_json(r).unwrap();
        for vh in v["virtual_hosts"].as_array().into_iter().flatten() {
            for d in vh["domains"].as_array().into_iter().flatten() {
                out.push(d.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
