//! `examples/kubernetes/`: every document parses into its k8s-openapi type with no field left
//! unread; the RBAC grants exactly what the controller's own kind list needs (read what is
//! watched, write only the status it writes, one Lease); the Deployments carry what the
//! issue asks (replicas, probes on the admin endpoints, requests and limits, non-root,
//! read-only root filesystem); the pieces name each other consistently; and Envoy accepts
//! the bootstrap.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use kube::api::ApiResource;
use serde::de::DeserializeOwned;
use serde_json::Value;
use xdsc_kube_controller::kinds;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes")
}

/// Every document of the folder, typed.
#[derive(Default)]
struct Manifests {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
    disruption_budgets: Vec<PodDisruptionBudget>,
    ingress_classes: Vec<IngressClass>,
    gateway_classes: Vec<xdsc_kube::translate::gateway::GatewayClass>,
}

/// `doc` as `T`, failing with the file and the path of the field when it does not fit, and
/// when a field is not one of `T`'s (k8s-openapi ignores unknown fields: writing the typed
/// value back and comparing finds them).
fn typed<T: DeserializeOwned + serde::Serialize>(file: &str, doc: &Value) -> T {
    let t: T = serde_path_to_error::deserialize(doc.clone())
        .unwrap_or_else(|e| panic!("{file}: {}: {}", e.path(), e.inner()));
    let back = serde_json::to_value(&t).unwrap();
    if let Some(path) = first_difference(doc, &back, String::new()) {
        panic!(
            "{file}: {path}: not a field of {}",
            std::any::type_name::<T>()
        );
    }
    t
}

/// Where `written` has something `read` lost.
fn first_difference(written: &Value, read: &Value, at: String) -> Option<String> {
    match (written, read) {
        (Value::Object(w), Value::Object(r)) => w.iter().find_map(|(k, v)| match r.get(k) {
            Some(rv) => first_difference(v, rv, format!("{at}.{k}")),
            None => Some(format!("{at}.{k}")),
        }),
        (Value::Array(w), Value::Array(r)) if w.len() == r.len() => w
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (w, r))| first_difference(w, r, format!("{at}[{i}]"))),
        (w, r) if w == r => None,
        _ => Some(at),
    }
}

fn load() -> Manifests {
    let mut m = Manifests::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the manifests are there: {files:?}");
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: not YAML: {e}"));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_owned();
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let f = file.as_str();
            match (api_version.as_str(), kind.as_str()) {
                ("v1", "Namespace") => m.namespaces.push(typed(f, &doc)),
                ("v1", "ServiceAccount") => m.service_accounts.push(typed(f, &doc)),
                ("v1", "Service") => m.services.push(typed(f, &doc)),
                ("v1", "ConfigMap") => m.config_maps.push(typed(f, &doc)),
                ("apps/v1", "Deployment") => m.deployments.push(typed(f, &doc)),
                ("policy/v1", "PodDisruptionBudget") => m.disruption_budgets.push(typed(f, &doc)),
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                    m.cluster_roles.push(typed(f, &doc))
                }
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    m.cluster_role_bindings.push(typed(f, &doc))
                }
                ("rbac.authorization.k8s.io/v1", "Role") => m.roles.push(typed(f, &doc)),
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                    m.role_bindings.push(typed(f, &doc))
                }
                ("networking.k8s.io/v1", "IngressClass") => m.ingress_classes.push(typed(f, &doc)),
                ("gateway.networking.k8s.io/v1", "GatewayClass") => {
                    // Not a k8s-openapi type: the translation's own reading of it.
                    let gc: xdsc_kube::translate::gateway::GatewayClass =
                        serde_path_to_error::deserialize(doc.clone())
                            .unwrap_or_else(|e| panic!("{f}: {}: {}", e.path(), e.inner()));
                    m.gateway_classes.push(gc);
                }
                other => panic!("{f}: unexpected document {other:?}"),
            }
        }
    }
    m
}

const NS: &str = "xdsc-system";
const READ: [&str; 3] = ["get", "list", "watch"];

