//! The translator's cost, counted: what one change recomputes at the 200-tenant shape, and
//! at one Gateway with 200 HTTPRoutes.

use super::*;
use crate::strategy::{tenant_slice, tenants};

fn loaded() -> Translator {
    let mut t = Translator::new(Options::default());
    let first = t.apply(
        tenants(200, 60, 20)
            .into_iter()
            .map(|o| ObjectChange::upsert(o, None)),
    );
    assert!(
        first.diagnostics_added.is_empty(),
        "{:?}",
        first.diagnostics_added
    );
    // 200 hosts, 4,000 used Service ports (Cluster and Endpoints), 200 Secrets, 2 listeners.
    assert_eq!(first.changes.len(), 200 + 2 * 4000 + 200 + 2);
    t
}

fn counts<'a>(pairs: impl IntoIterator<Item = (&'a str, usize)>) -> BTreeMap<&'a str, usize> {
    pairs.into_iter().collect()
}

#[test]
fn one_endpoint_slice_change_translates_one_endpoints_object() {
    let mut t = loaded();
    let delta = t.apply([ObjectChange::upsert(tenant_slice(17, 3, 1), None)]);
    assert_eq!(delta.work.units, counts([("Endpoints", 1)]));
    assert_eq!(
        delta.work.objects,
        BTreeMap::from([(model::Kind::Endpoints, 1)])
    );
    assert_eq!(delta.changes.len(), 1);
    assert_eq!(
        delta.changes[0].key().to_string(),
        "Endpoints/k8s:tenant-017/svc-03:80"
    );
    assert!(delta.diagnostics_added.is_empty() && delta.statuses.is_empty());
    // A slice of a Service no route uses costs nothing at all.
    let unused = t.apply([ObjectChange::upsert(tenant_slice(17, 42, 1), None)]);
    assert!(unused.work.units.is_empty() && unused.changes.is_empty());
}

#[test]
fn one_ingress_path_change_translates_one_virtual_host() {
    let mut t = loaded();
    let id = ObjectRef::new("Ingress", Some("tenant-005"), "web");
    let Some(KubeObject::Ingress(mut ing)) = t.inputs().get(&id).cloned() else {
        panic!("the Ingress is there");
    };
    let rules = ing
        .spec
        .as_mut()
        .and_then(|s| s.rules.as_mut())
        .expect("rules");
    let paths = &mut rules[0].http.as_mut().expect("paths").paths;
    paths[4].path = Some("/moved".into());
    let delta = t.apply([ObjectChange::upsert(KubeObject::Ingress(ing), None)]);
    assert_eq!(
        delta.work.units,
        counts([("Ingress", 1), ("IngressHost", 1)])
    );
    assert_eq!(
        delta.work.objects,
        BTreeMap::from([(model::Kind::VirtualHost, 1)])
    );
    assert_eq!(delta.changes.len(), 1);
}

#[test]
fn one_secret_change_translates_one_secret() {
    let mut t = loaded();
    let id = ObjectRef::new("Secret", Some("tenant-009"), "tls");
    let Some(KubeObject::Secret(mut s)) = t.inputs().get(&id).cloned() else {
        panic!("the Secret is there");
    };
    s.string_data.as_mut().expect("data").insert(
        "tls.crt".into(),
        "-----BEGIN CERTIFICATE-----\nnew\n".into(),
    );
    let delta = t.apply([ObjectChange::upsert(KubeObject::Secret(s), None)]);
    // The Secret's unit, and the Ingress-wide unit that checks the Secret is usable.
    assert_eq!(
        delta.work.units,
        counts([("IngressGlobal", 1), ("Secret", 1)])
    );
    assert_eq!(delta.changes.len(), 1);
    assert_eq!(
        delta.changes[0].key().to_string(),
        "Secret/k8s:tenant-009/tls"
    );
}

