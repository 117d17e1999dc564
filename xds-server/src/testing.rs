//! Test support, shipped behind the `test-util` feature: an xDS server on a free loopback port
//! ([`TestServer`]), a scripted ADS client that plays Envoy over the real gRPC transport
//! ([`AdsClient`] step by step, [`FakeEnvoy`] subscribing and acknowledging as Envoy does), and
//! a small snapshot fixture ([`snapshot`]).
//!
//! Used by this crate's tests and by the `xdsc-load` scale tool; not for production use. The
//! process-level support (finding and running Envoy, temporary folders, HTTP backends) is the
//! unpublished `xdsc-test-support` crate, which `xdsc-core`'s tests use too.

mod ads;

use serde_json::{Value, json};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Model, Object};
use xdsc_core::snapshot::Snapshot;

pub use ads::{AdsClient, FakeEnvoy, Reply, Subscription};

/// Envoy's default HTTP/2 flow-control windows, per stream and per connection (256 MiB each:
/// `Http2ProtocolOptions.initial_stream_window_size` and `initial_connection_window_size`),
/// which its xDS gRPC client uses unless the bootstrap's `xds_cluster` sets others. tonic's
/// (hyper's) client defaults are 2 MiB per stream and 5 MiB per connection, shared by all the
/// streams of a connection: with 100 streams per connection a fake Envoy would wait for
/// window updates that real Envoy never needs.
pub const ENVOY_WINDOW: u32 = 256 << 20;

/// An endpoint for `http://127.0.0.1:port` with Envoy's flow-control windows
/// ([`ENVOY_WINDOW`]); Envoy advertises HTTP/2's default frame size (16 KiB), as tonic does.
///
/// ```
/// let e = xdsc_server::testing::envoy_endpoint(18000);
/// assert_eq!(e.uri().port_u16(), Some(18000));
/// ```
pub fn envoy_endpoint(port: u16) -> tonic::transport::Endpoint {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a valid address")
        .initial_stream_window_size(ENVOY_WINDOW)
        .initial_connection_window_size(ENVOY_WINDOW)
}

use crate::{Publisher, XdsServer};

/// A snapshot of listener `http` (port 8080) with one virtual host routing everything to the
/// cluster `route_to`, and each of `clusters` with one endpoint at `10.0.0.1:port`. It
/// compiles without diagnostics when `route_to` is one of `clusters`.
///
/// ```
/// use xdsc_core::snapshot::ResourceType;
/// let s = xdsc_server::testing::snapshot("a", &["a", "b"], 80);
/// assert_eq!(s.resources(ResourceType::Cluster).len(), 2);
/// assert!(s.get(ResourceType::Route, "http").is_some());
/// ```
pub fn snapshot(route_to: &str, clusters: &[&str], port: u16) -> Snapshot {
    let mut docs = vec![
        json!({"kind":"Listener","name":"http","port":8080}),
        json!({"kind":"VirtualHost","name":"v","listeners":["http"],"domains":["*"],
               "routes":[{"name":"r","forward":{"backends":[{"cluster":route_to}]}}]}),
    ];
    for c in clusters {
        docs.push(json!({"kind":"Cluster","name":c}));
        docs.push(json!({"kind":"Endpoints","name":c,
            "localities":[{"endpoints":[{"address":"10.0.0.1","port":port}]}]}));
    }
    let objects: Vec<Object> = serde_json::from_value(Value::Array(docs)).expect("a valid model");
    Compiled::new(&Model::from_objects(objects))
        .snapshot()
        .clone()
}

/// An [`XdsServer`] serving on a free 127.0.0.1 port in the current tokio runtime, with the
/// `default` fleet published; it stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use xdsc_server::testing::{FakeEnvoy, Subscription, TestServer, snapshot};
/// let server = TestServer::start(snapshot("a", &["a"], 80), |x| x).await;
/// let mut envoy = FakeEnvoy::start(server.channel().await, "n1", false, Subscription::Named)
///     .await
///     .unwrap();
/// envoy.until_synced().await.unwrap();
/// assert_eq!(envoy.held(xdsc_core::snapshot::ResourceType::Endpoint), ["a"]);
/// # }
/// ```
#[derive(Debug)]
pub struct TestServer {
    /// Publishes snapshots to the server's streams.
    pub publisher: Publisher,
    /// The port it listens on.
    pub port: u16,
    /// The server (for its metrics and admin endpoints).
    pub xds: XdsServer,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl TestServer {
    /// Publishes `first` as the `default` fleet and serves, with the server configured by
    /// `configure` (limits, sync limits, a fleet selector).
    pub async fn start(first: Snapshot, configure: impl FnOnce(XdsServer) -> XdsServer) -> Self {
        let publisher = Publisher::new();
        publisher.publish(crate::DEFAULT_FLEET, first);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let xds = configure(XdsServer::new(publisher.clone()));
        tokio::spawn(xds.clone().serve(listener, async move {
            let _ = stopped.changed().await;
        }));
        TestServer {
            publisher,
            port,
            xds,
            _stop: stop,
        }
    }

    /// A new HTTP/2 connection to the server.
    pub async fn channel(&self) -> tonic::transport::Channel {
        envoy_endpoint(self.port)
            .connect()
            .await
            .expect("connect to the test server")
    }

    /// The value of one unlabeled metric (`None` if it is not rendered).
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.xds
            .metrics()
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }
}

/// Checks that `lists`, the names of one client's successive state-of-the-world requests of
/// one type, are listed as Envoy lists a named subscription (one watch per name; seen with
/// Envoy 1.40): a request naming the same names as the one before names them in the same
/// order, and one naming more puts the new names in front of the kept ones, which keep their
/// order. [`FakeEnvoy`] lists names so, and the server's fast paths for named
/// acknowledgements were measured against it; the real-Envoy test checks Envoy with this
/// too. Returns the first pair of lists that breaks it. Lists that drop names are not
/// checked.
///
/// ```
/// use xdsc_server::testing::listed_as_envoy_lists;
/// let l = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
/// assert!(listed_as_envoy_lists(&[l(&["b", "a"]), l(&["b", "a"]), l(&["c", "b", "a"])]).is_ok());
/// assert!(listed_as_envoy_lists(&[l(&["b", "a"]), l(&["a", "b"])]).is_err());
/// assert!(listed_as_envoy_lists(&[l(&["b", "a"]), l(&["b", "a", "c"])]).is_err());
/// ```
pub fn listed_as_envoy_lists(lists: &[Vec<String>]) -> Result<(), String> {
    for pair in lists.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if !before.iter().all(|n| after.contains(n)) {
            continue;
        }
        let new = after.len().saturating_sub(before.len());
        let in_front = after[..new].iter().all(|n| !before.contains(n));
        if !in_front || after[new..] != before[..] {
            return Err(format!(
                "{before:?} -> {after:?}: not the same names in the same order, or new names in front of the kept ones in their order"
            ));
        }
    }
    Ok(())
}