/// Every (group, resource, verb) the rules grant, failing on wildcards and resource names.
fn grants(rules: &[PolicyRule], names_allowed: bool) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        assert!(
            r.non_resource_urls.as_ref().is_none_or(Vec::is_empty),
            "no non-resource URLs: {r:?}"
        );
        if !names_allowed {
            assert!(r.resource_names.is_none(), "{r:?}");
        }
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    assert!(g != "*" && res != "*" && v != "*", "no wildcards in {r:?}");
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn the<'a, T>(list: &'a [T], what: &str) -> &'a T {
    assert_eq!(list.len(), 1, "one {what}");
    &list[0]
}

#[test]
fn rbac_grants_what_the_controller_watches_and_writes_and_nothing_else() {
    let m = load();
    let role = the(&m.cluster_roles, "ClusterRole");
    let granted = grants(&role.rules.clone().unwrap_or_default(), false);
    let mut needed = BTreeSet::new();
    for k in kinds::watched() {
        // The plural the API server's discovery gives (kube derives it as the API server
        // does for the built-in and Gateway API kinds).
        let ar = ApiResource::from_gvk(&k.gvk);
        for v in READ {
            needed.insert((ar.group.clone(), ar.plural.clone(), v.to_owned()));
        }
        if k.status {
            // Status is a merge patch of the status subresource; `update` is what
            // `kubectl auth can-i` and older clients check, `get` the reread on conflict.
            for v in ["get", "patch", "update"] {
                needed.insert((ar.group.clone(), format!("{}/status", ar.plural), v.into()));
            }
        }
    }
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(missing.is_empty(), "the ClusterRole lacks {missing:?}");
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(
        extra.is_empty(),
        "the ClusterRole grants more than needed: {extra:?}"
    );

    // The Lease, in the controller's namespace only: create, and get/update of its name.
    let lease_role = the(&m.roles, "Role");
    assert_eq!(lease_role.metadata.namespace.as_deref(), Some(NS));
    let rules = lease_role.rules.clone().unwrap_or_default();
    let lease = grants(&rules, true);
    let verbs: BTreeSet<&str> = lease
        .iter()
        .map(|(g, r, v)| {
            assert_eq!((g.as_str(), r.as_str()), ("coordination.k8s.io", "leases"));
            v.as_str()
        })
        .collect();
    assert_eq!(verbs, BTreeSet::from(["create", "get", "update"]));
    for r in &rules {
        if r.verbs.iter().any(|v| v != "create") {
            assert_eq!(
                r.resource_names.as_deref(),
                Some(&["xdsc-kube".to_owned()][..]),
                "get and update only of the Lease named by --lease-name"
            );
        }
    }

    // Both bound to the controller's ServiceAccount.
    let sa = the(&m.service_accounts, "ServiceAccount");
    let sa_name = sa.metadata.name.clone().unwrap();
    assert_eq!(sa.metadata.namespace.as_deref(), Some(NS));
    let crb = the(&m.cluster_role_bindings, "ClusterRoleBinding");
    let rb = the(&m.role_bindings, "RoleBinding");
    for (role_ref, subjects, target) in [
        (&crb.role_ref, &crb.subjects, role.metadata.name.clone()),
        (&rb.role_ref, &rb.subjects, lease_role.metadata.name.clone()),
    ] {
        assert_eq!(Some(role_ref.name.clone()), target);
        let s = the(subjects.as_deref().unwrap_or_default(), "subject");
        assert_eq!(
            (
                s.kind.as_str(),
                Some(s.name.clone()),
                s.namespace.as_deref()
            ),
            ("ServiceAccount", Some(sa_name.clone()), Some(NS))
        );
    }
    let controller = controller_deployment(&m);
    let spec = controller.spec.as_ref().unwrap().template.spec.as_ref();
    assert_eq!(
        spec.and_then(|s| s.service_account_name.clone()),
        Some(sa_name)
    );
}

fn deployment<'a>(m: &'a Manifests, name: &str) -> &'a Deployment {
    m.deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("a Deployment {name}"))
}

fn controller_deployment(m: &Manifests) -> &Deployment {
    deployment(m, "xdsc-kube")
}

fn container(d: &Deployment) -> &Container {
    let spec = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    the(&spec.containers, "container")
}

/// `--flag=value` or `--flag value` in a container's arguments.
fn arg(c: &Container, flag: &str) -> Option<String> {
    let args = c.args.clone().unwrap_or_default();
    args.iter().enumerate().find_map(|(i, a)| {
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            Some(v.to_owned())
        } else if a == flag {
            args.get(i + 1).cloned()
        } else {
            None
        }
    })
}

