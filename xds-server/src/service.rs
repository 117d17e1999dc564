//! The tonic services: aggregated (ADS) and per-type discovery, state of the world and delta.
//!
//! Each stream runs one task that only moves events: requests from Envoy and newer snapshots
//! from its fleet's cell go into the [`Stream`] state machine; the responses it decides on go
//! out through a small bounded channel. A client that stops reading blocks only its own task
//! (HTTP/2 flow control and the channel bound what it holds); the fleet's cell keeps only the
//! newest snapshot, so nothing queues up behind it. Large responses wait for a server-wide
//! sync permit ([`crate::budget`]), so the encoded copies in flight do not scale with the
//! number of streams.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_server::ClusterDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryService;
use envoy_types::pb::envoy::service::listener::v3::listener_discovery_service_server::ListenerDiscoveryService;
use envoy_types::pb::envoy::service::route::v3::route_discovery_service_server::RouteDiscoveryService;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryService;
use tokio::sync::mpsc;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status, Streaming};
use xdsc_core::snapshot::ResourceType;

use crate::budget::{Budget, Permit};
use crate::clients::Clients;
use crate::connection::{self, SHUTTING_DOWN};
use crate::events::{Observer, StreamEvent, StreamInfo, StreamObserver};
use crate::protocol::{self, Event, Limits, ProtocolError, Response, Stream, Variant};
use crate::publish::Publisher;

/// Chooses a node's fleet. The default is the node's `cluster` field, or `default`.
pub type FleetSelector = Arc<dyn Fn(&Node) -> String + Send + Sync>;

/// The default fleet selector: the node's `cluster`, `default` when empty.
pub fn fleet_by_node_cluster() -> FleetSelector {
    Arc::new(|node: &Node| {
        if node.cluster.is_empty() {
            crate::publish::DEFAULT_FLEET.to_owned()
        } else {
            node.cluster.clone()
        }
    })
}

/// What every stream shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) publisher: Publisher,
    pub(crate) clients: Clients,
    pub(crate) selector: FleetSelector,
    pub(crate) limits: Limits,
    pub(crate) budget: Budget,
    /// The embedder's observer of stream events, if any.
    pub(crate) observer: Option<Observer>,
    /// Whole-map response bodies shared by the streams being sent them.
    pub(crate) bodies: Arc<crate::wire::Bodies>,
    /// What the streams' protocol state machines share (encoded subscriptions).
    pub(crate) streams: protocol::Shared,
}

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How responses are queued per stream: small, so a stalled client holds little. With at most
/// one unacknowledged response per type, an honest client never fills it.
const OUTBOUND: usize = 5;

/// How many requests a stream may send before the first snapshot is published (one per type
/// and a few more; an honest Envoy sends one per type it subscribes to).
const EARLY_REQUESTS: usize = 16;

