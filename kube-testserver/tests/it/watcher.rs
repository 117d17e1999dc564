//! kube-runtime watchers and reflectors against the server: the initial list (paged and
//! streaming), changes, and recovery from cut and ended watches, forgotten history (410) and
//! an outage (503), ending with a reflector store equal to the server's state.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use serde_json::json;
use tokio::sync::mpsc;
use xdsc_kube_testserver::TestServer;

use crate::{PATIENCE, config_map};

/// A watcher's events, driven by a task of its own so its watch stays open between reads.
struct Events {
    rx: mpsc::UnboundedReceiver<Result<Event<ConfigMap>, watcher::Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn drive<S>(stream: S) -> Events
where
    S: Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(e) = stream.next().await {
            if tx.send(e).is_err() {
                return;
            }
        }
    });
    Events { rx, task }
}

fn start(api: Api<ConfigMap>, config: watcher::Config) -> Events {
    drive(watcher::watcher(api, config).default_backoff())
}

/// The next event that is not an error (errors are expected while faults last).
async fn next(events: &mut Events) -> Event<ConfigMap> {
    loop {
        match tokio::time::timeout(PATIENCE, events.rx.recv())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
        {
            Ok(e) => return e,
            Err(e) => eprintln!("watcher error (expected under faults): {e}"),
        }
    }
}

/// Waits until the watcher's watch is open, so a fault reaches it.
async fn watching(server: &TestServer) {
    assert!(
        server.wait_for_watches(1, PATIENCE).await,
        "the watcher opened its watch"
    );
}

/// Reads a whole initial list: Init, InitApply..., InitDone; returns the names.
async fn initial(events: &mut Events) -> BTreeSet<String> {
    loop {
        if let Event::Init = next(events).await {
            break;
        }
    }
    let mut names = BTreeSet::new();
    loop {
        match next(events).await {
            Event::InitApply(cm) => {
                names.insert(cm.name_any());
            }
            Event::InitDone => return names,
            other => panic!("unexpected {other:?} during the initial list"),
        }
    }
}

async fn create(api: &Api<ConfigMap>, name: &str) {
    let cm = serde_json::from_value(config_map("ns", name, json!({}))).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn expect_apply(events: &mut Events, name: &str) {
    match next(events).await {
        Event::Apply(cm) => assert_eq!(cm.name_any(), name),
        other => panic!("expected Apply({name}), got {other:?}"),
    }
}

/// Waits until a reflector's store holds exactly the server's objects of a kind, at the
/// server's versions.
async fn converge<K>(
    server: &TestServer,
    reader: &reflector::Store<K>,
    api_version: &str,
    kind: &str,
) where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let want: BTreeSet<(String, String)> = server
        .list(api_version, kind)
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_owned(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let have: BTreeSet<(String, String)> = reader
            .state()
            .iter()
            .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
            .collect();
        if have == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "store {have:?} != server {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn paged_and_streaming_initial_lists_then_changes() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    for n in ["a", "b", "c"] {
        create(&api, n).await;
    }
    for config in [
        watcher::Config::default().page_size(2),
        watcher::Config::default().any_semantic().page_size(1),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut events = start(api.clone(), config.clone());
        assert!(matches!(next(&mut events).await, Event::Init), "{config:?}");
        let mut seen = BTreeSet::new();
        loop {
            match next(&mut events).await {
                Event::InitApply(cm) => assert!(seen.insert(cm.name_any())),
                Event::InitDone => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, names(&["a", "b", "c"]), "{config:?}");
        let name = format!("new-{}", server.resource_version());
        create(&api, &name).await;
        expect_apply(&mut events, &name).await;
        api.delete(&name, &DeleteParams::default()).await.unwrap();
        match next(&mut events).await {
            Event::Delete(cm) => assert_eq!(cm.name_any(), name),
            other => panic!("expected Delete, got {other:?}"),
        }
    }
    let lists = server
        .faults()
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && !r.watch)
        .count();
    assert_eq!(
        lists,
        2 + 3,
        "two pages, three pages, and no list for the streaming watcher"
    );
}

