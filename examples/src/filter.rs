//! The escape-hatch example (`embed-filter`): an xdsc model whose listener carries an HTTP
//! filter xdsc has no model type for (Lua, given as the prost message of `envoy_types`),
//! compiled with `xdsc-core` and served with `xdsc-server`, with a stream observer reporting
//! what Envoy acknowledges and rejects. `tests/embed_filter.rs` serves it to a real Envoy and
//! finds the filter in Envoy's config dump and in its answers.
//!
//! Not here: anything an embedder would not write: there is no xdsc-specific glue beyond the
//! model, `Compiled`, `Publisher` and `XdsServer`.

use std::future::Future;

use xdsc_core::compile::Compiled;
use xdsc_core::envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use xdsc_core::envoy_types::pb::envoy::extensions::filters::http::lua::v3::Lua;
use xdsc_core::model::{
    Cluster, Endpoint, Endpoints, Listener, Model, NamedExtension, Object, Route, TypedConfig,
    VirtualHost,
};
use xdsc_server::events::{self, StreamEvent};
use xdsc_server::{Publisher, XdsServer};

/// The Lua filter's script: it answers `/lua` itself and passes every other request on.
pub const LUA: &str = r#"function envoy_on_request(handle)
  if handle:headers():get(":path") == "/lua" then
    handle:respond({[":status"] = "200"}, "hello from lua")
  end
end
"#;

/// The body the Lua filter answers `/lua` with.
pub const LUA_BODY: &str = "hello from lua";

/// The model: an HTTP listener on `listener_port` with the Lua filter before the router, its
/// stat prefix as a dashboard would know it, and every path routed to the cluster `web`,
/// whose one endpoint is `127.0.0.1:backend_port`.
///
/// ```
/// let m = xdsc_examples::filter::model(8080, 10000);
/// let compiled = xdsc_core::compile::Compiled::new(&m);
/// assert!(compiled.diagnostics().is_empty());
/// ```
pub fn model(backend_port: u16, listener_port: u16) -> Model {
    let lua = Lua {
        default_source_code: Some(DataSource {
            specifier: Some(Specifier::InlineString(LUA.to_owned())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut listener = Listener::new("http", listener_port);
    listener.address = "127.0.0.1".to_owned();
    listener.stat_prefix = Some("ingress_http".to_owned());
    listener.http_filters.push(NamedExtension::new(
        "envoy.filters.http.lua",
        TypedConfig::from_message(&lua),
    ));
    let mut site = VirtualHost::new("site", ["http"], ["*"]);
    site.routes.push(Route::forward_prefix("all", "/", "web"));
    Model::from_objects([
        Object::Listener(listener),
        Object::VirtualHost(site),
        Object::Cluster(Cluster::new("web")),
        Object::Endpoints(Endpoints::new(
            "web",
            [Endpoint::new("127.0.0.1", backend_port)],
        )),
    ])
}

/// Compiles `model`, publishes it as the `default` fleet and serves xDS on `xds` until
/// `shutdown`; every stream event goes to `on_event` (from a task of its own, so a slow
/// handler never slows a stream: events beyond 1,024 waiting are dropped and counted).
///
/// Returns the publisher (for the next models: `compiled.update(&next)` then `publish`) and
/// the serving task.
pub fn serve(
    model: &Model,
    xds: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut on_event: impl FnMut(&StreamEvent) + Send + 'static,
) -> Result<
    (
        Publisher,
        tokio::task::JoinHandle<Result<(), xdsc_server::Error>>,
    ),
    String,
> {
    let compiled = Compiled::new(model);
    if compiled.has_errors() {
        let lines: Vec<String> = compiled
            .diagnostics()
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(lines.join("\n"));
    }
    let publisher = Publisher::new();
    publisher.publish("default", compiled.snapshot().clone());
    let (observer, mut events) = events::observer(1024);
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            on_event(&e);
        }
    });
    let server = XdsServer::new(publisher.clone()).with_observer(observer);
    Ok((publisher, tokio::spawn(server.serve(xds, shutdown))))
}

/// One line for an event, as the example program prints them.
///
/// ```
/// // Requests are left out: Envoy sends one per response.
/// # let _ = xdsc_examples::filter::describe;
/// ```
pub fn describe(e: &StreamEvent) -> Option<String> {
    let node = &e.stream().node.id;
    Some(match e {
        StreamEvent::Opened { stream } => format!("{node}: stream opened from {}", stream.peer),
        StreamEvent::ResponseSent {
            resource_type,
            version_info,
            resources,
            ..
        } => format!(
            "{node}: sent {resource_type} {version_info} ({} resources)",
            resources.len()
        ),
        StreamEvent::Ack {
            resource_type,
            version_info,
            ..
        } => format!("{node}: ACK {resource_type} {version_info}"),
        StreamEvent::Nack { nack, .. } => format!(
            "{node}: NACK {} {}: {}",
            nack.resource_type, nack.version_info, nack.detail
        ),
        StreamEvent::Closed { status, .. } => format!("{node}: stream closed ({status:?})"),
        StreamEvent::Request { .. } => return None,
    })
}
