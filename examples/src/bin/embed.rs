//! Embedding xdsc: build a model in code, compile it with `xdsc-core`, serve it with
//! `xdsc-server`, and change it on a timer (the weight of a canary shifts every few seconds).
//!
//! ```text
//! cargo run -p xdsc-examples --bin embed -- --xds-addr 127.0.0.1:18000 --admin-addr 127.0.0.1:18001
//! ```
//!
//! Point an Envoy with an ADS bootstrap at the xDS address; watch `/debug/clients` and
//! `/metrics` on the admin address.

use std::time::{Duration, Instant};

use xdsc_core::compile::Compiled;
use xdsc_core::model::{
    Backend, Change, Cluster, Endpoint, Endpoints, Listener, Locality, Model, Object, Route,
    VirtualHost,
};
use xdsc_server::{Publisher, XdsServer};

use xdsc_examples::arg;

fn endpoints(name: &str, port: u16) -> Object {
    Object::Endpoints(Endpoints {
        name: name.into(),
        localities: vec![Locality {
            endpoints: vec![Endpoint {
                address: "127.0.0.1".into(),
                port,
                weight: 1,
                health: Default::default(),
            }],
            ..Default::default()
        }],
        provenance: vec![],
    })
}

fn site(canary_weight: u32) -> VirtualHost {
    let mut route = Route::forward_prefix("all", "/", "stable");
    if let Some(f) = route.forward.as_mut() {
        f.backends[0].weight = 100 - canary_weight;
        f.backends.push(Backend {
            cluster: "canary".into(),
            weight: canary_weight,
        });
    }
    let mut vh = VirtualHost::new("site", ["http"], ["*"]);
    vh.routes.push(route);
    vh
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = Model::from_objects([
        Object::Listener(Listener::new("http", 10000)),
        Object::VirtualHost(site(0)),
        Object::Cluster(Cluster::new("stable")),
        Object::Cluster(Cluster::new("canary")),
        endpoints("stable", 8081),
        endpoints("canary", 8082),
    ]);
    let mut compiled = Compiled::new(&model);
    let publisher = Publisher::new();
    publisher.publish("default", compiled.snapshot().clone());
    let server = XdsServer::new(publisher.clone());
    let admin = server.admin();
    let xds = tokio::net::TcpListener::bind(arg("--xds-addr", "127.0.0.1:18000")).await?;
    let http = tokio::net::TcpListener::bind(arg("--admin-addr", "127.0.0.1:18001")).await?;
    println!(
        "xDS on {}, admin on {}",
        xds.local_addr()?,
        http.local_addr()?
    );
    // On Ctrl-C every xDS stream ends with UNAVAILABLE (Envoy reconnects at once) and the
    // connections close within the shutdown grace period.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
        let _ = rx.changed().await;
    };
    let serving = tokio::spawn(server.serve(xds, until_stopped(stopped.clone())));
    tokio::spawn(admin.serve(http, until_stopped(stopped)));

    let mut weight = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => {
                drop(stop);
                serving.await??;
                return Ok(());
            }
        }
        weight = (weight + 10) % 100;
        let started = Instant::now();
        let next = compiled.apply([Change::upsert(site(weight))]);
        let diff = compiled.snapshot().diff(next.snapshot());
        compiled = next;
        publisher.publish("default", compiled.snapshot().clone());
        println!(
            "canary at {weight}%: snapshot {} ({:?} to compile; changed: {:?})",
            compiled.snapshot().version(),
            started.elapsed(),
            diff.changed_types().collect::<Vec<_>>()
        );
    }
}
