//! What routes refer to: Service ports (clusters), their EndpointSlices (endpoints) and TLS
//! Secrets. Shared by the Ingress and the Gateway API translations.
//!
//! A route that names a Service port checks it ([`Cx::service_cluster`]) and uses the
//! demand-driven units of that port: [`cluster`] and [`endpoints`], which exist while some
//! unit uses them. So an EndpointSlice change recomputes the Endpoints of its Service's used
//! ports and nothing else. The same for TLS Secrets ([`Cx::tls_secret`], [`secret`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Secret, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use xdsc_core::diagnostic::ToFieldPath;
use xdsc_core::model;

use crate::context::{Cx, UnitKey};
use crate::objects::{KubeKind, KubeObject, ObjectRef};

/// The label joining an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service an EndpointSlice belongs to (its `kubernetes.io/service-name` label).
pub(crate) fn service_of(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .map(String::as_str)
}

/// How a route names a Service port.
#[derive(Clone, Copy)]
pub(crate) enum PortRef<'a> {
    /// By the Service port's number.
    Number(i32),
    /// By the Service port's name.
    Name(&'a str),
}

impl std::fmt::Display for PortRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

impl Cx<'_> {
    /// The cluster of a Service port, recorded so that its Cluster and Endpoints are emitted.
    /// When the Service or port does not exist (or is not supported) this reports an error
    /// and returns the name of a cluster that will not exist: the core answers 503 for it.
    pub(crate) fn service_cluster(
        &mut self,
        from: &ObjectRef,
        field: &dyn ToFieldPath,
        namespace: &str,
        service: &str,
        port: PortRef<'_>,
    ) -> String {
        self.service_cluster_with(from, field, namespace, service, port, false)
    }

    /// [`Cx::service_cluster`]; with `h2`, a cluster that speaks HTTP/2 to the port whatever
    /// its `appProtocol` (gRPC backends): the port's own cluster when its `appProtocol`
    /// already says HTTP/2, else a sibling named `...:PORT:h2c`.
    pub(crate) fn service_cluster_with(
        &mut self,
        from: &ObjectRef,
        field: &dyn ToFieldPath,
        namespace: &str,
        service: &str,
        port: PortRef<'_>,
        h2: bool,
    ) -> String {
        let id = KubeKind::Service.id(Some(namespace), service);
        let mut name = format!("k8s:{namespace}/{service}:{port}");
        let Some(KubeObject::Service(svc)) = self.get(&id) else {
            self.error(
                from,
                field,
                format_args!("service {namespace}/{service} does not exist"),
            );
            self.ref_problem(
                crate::status::reason::BACKEND_NOT_FOUND,
                format!("service {namespace}/{service} does not exist"),
            );
            return name;
        };
        let spec = svc.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            self.error(
                from,
                field,
                format_args!(
                    "service {namespace}/{service} is of type ExternalName, which is not supported"
                ),
            );
            return name;
        }
        let found = spec.ports.iter().flatten().find(|p| match port {
            PortRef::Number(n) => p.port == n,
            PortRef::Name(n) => p.name.as_deref() == Some(n),
        });
        let Some(found) = found else {
            let what = match port {
                PortRef::Number(n) => format!("port {n}"),
                PortRef::Name(n) => format!("port named {n:?}"),
            };
            self.error(
                from,
                field,
                format_args!("service {namespace}/{service} has no {what}"),
            );
            self.ref_problem(
                crate::status::reason::BACKEND_NOT_FOUND,
                format!("service {namespace}/{service} has no {what}"),
            );
            return name;
        };
        let h2 = h2 && !speaks_h2(found);
        name = cluster_name(&id, found.port, h2);
        self.clusters.insert(name.clone());
        self.use_unit(UnitKey::Cluster(id.clone(), found.port, h2));
        self.use_unit(UnitKey::Endpoints(id, found.port, h2));
        name
    }

    /// The model secret of a `kubernetes.io/tls` Secret, emitted; `None` (with an error)
    /// when the Secret is missing or unusable.
    pub(crate) fn tls_secret(
        &mut self,
        from: &ObjectRef,
        field: &dyn ToFieldPath,
        namespace: &str,
        name: &str,
    ) -> Option<String> {
        let id = KubeKind::Secret.id(Some(namespace), name);
        let Some(KubeObject::Secret(secret)) = self.get(&id) else {
            self.error(
                from,
                field,
                format_args!("secret {namespace}/{name} does not exist"),
            );
            return None;
        };
        if secret.type_.as_deref() != Some("kubernetes.io/tls") {
            self.error(
                from,
                field,
                format_args!("secret {namespace}/{name} is not of type kubernetes.io/tls"),
            );
            return None;
        }
        if key_pair(secret).is_none() {
            self.error(
                from,
                field,
                format_args!("secret {namespace}/{name} lacks tls.crt or tls.key (as UTF-8 PEM)"),
            );
            return None;
        }
        self.use_unit(UnitKey::Secret(id));
        Some(format!("k8s:{namespace}/{name}"))
    }
}

