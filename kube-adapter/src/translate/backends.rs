//! What routes refer to: Service ports (clusters), their EndpointSlices (endpoints) and TLS
//! Secrets. Shared by the Ingress and the Gateway API translations.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ServicePort;
use xdsc_core::diagnostic::ToFieldPath;
use xdsc_core::model;

use super::{Cx, KubeObject, ObjectRef};

/// The label joining an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service port that some route forwards to.
pub(super) struct ClusterUse {
    service: ObjectRef,
    port: ServicePort,
}

/// How a route names a Service port.
#[derive(Clone, Copy)]
pub(super) enum PortRef<'a> {
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
    pub(super) fn service_cluster(
        &mut self,
        from: &ObjectRef,
        field: &dyn ToFieldPath,
        namespace: &str,
        service: &str,
        port: PortRef<'_>,
    ) -> String {
        let id = ObjectRef::new("Service", Some(namespace), service);
        let mut name = format!("k8s:{namespace}/{service}:{port}");
        let Some(KubeObject::Service(svc)) = self.inputs.get(&id) else {
            self.error(
                from,
                field,
                format_args!("service {namespace}/{service} does not exist"),
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
            return name;
        };
        name = format!("k8s:{namespace}/{service}:{}", found.port);
        self.clusters
            .entry(name.clone())
            .or_insert_with(|| ClusterUse {
                service: id,
                port: found.clone(),
            });
        name
    }

    /// The model secret of a `kubernetes.io/tls` Secret, emitted; `None` (with an error)
    /// when the Secret is missing or unusable.
    pub(super) fn tls_secret(
        &mut self,
        from: &ObjectRef,
        field: &dyn ToFieldPath,
        namespace: &str,
        name: &str,
    ) -> Option<String> {
        let id = ObjectRef::new("Secret", Some(namespace), name);
        let Some(KubeObject::Secret(secret)) = self.inputs.get(&id) else {
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
        let value = |key: &str| -> Option<String> {
            if let Some(s) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
                return Some(s.clone());
            }
            let bytes = secret.data.as_ref()?.get(key)?;
            String::from_utf8(bytes.0.clone()).ok()
        };
        let (Some(chain), Some(key)) = (value("tls.crt"), value("tls.key")) else {
            self.error(
                from,
                field,
                format_args!("secret {namespace}/{name} lacks tls.crt or tls.key (as UTF-8 PEM)"),
            );
            return None;
        };
        let model_name = format!("k8s:{namespace}/{name}");
        let source = self.source(&id);
        self.emit(model::Secret {
            name: model_name.clone(),
            tls_certificate: Some(model::TlsCertificate {
                certificate_chain: chain,
                private_key: key,
            }),
            validation_context: None,
            provenance: vec![source],
        });
        Some(model_name)
    }
}

/// Emits the Cluster and Endpoints of every Service port routes forward to.
pub(super) fn emit_clusters(cx: &mut Cx<'_>) {
    let uses = std::mem::take(&mut cx.clusters);
    for (name, u) in uses {
        let mut cluster = model::Cluster::new(name.clone());
        if matches!(
            u.port.app_protocol.as_deref(),
            Some("kubernetes.io/h2c" | "h2c" | "grpc")
        ) {
            cluster.protocol = model::UpstreamProtocol::Http2;
        }
        cluster.provenance = vec![cx.source(&u.service)];
        cx.emit(cluster);
        let endpoints = endpoints(cx, &name, &u);
        cx.emit(endpoints);
    }
}

/// Priority 0: ready; priority 1: serving and terminating, used only when no ready endpoint
/// remains. Keyed so that the output is sorted and an address seen twice keeps its best.
type EndpointKey = (u32, String, String, u16);

fn endpoints(cx: &mut Cx<'_>, name: &str, u: &ClusterUse) -> model::Endpoints {
    let namespace = u.service.namespace.as_deref();
    let mut best: BTreeMap<(String, u16), (u32, String)> = BTreeMap::new();
    let mut sources = vec![u.service.clone()];
    let slices: Vec<(ObjectRef, _)> = cx
        .inputs
        .of_kind("EndpointSlice")
        .filter(|(id, _)| id.namespace.as_deref() == namespace)
        .filter_map(|(id, o)| match o {
            KubeObject::EndpointSlice(s) => Some((id.clone(), s)),
            _ => None,
        })
        .filter(|(_, s)| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                == Some(&u.service.name)
        })
        .collect();
    for (id, slice) in slices {
        sources.push(id.clone());
        if slice.address_type == "FQDN" {
            cx.error(
                &id,
                "addressType",
                "address type FQDN is not supported; slice ignored",
            );
            continue;
        }
        let port_name = u.port.name.as_deref().unwrap_or("");
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
    model::Endpoints {
        name: name.to_owned(),
        localities,
        provenance: cx.sources(&sources),
    }
}
