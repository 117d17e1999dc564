//! The API through kube's typed client: writes and their errors, the status subresource,
//! generation, patches, lists, selectors, versions, the write log and request faults.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use xdsc_kube_testserver::{Action, Filter, TestServer, Verb};

use crate::config_map;

fn ingress(name: &str) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"rules": [{"host": "a.example"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}},
    }))
    .unwrap()
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn writes_answer_like_the_api_server() {
    let server = TestServer::start().await.unwrap();
    let ings: Api<Ingress> = Api::namespaced(server.client(), "default");
    let created = ings
        .create(&PostParams::default(), &ingress("web"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.generation, Some(1));
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    assert!(created.status.is_none(), "create ignores status");

    let again = ings
        .create(&PostParams::default(), &ingress("web"))
        .await
        .unwrap_err();
    assert_eq!(api_error(again), (409, "AlreadyExists".into()));

    // A replace with the version read succeeds once; the same body again is stale.
    let mut next = created.clone();
    next.spec.as_mut().unwrap().ingress_class_name = Some("xdsc".into());
    let replaced = ings
        .replace("web", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    let stale = ings
        .replace("web", &PostParams::default(), &next)
        .await
        .unwrap_err();
    assert_eq!(api_error(stale), (409, "Conflict".into()));

    let missing = ings.get("nope").await.unwrap_err();
    assert_eq!(api_error(missing), (404, "NotFound".into()));
    let deleted = ings.delete("web", &DeleteParams::default()).await.unwrap();
    let status = deleted
        .right()
        .expect("a delete without finalizers answers a Status");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    assert_eq!(api_error(ings.get("web").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let server = TestServer::start().await.unwrap();
    let ings: Api<Ingress> = Api::namespaced(server.client(), "default");
    ings.create(&PostParams::default(), &ingress("web"))
        .await
        .unwrap();

    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}]}}, "spec": {"rules": []}});
    let after = ings
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        after
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()[0]
            .ip
            .as_deref(),
        Some("10.0.0.2")
    );
    assert_eq!(
        after.spec.unwrap().rules.unwrap().len(),
        1,
        "a status write leaves the spec alone"
    );
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "a status write leaves generation alone"
    );

    let labels = json!({"metadata": {"labels": {"a": "b"}}, "status": null});
    let labelled = ings
        .patch("web", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes leave generation alone"
    );
    assert!(
        labelled.status.is_some(),
        "the main resource ignores status"
    );

    let mut with_status = labelled.clone();
    with_status.status = None;
    with_status.metadata.resource_version = None;
    let replaced = ings
        .replace("web", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(
        replaced.status.is_some(),
        "a replace of the main resource keeps status"
    );
    assert_eq!(
        replaced.metadata.resource_version, labelled.metadata.resource_version,
        "a no-op replace writes nothing"
    );

    let mut new_status = replaced.clone();
    new_status.status = Some(serde_json::from_value(json!({"loadBalancer": {}})).unwrap());
    let stale = {
        let mut s = new_status.clone();
        s.metadata.resource_version = Some("1".into());
        s
    };
    assert_eq!(
        api_error(
            ings.replace_status("web", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        )
        .0,
        409
    );
    let written = ings
        .replace_status("web", &PostParams::default(), &new_status)
        .await
        .unwrap();
    assert_eq!(written.status.unwrap().load_balancer.unwrap().ingress, None);
}

#[tokio::test]
async fn patches_and_server_side_apply() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let apply = PatchParams::apply("tester");
    let cm = config_map("ns", "a", json!({"x": "1"}));
    let created = cms.patch("a", &apply, &Patch::Apply(&cm)).await.unwrap();
    assert_eq!(created.data.unwrap()["k"], "a", "apply creates");
    let more = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"extra": "y"}});
    let merged = cms.patch("a", &apply, &Patch::Apply(&more)).await.unwrap();
    assert_eq!(
        merged.data.as_ref().unwrap().len(),
        2,
        "apply merges into the stored object"
    );

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/k", "value": "a"},
        {"op": "replace", "path": "/data/k", "value": "b"},
        {"op": "remove", "path": "/data/extra"},
    ]))
    .unwrap();
    let patched = cms
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap().into_iter().collect::<Vec<_>>(),
        [("k".to_owned(), "b".to_owned())]
    );
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/k", "value": "zzz"}])).unwrap();
    assert_eq!(
        api_error(
            cms.patch("a", &PatchParams::default(), &Patch::<()>::Json(failing))
                .await
                .unwrap_err()
        )
        .0,
        422
    );

    let merge = json!({"data": {"k": null, "n": "1"}});
    let merged = cms
        .patch("a", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .unwrap();
    assert_eq!(
        merged.data.unwrap().into_iter().collect::<Vec<_>>(),
        [("n".to_owned(), "1".to_owned())]
    );
    let stale = json!({"metadata": {"resourceVersion": "1"}, "data": {"n": "2"}});
    assert_eq!(
        api_error(
            cms.patch("a", &PatchParams::default(), &Patch::Merge(&stale))
                .await
                .unwrap_err()
        )
        .0,
        409
    );
    assert_eq!(
        api_error(
            cms.patch("zz", &PatchParams::default(), &Patch::Merge(&merge))
                .await
                .unwrap_err()
        )
        .0,
        404
    );
}

