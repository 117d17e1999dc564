//! Small pieces the per-kind translations share: age order, host names and path prefixes
//! as the model writes them, and group/kind checks of references.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use xdsc_core::model;

use crate::objects::{KubeKind, ObjectRef};

/// The order in which conflicting objects win: oldest first (objects without a creation time
/// last), then by namespace and name.
pub(crate) fn age_key<'a>(meta: &'a ObjectMeta, id: &'a ObjectRef) -> impl Ord + 'a {
    let ts: Option<&Time> = meta.creation_timestamp.as_ref();
    (ts.is_none(), ts, id.namespace.as_deref(), id.name.as_str())
}

/// `*` becomes `~` in model names.
pub(crate) fn host_in_name(host: &str) -> String {
    host.replace('*', "~")
}

/// A lowercased host name or `*.` wildcard, if valid.
pub(crate) fn check_host(host: &str) -> Option<String> {
    let h = host.to_ascii_lowercase();
    let rest = h.strip_prefix("*.").unwrap_or(&h);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    (h.len() <= 253 && rest.split('.').all(label_ok)).then_some(h)
}

/// An element-wise prefix match (Ingress `Prefix`, Gateway API `PathPrefix`): a trailing `/`
/// is ignored, and `/` matches every path.
pub(crate) fn prefix_match(path: &str) -> model::PathMatch {
    match path.trim_end_matches('/') {
        "" => model::PathMatch::Prefix("/".into()),
        trimmed => model::PathMatch::PathPrefix(trimmed.to_owned()),
    }
}
/// Whether a reference's group and kind (defaulted when absent) name this core kind.
pub(crate) fn is_core(group: Option<&str>, kind: Option<&str>, expected: KubeKind) -> bool {
    group.unwrap_or("").is_empty() && kind.unwrap_or(expected.as_str()) == expected.as_str()
}
