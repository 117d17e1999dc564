//! What depends on what, by name: the reverse references the compiler keeps between
//! compilations ([`Index`]), and what a batch of changes marks for rebuilding ([`Dirty`]).
//! A reference is kept whether or not its target exists, so the object that appears later
//! finds who was waiting for it.
//!
//! Not here: reading the references out of objects as they change, and rebuilding (the
//! compiler, [`super::Compiled`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::validate;
use crate::model;

pub(super) type Names = OrdSet<Arc<str>>;
/// Target -> who refers to it, each with the number of its references: a compiled and a raw
/// object of one name (one serves, the other waits for the slot) each hold their own, so
/// removing one leaves the other's.
pub(super) type Refs = OrdMap<Arc<str>, OrdMap<Arc<str>, u32>>;

/// Reverse references: who refers to what, by name, whether or not the target exists.
#[derive(Clone, Default)]
pub(super) struct Index {
    /// cluster -> virtual hosts forwarding or mirroring to it.
    pub(super) cluster_vhosts: Refs,
    /// cluster -> listeners whose TCP routes use it.
    pub(super) cluster_listeners: Refs,
    /// secret -> clusters using it as CA.
    pub(super) secret_clusters: Refs,
    /// secret -> listeners serving it.
    pub(super) secret_listeners: Refs,
    /// route configuration -> virtual hosts attached to it.
    pub(super) listener_vhosts: Refs,
    /// route configuration -> listeners serving it.
    pub(super) route_listeners: Refs,
    /// (route configuration, domain) -> valid virtual hosts claiming it; the first owns it.
    pub(super) domains: OrdMap<(Arc<str>, String), Names>,
    /// "address:port" -> listeners binding it (with valid address and port).
    pub(super) addresses: Refs,
    /// cluster -> raw route configurations whose routes name it.
    pub(super) cluster_routes: Refs,
    /// EDS service name -> raw clusters fetching its load assignment over ADS.
    pub(super) eds_clusters: Refs,
    /// route configuration -> raw listeners fetching it by RDS over ADS.
    pub(super) raw_route_listeners: Refs,
}

pub(super) fn link(refs: &mut Refs, target: &str, from: &Arc<str>, add: bool) {
    let target: Arc<str> = Arc::from(target);
    let mut users = refs.get(&target).cloned().unwrap_or_default();
    let n = users.get(from).copied().unwrap_or(0);
    let n = if add { n + 1 } else { n.saturating_sub(1) };
    if n == 0 {
        users.remove(from);
    } else {
        users.insert(from.clone(), n);
    }
    if users.is_empty() {
        refs.remove(&target);
    } else {
        refs.insert(target, users);
    }
}

pub(super) fn get<'a>(refs: &'a Refs, target: &str) -> impl Iterator<Item = &'a Arc<str>> + 'a {
    refs.get(target).into_iter().flat_map(|s| s.keys())
}

pub(super) fn address_key(l: &model::Listener) -> Option<String> {
    (validate::ip(&l.address).is_ok() && l.port != 0).then(|| format!("{}:{}", l.address, l.port))
}

pub(super) fn vhost_clusters(v: &model::VirtualHost) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    for r in &v.routes {
        if let Some(f) = &r.forward {
            out.extend(f.backends.iter().map(|b| b.cluster.as_str()));
            out.extend(f.mirror.iter().map(|m| m.cluster.as_str()));
        }
    }
    out
}

/// What must be rebuilt after a batch of changes.
#[derive(Default)]
pub(super) struct Dirty {
    pub(super) secrets: BTreeSet<Arc<str>>,
    pub(super) clusters: BTreeSet<Arc<str>>,
    pub(super) endpoints: BTreeSet<Arc<str>>,
    pub(super) listeners: BTreeSet<Arc<str>>,
    pub(super) pieces: BTreeSet<(Arc<str>, Arc<str>)>,
    pub(super) routes: BTreeSet<Arc<str>>,
}
