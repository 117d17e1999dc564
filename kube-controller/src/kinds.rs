//! The kinds the controller watches, derived from the translation's one list
//! ([`xdsc_kube::translate::SUPPORTED_KINDS`]): a kind the translation learns to read is
//! watched without a second list to update. Here is only what the cluster side adds: the
//! selectors that keep the watch small, and whose status the controller writes.
//!
//! Not here: the plural names and scopes, which come from the API server's discovery when a
//! watch starts (see [`crate::watch`]), so a kind whose CRD is not installed is reported as
//! such instead of failing the process.

use kube::api::GroupVersionKind;
use xdsc_kube::translate::SUPPORTED_KINDS;

/// The API group of the Gateway API.
pub(crate) const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// One kind to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedKind {
    /// Group, version and kind.
    pub gvk: GroupVersionKind,
    /// A field selector for the watch (`type=kubernetes.io/tls` for Secrets).
    pub fields: Option<&'static str>,
    /// A label selector for the watch (EndpointSlices that belong to a Service).
    pub labels: Option<&'static str>,
    /// Whether the controller writes this kind's status (so the watch keeps the observed
    /// status beside the object, for comparing and for `lastTransitionTime`).
    pub status: bool,
}

impl WatchedKind {
    /// The kind's name (`Ingress`).
    pub fn kind(&self) -> &str {
        &self.gvk.kind
    }
}

/// Every kind the translation reads, as watches.
///
/// ```
/// let kinds = xdsc_kube_controller::kinds::watched();
/// let secret = kinds.iter().find(|k| k.kind() == "Secret").unwrap();
/// assert_eq!(secret.fields, Some("type=kubernetes.io/tls"));
/// assert!(kinds.iter().any(|k| k.kind() == "HTTPRoute" && k.status));
/// ```
pub fn watched() -> Vec<WatchedKind> {
    SUPPORTED_KINDS
        .iter()
        .map(|(api_version, kind)| {
            let (group, version) = match api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", *api_version),
            };
            WatchedKind {
                gvk: GroupVersionKind::gvk(group, version, kind),
                fields: (*kind == "Secret").then_some("type=kubernetes.io/tls"),
                labels: (*kind == "EndpointSlice").then_some("kubernetes.io/service-name"),
                status: *kind == "Ingress" || (group == GATEWAY_GROUP && *kind != "ReferenceGrant"),
            }
        })
        .collect()
}

/// Whether a kind is cluster-scoped, for kinds that have not been discovered yet (the
/// translation's own rule; discovery's answer wins once known).
pub(crate) fn cluster_scoped(kind: &str) -> bool {
    matches!(kind, "IngressClass" | "GatewayClass" | "Namespace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_kind_is_watched_once() {
        let kinds = watched();
        assert_eq!(kinds.len(), SUPPORTED_KINDS.len());
        for (api_version, kind) in SUPPORTED_KINDS {
            let k = kinds.iter().find(|k| k.kind() == kind).expect(kind);
            assert_eq!(k.gvk.api_version(), api_version);
        }
        let ingress = kinds.iter().find(|k| k.kind() == "Ingress").unwrap();
        assert!(ingress.status && ingress.fields.is_none());
        let svc = kinds.iter().find(|k| k.kind() == "Service").unwrap();
        assert!(!svc.status);
    }
}
