//! The status the translation computes for Kubernetes objects, as data: Gateway API
//! conditions (with the spec's reason strings), Gateway listener status, route parent
//! status, and the Ingress load-balancer addresses.
//!
//! Units of the translation contribute [`StatusPart`]s to the objects they read (a Gateway's
//! unit writes its own conditions, its listeners', and the parent status of every route
//! attached to it); the parts of one object are assembled into an [`ObjectStatus`], and the
//! translator reports the objects whose assembled status changed. Adding a condition is one
//! call where the translation decides it (`Cx::condition`).
//!
//! Not here: writing status to the API server, `lastTransitionTime` (a clock; the writer
//! keeps the old time while a condition's status is unchanged), and what serving learns
//! (NACKs), which the controller merges in.

use std::collections::BTreeMap;

/// Reasons and condition types of the Gateway API, as the spec spells them.
pub mod reason {
    /// Condition type and reason: the object was accepted.
    pub const ACCEPTED: &str = "Accepted";
    /// Condition type and reason: the configuration was sent to the data plane.
    pub const PROGRAMMED: &str = "Programmed";
    /// Condition type and reason: every reference resolved.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// Reason: something is wrong in the object (see the message).
    pub const INVALID: &str = "Invalid";
    /// Reason: a listener's protocol is not supported.
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    /// Reason: a value of the object is not supported.
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    /// Reason: a certificate reference does not resolve.
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    /// Reason: no listener of the parent admits the route.
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    /// Reason: no hostname of the route matches a listener's.
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    /// Reason: the parent reference names no listener (sectionName, port).
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    /// Reason: a backend does not exist.
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    /// Reason: a backend reference is of a kind not supported.
    pub const INVALID_KIND: &str = "InvalidKind";
    /// Reason: a cross-namespace reference has no ReferenceGrant.
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// Reason: the listener conflicts with another on its port.
    pub const CONFLICTED: &str = "Conflicted";
    /// Reason: the Gateway has listeners that are not valid.
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
}

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionStatus {
    /// `False`. Sorts first: when two parts disagree, `False` wins.
    False,
    /// `Unknown`.
    Unknown,
    /// `True`.
    True,
}

impl ConditionStatus {
    /// As the API writes it: `True`, `False`, `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// One condition, as in `metav1.Condition` without its clock fields.
///
/// ```
/// use xdsc_kube::status::{reason, Condition};
/// let c = Condition::new(reason::ACCEPTED, false, reason::NOT_ALLOWED_BY_LISTENERS, "no listener admits it");
/// assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "NotAllowedByListeners"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Condition {
    /// The type, e.g. `Accepted`.
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// The reason, one of [`reason`] for Gateway API objects.
    pub reason: String,
    /// A human-readable message.
    pub message: String,
}

impl Condition {
    /// A condition that is True or False.
    pub fn new(type_: &str, ok: bool, reason: &str, message: impl Into<String>) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// A route's parent, as its status names it: the Gateway and the `sectionName` and `port`
/// of the reference.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParentRef {
    /// The Gateway's namespace.
    pub namespace: String,
    /// The Gateway's name.
    pub name: String,
    /// The reference's `sectionName`.
    pub section_name: Option<String>,
    /// The reference's `port`.
    pub port: Option<i32>,
}

/// The status of one Gateway listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerStatus {
    /// Conditions, sorted by type.
    pub conditions: Vec<Condition>,
    /// How many routes are attached.
    pub attached_routes: u32,
    /// The route kinds the listener takes (`HTTPRoute`).
    pub supported_kinds: Vec<String>,
}

/// One address of an Ingress's `status.loadBalancer.ingress`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LoadBalancerAddress {
    /// An IP address.
    pub ip: Option<String>,
    /// A host name.
    pub hostname: Option<String>,
}

/// The computed status of one object.
///
/// ```
/// use xdsc_kube::status::ObjectStatus;
/// let s = ObjectStatus::default();
/// assert!(s.conditions.is_empty() && s.listeners.is_empty() && s.parents.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectStatus {
    /// The `metadata.generation` it was computed from.
    pub observed_generation: Option<i64>,
    /// The object's own conditions (GatewayClass, Gateway), sorted by type.
    pub conditions: Vec<Condition>,
    /// Gateway: per listener name.
    pub listeners: BTreeMap<String, ListenerStatus>,
    /// Routes: per parent, conditions sorted by type.
    pub parents: BTreeMap<ParentRef, Vec<Condition>>,
    /// Ingress: the load-balancer addresses (empty when none are configured).
    pub load_balancer: Vec<LoadBalancerAddress>,
}

/// Where in an object's status a part goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scope {
    Object,
    Listener(String),
    Parent(ParentRef),
}

/// One contribution to an object's status.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum StatusPart {
    Condition(Scope, Condition),
    AttachedRoutes(String, u32),
    SupportedKinds(String, Vec<String>),
    LoadBalancer(Vec<LoadBalancerAddress>),
}

/// Conditions by type: when two parts set one type, `False` beats `Unknown` beats `True`,
/// then the smaller reason and message, so the result does not depend on part order.
fn merge(into: &mut BTreeMap<String, Condition>, c: &Condition) {
    match into.get(&c.type_) {
        Some(old)
            if (old.status, &old.reason, &old.message) <= (c.status, &c.reason, &c.message) => {}
        _ => {
            into.insert(c.type_.clone(), c.clone());
        }
    }
}

impl ObjectStatus {
    pub(crate) fn assemble<'a>(
        generation: Option<i64>,
        parts: impl IntoIterator<Item = &'a StatusPart>,
    ) -> ObjectStatus {
        let mut own = BTreeMap::new();
        let mut listeners: BTreeMap<String, (BTreeMap<String, Condition>, ListenerStatus)> =
            BTreeMap::new();
        let mut parents: BTreeMap<ParentRef, BTreeMap<String, Condition>> = BTreeMap::new();
        let mut out = ObjectStatus {
            observed_generation: generation,
            ..ObjectStatus::default()
        };
        for p in parts {
            match p {
                StatusPart::Condition(Scope::Object, c) => merge(&mut own, c),
                StatusPart::Condition(Scope::Listener(l), c) => {
                    merge(&mut listeners.entry(l.clone()).or_default().0, c);
                }
                StatusPart::Condition(Scope::Parent(r), c) => {
                    merge(parents.entry(r.clone()).or_default(), c);
                }
                StatusPart::AttachedRoutes(l, n) => {
                    listeners.entry(l.clone()).or_default().1.attached_routes += n;
                }
                StatusPart::SupportedKinds(l, kinds) => {
                    let s = &mut listeners.entry(l.clone()).or_default().1;
                    s.supported_kinds.extend(kinds.iter().cloned());
                    s.supported_kinds.sort();
                    s.supported_kinds.dedup();
                }
                StatusPart::LoadBalancer(a) => {
                    out.load_balancer.extend(a.iter().cloned());
                    out.load_balancer.sort();
                    out.load_balancer.dedup();
                }
            }
        }
        out.conditions = own.into_values().collect();
        out.listeners = listeners
            .into_iter()
            .map(|(name, (conditions, mut s))| {
                s.conditions = conditions.into_values().collect();
                (name, s)
            })
            .collect();
        out.parents = parents
            .into_iter()
            .map(|(r, c)| (r, c.into_values().collect()))
            .collect();
        out
    }
}