#[tokio::test]
async fn filtered_watch_sees_objects_leave_and_enter_its_selector() {
    let server = TestServer::start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(server.client(), "ns");
    let mut events = watcher::watcher(
        secrets.clone(),
        watcher::Config::default().fields("type=kubernetes.io/tls"),
    )
    .boxed();
    let mut init = Vec::new();
    while let Some(e) = events.next().await {
        match e.unwrap() {
            Event::InitDone => break,
            e => init.push(format!("{e:?}")),
        }
    }
    for (name, ty) in [("plain", "Opaque"), ("cert", "kubernetes.io/tls")] {
        let s = serde_json::from_value(json!({"metadata": {"name": name}, "type": ty})).unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    match tokio::time::timeout(PATIENCE, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        Event::Apply(s) => assert_eq!(s.name_any(), "cert", "the Opaque secret is filtered out"),
        other => panic!("{other:?}"),
    }

    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let mut labelled = start(cms.clone(), watcher::Config::default().labels("app=web"));
    assert!(initial(&mut labelled).await.is_empty());
    create(&cms, "x").await;
    let add = json!({"metadata": {"labels": {"app": "web"}}});
    cms.patch("x", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .unwrap();
    expect_apply(&mut labelled, "x").await;
    let drop_label = json!({"metadata": {"labels": {"app": "db"}}});
    cms.patch("x", &PatchParams::default(), &Patch::Merge(&drop_label))
        .await
        .unwrap();
    match next(&mut labelled).await {
        Event::Delete(cm) => {
            assert_eq!(cm.name_any(), "x", "leaving the selector reads as a delete")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn watchers_resume_after_cut_and_ended_watches() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    create(&api, "a").await;
    let mut events = start(api.clone(), watcher::Config::default());
    assert_eq!(initial(&mut events).await, names(&["a"]));
    for (round, cut) in [(1, true), (2, false), (3, true)] {
        watching(&server).await;
        if cut {
            server.faults().cut_watches();
        } else {
            server.faults().end_watches();
        }
        let name = format!("after-{round}");
        create(&api, &name).await;
        // Resumed from its version: the change arrives as Apply, with no relist in between.
        expect_apply(&mut events, &name).await;
    }
    let requests = server.faults().requests();
    assert_eq!(
        requests.iter().filter(|r| !r.watch).count() - 4,
        1,
        "one list; the rest are creates"
    );
    assert_eq!(
        requests.iter().filter(|r| r.watch).count(),
        4,
        "the watch was reopened after each fault"
    );
}

#[tokio::test]
async fn a_forced_410_relists_without_the_object_deleted_in_the_gap() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    for n in ["keep", "gone", "also-gone"] {
        create(&api, n).await;
    }
    let mut events = start(api.clone(), watcher::Config::default());
    assert_eq!(
        initial(&mut events).await,
        names(&["keep", "gone", "also-gone"])
    );

    // In the open watch: the delete is never sent, then the history it was in is forgotten.
    watching(&server).await;
    server.faults().pause_watches();
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    server.faults().forget_history();
    server.faults().resume_watches();
    assert_eq!(initial(&mut events).await, names(&["keep", "also-gone"]));

    // On reconnect: the watch is cut while paused, and re-opened from a forgotten version.
    watching(&server).await;
    server.faults().pause_watches();
    api.delete("also-gone", &DeleteParams::default())
        .await
        .unwrap();
    create(&api, "added").await;
    server.faults().forget_history();
    server.faults().cut_watches();
    server.faults().resume_watches();
    assert_eq!(initial(&mut events).await, names(&["keep", "added"]));
}

#[tokio::test]
async fn watchers_recover_after_an_outage() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    create(&api, "a").await;
    let mut events = start(api.clone(), watcher::Config::default());
    assert_eq!(initial(&mut events).await, names(&["a"]));
    watching(&server).await;
    server.faults().unavailable_for(Duration::from_millis(1500));
    // Written in-process: the outage is only on the HTTP side.
    server.put(config_map("ns", "during", json!({}))).unwrap();
    expect_apply(&mut events, "during").await;
    let refused = server
        .faults()
        .requests()
        .iter()
        .filter(|r| r.code == 503 && r.watch)
        .count();
    assert!(refused >= 1, "the watcher retried during the outage");
}

#[tokio::test]
async fn reflector_store_equals_the_server_after_every_fault() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    for n in ["a", "b", "c", "d"] {
        create(&api, n).await;
    }
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher::watcher(api.clone(), watcher::Config::default().page_size(2)),
    )
    .default_backoff();
    let driver = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    watching(&server).await;

    let faults = server.faults();
    faults.cut_watches();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    create(&api, "e").await;
    watching(&server).await;
    faults.pause_watches();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    let relabel = json!({"metadata": {"labels": {"v": "2"}}});
    api.patch("c", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();
    faults.forget_history();
    faults.end_watches();
    faults.resume_watches();
    faults.unavailable_for(Duration::from_millis(800));
    server
        .put(config_map("ns", "f", json!({"v": "3"})))
        .unwrap();

    converge(&server, &reader, "v1", "ConfigMap").await;
    let stored: BTreeSet<String> = reader.state().iter().map(|c| c.name_any()).collect();
    assert_eq!(stored, names(&["c", "d", "e", "f"]));
    driver.abort();
}

#[tokio::test]
async fn a_burst_of_10000_endpointslice_updates_reaches_a_reflector() {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    const SLICES: usize = 10;
    const UPDATES: usize = 10_000;
    let server = TestServer::start().await.unwrap();
    let api: Api<EndpointSlice> = Api::namespaced(server.client(), "ns");
    let slice = |i: usize, n: usize| -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": format!("s{i}")},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [format!("10.0.{}.{}", n / 250, n % 250)]}],
        }))
        .unwrap()
    };
    for i in 0..SLICES {
        api.create(&PostParams::default(), &slice(i, 0))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store::<EndpointSlice>();
    let driver = tokio::spawn(
        reflector(
            writer,
            watcher::watcher(api.clone(), watcher::Config::default()),
        )
        .default_backoff()
        .for_each(|_| async {}),
    );
    reader.wait_until_ready().await.unwrap();
    watching(&server).await;

    // Written in-process, as fast as the store takes them: the watch side is what is tested
    // (HTTP writes are covered above).
    for n in 0..UPDATES {
        let mut s = serde_json::to_value(slice(n % SLICES, n + 1)).unwrap();
        s["apiVersion"] = json!("discovery.k8s.io/v1");
        s["kind"] = json!("EndpointSlice");
        s["metadata"]["namespace"] = json!("ns");
        server.put(s).unwrap();
    }
    assert_eq!(server.resource_version(), (SLICES + UPDATES) as u64);

    converge(&server, &reader, "discovery.k8s.io/v1", "EndpointSlice").await;
    let lists = server
        .faults()
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && !r.watch)
        .count();
    assert_eq!(lists, 1, "the watcher kept up: no relist");
    driver.abort();
}
