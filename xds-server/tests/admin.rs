//! The admin endpoints, answered in process.

use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Model, Object};
use xdsc_server::{Publisher, XdsServer};

async fn get(admin: &xdsc_server::Admin, path: &str) -> (u16, String) {
    let r = admin.handle(&Method::GET, path);
    let status = r.status().as_u16();
    let body = r.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_readiness_metrics_and_debug_views() {
    let publisher = Publisher::new();
    let server = XdsServer::new(publisher.clone());
    let admin = server.admin();
    assert_eq!(get(&admin, "/healthz").await.0, 200);
    assert_eq!(
        get(&admin, "/readyz").await.0,
        503,
        "not ready before the first snapshot"
    );
    let objects: Vec<Object> = serde_json::from_value(json!([
        {"kind":"Cluster","name":"web"},
        {"kind":"Secret","name":"tls","tls_certificate":{
            "certificate_chain": xdsc_core::strategy::TEST_CERT,
            "private_key": xdsc_core::strategy::TEST_KEY}}
    ]))
    .expect("model");
    publisher.publish(
        "default",
        Compiled::new(&Model::from_objects(objects))
            .snapshot()
            .clone(),
    );
    assert_eq!(get(&admin, "/readyz").await.0, 200);
    let (status, metrics) = get(&admin, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "xdsc_snapshot_publishes_total 1",
        "xdsc_snapshot_resources{type=\"clusters\"} 1",
        "xdsc_streams 0",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    let (status, snapshot) = get(&admin, "/debug/snapshot").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&snapshot).expect("json");
    assert!(
        v["fleets"]["default"]["clusters"]["resources"]
            .as_array()
            .is_some_and(|r| r.len() == 1),
        "{v:#}"
    );
    assert!(
        !snapshot.contains("PRIVATE KEY"),
        "a private key leaked into /debug/snapshot"
    );
    let (_, clients) = get(&admin, "/debug/clients").await;
    assert_eq!(
        serde_json::from_str::<Value>(&clients).expect("json"),
        json!([])
    );
    assert_eq!(get(&admin, "/nope").await.0, 404);
    assert_eq!(
        admin.handle(&Method::POST, "/healthz").status().as_u16(),
        405
    );
}

#[tokio::test]
async fn debug_endpoints_can_be_turned_off() {
    let admin = XdsServer::new(Publisher::new())
        .admin()
        .with_debug_endpoints(false);
    for path in ["/debug/snapshot", "/debug/clients"] {
        assert_eq!(get(&admin, path).await.0, 404, "{path}");
    }
    assert_eq!(get(&admin, "/healthz").await.0, 200);
    assert_eq!(get(&admin, "/metrics").await.0, 200);
}