#[tokio::test]
async fn lists_page_and_select() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    for (ns, name, tier) in [
        ("a", "one", "web"),
        ("a", "two", "db"),
        ("b", "three", "web"),
        ("b", "four", "cache"),
    ] {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let cm = serde_json::from_value(config_map(ns, name, json!({"tier": tier}))).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let all: Api<ConfigMap> = Api::all(client.clone());
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(all.list(&ListParams::default()).await.unwrap()),
        ["one", "two", "four", "three"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier=web"))
                .await
                .unwrap()
        ),
        ["one", "three"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier in (db,cache)"))
                .await
                .unwrap()
        ),
        ["two", "four"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("tier!=web,!missing"))
                .await
                .unwrap()
        ),
        ["two", "four"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=b"))
                .await
                .unwrap()
        ),
        ["four", "three"]
    );
    let in_a: Api<ConfigMap> = Api::namespaced(client.clone(), "a");
    assert_eq!(
        names(
            in_a.list(&ListParams::default().fields("metadata.name!=one"))
                .await
                .unwrap()
        ),
        ["two"]
    );
    let bad = all
        .list(&ListParams::default().fields("data.k=one"))
        .await
        .unwrap_err();
    assert_eq!(api_error(bad), (400, "BadRequest".into()));

    // Pages: one snapshot across pages, even when objects change between them.
    let first = all.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("more pages");
    let in_b: Api<ConfigMap> = Api::namespaced(client.clone(), "b");
    in_b.delete("three", &DeleteParams::default())
        .await
        .unwrap();
    let second = all
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(second.clone()), ["three"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    assert!(second.metadata.continue_.is_none());
    server.faults().forget_history();
    let expired = all
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap_err();
    assert_eq!(api_error(expired), (410, "Expired".into()));

    // The Secret `type` field selector the controller uses.
    let secrets: Api<Secret> = Api::namespaced(client, "a");
    for (name, ty) in [("tls", "kubernetes.io/tls"), ("plain", "Opaque")] {
        let s = serde_json::from_value(json!({"metadata": {"name": name}, "type": ty})).unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let tls = secrets
        .list(&ListParams::default().fields("type=kubernetes.io/tls"))
        .await
        .unwrap();
    assert_eq!(
        tls.items
            .into_iter()
            .map(|s| s.metadata.name.unwrap())
            .collect::<Vec<_>>(),
        ["tls"]
    );
}

#[tokio::test]
async fn one_object_served_at_every_version() {
    let server = TestServer::start().await.unwrap();
    let gvk = |v: &str| GroupVersionKind::gvk("gateway.networking.k8s.io", v, "HTTPRoute");
    let v1: Api<DynamicObject> = Api::namespaced_with(
        server.client(),
        "default",
        &ApiResource::from_gvk(&gvk("v1")),
    );
    let beta: Api<DynamicObject> = Api::namespaced_with(
        server.client(),
        "default",
        &ApiResource::from_gvk(&gvk("v1beta1")),
    );
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r"}, "spec": {"parentRefs": [{"name": "gw"}]},
    }))
    .unwrap();
    v1.create(&PostParams::default(), &route).await.unwrap();
    let read = beta.get("r").await.unwrap();
    assert_eq!(
        read.types.unwrap().api_version,
        "gateway.networking.k8s.io/v1beta1"
    );
    assert_eq!(read.data["spec"]["parentRefs"][0]["name"], "gw");
}

