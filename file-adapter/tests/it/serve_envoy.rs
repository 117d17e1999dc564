//! End to end with the real Envoy: `xdsc-file serve` on a temporary folder, two backends and
//! Envoy over ADS. A request reaches backend one; the folder is edited and traffic moves to
//! backend two; a broken file is written and traffic stays while the error is visible in
//! `/debug/snapshot` and `/metrics`; the fix applies. Once with native documents, once with
//! Kubernetes manifests (Ingress, Service and EndpointSlice pointing at the local backends).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Dir, bin};
use xdsc_test_support::{Backend, Envoy, ads_bootstrap, find_envoy, free_port, http_get, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// `xdsc-file serve` as a child process, killed when dropped.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) admin_port: u16,
    pub(crate) xds_port: u16,
    log: PathBuf,
}

impl Served {
    pub(crate) fn start(dir: &Path, extra: &[String]) -> Served {
        Served::start_at(dir, free_port(), free_port(), extra)
    }

    /// [`Served::start`] on given ports (a restart where Envoy expects it).
    pub(crate) fn start_at(dir: &Path, xds_port: u16, admin_port: u16, extra: &[String]) -> Served {
        // Beside the folder, not in it (so the watcher does not see it); `Dir` removes it.
        let log = dir.with_extension("log");
        let child = bin()
            .arg("serve")
            .arg(dir)
            .args(["--xds-addr", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-addr", &format!("127.0.0.1:{admin_port}")])
            .args(["--hold-off", "50ms", "--max-delay", "500ms"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("xdsc-file starts");
        let served = Served {
            child,
            admin_port,
            xds_port,
            log,
        };
        let ready = wait_for(WAIT, || {
            match http_get(admin_port, "localhost", "/readyz") {
                Some((200, _)) => Some(()),
                _ => None,
            }
        });
        assert!(
            ready.is_some(),
            "xdsc-file never became ready:\n{}",
            served.log_text()
        );
        served
    }

    pub(crate) fn get(&self, path: &str) -> String {
        http_get(self.admin_port, "localhost", path)
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    pub(crate) fn source(&self) -> Value {
        let v: Value = serde_json::from_str(&self.get("/debug/snapshot")).unwrap_or_default();
        v["sources"][0].clone()
    }

    pub(crate) fn metric(&self, name: &str) -> Option<u64> {
        self.get("/metrics")
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The admin listener's port.
    pub(crate) fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until a request for `host` through Envoy's port `listen` answers 200 with `want`.
fn until_body(listen: u16, host: &str, want: &str, served: &Served, envoy: &Envoy) {
    let answer = || http_get(listen, host, "/");
    let got = wait_for(WAIT, || match answer() {
        Some((200, body)) if body == want => Some(()),
        _ => None,
    });
    assert!(
        got.is_some(),
        "traffic never reached {want}; last answer {:?}\nxdsc-file log:\n{}\nenvoy log:\n{}",
        answer(),
        served.log_text(),
        envoy.log_tail()
    );
}

/// The story both runs tell; `site(n)` is the text of `site.yaml` sending traffic to backend n.
fn story(
    tag: &str,
    files: &[(&str, String)],
    site: impl Fn(u16) -> String,
    host: &str,
    listen: u16,
    extra: &[String],
) {
    let Some(envoy_bin) = find_envoy() else {
        return;
    };
    let folder = Dir::with_files(tag, &[]);
    for (name, text) in files {
        folder.write(name, text);
    }
    folder.write("site.yaml", &site(1));
    let served = Served::start(folder.path(), extra);
    let envoy_admin = free_port();
    let envoy = Envoy::start(
        &envoy_bin,
        &ads_bootstrap(tag, "default", served.xds_port, envoy_admin, false),
        envoy_admin,
    );
    let answer = || http_get(listen, host, "/");
    let until = |want: &str| until_body(listen, host, want, &served, &envoy);
    until("one");
    assert_eq!(
        served.metric("xdsc_source_errors{source=\"files\"}"),
        Some(0)
    );

    folder.write("site.yaml", &site(2));
    until("two");

    // A broken file: held back, visible, traffic unchanged.
    folder.write("site.yaml", &format!("{}\n  - [unclosed\n", site(1)));
    let held = wait_for(WAIT, || {
        (served.source()["state"] == "held_back").then_some(())
    });
    assert!(
        held.is_some(),
        "the error never showed: {}\n{}",
        served.source(),
        served.log_text()
    );
    let errors = served.source()["errors"].to_string();
    assert!(errors.contains("site.yaml:"), "{errors}");
    assert!(
        served
            .metric("xdsc_source_errors{source=\"files\"}")
            .unwrap_or(0)
            >= 1
    );
    assert!(
        served
            .metric("xdsc_source_rejected_batches_total{source=\"files\"}")
            .unwrap_or(0)
            >= 1
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert_eq!(
            answer(),
            Some((200, "two".into())),
            "the last good config keeps serving"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        served.log_text().contains("held back"),
        "{}",
        served.log_text()
    );

    // Fixed: applies.
    folder.write("site.yaml", &site(1));
    until("one");
    assert_eq!(
        served.metric("xdsc_source_errors{source=\"files\"}"),
        Some(0)
    );
    assert_eq!(served.source()["state"], "serving_newest");
    let clients: Value = serde_json::from_str(&served.get("/debug/clients")).expect("clients");
    assert!(
        !clients.to_string().contains("error_detail"),
        "no NACK: {clients}"
    );
}

#[test]
fn native_documents_live() {
    let (one, two) = (Backend::start("one"), Backend::start("two"));
    let listen = free_port();
    let upstreams = format!(
        "kind: Cluster\nname: one\nconnect_timeout: 1s\n---\nkind: Cluster\nname: two\nconnect_timeout: 1s\n---\n\
         kind: Endpoints\nname: one\nlocalities:\n  - endpoints: [{{address: 127.0.0.1, port: {}}}]\n---\n\
         kind: Endpoints\nname: two\nlocalities:\n  - endpoints: [{{address: 127.0.0.1, port: {}}}]\n",
        one.addr.port(),
        two.addr.port()
    );
    let listener = format!("kind: Listener\nname: http\naddress: 127.0.0.1\nport: {listen}\n");
    let site = |n: u16| {
        let cluster = if n == 1 { "one" } else { "two" };
        format!(
            "kind: VirtualHost\nname: site\nlisteners: [http]\ndomains: [shop.example.com]\nroutes:\n  - name: all\n    forward: {{backends: [{{cluster: {cluster}}}], timeout: 5s}}\n"
        )
    };
    story(
        "native",
        &[("listener.yaml", listener), ("upstreams.yaml", upstreams)],
        site,
        "shop.example.com",
        listen,
        &[],
    );
}

#[test]
fn kubernetes_manifests_live() {
    let (one, two) = (Backend::start("one"), Backend::start("two"));
    let listen = free_port();
    // Two Services with EndpointSlices pointing at the local backends, as kubectl prints them.
    let service = |name: &str, port: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: {port}}}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-x1\n  namespace: shop\n  labels: {{kubernetes.io/service-name: {name}}}\n\
             addressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints:\n  - addresses: [127.0.0.1]\n    conditions: {{ready: true}}\n"
        )
    };
    let services = format!(
        "{}---\n{}",
        service("one", one.addr.port()),
        service("two", two.addr.port())
    );
    let site = |n: u16| {
        let svc = if n == 1 { "one" } else { "two" };
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: shop, namespace: shop}}\nspec:\n  rules:\n    - host: shop.example.com\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend: {{service: {{name: {svc}, port: {{name: http}}}}}}\n"
        )
    };
    story(
        "kube",
        &[("services.yaml", services)],
        site,
        "shop.example.com",
        listen,
        &[
            "--ingress-http-port".into(),
            listen.to_string(),
            "--ingress-https-port".into(),
            free_port().to_string(),
        ],
    );
}

/// The quickstart's own files (`examples/quickstart`), on free ports: what its README promises.
#[test]
fn quickstart_as_written() {
    let Some(envoy_bin) = find_envoy() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let (blue, green) = (Backend::start("blue"), Backend::start("green"));
    let listen = free_port();
    let folder = Dir::with_files("quickstart", &[]);
    for name in ["listener.yaml", "site.yaml", "upstreams.yaml"] {
        let text =
            std::fs::read_to_string(root.join("config").join(name)).expect("quickstart config");
        let text = text
            .replace("port: 10000", &format!("port: {listen}"))
            .replace("port: 8081", &format!("port: {}", blue.addr.port()))
            .replace("port: 8082", &format!("port: {}", green.addr.port()));
        folder.write(name, &text);
    }
    let served = Served::start(folder.path(), &[]);
    let envoy_text = std::fs::read_to_string(root.join("envoy.yaml")).expect("envoy.yaml");
    let envoy_admin = free_port();
    let envoy_text = envoy_text
        .replace("port_value: 9901", &format!("port_value: {envoy_admin}"))
        .replace(
            "port_value: 18000",
            &format!("port_value: {}", served.xds_port),
        );
    let bootstrap = xdsc_file::yaml::parse(&envoy_text).expect("envoy.yaml parses")[0]
        .value
        .clone();
    let envoy = Envoy::start(&envoy_bin, &bootstrap, envoy_admin);
    let until = |want: &str| until_body(listen, "hello.local", want, &served, &envoy);
    until("blue");
    let site = std::fs::read_to_string(folder.join("site.yaml")).expect("site");
    assert!(
        site.contains("cluster: blue}"),
        "the README's edit applies to this file"
    );
    folder.write(
        "site.yaml",
        &site.replace("cluster: blue}", "cluster: green}"),
    );
    until("green");
}

/// Kubernetes sends SIGTERM to a pod it replaces: the process must end every stream at once
/// (Envoy then reconnects elsewhere) and exit 0 within the grace period, not wait for Envoy.
#[test]
fn sigterm_with_envoy_connected_exits_0_within_the_grace_period() {
    let Some(envoy_bin) = find_envoy() else {
        return;
    };
    let folder = Dir::with_files("sigterm-envoy", &[("c.yaml", "kind: Cluster\nname: web\n")]);
    let grace = Duration::from_secs(3);
    let mut served = Served::start(folder.path(), &["--shutdown-grace".into(), "3s".into()]);
    let envoy_admin = free_port();
    let envoy = Envoy::start_with(
        &envoy_bin,
        &ads_bootstrap("sigterm", "default", served.xds_port, envoy_admin, false),
        envoy_admin,
        &["--component-log-level", "config:debug"],
    );
    let connected = |want: &str| {
        wait_for(WAIT, || {
            let stats = envoy.admin("/stats?filter=control_plane.connected_state")?;
            stats
                .contains(&format!("connected_state: {want}"))
                .then_some(())
        })
    };
    assert!(
        connected("1").is_some(),
        "Envoy never connected:\n{}",
        envoy.log_tail()
    );
    let start = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = loop {
        if let Some(s) = served.child.try_wait().expect("wait") {
            break s.code();
        }
        assert!(
            start.elapsed() < grace + Duration::from_secs(5),
            "still running {:?} after SIGTERM:\n{}",
            start.elapsed(),
            served.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    assert_eq!(code, Some(0), "{}", served.log_text());
    assert!(took < grace, "exit took {took:?}, beyond the grace period");
    // Envoy saw the stream end with the server's status (not a reset or a timeout); it logs
    // the grpc-message as sent, percent-encoded.
    let closed = wait_for(WAIT, || {
        envoy
            .log()
            .lines()
            .any(|l| l.contains("closed: 14, xDS%20server%20shutting%20down"))
            .then_some(())
    });
    assert!(
        closed.is_some(),
        "Envoy's stream closes:\n{}",
        envoy
            .log()
            .lines()
            .filter(|l| l.contains("closed"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        connected("0").is_some(),
        "Envoy still thinks it is connected"
    );
    eprintln!("xdsc-file exited 0 {took:?} after SIGTERM with Envoy connected");
}
