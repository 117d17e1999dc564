//! The kinds the controller watches, derived from the translation's one list
//! ([`xdsc_kube::translate::KubeKind::ALL`]): a kind the translation learns to read is
//! watched without a second list to update. Here is only what the cluster side adds: the
//! selectors that keep the watch small, and whose status the controller writes.
//!
//! The plural names and scopes come from the API server's discovery when a watch starts
//! (see [`crate::watch`]), so a kind whose CRD is not installed is reported as such instead
//! of failing the process; what discovery found is kept here (`Resources`) for the status
//! writer and Secret reads, beneath both.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use xdsc_kube::translate::{KubeKind, ObjectRef, gateway};

/// The API group of the Gateway API.
pub(crate) const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// One kind to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedKind {
    /// Group, version and kind: the version the translation prefers.
    pub gvk: GroupVersionKind,
    /// Every version the translation reads, preferred first: the watch uses the first
    /// the API server serves (TLSRoute is `v1` in newer Gateway API releases, `v1alpha2`
    /// in older ones).
    pub versions: Vec<GroupVersionKind>,
    /// A field selector for the watch (`type=kubernetes.io/tls` for Secrets).
    pub fields: Option<&'static str>,
    /// A label selector for the watch (EndpointSlices that belong to a Service).
    pub labels: Option<&'static str>,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
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

/// The discovered API resources, by kind, for the status writer and Secret reads.
#[derive(Default)]
pub(crate) struct Resources(Mutex<BTreeMap<String, (ApiResource, bool)>>);

impl Resources {
    pub(crate) fn insert(&self, kind: &str, ar: ApiResource, namespaced: bool) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kind.to_owned(), (ar, namespaced));
    }

    /// The resource of a kind and whether it is namespaced, once discovered.
    pub(crate) fn get(&self, kind: &str) -> Option<(ApiResource, bool)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kind)
            .cloned()
    }

    /// An API for one object's kind and namespace.
    pub(crate) fn api(&self, client: &Client, id: &ObjectRef) -> Option<Api<DynamicObject>> {
        let (ar, namespaced) = self.get(&id.kind)?;
        Some(match (&id.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        })
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
    KubeKind::ALL
        .iter()
        .map(|k| {
            let (kind, api_version) = (k.as_str(), k.api_version());
            let (group, version) = match api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", api_version),
            };
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let mut versions = vec![gvk.clone()];
            for (av, k) in gateway::API_VERSIONS {
                if k == kind && av != api_version {
                    let (g, v) = av.split_once('/').unwrap_or(("", av));
                    versions.push(GroupVersionKind::gvk(g, v, kind));
                }
            }
            versions[1..].sort_by_key(|v| std::cmp::Reverse(version_rank(&v.version)));
            WatchedKind {
                gvk,
                versions,
                namespaced: k.namespaced(),
                fields: (*k == KubeKind::Secret).then_some("type=kubernetes.io/tls"),
                labels: (*k == KubeKind::EndpointSlice).then_some("kubernetes.io/service-name"),
                status: *k == KubeKind::Ingress
                    || (group == GATEWAY_GROUP && kind != "ReferenceGrant"),
            }
        })
        .collect()
}

/// Kubernetes version order: `v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha3` > `v1alpha1`.
fn version_rank(v: &str) -> (u32, u8, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits = |s: &str| s.parse::<u32>().unwrap_or(0);
    for (stage, word) in [(1, "alpha"), (2, "beta")] {
        if let Some((major, n)) = rest.split_once(word) {
            return (digits(major), stage, digits(n));
        }
    }
    (digits(rest), 3, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_kind_is_watched_once() {
        let kinds = watched();
        assert_eq!(kinds.len(), KubeKind::ALL.len());
        for kind in KubeKind::ALL {
            let k = kinds
                .iter()
                .find(|k| k.kind() == kind.as_str())
                .unwrap_or_else(|| panic!("{kind} is not watched"));
            assert_eq!(k.gvk.api_version(), kind.api_version());
            assert_eq!(k.namespaced, kind.namespaced());
        }
        let ingress = kinds.iter().find(|k| k.kind() == "Ingress").unwrap();
        assert!(ingress.status && ingress.fields.is_none());
        let tls = kinds.iter().find(|k| k.kind() == "TLSRoute").unwrap();
        let versions: Vec<String> = tls.versions.iter().map(|v| v.api_version()).collect();
        assert_eq!(
            versions,
            [
                "gateway.networking.k8s.io/v1",
                "gateway.networking.k8s.io/v1alpha3",
                "gateway.networking.k8s.io/v1alpha2"
            ]
        );
        let svc = kinds.iter().find(|k| k.kind() == "Service").unwrap();
        assert!(!svc.status);
    }
}
