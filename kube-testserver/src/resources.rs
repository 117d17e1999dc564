//! The kinds the server serves: group, versions, plural, kind, scope and whether a `status`
//! subresource exists, and the discovery documents built from them.
//!
//! This is a table, not a schema: the server knows no fields beyond `metadata`, `status` and
//! the few named in [`ResourceDef::field_labels`]. Every served version of a resource shares
//! one stored copy; an object read at another version only has its `apiVersion` rewritten (as
//! a CustomResourceDefinition with no conversion webhook does).

use serde_json::{Value, json};

/// Verbs served on every collection and object.
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs served on a `status` subresource.
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];
/// Field selector labels every resource accepts.
const COMMON_FIELDS: [&str; 2] = ["metadata.name", "metadata.namespace"];

/// One served resource (a kind and its REST path).
///
/// ```
/// use xdsc_kube_testserver::ResourceDef;
/// let widgets = ResourceDef::new("example.com", &["v1"], "Widget", "widgets").namespaced().with_status();
/// assert_eq!(widgets.api_version(), "example.com/v1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group, empty for the core group.
    pub group: String,
    /// Served versions; the first is the preferred one.
    pub versions: Vec<String>,
    /// Kind, e.g. `Ingress`.
    pub kind: String,
    /// Plural resource name used in paths, e.g. `ingresses`.
    pub plural: String,
    /// Singular name, lower case.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether the resource has a `status` subresource: the main resource then ignores
    /// `.status` on writes and `/status` changes only `.status`.
    pub status: bool,
    /// Short names for kubectl (`ing`, `svc`).
    pub short_names: Vec<String>,
    /// Field selector labels beyond `metadata.name` and `metadata.namespace` (dotted paths
    /// into the object), e.g. `type` for Secrets.
    pub field_labels: Vec<String>,
}

impl ResourceDef {
    /// A cluster-scoped resource without a status subresource; chain the other builders.
    pub fn new(group: &str, versions: &[&str], kind: &str, plural: &str) -> Self {
        Self {
            group: group.to_owned(),
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            namespaced: false,
            status: false,
            short_names: Vec::new(),
            field_labels: Vec::new(),
        }
    }

    /// Objects live in a namespace.
    pub fn namespaced(mut self) -> Self {
        self.namespaced = true;
        self
    }

    /// The resource has a `status` subresource.
    pub fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    /// Short names kubectl accepts.
    pub fn short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Extra field selector labels.
    pub fn field_labels(mut self, labels: &[&str]) -> Self {
        self.field_labels = labels.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// `group/version` (or `version` for the core group) of the preferred version.
    pub fn api_version(&self) -> String {
        self.api_version_of(&self.versions[0])
    }

    /// `group/version` for `version`.
    pub fn api_version_of(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The name used in error messages: `ingresses.networking.k8s.io`, or `services`.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether `label` may appear in a field selector for this resource.
    pub(crate) fn accepts_field(&self, label: &str) -> bool {
        COMMON_FIELDS.contains(&label) || self.field_labels.iter().any(|f| f == label)
    }

    /// The kinds xdsc watches and writes, with the versions a current cluster serves.
    pub fn builtin() -> Vec<ResourceDef> {
        let gw = "gateway.networking.k8s.io";
        vec![
            Self::new("", &["v1"], "Namespace", "namespaces")
                .with_status()
                .short_names(&["ns"])
                .field_labels(&["status.phase"]),
            Self::new("", &["v1"], "Service", "services")
                .namespaced()
                .with_status()
                .short_names(&["svc"]),
            Self::new("", &["v1"], "Secret", "secrets")
                .namespaced()
                .field_labels(&["type"]),
            Self::new("", &["v1"], "ConfigMap", "configmaps")
                .namespaced()
                .short_names(&["cm"]),
            Self::new("", &["v1"], "Event", "events")
                .namespaced()
                .short_names(&["ev"])
                .field_labels(&[
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "reason",
                    "type",
                ]),
            Self::new("events.k8s.io", &["v1"], "Event", "events")
                .namespaced()
                .short_names(&["ev"]),
            Self::new(
                "discovery.k8s.io",
                &["v1"],
                "EndpointSlice",
                "endpointslices",
            )
            .namespaced(),
            Self::new("networking.k8s.io", &["v1"], "Ingress", "ingresses")
                .namespaced()
                .with_status()
                .short_names(&["ing"]),
            Self::new(
                "networking.k8s.io",
                &["v1"],
                "IngressClass",
                "ingressclasses",
            ),
            Self::new("coordination.k8s.io", &["v1"], "Lease", "leases").namespaced(),
            Self::new(gw, &["v1", "v1beta1"], "GatewayClass", "gatewayclasses")
                .with_status()
                .short_names(&["gc"]),
            Self::new(gw, &["v1", "v1beta1"], "Gateway", "gateways")
                .namespaced()
                .with_status()
                .short_names(&["gtw"]),
            Self::new(gw, &["v1", "v1beta1"], "HTTPRoute", "httproutes")
                .namespaced()
                .with_status(),
            Self::new(gw, &["v1"], "GRPCRoute", "grpcroutes")
                .namespaced()
                .with_status(),
            Self::new(gw, &["v1beta1"], "ReferenceGrant", "referencegrants")
                .namespaced()
                .short_names(&["refgrant"]),
            Self::new(gw, &["v1alpha2"], "TLSRoute", "tlsroutes")
                .namespaced()
                .with_status(),
            Self::new(gw, &["v1alpha2"], "TCPRoute", "tcproutes")
                .namespaced()
                .with_status(),
        ]
    }
}

/// `/version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0-xdsc-testserver",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none",
        "compiler": "none",
        "platform": "linux/amd64",
    })
}