fn status(e: ProtocolError) -> Status {
    match e {
        ProtocolError::TooManyNames { .. } => Status::resource_exhausted(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

/// A later request of a stream: its node, when it names one, must be the stream's (the first
/// request's node chose the fleet and the registry entry).
fn later<W: Wire>(node: &Node, m: W::In) -> Result<protocol::Request, Status> {
    match W::decode(m) {
        (Some(n), _) if n.id != node.id || n.cluster != node.cluster => {
            Err(Status::invalid_argument(format!(
                "the node changed mid-stream, from {:?} (cluster {:?}) to {:?} (cluster {:?})",
                node.id, node.cluster, n.id, n.cluster
            )))
        }
        (_, request) => Ok(request),
    }
}

/// Sleeps until `deadline` (`None`: never; the caller's `if` keeps that arm off).
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn from_sotw(r: crate::wire::SotwRequest) -> (Option<Node>, protocol::Request) {
    (r.node, r.request)
}

fn from_delta(r: DeltaDiscoveryRequest) -> (Option<Node>, protocol::Request) {
    let error = r.error_detail.map(|s| {
        if s.message.is_empty() {
            format!("code {}", s.code)
        } else {
            s.message
        }
    });
    let mut initial: Vec<(String, String)> = r.initial_resource_versions.into_iter().collect();
    initial.sort();
    (
        r.node,
        protocol::Request {
            type_url: r.type_url,
            subscribe: r.resource_names_subscribe,
            unsubscribe: r.resource_names_unsubscribe,
            initial_versions: initial,
            response_nonce: r.response_nonce,
            error,
            ..Default::default()
        },
    )
}

/// The wire forms of one protocol variant.
pub(crate) trait Wire: Send + 'static {
    type In: crate::wire::Decode;
    type Out: crate::wire::Pieces;
    const VARIANT: Variant;
    /// How a whole map is written, for the shared bodies (`wire::Bodies`).
    const FORM: crate::wire::Form;
    fn decode(m: Self::In) -> (Option<Node>, protocol::Request);
    /// `r`, its resources written as `body`.
    fn encode(r: &Response, body: crate::wire::Body) -> Self::Out;
}

pub(crate) struct SotwWire;
impl Wire for SotwWire {
    type In = crate::wire::SotwRequest;
    type Out = crate::wire::SotwOut;
    const VARIANT: Variant = Variant::Sotw;
    fn decode(m: crate::wire::SotwRequest) -> (Option<Node>, protocol::Request) {
        from_sotw(m)
    }
    const FORM: crate::wire::Form = crate::wire::Form::Sotw;
    fn encode(r: &Response, body: crate::wire::Body) -> crate::wire::SotwOut {
        crate::wire::SotwOut::new(r, body)
    }
}

pub(crate) struct DeltaWire;
impl Wire for DeltaWire {
    type In = DeltaDiscoveryRequest;
    type Out = crate::wire::DeltaOut;
    const VARIANT: Variant = Variant::Delta;
    fn decode(m: DeltaDiscoveryRequest) -> (Option<Node>, protocol::Request) {
        from_delta(m)
    }
    const FORM: crate::wire::Form = crate::wire::Form::Delta;
    fn encode(r: &Response, body: crate::wire::Body) -> crate::wire::DeltaOut {
        crate::wire::DeltaOut::new(r, body)
    }
}

impl Shared {
    /// Starts a stream task; returns its responses (and the status it ends with, if any).
    pub(crate) fn open<W: Wire>(
        &self,
        inbound: crate::wire::Requests<W::In>,
        only: Option<ResourceType>,
        peer: String,
        handle: connection::Handle,
    ) -> mpsc::Receiver<crate::wire::Outgoing<W::Out>> {
        let (tx, rx) = mpsc::channel::<crate::wire::Outgoing<W::Out>>(OUTBOUND);
        let shared = self.clone();
        tokio::spawn(async move {
            shared.publisher.metrics.stream_opened();
            let mut obs = StreamObserver::new(shared.observer.clone());
            // The server shutting down ends the stream with a status, so Envoy reconnects (to
            // another replica) at once instead of waiting for the stream to time out.
            let result = tokio::select! {
                result = shared.drive::<W>(inbound, only, peer, &handle, &tx, &mut obs) => result,
                () = handle.closed() => Err(Status::unavailable(SHUTTING_DOWN)),
            };
            shared.publisher.metrics.stream_closed();
            obs.offer(|stream| StreamEvent::Closed {
                stream,
                status: result
                    .as_ref()
                    .err()
                    .map(|s| format!("{:?}: {}", s.code(), s.message())),
            });
            if let Err(status) = result {
                let _ = tx.send(Err(status)).await;
            }
        });
        rx
    }

    async fn drive<W: Wire>(
        &self,
        mut inbound: crate::wire::Requests<W::In>,
        only: Option<ResourceType>,
        peer: String,
        handle: &connection::Handle,
        tx: &mpsc::Sender<crate::wire::Outgoing<W::Out>>,
        obs: &mut StreamObserver,
    ) -> Result<(), Status> {
        // The first request names the node, which selects the fleet.
        let Some(first) = inbound.message().await? else {
            return Ok(());
        };
        let (node, request) = W::decode(first);
        let node = node.unwrap_or_default();
        let wanted = (self.selector)(&node);
        let mut added = self.publisher.fleets_added();
        // Nothing is answered before the first snapshot is published: against the empty
        // placeholder a reconnecting Envoy would be told to drop what it holds (a control
        // plane restarting before its sources have synced). Requests that arrive meanwhile
        // are kept, a few at most, and reading on notices a client that leaves (or a
        // graceful shutdown closing the stream).
        let mut early = Vec::new();
        while !self.publisher.is_ready() {
            tokio::select! {
                changed = added.changed() => if changed.is_err() {
                    return Ok(());
                },
                message = inbound.message() => match message? {
                    Some(m) if early.len() < EARLY_REQUESTS => early.push(m),
                    Some(_) => {
                        return Err(Status::resource_exhausted(
                            "too many requests before the first snapshot was published",
                        ));
                    }
                    None => return Ok(()),
                },
            }
        }
        let (mut fleet, mut cell) = self.publisher.watch(&wanted);
        let snapshot = cell.borrow_and_update().clone();
        let mut stream =
            Stream::new(W::VARIANT, only, self.limits, snapshot).with_shared(self.streams.clone());
        let id = self
            .clients
            .register(&node, &fleet, &peer, W::VARIANT, only);
        let _guard = crate::clients::Deregister {
            clients: self.clients.clone(),
            id,
        };
        tracing::info!(node = %node.id, cluster = %node.cluster, fleet = %fleet, variant = ?W::VARIANT, "xDS stream opened");
        obs.opened(|| StreamInfo {
            id,
            node: node.clone(),
            fleet: fleet.to_string(),
            peer: peer.clone(),
            variant: W::VARIANT,
            only,
        });
        let obs = &*obs;
        let mut local = Local {
            permit: Permit::new(self.publisher.metrics.clone()),
            sent: SentAt::default(),
        };
        let mut step = self.step::<W>(&mut stream, request, obs)?;
        for m in early {
            self.emit::<W>(&mut stream, (id, &node), step, tx, &mut local, obs)
                .await?;
            step = self.step::<W>(&mut stream, later::<W>(&node, m)?, obs)?;
        }
        // When the client was last heard from, or last given something to answer.
        let mut heard = tokio::time::Instant::now();
        loop {
            let waiting = stream.awaiting_ack();
            self.emit::<W>(&mut stream, (id, &node), step, tx, &mut local, obs)
                .await?;
            if !stream.awaiting_ack() {
                local.permit.release();
            } else if !waiting {
                heard = tokio::time::Instant::now();
            }
            let stalled = handle
                .response_timeout
                .filter(|_| stream.awaiting_ack())
                .map(|t| heard + t);
            step = tokio::select! {
                message = inbound.message() => match message? {
                    Some(m) => {
                        heard = tokio::time::Instant::now();
                        self.step::<W>(&mut stream, later::<W>(&node, m)?, obs)?
                    }
                    None => return Ok(()),
                },
                // A client that neither answers nor sends anything has stopped reading: its
                // responses would stay in memory, encoded, for as long as it stays connected.
                () = sleep_until(stalled), if stalled.is_some() => {
                    tracing::warn!(node = %node.id, %peer, timeout = ?handle.response_timeout, "xDS client stalled: no ACK or NACK; closing its connection");
                    handle.stalled();
                    return Err(Status::deadline_exceeded(
                        "no ACK or NACK within the response timeout; the connection is closed",
                    ));
                }
                changed = cell.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let snapshot = cell.borrow_and_update().clone();
                    stream.on_snapshot(snapshot)
                }
                // On the default fallback: switch once the node's own fleet is published.
                Ok(()) = added.changed(), if fleet != wanted => {
                    if self.publisher.has_fleet(&wanted) {
                        (fleet, cell) = self.publisher.watch(&wanted);
                        self.clients.set_fleet(id, &fleet);
                        tracing::info!(node = %node.id, fleet = %fleet, "fleet published; stream switched to it");
                        let snapshot = cell.borrow_and_update().clone();
                        stream.on_snapshot(snapshot)
                    } else {
                        protocol::Step::default()
                    }
                }
                () = local.permit.expired() => {
                    tracing::debug!(node = %node.id, "sync permit held too long; given back");
                    local.permit.release();
                    protocol::Step::default()
                }
            };
        }
    }

    fn step<W: Wire>(
        &self,
        stream: &mut Stream,
        request: protocol::Request,
        obs: &StreamObserver,
    ) -> Result<protocol::Step, Status> {
        obs.offer(|stream| StreamEvent::Request {
            stream,
            request: request.clone(),
        });
        match W::VARIANT {
            Variant::Sotw => stream.on_request(request),
            Variant::Delta => stream.on_delta_request(request),
        }
        .map_err(status)
    }

    async fn emit<W: Wire>(
        &self,
        stream: &mut Stream,
        (id, node): (u64, &Node),
        step: protocol::Step,
        tx: &mpsc::Sender<crate::wire::Outgoing<W::Out>>,
        local: &mut Local,
        obs: &StreamObserver,
    ) -> Result<(), Status> {
        let metrics = &self.publisher.metrics;
        let permit = &mut local.permit;
        for event in &step.events {
            match event {
                Event::Ack {
                    resource_type,
                    version_info,
                } => {
                    metrics.ack(*resource_type, local.sent.take(*resource_type));
                    self.clients.rejections.ack(id, *resource_type);
                    tracing::debug!(node = %node.id, r#type = %resource_type, version = %version_info, "ACK");
                }
                Event::Nack(n) => {
                    metrics.nack(n.resource_type);
                    let _ = local.sent.take(n.resource_type);
                    self.clients.rejections.nack(id, &node.id, n);
                    let sources: Vec<String> =
                        n.provenance.iter().map(ToString::to_string).collect();
                    tracing::warn!(node = %node.id, r#type = %n.resource_type, version = %n.version_info, detail = %n.detail, sources = ?sources, "NACK: Envoy rejected a response");
                }
                Event::StaleNonce { resource_type } => {
                    tracing::debug!(node = %node.id, r#type = %resource_type, "request with a stale nonce");
                }
            }
        }
        obs.protocol(&step.events);
        for r in &step.responses {
            metrics.pushed(r.resource_type, r.resources.len(), r.resource_bytes());
            tracing::debug!(node = %node.id, r#type = %r.resource_type, version = %r.version_info, resources = r.resources.len(), removed = r.removed.len(), "push");
        }
        // The registry copies the stream's subscriptions: only when something happened.
        if !step.responses.is_empty() || !step.events.is_empty() {
            self.clients.update(id, stream.status());
        }
        for r in step.responses {
            let large = self.budget.is_large(r.resource_bytes());
            if large {
                permit.acquire(&self.budget).await;
            }
            // A response of a whole map (every wildcard stream's initial sync) is written from
            // the body all streams share, encoded once per type version (and kept for the
            // wave when the response is sent under a permit).
            let whole = self.bodies.whole(
                W::FORM,
                r.resource_type,
                stream.snapshot().resources(r.resource_type),
                &r.version_info,
                &r.resources,
                large,
            );
            let body = match whole {
                Some((encoded, fresh)) => {
                    metrics.shared_body(fresh);
                    crate::wire::Body::Whole(encoded)
                }
                None => crate::wire::Body::Each(r.resources.to_vec()),
            };
            let send = tx.send(Ok(Box::new(W::encode(&r, body))));
            tokio::pin!(send);
            // A full channel means the client is not reading; its permit still times out.
            let sent = loop {
                tokio::select! {
                    sent = &mut send => break sent,
                    () = permit.expired() => permit.release(),
                }
            };
            if sent.is_err() {
                return Err(Status::cancelled("client went away"));
            }
            local.sent.put(r.resource_type);
            obs.sent(&r);
        }
        Ok(())
    }
}

/// What a stream task keeps beside the protocol state: its sync permit, and when the
/// response of each type awaiting its ACK was sent (for `xdsc_push_ack_seconds`).
struct Local {
    permit: Permit,
    sent: SentAt,
}

/// When the unacknowledged response of each type was handed to the connection.
#[derive(Default)]
struct SentAt([Option<tokio::time::Instant>; 5]);

impl SentAt {
    fn slot(&mut self, t: ResourceType) -> &mut Option<tokio::time::Instant> {
        let i = ResourceType::ALL.iter().position(|x| *x == t).unwrap_or(0);
        &mut self.0[i]
    }

    fn put(&mut self, t: ResourceType) {
        *self.slot(t) = Some(tokio::time::Instant::now());
    }

    /// How long ago the response of type `t` was sent (and forgets it).
    fn take(&mut self, t: ResourceType) -> Option<std::time::Duration> {
        self.slot(t).take().map(|at| at.elapsed())
    }
}

/// The generated tonic servers of one server, for the unary `Fetch*` methods. The streaming
/// methods never reach them: [`crate::dispatch`] answers those from the shared resource bytes.
#[derive(Clone)]
pub(crate) struct Services(pub(crate) Shared);

/// The answer of a streaming method of the generated servers, which [`crate::dispatch`]
/// intercepts before they are called.
fn answered_by_dispatch<T>(_: GrpcRequest<T>) -> Status {
    Status::internal("streaming discovery methods are served by xdsc's dispatch")
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Services {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: GrpcRequest<Streaming<DiscoveryRequest>>,
    ) -> Result<GrpcResponse<Self::StreamAggregatedResourcesStream>, Status> {
        Err(answered_by_dispatch(request))
    }

    async fn delta_aggregated_resources(
        &self,
        request: GrpcRequest<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<GrpcResponse<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(answered_by_dispatch(request))
    }
}

impl Services {
    /// A unary fetch: the current state of the requested names.
    fn fetch(
        &self,
        t: ResourceType,
        request: DiscoveryRequest,
    ) -> Result<DiscoveryResponse, Status> {
        let (node, request) = from_sotw(request.into());
        let fleet = (self.0.selector)(&node.unwrap_or_default());
        let (_, cell) = self.0.publisher.watch(&fleet);
        let snapshot = cell.borrow().clone();
        let mut stream = Stream::new(Variant::Sotw, Some(t), self.0.limits, snapshot)
            .with_shared(self.0.streams.clone());
        let request = protocol::Request {
            response_nonce: String::new(),
            version_info: String::new(),
            ..request
        };
        let step = stream.on_request(request).map_err(status)?;
        Ok(step
            .responses
            .first()
            .map(crate::wire::SotwOut::to_generated)
            .unwrap_or_else(|| DiscoveryResponse {
                type_url: t.type_url().to_owned(),
                ..Default::default()
            }))
    }
}

macro_rules! per_type_service {
    ($trait:ident, $t:expr, $stream:ident, $stream_fn:ident, $delta:ident, $delta_fn:ident, $fetch_fn:ident) => {
        #[tonic::async_trait]
        impl $trait for Services {
            type $stream = BoxStream<DiscoveryResponse>;
            type $delta = BoxStream<DeltaDiscoveryResponse>;

            async fn $stream_fn(
                &self,
                request: GrpcRequest<Streaming<DiscoveryRequest>>,
            ) -> Result<GrpcResponse<Self::$stream>, Status> {
                Err(answered_by_dispatch(request))
            }

            async fn $delta_fn(
                &self,
                request: GrpcRequest<Streaming<DeltaDiscoveryRequest>>,
            ) -> Result<GrpcResponse<Self::$delta>, Status> {
                Err(answered_by_dispatch(request))
            }

            async fn $fetch_fn(
                &self,
                request: GrpcRequest<DiscoveryRequest>,
            ) -> Result<GrpcResponse<DiscoveryResponse>, Status> {
                self.fetch($t, request.into_inner()).map(GrpcResponse::new)
            }
        }
    };
}

per_type_service!(
    ClusterDiscoveryService,
    ResourceType::Cluster,
    StreamClustersStream,
    stream_clusters,
    DeltaClustersStream,
    delta_clusters,
    fetch_clusters
);
per_type_service!(
    EndpointDiscoveryService,
    ResourceType::Endpoint,
    StreamEndpointsStream,
    stream_endpoints,
    DeltaEndpointsStream,
    delta_endpoints,
    fetch_endpoints
);
per_type_service!(
    ListenerDiscoveryService,
    ResourceType::Listener,
    StreamListenersStream,
    stream_listeners,
    DeltaListenersStream,
    delta_listeners,
    fetch_listeners
);
per_type_service!(
    RouteDiscoveryService,
    ResourceType::Route,
    StreamRoutesStream,
    stream_routes,
    DeltaRoutesStream,
    delta_routes,
    fetch_routes
);
per_type_service!(
    SecretDiscoveryService,
    ResourceType::Secret,
    StreamSecretsStream,
    stream_secrets,
    DeltaSecretsStream,
    delta_secrets,
    fetch_secrets
);