fn port_of(c: &Container, name: &str) -> i32 {
    c.ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("container port {name}"))
        .container_port
}

/// What every Deployment of the folder must have.
fn hardened(d: &Deployment) {
    let name = d.metadata.name.clone().unwrap();
    assert_eq!(d.metadata.namespace.as_deref(), Some(NS), "{name}");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2), "{name}: two replicas");
    let pod = spec.template.spec.as_ref().unwrap();
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true), "{name}");
    assert!(psc.run_as_user.is_some_and(|u| u != 0), "{name}");
    let c = container(d);
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
    let drop = sc.capabilities.as_ref().and_then(|c| c.drop.clone());
    assert_eq!(drop, Some(vec!["ALL".to_owned()]), "{name}");
    let res = c.resources.as_ref().unwrap();
    for (what, list) in [("requests", &res.requests), ("limits", &res.limits)] {
        assert!(
            list.as_ref().is_some_and(|l| l.contains_key("memory")),
            "{name}: memory {what}"
        );
    }
    assert!(res.requests.as_ref().unwrap().contains_key("cpu"), "{name}");
    let labels = spec.selector.match_labels.clone().unwrap_or_default();
    let pod_labels = spec.template.metadata.as_ref().unwrap().labels.clone();
    for (k, v) in &labels {
        assert_eq!(
            pod_labels.as_ref().and_then(|l| l.get(k)),
            Some(v),
            "{name}"
        );
    }
}

fn probe_path_port(c: &Container, probe: &str) -> (String, i32) {
    let p = match probe {
        "readiness" => c.readiness_probe.as_ref(),
        _ => c.liveness_probe.as_ref(),
    }
    .unwrap_or_else(|| panic!("a {probe} probe"));
    let get = p.http_get.as_ref().expect("an HTTP probe");
    let port = match &get.port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => port_of(c, s),
    };
    (get.path.clone().unwrap_or_default(), port)
}

fn service<'a>(m: &'a Manifests, name: &str) -> &'a Service {
    m.services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("a Service {name}"))
}

fn selects(s: &Service, d: &Deployment) -> bool {
    let selector = s
        .spec
        .as_ref()
        .unwrap()
        .selector
        .clone()
        .unwrap_or_default();
    let labels = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone();
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.as_ref().and_then(|l| l.get(k)) == Some(v))
}

fn addr_port(addr: &str) -> i32 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn the_controller_deployment_probes_the_admin_endpoints_and_is_served_by_the_xds_service() {
    let m = load();
    assert_eq!(
        m.namespaces[0].metadata.name.as_deref(),
        Some(NS),
        "the Namespace first"
    );
    let d = controller_deployment(&m);
    hardened(d);
    let c = container(d);
    let admin = addr_port(&arg(c, "--admin-addr").expect("--admin-addr"));
    assert!(arg(c, "--admin-addr").unwrap().starts_with("0.0.0.0:"));
    assert_eq!(port_of(c, "admin"), admin);
    assert_eq!(probe_path_port(c, "readiness"), ("/readyz".into(), admin));
    assert_eq!(probe_path_port(c, "liveness"), ("/healthz".into(), admin));
    let xds = addr_port(&arg(c, "--xds-addr").expect("--xds-addr"));
    assert_eq!(port_of(c, "xds"), xds);
    let env: BTreeMap<String, String> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| {
            let f = e.value_from.as_ref()?.field_ref.as_ref()?;
            Some((e.name.clone(), f.field_path.clone()))
        })
        .collect();
    assert_eq!(
        env.get("POD_NAME").map(String::as_str),
        Some("metadata.name")
    );
    assert_eq!(
        env.get("POD_NAMESPACE").map(String::as_str),
        Some("metadata.namespace"),
        "the Lease namespace"
    );

    let svc = service(&m, "xdsc-kube");
    assert!(selects(svc, d), "the xDS Service selects the controller");
    let port = the(svc.spec.as_ref().unwrap().ports.as_deref().unwrap(), "port");
    assert_eq!(port.port, xds);

    // The Envoy Service is the one whose addresses go into Ingress status.
    let publish = arg(c, "--publish-service").expect("--publish-service");
    assert_eq!(publish, format!("{NS}/envoy"));
    let pdb = the(&m.disruption_budgets, "PodDisruptionBudget");
    assert_eq!(
        pdb.spec
            .as_ref()
            .unwrap()
            .selector
            .as_ref()
            .unwrap()
            .match_labels,
        d.spec.as_ref().unwrap().selector.match_labels
    );
}