/// `/api`: the core group's versions.
pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The named groups in first-seen order, each with its versions in first-seen order.
fn groups(defs: &[ResourceDef]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for def in defs.iter().filter(|d| !d.group.is_empty()) {
        let at = match groups.iter().position(|(g, _)| *g == def.group) {
            Some(at) => at,
            None => {
                groups.push((def.group.clone(), Vec::new()));
                groups.len() - 1
            }
        };
        for v in &def.versions {
            if !groups[at].1.contains(v) {
                groups[at].1.push(v.clone());
            }
        }
    }
    groups
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

/// `/apis`: every named group.
pub(crate) fn group_list(defs: &[ResourceDef]) -> Value {
    let groups: Vec<Value> = groups(defs)
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/GROUP`, if the group is served.
pub(crate) fn group(defs: &[ResourceDef], group: &str) -> Option<Value> {
    groups(defs)
        .iter()
        .find(|(g, _)| g == group)
        .map(|(g, vs)| group_doc(g, vs))
}

/// `/api/v1` or `/apis/GROUP/VERSION`, if anything is served there.
pub(crate) fn resource_list(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for def in defs
        .iter()
        .filter(|d| d.group == group && d.versions.iter().any(|v| v == version))
    {
        resources.push(json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": VERBS,
            "shortNames": def.short_names,
        }));
        if def.status {
            resources.push(json!({
                "name": format!("{}/status", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// Every served `(group, version)` as its OpenAPI v3 path (`api/v1`, `apis/G/V`).
fn openapi_paths(defs: &[ResourceDef]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for def in defs {
        for v in &def.versions {
            let path = if def.group.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{}/{v}", def.group)
            };
            if !out.iter().any(|(p, _, _)| *p == path) {
                out.push((path, def.group.clone(), v.clone()));
            }
        }
    }
    out
}

/// `/openapi/v3`: the index of per-group-version documents.
pub(crate) fn openapi_root(defs: &[ResourceDef]) -> Value {
    let mut paths = serde_json::Map::new();
    for (path, _, _) in openapi_paths(defs) {
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=0")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/G/V`: no schemas, only each object's PATCH
/// operation declaring the `fieldValidation` parameter, which is what kubectl looks for to
/// leave validation to the server (which, having no schemas, accepts unknown fields).
pub(crate) fn openapi_group_version(defs: &[ResourceDef], path: &str) -> Option<Value> {
    let (_, group, version) = openapi_paths(defs)
        .into_iter()
        .find(|(p, _, _)| p == path)?;
    let mut paths = serde_json::Map::new();
    for def in defs
        .iter()
        .filter(|d| d.group == group && d.versions.contains(&version))
    {
        let scope = if def.namespaced {
            "namespaces/{namespace}/"
        } else {
            ""
        };
        let patch = json!({
            "operationId": format!("patch{}", def.kind),
            "x-kubernetes-group-version-kind": {"group": def.group, "version": version, "kind": def.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(
            format!("/{path}/{scope}{}/{{name}}", def.plural),
            json!({"patch": patch}),
        );
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "xdsc-kube-testserver", "version": "v1.34.0"}, "paths": paths}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_status_subresources_and_every_version() {
        let defs = ResourceDef::builtin();
        let v1 = resource_list(&defs, "networking.k8s.io", "v1").unwrap();
        let names: Vec<&str> = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ingresses", "ingresses/status", "ingressclasses"]);
        let gw = group(&defs, "gateway.networking.k8s.io").unwrap();
        assert_eq!(gw["preferredVersion"]["version"], "v1");
        let versions: Vec<&str> = gw["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["v1", "v1beta1", "v1alpha2"]);
        assert!(
            resource_list(&defs, "gateway.networking.k8s.io", "v1alpha2").unwrap()["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "tcproutes")
        );
        assert!(resource_list(&defs, "apps", "v1").is_none());
    }
}
