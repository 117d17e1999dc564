//! The escape-hatch example against the real Envoy: the Lua filter given on the model's
//! listener reaches Envoy (its config dump shows it before the router, under the model's stat
//! prefix) and answers requests; the observer sees Envoy acknowledge the listener. Fails
//! (does not skip) without Envoy when `CI=true`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use xdsc_core::snapshot::ResourceType;
use xdsc_examples::filter;
use xdsc_server::events::StreamEvent;
use xdsc_test_support::{Backend, Envoy, ads_bootstrap, find_envoy, free_port, http_get, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lua_filter_given_through_the_escape_hatch_is_active_in_envoy() {
    let Some(binary) = find_envoy() else { return };
    let backend = Backend::start("from-backend");
    let port = free_port();
    let xds = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let xds_port = xds.local_addr().unwrap().port();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&acked);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (_publisher, serving) = filter::serve(
        &filter::model(backend.addr.port(), port),
        xds,
        async {
            let _ = stopped.await;
        },
        move |e| {
            if let StreamEvent::Ack { resource_type, .. } = e {
                seen.lock().unwrap().push(*resource_type);
            }
        },
    )
    .expect("the example model compiles");

    let admin = free_port();
    let envoy = Envoy::start(
        &binary,
        &ads_bootstrap("embed-filter", "default", xds_port, admin, false),
        admin,
    );
    let envoy = tokio::task::spawn_blocking(move || {
        let answered = wait_for(Duration::from_secs(30), || {
            http_get(port, "example.com", "/lua").filter(|(status, _)| *status == 200)
        });
        (envoy, answered)
    })
    .await
    .unwrap();
    let (envoy, answered) = envoy;
    let (_, body) =
        answered.unwrap_or_else(|| panic!("Envoy never served; log:\n{}", envoy.log_tail()));
    assert_eq!(body, filter::LUA_BODY, "the Lua filter answers /lua");
    let (status, body) = http_get(port, "example.com", "/other").expect("Envoy answers");
    assert_eq!(
        (status, body.as_str()),
        (200, "from-backend"),
        "the rest reaches the backend"
    );

    // The config dump: the filter, before the router, in the listener xdsc compiled.
    let dump = envoy
        .admin("/config_dump?resource=dynamic_listeners")
        .expect("config dump");
    let v: serde_json::Value = serde_json::from_str(&dump).expect("config dump is JSON");
    let listener = v["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["name"] == "http"))
        .unwrap_or_else(|| panic!("no listener http in {dump}"));
    let hcm =
        &listener["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["stat_prefix"], "ingress_http");
    let filters: Vec<&str> = hcm["http_filters"]
        .as_array()
        .expect("http filters")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        filters,
        ["envoy.filters.http.lua", "envoy.filters.http.router"]
    );
    assert_eq!(
        hcm["http_filters"][0]["typed_config"]["default_source_code"]["inline_string"],
        filter::LUA
    );
    // Envoy's statistics use the stat prefix the model gave.
    let stats = envoy
        .admin("/stats?filter=^http.ingress_http.downstream_rq_total")
        .unwrap_or_default();
    assert!(
        stats.contains("http.ingress_http.downstream_rq_total"),
        "{stats}"
    );
    // The observer saw Envoy acknowledge the listener.
    assert!(acked.lock().unwrap().contains(&ResourceType::Listener));
    drop(envoy);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