#[tokio::test]
async fn watch_bookmarks_and_expiry() {
    let server = TestServer::builder()
        .bookmark_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    server.put(config_map("ns", "first", json!({}))).unwrap();
    let cm = serde_json::from_value(config_map("ns", "a", json!({}))).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.unwrap();

    let mut stream = cms
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            },
            "0",
        )
        .await
        .unwrap()
        .boxed();
    for name in ["a", "first"] {
        match stream.try_next().await.unwrap() {
            Some(WatchEvent::Added(c)) => assert_eq!(c.metadata.name.as_deref(), Some(name)),
            other => panic!("expected the initial ADDED, got {other:?}"),
        }
    }
    match tokio::time::timeout(crate::PATIENCE, stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Bookmark(b)) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }

    server.faults().forget_history();
    let mut expired = cms
        .watch(
            &WatchParams::default(),
            &(rv.parse::<u64>().unwrap() - 1).to_string(),
        )
        .await
        .unwrap()
        .boxed();
    match expired.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Expired, got {other:?}"),
    }
}

#[tokio::test]
async fn write_log_names_the_token_and_faults_apply() {
    let server = TestServer::start().await.unwrap();
    let leader: Api<Lease> = Api::namespaced(server.client_with_token("leader"), "kube-system");
    let other: Api<Lease> = Api::namespaced(server.client_with_token("other"), "kube-system");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "xdsc"}, "spec": {"holderIdentity": "leader"}}),
    )
    .unwrap();
    let held = leader.create(&PostParams::default(), &lease).await.unwrap();
    // Leader election relies on conflicts: a stale takeover fails.
    let mut takeover = held.clone();
    takeover.spec.as_mut().unwrap().holder_identity = Some("other".into());
    other
        .replace("xdsc", &PostParams::default(), &takeover)
        .await
        .unwrap();
    assert_eq!(
        api_error(
            leader
                .replace("xdsc", &PostParams::default(), &held)
                .await
                .unwrap_err()
        )
        .0,
        409
    );

    let writes = server.faults().writes();
    let summary: Vec<(Option<&str>, Verb, u16)> = writes
        .iter()
        .map(|w| (w.token.as_deref(), w.verb, w.code))
        .collect();
    assert_eq!(
        summary,
        [
            (Some("leader"), Verb::Create, 201),
            (Some("other"), Verb::Update, 200),
            (Some("leader"), Verb::Update, 409)
        ]
    );
    assert!(
        writes.iter().all(|w| w.resource == "leases"
            && w.group == "coordination.k8s.io"
            && w.name == "xdsc")
    );

    // One injected 503 for writes to leases, then normal service.
    server.faults().inject(
        Filter::default().resource("leases").writes(),
        Action::Fail(503),
        None,
        Some(1),
    );
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "kube-system");
    let cm = serde_json::from_value(config_map("kube-system", "c", json!({}))).unwrap();
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("other resources are not affected");
    let fresh = other.get("xdsc").await.unwrap();
    let mut config = server.config(Some("other"));
    config.default_retry = false;
    let no_retry: Api<Lease> =
        Api::namespaced(kube::Client::try_from(config).unwrap(), "kube-system");
    assert_eq!(
        api_error(
            no_retry
                .replace("xdsc", &PostParams::default(), &fresh)
                .await
                .unwrap_err()
        )
        .0,
        503
    );
    no_retry
        .replace("xdsc", &PostParams::default(), &fresh)
        .await
        .expect("the fault applied once");
}

