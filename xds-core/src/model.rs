//! The normalized model: listeners, virtual hosts, clusters, endpoints and secrets.

use std::fmt;
use std::sync::Arc;

/// The kinds of model objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A [`Listener`]: an address and port Envoy accepts connections on.
    Listener,
    /// A [`VirtualHost`]: domains and their routes, attached to listeners.
    VirtualHost,
    /// A [`Cluster`]: an upstream service.
    Cluster,
    /// The [`Endpoints`] of a cluster.
    Endpoints,
    /// A [`Secret`]: a TLS certificate or a validation context.
    Secret,
}

impl Kind {
    /// The kind's name as written in documents (`kind: VirtualHost`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Listener => "Listener",
            Kind::VirtualHost => "VirtualHost",
            Kind::Cluster => "Cluster",
            Kind::Endpoints => "Endpoints",
            Kind::Secret => "Secret",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of a model object: its kind and name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The object's kind.
    pub kind: Kind,
    /// The object's name, unique within its kind.
    pub name: Arc<str>,
}

impl ObjectKey {
    /// A key from a kind and a name.
    pub fn new(kind: Kind, name: impl Into<Arc<str>>) -> ObjectKey {
        ObjectKey { kind, name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
