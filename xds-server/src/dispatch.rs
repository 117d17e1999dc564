//! Routing gRPC requests to the discovery services by the generated services' names.
//!
//! The streaming methods (`Stream*` and `Delta*` of the aggregated service and of the five
//! per-type services) are answered here: the request body is decoded by [`wire::Requests`], the stream
//! task of [`crate::service`] runs the protocol, and its responses are written by
//! [`wire::Frames`] from the shared resource bytes. The unary `Fetch*` methods (and the
//! `Unimplemented` answer to anything else) go to the generated tonic servers. tonic's own
//! router would bring axum in for six fixed services; this does not.

use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_server::{
    self as cds, ClusterDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    self as ads, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::{
    self as eds, EndpointDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::listener::v3::listener_discovery_service_server::{
    self as lds, ListenerDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::route::v3::route_discovery_service_server::{
    self as rds, RouteDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    self as sds, SecretDiscoveryServiceServer,
};
use tonic::codegen::http;
use xdsc_core::snapshot::ResourceType;

use crate::service::{DeltaWire, Services, Shared, SotwWire, Wire};
use crate::wire;

/// The discovery services by their generated names, with the type a per-type service serves
/// (`None`: the aggregated one).
const SERVICES: [(&str, Option<ResourceType>); 6] = [
    (ads::SERVICE_NAME, None),
    (cds::SERVICE_NAME, Some(ResourceType::Cluster)),
    (eds::SERVICE_NAME, Some(ResourceType::Endpoint)),
    (lds::SERVICE_NAME, Some(ResourceType::Listener)),
    (rds::SERVICE_NAME, Some(ResourceType::Route)),
    (sds::SERVICE_NAME, Some(ResourceType::Secret)),
];

/// A request path's discovery service (by index in [`SERVICES`]) and method.
fn route(path: &str) -> Option<(usize, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let i = SERVICES.iter().position(|(name, _)| *name == service)?;
    Some((i, method))
}

/// Routes gRPC requests to the discovery service their path names.
#[derive(Clone)]
pub(crate) struct Dispatch {
    pub(crate) shared: Shared,
    pub(crate) max: usize,
    pub(crate) ads: AggregatedDiscoveryServiceServer<Services>,
    pub(crate) cds: ClusterDiscoveryServiceServer<Services>,
    pub(crate) eds: EndpointDiscoveryServiceServer<Services>,
    pub(crate) lds: ListenerDiscoveryServiceServer<Services>,
    pub(crate) rds: RouteDiscoveryServiceServer<Services>,
    pub(crate) sds: SecretDiscoveryServiceServer<Services>,
}

type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// A streaming method: the request body decoded by [`wire::Requests`], the responses written
/// by [`wire::Frames`].
fn streaming<W: Wire>(
    shared: &Shared,
    max: usize,
    only: Option<ResourceType>,
    req: HttpRequest,
) -> HttpResponse {
    let peer = req
        .extensions()
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(|info| info.remote_addr())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let handle = crate::connection::Handle::of(req.extensions());
    let inbound = wire::Requests::<W::In>::new(req.into_body(), max);
    let responses = shared.open::<W>(inbound, only, peer, handle);
    let body = tonic::body::Body::new(wire::Frames::new(responses, max));
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

impl tonic::codegen::Service<HttpRequest> for Dispatch {
    type Response = HttpResponse;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<HttpResponse, std::convert::Infallible>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: HttpRequest) -> Self::Future {
        let Some((i, method)) = route(req.uri().path()) else {
            // Unimplemented, as the generated servers answer any other path.
            return self.ads.call(req);
        };
        let only = SERVICES[i].1;
        if method.starts_with("Stream") {
            let response = streaming::<SotwWire>(&self.shared, self.max, only, req);
            return Box::pin(async move { Ok(response) });
        }
        if method.starts_with("Delta") {
            let response = streaming::<DeltaWire>(&self.shared, self.max, only, req);
            return Box::pin(async move { Ok(response) });
        }
        match only {
            None => self.ads.call(req),
            Some(ResourceType::Cluster) => self.cds.call(req),
            Some(ResourceType::Endpoint) => self.eds.call(req),
            Some(ResourceType::Listener) => self.lds.call(req),
            Some(ResourceType::Route) => self.rds.call(req),
            Some(ResourceType::Secret) => self.sds.call(req),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_the_generated_services() {
        assert_eq!(
            route(
                "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
            ),
            Some((0, "DeltaAggregatedResources"))
        );
        let (i, method) =
            route("/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets").unwrap();
        assert_eq!(
            (SERVICES[i].1, method),
            (Some(ResourceType::Secret), "FetchSecrets")
        );
        assert_eq!(route("/grpc.health.v1.Health/Check"), None);
        assert_eq!(route("no-slash"), None);
    }
}
