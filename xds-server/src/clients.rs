//! The registry of connected streams, for `/debug/clients`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::config::core::v3::Node;
use serde_json::{Value, json};
use xdsc_core::model::ObjectKey;
use xdsc_core::snapshot::ResourceType;

use crate::protocol::{Nack, TypeStatus, Variant};

/// Where the model objects named by a NACK's provenance were read (`Kind name (file:line:col)`
/// or a Kubernetes object), as the embedder knows it ([`crate::Admin::with_origins`]).
pub type Origins = Arc<dyn Fn(&ObjectKey) -> Vec<String> + Send + Sync>;

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
    pub(crate) rejections: Rejections,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

/// One rejection standing now: a connected Envoy's last NACK of a type, not followed by an
/// acknowledgement of that type since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The node id of the Envoy.
    pub node: String,
    /// The NACK, with Envoy's error detail and the provenance of the rejected resources.
    pub nack: Nack,
}

/// The rejections standing now across every stream of a server
/// ([`crate::XdsServer::rejections`]): an embedder shows them where its users look (the
/// Kubernetes controller writes them into the status of the objects they came from). A
/// rejection clears when the stream acknowledges that type again or ends. Cheap to clone.
///
/// ```
/// let server = xdsc_server::XdsServer::new(xdsc_server::Publisher::new());
/// let rejections = server.rejections();
/// let changes = rejections.subscribe();
/// assert!(rejections.current().is_empty());
/// # drop(changes);
/// ```
#[derive(Clone)]
pub struct Rejections {
    map: Arc<Mutex<BTreeMap<(u64, ResourceType), Rejection>>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Rejections {
    fn default() -> Self {
        Rejections {
            map: Arc::default(),
            changed: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Rejections {
    /// Every standing rejection, by stream and type.
    pub fn current(&self) -> Vec<Rejection> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// A receiver that sees a new value whenever the set changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn change(&self, f: impl FnOnce(&mut BTreeMap<(u64, ResourceType), Rejection>) -> bool) {
        let changed = f(&mut self.map.lock().unwrap_or_else(PoisonError::into_inner));
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    pub(crate) fn nack(&self, stream: u64, node: &str, nack: &Nack) {
        let r = Rejection {
            node: node.to_owned(),
            nack: nack.clone(),
        };
        self.change(|m| m.insert((stream, nack.resource_type), r.clone()).as_ref() != Some(&r));
    }

    pub(crate) fn ack(&self, stream: u64, t: ResourceType) {
        self.change(|m| m.remove(&(stream, t)).is_some());
    }

    pub(crate) fn ended(&self, stream: u64) {
        self.change(|m| {
            let before = m.len();
            m.retain(|(s, _), _| *s != stream);
            m.len() != before
        });
    }
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
        self.clients.rejections.ended(self.id);
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

    /// The JSON view of every connected stream; with `origins`, each last NACK also lists
    /// where the model objects it traces to were read.
    pub(crate) fn to_json(&self, origins: Option<&Origins>) -> Value {
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
                                "origins": origins.map(|o| n.provenance.iter().flat_map(|k| o(k)).collect::<Vec<_>>()),
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