/// The certificate chain and private key of a TLS Secret, as UTF-8 PEM.
fn key_pair(secret: &Secret) -> Option<(String, String)> {
    let value = |key: &str| -> Option<String> {
        if let Some(s) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(s.clone());
        }
        let bytes = secret.data.as_ref()?.get(key)?;
        String::from_utf8(bytes.0.clone()).ok()
    };
    Some((value("tls.crt")?, value("tls.key")?))
}

/// The unit of a used TLS Secret: its model secret.
pub(crate) fn secret(cx: &mut Cx<'_>, id: &ObjectRef) {
    let Some(KubeObject::Secret(secret)) = cx.get(id) else {
        return;
    };
    let Some((chain, key)) = key_pair(secret) else {
        return;
    };
    let source = cx.source(id);
    cx.emit(model::Secret {
        name: format!("k8s:{}", id.qualified_name()),
        tls_certificate: Some(model::TlsCertificate {
            certificate_chain: chain,
            private_key: key,
        }),
        validation_context: None,
        provenance: vec![source],
    });
}

/// A used Service port: the port (the first of that number).
fn service_port(cx: &mut Cx<'_>, service: &ObjectRef, port: i32) -> Option<ServicePort> {
    let Some(KubeObject::Service(svc)) = cx.get(service) else {
        return None;
    };
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .find(|p| p.port == port)
        .cloned()
}

/// The cluster (and endpoints) name of a Service port; `h2`: its HTTP/2 sibling.
fn cluster_name(service: &ObjectRef, port: i32, h2: bool) -> String {
    let suffix = if h2 { ":h2c" } else { "" };
    format!("k8s:{}:{port}{suffix}", service.qualified_name())
}

/// Whether a Service port's `appProtocol` says HTTP/2 in clear text.
fn speaks_h2(p: &ServicePort) -> bool {
    matches!(
        p.app_protocol.as_deref(),
        Some("kubernetes.io/h2c" | "h2c" | "grpc")
    )
}

/// The unit of a used Service port's Cluster; `h2`: its HTTP/2 sibling.
pub(crate) fn cluster(cx: &mut Cx<'_>, service: &ObjectRef, port: i32, h2: bool) {
    let Some(p) = service_port(cx, service, port) else {
        return;
    };
    let mut cluster = model::Cluster::new(cluster_name(service, port, h2));
    if h2 || speaks_h2(&p) {
        cluster.protocol = model::UpstreamProtocol::Http2;
    }
    cluster.provenance = vec![cx.source(service)];
    cx.emit(cluster);
}

/// Priority 0: ready; priority 1: serving and terminating, used only when no ready endpoint
/// remains. Keyed so that the output is sorted and an address seen twice keeps its best.
type EndpointKey = (u32, String, String, u16);

/// The unit of a used Service port's Endpoints: its EndpointSlices' endpoints.
pub(crate) fn endpoints(cx: &mut Cx<'_>, service: &ObjectRef, port_number: i32, h2: bool) {
    let Some(service_port) = service_port(cx, service, port_number) else {
        return;
    };
    let namespace = service.namespace.as_deref().unwrap_or("default");
    let mut best: BTreeMap<(String, u16), (u32, String)> = BTreeMap::new();
    let mut sources = vec![service.clone()];
    let slices: Vec<(&ObjectRef, &EndpointSlice)> = cx
        .slices(namespace, &service.name)
        .into_iter()
        .filter_map(|(id, o)| match o {
            KubeObject::EndpointSlice(s) => Some((id, &**s)),
            _ => None,
        })
        .collect();
    for (id, slice) in slices {
        sources.push(id.clone());
        if slice.address_type == "FQDN" {
            cx.error(
                id,
                "addressType",
                "address type FQDN is not supported; slice ignored",
            );
            continue;
        }
        let port_name = service_port.name.as_deref().unwrap_or("");
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port);
        let Some(port) = port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0) else {
            continue;
        };
        for e in &slice.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            let ready = c.ready.unwrap_or(true);
            let serving = c.serving.unwrap_or(true);
            let terminating = c.terminating.unwrap_or(false);
            let priority = if ready {
                0
            } else if serving && terminating {
                1
            } else {
                continue;
            };
            let zone = e.zone.clone().unwrap_or_default();
            for address in &e.addresses {
                let slot = best
                    .entry((address.clone(), port))
                    .or_insert((priority, zone.clone()));
                if priority < slot.0 {
                    *slot = (priority, zone.clone());
                }
            }
        }
    }
    let keys: BTreeSet<EndpointKey> = best
        .into_iter()
        .map(|((address, port), (priority, zone))| (priority, zone, address, port))
        .collect();
    let mut localities: Vec<model::Locality> = Vec::new();
    for (priority, zone, address, port) in keys {
        let fresh = localities
            .last()
            .is_none_or(|l| l.priority != priority || l.zone != zone);
        if fresh {
            localities.push(model::Locality {
                zone: zone.clone(),
                priority,
                ..model::Locality::default()
            });
        }
        if let Some(l) = localities.last_mut() {
            l.endpoints.push(model::Endpoint {
                address,
                port,
                weight: 1,
                health: model::Health::Healthy,
            });
        }
    }
    let provenance = cx.sources(&sources);
    cx.emit(model::Endpoints {
        name: cluster_name(service, port_number, h2),
        localities,
        provenance,
    });
}
