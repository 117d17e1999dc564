//! The registry of connected streams, for `/debug/clients`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::config::core::v3::Node;
use serde_json::{Value, json};
use xdsc_core::snapshot::ResourceType;

use crate::protocol::{TypeStatus, Variant};

#[derive(Clone, Debug)]
struct Client {
    node_id: String,
    node_cluster: String,
    fleet: String,
    peer: String,
    variant: Variant,
    only: Option<ResourceType>,
    types: Vec<TypeStatus>,
}

/// Connected streams by id. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Clients {
    next: Arc<AtomicU64>,
    map: Arc<Mutex<BTreeMap<u64, Client>>>,
}

/// Removes a stream from the registry when its task ends, however it ends.
pub(crate) struct Deregister {
    pub(crate) clients: Clients,
    pub(crate) id: u64,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        self.clients
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Clients {
    pub(crate) fn register(
        &self,
        node: &Node,
        fleet: &str,
        peer: &str,
        variant: Variant,
        only: Option<ResourceType>,
    ) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let client = Client {
            node_id: node.id.clone(),
            node_cluster: node.cluster.clone(),
            fleet: fleet.to_owned(),
            peer: peer.to_owned(),
            variant,
            only,
            types: Vec::new(),
        };
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, client);
        id
    }

    pub(crate) fn update(&self, id: u64, types: Vec<TypeStatus>) {
        if let Some(c) = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id)
        {
            c.types = types;
        }
    }

    /// Records that a stream now watches another fleet.
    pub(crate) fn set_fleet(&self, id: u64, fleet: &str) {
        if let Some(c) = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id)
        {
            c.fleet = fleet.to_owned();
        }
    }

    /// The JSON view of every connected stream.
    pub(crate) fn to_json(&self) -> Value {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        Value::Array(
            map.iter()
                .map(|(id, c)| {
                    json!({
                        "stream": id,
                        "node": {"id": c.node_id, "cluster": c.node_cluster},
                        "fleet": c.fleet,
                        "peer": c.peer,
                        "variant": match c.variant { Variant::Sotw => "sotw", Variant::Delta => "delta" },
                        "service": c.only.map(|t| t.short_name()).unwrap_or("ads"),
                        "types": c.types.iter().map(|t| json!({
                            "type": t.resource_type.short_name(),
                            "wildcard": t.wildcard,
                            "names": t.names.iter().map(|n| &**n).collect::<Vec<&str>>(),
                            "version_sent": t.pending_version,
                            "version_acked": t.acked_version,
                            "last_nack": t.last_nack.as_ref().map(|n| json!({
                                "version": n.version_info,
                                "detail": n.detail,
                                "resources": n.resources.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                                "sources": n.provenance.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                            })),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }

    /// How many streams are connected.
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
