//! A scripted ADS client over the real gRPC transport, state of the world or delta:
//! [`AdsClient`] sends what a test tells it to and hands back each [`Reply`];
//! [`FakeEnvoy`] subscribes and acknowledges as Envoy does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use xdsc_core::snapshot::ResourceType;

use crate::protocol::Request;

/// One discovery response as the client received it, state of the world or delta.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply(Inner);

#[derive(Clone, Debug, PartialEq)]
enum Inner {
    Sotw(DiscoveryResponse),
    Delta(DeltaDiscoveryResponse),
}

/// Every xDS resource type xdsc serves has its name in field 1.
#[derive(Clone, PartialEq, prost::Message)]
struct Named {
    #[prost(string, tag = "1")]
    name: String,
}

impl Reply {
    /// The type, if the type URL is one of xdsc's.
    pub fn resource_type(&self) -> Option<ResourceType> {
        ResourceType::from_type_url(self.type_url())
    }

    /// The type URL.
    pub fn type_url(&self) -> &str {
        match &self.0 {
            Inner::Sotw(r) => &r.type_url,
            Inner::Delta(r) => &r.type_url,
        }
    }

    /// `version_info` (state of the world) or `system_version_info` (delta).
    pub fn version_info(&self) -> &str {
        match &self.0 {
            Inner::Sotw(r) => &r.version_info,
            Inner::Delta(r) => &r.system_version_info,
        }
    }

    /// The nonce to echo.
    pub fn nonce(&self) -> &str {
        match &self.0 {
            Inner::Sotw(r) => &r.nonce,
            Inner::Delta(r) => &r.nonce,
        }
    }

    /// How many resources it carries.
    pub fn len(&self) -> usize {
        match &self.0 {
            Inner::Sotw(r) => r.resources.len(),
            Inner::Delta(r) => r.resources.len(),
        }
    }

    /// Whether it carries no resources (a delta response may still remove some).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of the resources it carries, in order (decoded from the resources in state
    /// of the world, where a response does not name them).
    pub fn names(&self) -> Vec<String> {
        match &self.0 {
            Inner::Sotw(r) => r
                .resources
                .iter()
                .map(|a| Named::decode(a.value.as_slice()).unwrap_or_default().name)
                .collect(),
            Inner::Delta(r) => r.resources.iter().map(|x| x.name.clone()).collect(),
        }
    }

    /// Delta: the names the client must forget; empty in state of the world.
    pub fn removed(&self) -> &[String] {
        match &self.0 {
            Inner::Sotw(_) => &[],
            Inner::Delta(r) => &r.removed_resources,
        }
    }

    /// The encoded resources (each `Any`'s value), in order.
    pub fn bodies(&self) -> Vec<&[u8]> {
        match &self.0 {
            Inner::Sotw(r) => r.resources.iter().map(|a| a.value.as_slice()).collect(),
            Inner::Delta(r) => r
                .resources
                .iter()
                .filter_map(|x| x.resource.as_ref())
                .map(|a| a.value.as_slice())
                .collect(),
        }
    }

    /// The size of the response on the wire (its protobuf encoding).
    pub fn encoded_len(&self) -> usize {
        match &self.0 {
            Inner::Sotw(r) => r.encoded_len(),
            Inner::Delta(r) => r.encoded_len(),
        }
    }

    /// The state-of-the-world response, if it is one.
    pub fn sotw(&self) -> Option<&DiscoveryResponse> {
        match &self.0 {
            Inner::Sotw(r) => Some(r),
            Inner::Delta(_) => None,
        }
    }

    /// The delta response, if it is one.
    pub fn delta(&self) -> Option<&DeltaDiscoveryResponse> {
        match &self.0 {
            Inner::Sotw(_) => None,
            Inner::Delta(r) => Some(r),
        }
    }
}

enum Tx {
    Sotw(mpsc::Sender<DiscoveryRequest>),
    Delta(mpsc::Sender<DeltaDiscoveryRequest>),
}

enum Rx {
    Sotw(Streaming<DiscoveryResponse>),
    Delta(Streaming<DeltaDiscoveryResponse>),
}

/// How many requests may wait to be written (a script sends a few at a time).
const QUEUED: usize = 16;

fn error_detail(error: Option<String>) -> Option<RpcStatus> {
    error.map(|message| RpcStatus {
        code: 3,
        message,
        details: Vec::new(),
    })
}

/// One ADS stream (`StreamAggregatedResources` or `DeltaAggregatedResources`) driven by a
/// test: requests are [`Request`]s, the state machine's own form for both variants; the node
/// goes on the first one.
pub struct AdsClient {
    tx: Tx,
    rx: Rx,
}

impl std::fmt::Debug for AdsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdsClient")
            .field("delta", &self.is_delta())
            .finish_non_exhaustive()
    }
}

