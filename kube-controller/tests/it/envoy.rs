//! End to end with the real Envoy and kubectl: the test API server (with a kubeconfig, as
//! its binary writes one), two `xdsc-kube` replicas as child processes, Envoy over ADS with
//! both replicas as its xDS cluster, and local backends, everything driven with
//! `kubectl apply --server-side`. An Ingress and an HTTPRoute route traffic; an
//! EndpointSlice change moves it; a broken HTTPRoute gets its error in its status while the
//! rest keeps serving; and when the replica Envoy is connected to is killed, Envoy reconnects
//! to the other and applies no listener or cluster update (its admin counters say so), then
//! takes the next change from the survivor.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use xdsc_kube_testserver::TestServer;
use xdsc_test_support::{
    Backend, Envoy, TempDir, ads_bootstrap, find_envoy, free_port, http_get, wait_for,
};

use crate::binary::bin;

const WAIT: Duration = Duration::from_secs(30);
const GW: &str = "gateway.networking.k8s.io/v1";

/// kubectl: /usr/bin/kubectl or the first on PATH. `None` (after saying so) when there is
/// none, unless `CI=true`, where a missing kubectl fails the test.
fn find_kubectl() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if let Some(k) = std::iter::once(PathBuf::from("/usr/bin/kubectl"))
        .chain(on_path)
        .find(|p| p.is_file())
    {
        return Some(k);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("kubectl not found (CI=true: the end-to-end tests must run)");
    }
    eprintln!("skipping: kubectl not found");
    None
}

