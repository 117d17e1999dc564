//! The real kubectl against the server: `create -f`, `apply --server-side -f`, `get`,
//! `get -o yaml`, `get -w` seeing a change, `patch --type=merge`, `delete`. With `CI=true`
//! a missing kubectl fails the test instead of skipping it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use xdsc_kube_testserver::TestServer;

use crate::PATIENCE;

/// kubectl from `KUBECTL`, else `/usr/bin/kubectl`, else the `PATH`; `None` to skip (not in CI).
fn kubectl() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KUBECTL").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/kubectl")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("kubectl"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubectl is required when CI=true (set KUBECTL or install it)"
        );
        eprintln!("skipping: kubectl not found");
    }
    found
}

struct Kubectl {
    bin: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(bin: PathBuf, server: &TestServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kubeconfig");
        std::fs::write(&config, server.kubeconfig(Some("kubectl-user"))).unwrap();
        Self {
            bin,
            config,
            _dir: dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig").arg(&self.config).args(args);
        // A fresh discovery cache per test, so no run reads another server's.
        c.env("KUBECACHEDIR", self.config.parent().unwrap().join("cache"));
        c
    }

    /// Runs kubectl to completion (off the async runtime) and returns its standard output.
    async fn run(&self, args: &[&str]) -> String {
        let mut cmd = self.command(args);
        let shown = args.join(" ");
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {shown} failed: {stderr}{stdout}"
        );
        stdout.into_owned()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.config.parent().unwrap().join(name);
        std::fs::write(&path, text).unwrap();
        path_str(&path)
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

const MANIFESTS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  ingressClassName: xdsc
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_get_patch_apply_watch_delete() {
    let Some(bin) = kubectl() else { return };
    let server = TestServer::start().await.unwrap();
    let k = Kubectl::new(bin, &server);
    let manifests = k.file("shop.yaml", MANIFESTS);

    let created = k.run(&["create", "-f", &manifests]).await;
    assert!(
        created.contains("namespace/shop created")
            && created.contains("ingress.networking.k8s.io/web created"),
        "{created}"
    );
    assert!(
        server
            .get("networking.k8s.io/v1", "Ingress", Some("shop"), "web")
            .is_some()
    );

    let table = k.run(&["get", "ingresses", "-n", "shop"]).await;
    assert!(
        table.lines().next().unwrap().starts_with("NAME") && table.contains("web"),
        "{table}"
    );
    let yaml = k
        .run(&["get", "ingress", "web", "-n", "shop", "-o", "yaml"])
        .await;
    assert!(
        yaml.contains("host: shop.example.com")
            && yaml.contains("generation: 1")
            && yaml.contains("uid:"),
        "{yaml}"
    );

    // `get -w` prints the current host, then the host a merge patch sets.
    let mut watch = k
        .command(&[
            "get",
            "ingress",
            "web",
            "-n",
            "shop",
            "-w",
            "-o",
            "jsonpath={.spec.rules[0].host}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = tokio::task::block_in_place(|| lines.recv_timeout(PATIENCE))
        .expect("kubectl get -w printed the object");
    assert_eq!(first, "shop.example.com");
    let patched = k
        .run(&[
            "patch",
            "ingress",
            "web",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"spec":{"rules":[{"host":"patched.example.com"}]}}"#,
        ])
        .await;
    assert!(
        patched.contains("ingress.networking.k8s.io/web patched"),
        "{patched}"
    );
    let seen = tokio::task::block_in_place(|| lines.recv_timeout(PATIENCE))
        .expect("kubectl get -w saw the change");
    assert_eq!(seen, "patched.example.com");
    watch.kill().ok();
    watch.wait().ok();
    let stored = server
        .get("networking.k8s.io/v1", "Ingress", Some("shop"), "web")
        .unwrap();
    assert_eq!(stored["metadata"]["generation"], 2);

    // Server-side apply of an edited manifest: updated in place, a new object created.
    let edited = MANIFESTS.replace("shop.example.com", "applied.example.com")
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  a: \"1\"\n";
    let edited = k.file("edited.yaml", &edited);
    let applied = k
        .run(&[
            "apply",
            "--server-side",
            "--field-manager",
            "tester",
            "-f",
            &edited,
        ])
        .await;
    assert!(
        applied.contains("ingress.networking.k8s.io/web serverside-applied"),
        "{applied}"
    );
    let stored = server
        .get("networking.k8s.io/v1", "Ingress", Some("shop"), "web")
        .unwrap();
    assert_eq!(stored["spec"]["rules"][0]["host"], "applied.example.com");
    assert!(
        server
            .get("v1", "ConfigMap", Some("shop"), "settings")
            .is_some()
    );
    let writes = server.faults().writes();
    let apply = writes
        .iter()
        .find(|w| w.verb == xdsc_kube_testserver::Verb::Apply && w.resource == "ingresses")
        .unwrap();
    assert_eq!(apply.field_manager.as_deref(), Some("tester"));
    // client-go sends credentials only over TLS, so kubectl's writes show by user agent.
    assert_eq!(apply.token, None);
    assert!(
        apply
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("kubectl/")),
        "{apply:?}"
    );

    let deleted = k.run(&["delete", "ingress", "web", "-n", "shop"]).await;
    assert!(deleted.contains("\"web\" deleted"), "{deleted}");
    assert!(
        server
            .get("networking.k8s.io/v1", "Ingress", Some("shop"), "web")
            .is_none()
    );
    let empty = k.run(&["get", "ingresses", "-A", "-o", "name"]).await;
    assert_eq!(empty.trim(), "");
}