impl AdsClient {
    /// Opens a stream on `channel` whose first request is `first`, sent with `node`.
    pub async fn open(
        channel: tonic::transport::Channel,
        node: Node,
        delta: bool,
        first: Request,
    ) -> Result<AdsClient, Status> {
        let mut client =
            AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(1 << 30);
        if delta {
            let (tx, rx) = mpsc::channel(QUEUED);
            let mut first = Self::delta_request(first);
            first.node = Some(node);
            let _ = tx.send(first).await;
            let rx = client
                .delta_aggregated_resources(ReceiverStream::new(rx))
                .await?
                .into_inner();
            Ok(AdsClient {
                tx: Tx::Delta(tx),
                rx: Rx::Delta(rx),
            })
        } else {
            let (tx, rx) = mpsc::channel(QUEUED);
            let mut first = Self::sotw_request(first);
            first.node = Some(node);
            let _ = tx.send(first).await;
            let rx = client
                .stream_aggregated_resources(ReceiverStream::new(rx))
                .await?
                .into_inner();
            Ok(AdsClient {
                tx: Tx::Sotw(tx),
                rx: Rx::Sotw(rx),
            })
        }
    }

    /// Whether the stream is delta.
    pub fn is_delta(&self) -> bool {
        matches!(self.tx, Tx::Delta(_))
    }

    fn sotw_request(r: Request) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: r.type_url,
            version_info: r.version_info,
            resource_names: r.resource_names,
            response_nonce: r.response_nonce,
            error_detail: error_detail(r.error),
            ..Default::default()
        }
    }

    fn delta_request(r: Request) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: r.type_url,
            resource_names_subscribe: r.subscribe,
            resource_names_unsubscribe: r.unsubscribe,
            initial_resource_versions: r.initial_versions.into_iter().collect(),
            response_nonce: r.response_nonce,
            error_detail: error_detail(r.error),
            ..Default::default()
        }
    }

    /// Sends a request (the fields of the other variant are ignored). On a stream that has
    /// ended it does nothing: [`AdsClient::next`] reports the end.
    pub async fn send(&self, r: Request) {
        let _ = match &self.tx {
            Tx::Sotw(tx) => tx.send(Self::sotw_request(r)).await.is_ok(),
            Tx::Delta(tx) => tx.send(Self::delta_request(r)).await.is_ok(),
        };
    }

    /// Subscribes to `names` of type `t` (state of the world: the complete list, empty for a
    /// wildcard; delta: names added, empty for a wildcard).
    pub async fn subscribe(&self, t: ResourceType, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.send(Request {
            type_url: t.type_url().into(),
            resource_names: names.clone(),
            subscribe: names,
            ..Request::default()
        })
        .await
    }

    /// Acknowledges `r`, keeping the subscription `names` (state of the world; ignored in
    /// delta).
    pub async fn ack(&self, r: &Reply, names: &[&str]) {
        self.answer(r, names, None).await
    }

    /// Rejects `r` with `detail`.
    pub async fn nack(&self, r: &Reply, names: &[&str], detail: &str) {
        self.answer(r, names, Some(detail.to_owned())).await
    }

    async fn answer(&self, r: &Reply, names: &[&str], error: Option<String>) {
        self.send(Request {
            type_url: r.type_url().to_owned(),
            version_info: r.version_info().to_owned(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: r.nonce().to_owned(),
            error,
            ..Request::default()
        })
        .await
    }

    /// The next response; `None` when the server ended the stream, an error status when it
    /// ended it with one.
    pub async fn next(&mut self) -> Result<Option<Reply>, Status> {
        Ok(match &mut self.rx {
            Rx::Sotw(rx) => rx.message().await?.map(|r| Reply(Inner::Sotw(r))),
            Rx::Delta(rx) => rx.message().await?.map(|r| Reply(Inner::Delta(r))),
        })
    }

    /// The next response, which must arrive within `timeout`.
    ///
    /// # Panics
    ///
    /// When none arrives in time or the stream ends (this is for tests).
    pub async fn expect(&mut self, timeout: Duration) -> Reply {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => panic!("the server ended the stream"),
            Ok(Err(status)) => panic!("the server ended the stream: {status}"),
            Err(_) => panic!("no response within {timeout:?}"),
        }
    }

    /// Asserts that nothing arrives within `wait`.
    ///
    /// # Panics
    ///
    /// When a response arrives (this is for tests).
    pub async fn expect_nothing(&mut self, wait: Duration) {
        if let Ok(r) = tokio::time::timeout(wait, self.next()).await {
            panic!("expected nothing, got {r:?}");
        }
    }
}

/// How a [`FakeEnvoy`] subscribes to endpoints and route configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Everything by wildcard (what `xdsc-load` measured first).
    Wildcard,
    /// As real Envoy does with an ADS bootstrap: clusters and listeners by wildcard, endpoints
    /// by the names of the clusters it holds, route configurations by the names its
    /// listeners' HTTP connection managers refer to.
    Named,
}

/// An ADS client that behaves like Envoy: it subscribes to clusters and listeners, then to
/// the endpoints and route configurations they need, and acknowledges every response,
/// asking for the endpoints of new clusters before acknowledging them (as Envoy does while
/// they warm).
#[derive(Debug)]
pub struct FakeEnvoy {
    client: AdsClient,
    mode: Subscription,
    /// State of the world: the names subscribed per type (empty: wildcard).
    names: BTreeMap<ResourceType, Vec<String>>,
    /// The names held per type.
    held: BTreeMap<ResourceType, BTreeSet<String>>,
    /// The last acknowledged version and nonce received, per type.
    last: BTreeMap<ResourceType, (String, String)>,
}