#[test]
fn deleting_everything_leaves_nothing_behind() {
    let mut t = loaded();
    let ids: Vec<ObjectRef> = t.inputs().iter().map(|(id, _)| id.clone()).collect();
    let delta = t.apply(ids.into_iter().map(ObjectChange::Delete));
    assert_eq!(delta.changes.len(), 200 + 2 * 4000 + 200 + 2);
    assert!(t.objects().next().is_none() && t.diagnostics().next().is_none());
    assert!(t.statuses().is_empty());
    assert!(t.users.is_empty());
    let roots = t.root_units();
    assert_eq!(roots.len(), 2, "the Ingress-wide unit and the `*` host");
    assert_eq!(t.units.keys().cloned().collect::<BTreeSet<_>>(), roots);
    assert!(
        t.readers.values().all(|r| r.is_subset(&roots)),
        "no index entry outlives its reader"
    );
    assert!(t.readers.len() <= 6, "{:?}", t.readers.keys());
    assert!(t.world.facts.slices.is_empty() && t.world.facts.hosts.is_empty());
    assert!(t.world.facts.heads.is_empty() && t.world.facts.gateway_routes.is_empty());
    assert!(t.world.gateway_hosts.is_empty());
}

/// One Gateway listener with 200 HTTPRoutes, each on its own hostname (`distinct`) or all on
/// one; the route `r-017` then changes one path.
fn gateway_with_routes(distinct: bool) -> (Translator, KubeObject) {
    use serde_json::json;
    let gw = "gateway.networking.k8s.io/v1";
    let parse = |v: serde_json::Value| KubeObject::from_value(v).expect("a valid manifest");
    let route = |i: usize, path: &str| {
        let host = if distinct {
            format!("h{i:03}.example.com")
        } else {
            "shared.example.com".to_owned()
        };
        parse(json!({"apiVersion": gw, "kind": "HTTPRoute",
            "metadata": {"name": format!("r-{i:03}"), "namespace": "a", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"parentRefs": [{"name": "g"}], "hostnames": [host],
                "rules": [{"matches": [{"path": {"value": format!("/{i}{path}")}}],
                           "backendRefs": [{"name": "s", "port": 80}]}]}}))
    };
    let mut objects = vec![
        parse(
            json!({"apiVersion": gw, "kind": "GatewayClass", "metadata": {"name": "gc"},
            "spec": {"controllerName": "xdsc.dev/gateway-controller"}}),
        ),
        parse(
            json!({"apiVersion": gw, "kind": "Gateway", "metadata": {"name": "g", "namespace": "a"},
            "spec": {"gatewayClassName": "gc", "listeners": [{"name": "l", "port": 80, "protocol": "HTTP"}]}}),
        ),
        parse(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a"},
            "spec": {"ports": [{"port": 80}]}}),
        ),
    ];
    objects.extend((0..200).map(|i| route(i, "")));
    let mut t = Translator::new(Options::default());
    let first = t.apply(objects.into_iter().map(|o| ObjectChange::upsert(o, None)));
    assert!(
        first.diagnostics_added.is_empty(),
        "{:?}",
        first.diagnostics_added
    );
    (t, route(17, "/moved"))
}

/// Counted: one route's change to its rules recomputes its Gateway port's unit (which
/// decides attachment, and finds it unchanged) and the one host that holds the route's
/// rules, so one virtual host is rebuilt, whether each route has its own hostname or all
/// 200 share one (then that host holds them all).
#[test]
fn one_httproute_change_at_a_gateway_of_200_routes_rebuilds_one_virtual_host() {
    for distinct in [true, false] {
        let (mut t, changed) = gateway_with_routes(distinct);
        let delta = t.apply([ObjectChange::upsert(changed, None)]);
        assert_eq!(
            delta.work.units,
            counts([
                ("Gateway", 1),
                ("GatewayHost", 1),
                ("GatewayPort", 1),
                ("Route", 1)
            ])
        );
        assert_eq!(
            delta.work.objects,
            BTreeMap::from([(model::Kind::Listener, 1), (model::Kind::VirtualHost, 1)])
        );
        assert_eq!(delta.changes.len(), 1, "one virtual host changes");
    }
}
