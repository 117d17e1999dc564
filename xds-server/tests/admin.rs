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
        "xdsc_snapshot_publishes_total{fleet=\"default\"} 1",
        "xdsc_snapshot_resources{fleet=\"default\",type=\"clusters\"} 1",
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

/// One sample of the text exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text (version 0.0.4): the `# TYPE` of every family and its samples. Fails
/// on a line that is neither, a sample before its family's `# TYPE`, a malformed label set or
/// value.
fn parse_exposition(text: &str) -> (std::collections::BTreeMap<String, String>, Vec<Sample>) {
    let mut types = std::collections::BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "family {name} declared twice"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, std::collections::BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label=value");
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                        (k.to_owned(), v.expect("quoted label value").to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample {name} before its # TYPE"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    (types, samples)
}

/// Checks a histogram series: buckets ascending up to `+Inf`, counts cumulative, the `+Inf`
/// bucket equal to `_count`. Returns the count.
fn check_histogram(samples: &[Sample], family: &str, labels: &[(&str, &str)]) -> f64 {
    let matches = |s: &Sample| {
        labels
            .iter()
            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    };
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == format!("{family}_bucket") && matches(s))
        .map(|s| {
            let le = &s.labels["le"];
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            (le, s.value)
        })
        .collect();
    assert!(
        buckets.len() > 2,
        "{family} {labels:?} has buckets: {buckets:?}"
    );
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{buckets:?}"
    );
    assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY));
    let count = samples
        .iter()
        .find(|s| s.name == format!("{family}_count") && matches(s))
        .expect("a _count")
        .value;
    assert_eq!(buckets.last().map(|b| b.1), Some(count));
    count
}

#[tokio::test]
async fn metrics_are_families_with_labels_and_histograms() {
    use xdsc_core::snapshot::ResourceType;
    use xdsc_server::testing::{FakeEnvoy, Subscription, TestServer, snapshot};
    let server = TestServer::start(snapshot("a", &["a", "b"], 80), |x| x).await;
    server.publisher.publish("blue", snapshot("a", &["a"], 81));
    let m = server.xds.metrics();
    m.record_build(0.003);
    m.record_build(0.2);
    m.record_batch("files", 4);
    m.set_source_errors("files", 2);
    let mut envoy = FakeEnvoy::start(server.channel().await, "n1", false, Subscription::Named)
        .await
        .expect("stream");
    envoy.until_synced().await.expect("synced");
    assert_eq!(envoy.held(ResourceType::Endpoint), ["a", "b"]);
    let admin = server.xds.admin();
    // The last ACK reaches the server after the client has it: wait for the counter.
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&admin, "/metrics").await.1;
        if text.contains("xdsc_acks_total{type=\"routes\"} 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (types, samples) = parse_exposition(&text);
    for (family, kind) in [
        ("xdsc_streams", "gauge"),
        ("xdsc_streams_total", "counter"),
        ("xdsc_pushes_total", "counter"),
        ("xdsc_acks_total", "counter"),
        ("xdsc_nacks_total", "counter"),
        ("xdsc_snapshot_resources", "gauge"),
        ("xdsc_snapshot_bytes", "gauge"),
        ("xdsc_snapshot_publishes_total", "counter"),
        ("xdsc_snapshot_build_seconds", "histogram"),
        ("xdsc_push_ack_seconds", "histogram"),
        ("xdsc_source_events_total", "counter"),
        ("xdsc_source_errors", "gauge"),
        ("xdsc_xds_connections", "gauge"),
        ("xdsc_xds_connections_closed_total", "counter"),
        ("xdsc_clients", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family} in\n{text}"
        );
    }
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    // Per fleet and type, read from the published snapshots.
    assert_eq!(
        value(
            "xdsc_snapshot_resources",
            &[("fleet", "default"), ("type", "clusters")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "xdsc_snapshot_resources",
            &[("fleet", "blue"), ("type", "clusters")]
        ),
        1.0
    );
    assert!(
        value(
            "xdsc_snapshot_bytes",
            &[("fleet", "default"), ("type", "listeners")]
        ) > 0.0
    );
    assert_eq!(
        value("xdsc_snapshot_publishes_total", &[("fleet", "blue")]),
        1.0
    );
    // Per type; every type present from the start.
    assert_eq!(value("xdsc_acks_total", &[("type", "routes")]), 1.0);
    assert_eq!(value("xdsc_nacks_total", &[("type", "secrets")]), 0.0);
    // Per source.
    assert_eq!(
        value("xdsc_source_events_total", &[("source", "files")]),
        4.0
    );
    assert_eq!(value("xdsc_source_errors", &[("source", "files")]), 2.0);
    assert_eq!(value("xdsc_clients", &[]), 1.0);
    // Histograms: buckets, cumulative counts, sum.
    assert_eq!(
        check_histogram(&samples, "xdsc_snapshot_build_seconds", &[]),
        2.0
    );
    assert!((value("xdsc_snapshot_build_seconds_sum", &[]) - 0.203).abs() < 1e-9);
    assert_eq!(
        value("xdsc_snapshot_build_seconds_bucket", &[("le", "0.004")]),
        1.0,
        "0.003 s falls in the 4 ms bucket"
    );
    for t in ["clusters", "endpoints", "listeners", "routes"] {
        assert_eq!(
            check_histogram(&samples, "xdsc_push_ack_seconds", &[("type", t)]),
            1.0,
            "{t}"
        );
    }
}