impl FakeEnvoy {
    /// Opens the stream for node `node_id` (fleet `default`) and sends the initial
    /// subscriptions.
    pub async fn start(
        channel: tonic::transport::Channel,
        node_id: &str,
        delta: bool,
        mode: Subscription,
    ) -> Result<FakeEnvoy, Status> {
        let node = Node {
            id: node_id.to_owned(),
            cluster: crate::DEFAULT_FLEET.to_owned(),
            ..Default::default()
        };
        let wildcard = |t: ResourceType| Request {
            type_url: t.type_url().into(),
            ..Request::default()
        };
        let client = AdsClient::open(channel, node, delta, wildcard(ResourceType::Cluster)).await?;
        let initial: &[ResourceType] = match mode {
            Subscription::Wildcard => &[
                ResourceType::Endpoint,
                ResourceType::Listener,
                ResourceType::Route,
            ],
            Subscription::Named => &[ResourceType::Listener],
        };
        for t in initial {
            client.send(wildcard(*t)).await;
        }
        Ok(FakeEnvoy {
            client,
            mode,
            names: BTreeMap::new(),
            held: BTreeMap::new(),
            last: BTreeMap::new(),
        })
    }

    /// The names held of type `t`, in order.
    pub fn held(&self, t: ResourceType) -> Vec<String> {
        self.held
            .get(&t)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Receives the next response, reacts as Envoy would, and returns it; `None` when the
    /// server ended the stream.
    pub async fn step(&mut self) -> Result<Option<Reply>, Status> {
        let Some(reply) = self.client.next().await? else {
            return Ok(None);
        };
        let Some(t) = reply.resource_type() else {
            return Ok(Some(reply));
        };
        let held = self.held.entry(t).or_default();
        // State of the world: clusters and listeners come complete; other types only what
        // changed, wildcard or not.
        let full =
            !self.client.is_delta() && matches!(t, ResourceType::Cluster | ResourceType::Listener);
        if full {
            held.clear();
        }
        held.extend(reply.names());
        for n in reply.removed() {
            held.remove(n);
        }
        if self.mode == Subscription::Named {
            let child = match t {
                ResourceType::Cluster => Some((ResourceType::Endpoint, self.held(t))),
                ResourceType::Listener => Some((ResourceType::Route, route_names(&reply))),
                _ => None,
            };
            if let Some((child, wanted)) = child {
                self.resubscribe(child, wanted).await;
            }
        }
        // A state-of-the-world ACK repeats the subscription; a delta one names nothing.
        let names: Vec<&str> = match self.names.get(&t) {
            Some(names) if !self.client.is_delta() => names.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        self.client.ack(&reply, &names).await;
        self.last.insert(
            t,
            (reply.version_info().to_owned(), reply.nonce().to_owned()),
        );
        Ok(Some(reply))
    }

    /// Subscribes type `t` to exactly `wanted` (named mode).
    async fn resubscribe(&mut self, t: ResourceType, wanted: Vec<String>) {
        let current = self.names.get(&t).cloned().unwrap_or_default();
        if current == wanted && self.names.contains_key(&t) {
            return;
        }
        let (version_info, response_nonce) = self.last.get(&t).cloned().unwrap_or_default();
        let request = if self.client.is_delta() {
            let (old, new): (BTreeSet<&String>, BTreeSet<&String>) =
                (current.iter().collect(), wanted.iter().collect());
            Request {
                type_url: t.type_url().into(),
                subscribe: new.difference(&old).map(|n| n.to_string()).collect(),
                unsubscribe: old.difference(&new).map(|n| n.to_string()).collect(),
                ..Request::default()
            }
        } else {
            Request {
                type_url: t.type_url().into(),
                version_info,
                resource_names: wanted.clone(),
                response_nonce,
                ..Request::default()
            }
        };
        if let Some(held) = self.held.get_mut(&t) {
            held.retain(|n| wanted.contains(n));
        }
        self.names.insert(t, wanted);
        self.client.send(request).await;
    }

    /// Steps until a route configuration has arrived (the last type of an initial sync).
    pub async fn until_synced(&mut self) -> Result<(), Status> {
        while let Some(r) = self.step().await? {
            if r.resource_type() == Some(ResourceType::Route) {
                return Ok(());
            }
        }
        Err(Status::cancelled("the stream ended before it synced"))
    }
}

/// The route configuration names the listeners of a reply refer to (RDS in their HTTP
/// connection managers), sorted.
fn route_names(reply: &Reply) -> Vec<String> {
    let mut out = BTreeSet::new();
    for body in reply.bodies() {
        let Ok(listener) = Listener::decode(body) else {
            continue;
        };
        let chains = listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.as_ref());
        for f in chains.flat_map(|c| &c.filters) {
            if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
                && let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                && let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier
            {
                out.insert(rds.route_config_name);
            }
        }
    }
    out.into_iter().collect()
}