/// kubectl against the test server.
struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply --server-side` of these objects, written to a file (a `List`) as a user
    /// would.
    fn apply(&self, name: &str, objects: &[Value]) {
        let file = self.dir.join(format!("{name}.json"));
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        std::fs::write(&file, serde_json::to_vec_pretty(&list).unwrap()).unwrap();
        // The test server serves too little OpenAPI for kubectl to validate a List.
        self.run(&[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            file.to_str().unwrap(),
        ]);
    }

    fn get(&self, what: &str, ns: &str) -> Value {
        serde_json::from_str(&self.run(&["get", "-n", ns, what, "-o", "json"])).unwrap()
    }
}

/// One `xdsc-kube` replica as a child process, killed (SIGKILL) when dropped.
struct Replica {
    child: std::cell::RefCell<Child>,
    xds: u16,
    admin: u16,
    log: PathBuf,
}

impl Replica {
    fn start(dir: &Path, name: &str, kubeconfig: &Path, ingress_port: u16) -> Replica {
        let (xds, admin) = (free_port(), free_port());
        let log = dir.join(format!("{name}.log"));
        let child = bin()
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
            .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
            .args(["--ingress-http-port", &ingress_port.to_string()])
            .args(["--status-address", "127.0.0.1", "--identity", name])
            .args(["--lease-duration", "3s", "--lease-renew-deadline", "2s"])
            .args(["--lease-retry-period", "200ms"])
            .args(["--hold-off", "50ms", "--max-delay", "500ms"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("xdsc-kube starts");
        Replica {
            child: std::cell::RefCell::new(child),
            xds,
            admin,
            log,
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin, "localhost", path)
    }

    /// The node ids of the Envoys connected here.
    fn clients(&self) -> Vec<String> {
        let body = self
            .get("/debug/clients")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["node"]["id"].as_str().map(str::to_owned))
            .collect()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Replica {
    /// SIGKILL, as a node failure or an OOM kill would.
    fn kill(&self) {
        let mut child = self.child.borrow_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Service `name` on port 80 and its EndpointSlice with one endpoint, `backend`.
fn service(name: &str, backend: &Backend) -> [Value; 2] {
    [
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"ports": [{"name": "http", "port": 80}]}}),
        slice(name, backend),
    ]
}

fn slice(name: &str, backend: &Backend) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-1"), "namespace": "shop",
            "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend.addr.port()}],
        "endpoints": [{"addresses": [backend.addr.ip().to_string()],
            "conditions": {"ready": true}}]})
}

fn route(name: &str, host: &str, backend: &str) -> Value {
    json!({"apiVersion": GW, "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
            "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]}})
}

/// The `ResolvedRefs` condition of the HTTPRoute `name`'s first parent, read with kubectl.
fn resolved_refs(k: &Kubectl, name: &str) -> Option<Value> {
    let r = k.get(&format!("httproute/{name}"), "shop");
    let conds = r["status"]["parents"][0]["conditions"].as_array()?.clone();
    conds.into_iter().find(|c| c["type"] == "ResolvedRefs")
}

/// Envoy's admin stat `name` (a counter or gauge).
fn stat(envoy: &Envoy, name: &str) -> Option<u64> {
    envoy.admin("/stats")?.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

/// The `version_info` of each dynamic listener and cluster in Envoy's config dump.
fn dumped_versions(envoy: &Envoy) -> Vec<String> {
    let dump: Value =
        serde_json::from_str(&envoy.admin("/config_dump").unwrap_or_default()).unwrap_or_default();
    let mut out = Vec::new();
    for c in dump["configs"].as_array().into_iter().flatten() {
        for key in ["dynamic_active_clusters", "dynamic_listeners"] {
            for r in c[key].as_array().into_iter().flatten() {
                let v = r["version_info"]
                    .as_str()
                    .or_else(|| r["active_state"]["version_info"].as_str())
                    .unwrap_or_default();
                out.push(format!("{key} {v}"));
            }
        }
        if let Some(v) = c["version_info"].as_str() {
            out.push(format!("{} {v}", c["@type"].as_str().unwrap_or_default()));
        }
    }
    out.sort();
    out
}

#[test]
fn kubectl_routes_traffic_through_envoy_and_envoy_keeps_its_config_across_replicas() {
    story(false);
}

/// The same with delta xDS: on reconnect Envoy names the versions it holds.
#[test]
fn the_same_over_delta_xds() {
    story(true);
}

fn story(delta: bool) {
    let (Some(envoy_bin), Some(kubectl)) = (find_envoy(), find_kubectl()) else {
        return;
    };
    let dir = TempDir::new("xdsc-kube-e2e");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start()).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(None)).unwrap();
    let k = Kubectl {
        binary: kubectl,
        kubeconfig: kubeconfig.clone(),
        dir: dir.path().to_owned(),
    };
    let (one, two, three) = (
        Backend::start("one"),
        Backend::start("two"),
        Backend::start("three"),
    );
    let (ingress_port, gateway_port) = (free_port(), free_port());

    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "xdsc"}, "spec": {"controller": "xdsc.dev/ingress-controller"}}),
        json!({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "xdsc"},
            "spec": {"controllerName": "xdsc.dev/gateway-controller"}}),
        json!({"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "shop"},
            "spec": {"gatewayClassName": "xdsc", "listeners": [
                {"name": "http", "protocol": "HTTP", "port": gateway_port}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"ingressClassName": "xdsc", "rules": [{"host": "web.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        route("api", "api.example", "api"),
    ];
    objects.extend(service("web", &one));
    objects.extend(service("api", &three));
    k.apply("site", &objects);

    let a = Replica::start(dir.path(), "replica-a", &kubeconfig, ingress_port);
    let b = Replica::start(dir.path(), "replica-b", &kubeconfig, ingress_port);
    for r in [&a, &b] {
        let ready = wait_for(WAIT, || {
            matches!(r.get("/readyz"), Some((200, _))).then_some(())
        });
        assert!(ready.is_some(), "replica never ready:\n{}", r.log_text());
    }

    // Envoy's xDS cluster has both replicas, as a Service in front of them would.
    let envoy_admin = free_port();
    let mut bootstrap = ads_bootstrap("e2e", "default", a.xds, envoy_admin, delta);
    let endpoints = &mut bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"]
        [0]["lb_endpoints"];
    let mut second = endpoints[0].clone();
    second["endpoint"]["address"]["socket_address"]["port_value"] = b.xds.into();
    endpoints.as_array_mut().unwrap().push(second);
    let envoy = Envoy::start(&envoy_bin, &bootstrap, envoy_admin);

    let logs = || {
        format!(
            "replica a:\n{}\nreplica b:\n{}\nenvoy:\n{}",
            a.log_text(),
            b.log_text(),
            envoy.log_tail()
        )
    };
    let until = |port: u16, host: &str, want: &str| {
        let got = wait_for(WAIT, || match http_get(port, host, "/") {
            Some((200, body)) if body == want => Some(()),
            _ => None,
        });
        assert!(
            got.is_some(),
            "{host} never answered {want}; last {:?}\n{}",
            http_get(port, host, "/"),
            logs()
        );
    };

    // An Ingress and an HTTPRoute route traffic.
    until(ingress_port, "web.example", "one");
    until(gateway_port, "api.example", "three");
    // The leader wrote the Ingress status and the route's conditions.
    let written = wait_for(WAIT, || {
        let ing = k.get("ingress/web", "shop");
        (ing["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1").then_some(())
    });
    assert!(
        written.is_some(),
        "Ingress status never written\n{}",
        logs()
    );

    // An EndpointSlice change moves traffic.
    k.apply("move", &[slice("web", &two)]);
    until(ingress_port, "web.example", "two");

    // A broken route gets its error in its status; the rest keeps serving.
    k.apply("broken", &[route("broken", "broken.example", "missing")]);
    let reason = wait_for(WAIT, || {
        let c = resolved_refs(&k, "broken").filter(|c| c["status"] == "False")?;
        Some((c["reason"].clone(), c["message"].clone()))
    });
    let (reason, message) =
        reason.unwrap_or_else(|| panic!("no error in the broken route's status\n{}", logs()));
    assert_eq!(reason, "BackendNotFound", "{message}");
    assert!(
        message.as_str().unwrap_or_default().contains("missing"),
        "{message}"
    );
    until(ingress_port, "web.example", "two");
    until(gateway_port, "api.example", "three");

    // Envoy is connected to one replica: kill that one.
    let connected = wait_for(WAIT, || {
        let (on_a, on_b) = (a.clients(), b.clients());
        match (
            on_a.contains(&"e2e".to_owned()),
            on_b.contains(&"e2e".to_owned()),
        ) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        }
    })
    .expect("Envoy connected to exactly one replica");
    let counters = [
        "listener_manager.lds.update_success",
        "cluster_manager.cds.update_success",
        "listener_manager.listener_modified",
        "cluster_manager.cluster_modified",
        "listener_manager.lds.update_rejected",
        "cluster_manager.cds.update_rejected",
    ];
    let read = |names: &[&str]| -> Vec<(String, Option<u64>)> {
        names
            .iter()
            .map(|n| (n.to_string(), stat(&envoy, n)))
            .collect()
    };
    let before = read(&counters);
    assert!(before.iter().all(|(_, v)| v.is_some()), "{before:?}");
    assert!(
        before[..2].iter().all(|(_, v)| v >= &Some(1)),
        "the counters count the updates applied so far: {before:?}"
    );
    let versions_before = dumped_versions(&envoy);
    assert!(!versions_before.is_empty());
    let (killed, survivor) = if connected == 0 { (&a, &b) } else { (&b, &a) };
    killed.kill();
    let moved = wait_for(WAIT, || {
        survivor.clients().contains(&"e2e".to_owned()).then_some(())
    });
    assert!(
        moved.is_some(),
        "Envoy never reconnected to the other replica\n{}",
        survivor.log_text()
    );
    // Connected means the survivor answered the reconnect; give Envoy a moment to have
    // applied anything it was sent.
    let synced = wait_for(WAIT, || {
        (stat(&envoy, "control_plane.connected_state") == Some(1)).then_some(())
    });
    assert!(synced.is_some());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        read(&counters),
        before,
        "no listener or cluster update applied"
    );
    assert_eq!(dumped_versions(&envoy), versions_before);
    until(ingress_port, "web.example", "two");
    until(gateway_port, "api.example", "three");

    // The survivor serves the next change (and, once the Lease expires, writes status).
    k.apply("back", &[slice("web", &one)]);
    until(ingress_port, "web.example", "one");
    k.apply("fixed", &[route("broken", "broken.example", "web")]);
    until(gateway_port, "broken.example", "one");
    let resolved = wait_for(WAIT, || {
        resolved_refs(&k, "broken").filter(|c| c["status"] == "True")
    });
    assert!(
        resolved.is_some(),
        "the survivor never took over status\n{}",
        survivor.log_text()
    );
}