#[tokio::test]
async fn delayed_status_writes_do_not_hold_other_writes() {
    let server = TestServer::start().await.unwrap();
    let ings: Api<Ingress> = Api::namespaced(server.client(), "default");
    ings.create(&PostParams::default(), &ingress("web"))
        .await
        .unwrap();
    server.faults().delay_status_writes(Duration::from_secs(2));
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}});
    let slow = {
        let ings = ings.clone();
        tokio::spawn(async move {
            ings.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
                .await
        })
    };
    let labels = json!({"metadata": {"labels": {"fast": "yes"}}});
    ings.patch("web", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert!(!slow.is_finished(), "the status write is still held");
    let stored = server
        .get("networking.k8s.io/v1", "Ingress", Some("default"), "web")
        .unwrap();
    assert_eq!(stored["metadata"]["labels"]["fast"], "yes");
    assert!(
        stored.get("status").is_none(),
        "the held status write has not been applied"
    );
    slow.await.unwrap().unwrap();
    let stored = server
        .get("networking.k8s.io/v1", "Ingress", Some("default"), "web")
        .unwrap();
    assert_eq!(
        stored["status"]["loadBalancer"]["ingress"][0]["ip"],
        "10.0.0.9"
    );
}

#[tokio::test]
async fn namespace_delete_removes_its_objects() {
    let server = TestServer::start().await.unwrap();
    let nss: Api<Namespace> = Api::all(server.client());
    let ns = nss
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    server.put(config_map("shop", "a", json!({}))).unwrap();
    server.put(config_map("other", "b", json!({}))).unwrap();
    nss.delete("shop", &DeleteParams::default()).await.unwrap();
    assert!(server.get("v1", "ConfigMap", Some("shop"), "a").is_none());
    assert!(server.get("v1", "ConfigMap", Some("other"), "b").is_some());
}

#[tokio::test]
async fn managed_fields_name_each_writer() {
    let server = TestServer::start().await.unwrap();
    let ings: Api<Ingress> = Api::namespaced(server.client(), "default");
    let pp = PostParams {
        field_manager: Some("creator".into()),
        ..PostParams::default()
    };
    ings.create(&pp, &ingress("web")).await.unwrap();
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.3"}]}}});
    ings.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let applied = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "labels": {"a": "b"}}});
    let after = ings
        .patch(
            "web",
            &PatchParams::apply("applier"),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    let entries: Vec<(String, String, Option<String>)> = after
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|e| (e.manager.unwrap(), e.operation.unwrap(), e.subresource))
        .collect();
    let manager_of_status = &entries[1].0;
    assert!(!manager_of_status.is_empty());
    assert_eq!(
        entries,
        [
            ("creator".to_owned(), "Update".to_owned(), None),
            (
                manager_of_status.clone(),
                "Update".to_owned(),
                Some("status".to_owned())
            ),
            ("applier".to_owned(), "Apply".to_owned(), None),
        ]
    );
    let raw = server
        .get("networking.k8s.io/v1", "Ingress", Some("default"), "web")
        .unwrap();
    assert!(
        raw["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:rules"].is_object(),
        "{raw}"
    );
    let off = TestServer::builder()
        .managed_fields(false)
        .start()
        .await
        .unwrap();
    let ings: Api<Ingress> = Api::namespaced(off.client(), "default");
    assert!(
        ings.create(&pp, &ingress("web"))
            .await
            .unwrap()
            .metadata
            .managed_fields
            .is_none()
    );
}