#[test]
fn envoy_takes_its_bootstrap_from_the_config_map_and_connects_to_the_xds_service() {
    let m = load();
    let envoy = deployment(&m, "envoy");
    hardened(envoy);
    let c = container(envoy);
    let (path, port) = probe_path_port(c, "readiness");
    assert_eq!(path, "/ready");
    let cm = the(&m.config_maps, "ConfigMap");
    let text = cm.data.as_ref().unwrap()["bootstrap.yaml"].clone();
    let bootstrap: Value = serde_saphyr::from_str(&text).unwrap();
    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap();
    let xdsc = clusters.iter().find(|c| c["name"] == "xdsc").unwrap();
    let sa = &xdsc["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
    let svc = service(&m, "xdsc-kube");
    assert_eq!(
        sa["address"],
        format!("xdsc-kube.{NS}.svc.cluster.local"),
        "the xDS Service's name"
    );
    let xds_port = svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port;
    assert_eq!(sa["port_value"], xds_port);
    assert_eq!(bootstrap["node"]["cluster"], xdsc_server::DEFAULT_FLEET);
    let ready = bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["address"]["socket_address"]["port_value"] == port)
        .expect("a static listener on the readiness port");
    assert_eq!(ready["name"], "ready");
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|v| v.name == "bootstrap")
        .unwrap();
    assert_eq!(
        arg(c, "--config-path"),
        Some(format!("{}/bootstrap.yaml", mount.mount_path))
    );

    // The Envoy Service reaches the ports the controller's listeners bind by default.
    let front = service(&m, "envoy");
    assert!(selects(front, envoy));
    let defaults = xdsc_kube_controller::Config::new(kube_config()).translation;
    let targets: BTreeSet<i32> = front
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .map(|p| match p.target_port.as_ref().unwrap() {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => port_of(c, s),
        })
        .collect();
    for p in [defaults.ingress_http_port, defaults.ingress_https_port] {
        assert!(
            targets.contains(&i32::from(p)),
            "the envoy Service reaches {p}"
        );
    }

    if let Some(binary) = xdsc_test_support::find_envoy() {
        // As JSON (the helper writes a .json file), with the node id the Deployment gives on
        // the command line (--service-node $(POD_NAME)).
        assert_eq!(arg(c, "--service-node").as_deref(), Some("$(POD_NAME)"));
        let mut full = bootstrap.clone();
        full["node"]["id"] = "envoy-0".into();
        xdsc_test_support::validate(&binary, &serde_json::to_vec(&full).unwrap()).unwrap();
    }
}

fn kube_config() -> kube::Config {
    kube::Config::new("http://127.0.0.1:1".parse().unwrap())
}

#[test]
fn the_classes_name_the_controllers_xdsc_kube_serves_by_default() {
    let m = load();
    let defaults = xdsc_kube_controller::Config::new(kube_config()).translation;
    let ic = the(&m.ingress_classes, "IngressClass");
    assert_eq!(
        ic.spec.as_ref().and_then(|s| s.controller.clone()),
        Some(defaults.ingress_controller)
    );
    let gc = the(&m.gateway_classes, "GatewayClass");
    assert_eq!(gc.spec.controller_name, defaults.gateway_controller);
}

/// The binary takes the Deployment's arguments: with a kubeconfig that does not exist it
/// gets past the command line (exit 3, not 2) and names the file.
#[test]
fn the_binary_accepts_the_deployments_arguments() {
    let m = load();
    let c = container(controller_deployment(&m));
    let dir = xdsc_test_support::TempDir::new("xdsc-kube-manifest-args");
    let missing = dir.join("no.kubeconfig");
    let out = crate::binary::bin()
        .args(c.args.clone().unwrap_or_default())
        .arg("--kubeconfig")
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no.kubeconfig"), "{stderr}");
}
