//! The status the translation computes for Kubernetes objects, as data: Gateway API
//! conditions (with the spec's reason strings), Gateway listener status, route parent
//! status, and the Ingress load-balancer addresses.
//!
//! Units of the translation contribute `StatusPart`s to the objects they read (a Gateway's
//! unit writes its own conditions, its listeners', and the parent status of every route
//! attached to it); the parts of one object are assembled into an [`ObjectStatus`], and the
//! translator reports the objects whose assembled status changed. Adding a condition is one
//! call where the translation decides it (`Cx::condition`).
//!
//! Not here: writing status to the API server, `lastTransitionTime` (a clock; the writer
//! keeps the old time while a condition's status is unchanged), and what serving learns
//! (NACKs), which the controller merges in.

use std::collections::BTreeMap;

use crate::objects::{KubeKind, gateway};

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
    /// Condition type: the listener conflicts with another on its port.
    pub const CONFLICTED: &str = "Conflicted";
    /// Reason (`Conflicted`): another listener on the port has the same hostname.
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    /// Reason (`Conflicted`): another listener on the port speaks another protocol.
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    /// Reason (`Conflicted` False): no conflict.
    pub const NO_CONFLICTS: &str = "NoConflicts";
    /// Reason (listener `Accepted`): the port cannot be used.
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    /// Reason (listener `ResolvedRefs`): `allowedRoutes.kinds` names a kind not supported.
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
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

impl ObjectStatus {
    /// The status as the API server holds it (`status` of the object), for a status writer
    /// and for `xdsc-file check --output json`: Gateway API conditions with `type`, `status`,
    /// `reason`, `message` and `observedGeneration` (the writer adds `lastTransitionTime`),
    /// Gateway `listeners`, route `parents` (with `controllerName`), Ingress
    /// `loadBalancer`. `kind` is the object's kind; `controller` the Gateway controller name.
    ///
    /// ```
    /// use xdsc_kube::status::{reason, Condition, ObjectStatus};
    /// use xdsc_kube::translate::KubeKind;
    /// let mut s = ObjectStatus::default();
    /// s.observed_generation = Some(3);
    /// s.conditions.push(Condition::new(reason::ACCEPTED, true, reason::ACCEPTED, ""));
    /// let j = s.to_json(KubeKind::GatewayClass, "xdsc.dev/gateway-controller");
    /// assert_eq!(j["conditions"][0]["observedGeneration"], 3);
    /// assert_eq!(j["conditions"][0]["status"], "True");
    /// ```
    pub fn to_json(&self, kind: KubeKind, controller: &str) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let conditions = |cs: &[Condition]| -> Value {
            cs.iter()
                .map(|c| {
                    let mut v = json!({"type": c.type_, "status": c.status.as_str(),
                        "reason": c.reason, "message": c.message});
                    if let Some(g) = self.observed_generation {
                        v["observedGeneration"] = json!(g);
                    }
                    v
                })
                .collect()
        };
        let mut out = Map::new();
        if kind == KubeKind::Ingress {
            let ingress: Vec<Value> = self
                .load_balancer
                .iter()
                .map(|a| match (&a.ip, &a.hostname) {
                    (Some(ip), _) => json!({"ip": ip}),
                    (None, Some(h)) => json!({"hostname": h}),
                    (None, None) => json!({}),
                })
                .collect();
            out.insert("loadBalancer".into(), json!({"ingress": ingress}));
            return Value::Object(out);
        }
        if !self.conditions.is_empty() || self.parents.is_empty() {
            out.insert("conditions".into(), conditions(&self.conditions));
        }
        if kind == KubeKind::Gateway {
            let listeners: Vec<Value> = self
                .listeners
                .iter()
                .map(|(name, l)| {
                    let kinds: Vec<Value> = l
                        .supported_kinds
                        .iter()
                        .map(|k| json!({"group": gateway::GROUP, "kind": k}))
                        .collect();
                    json!({"name": name, "supportedKinds": kinds,
                        "attachedRoutes": l.attached_routes,
                        "conditions": conditions(&l.conditions)})
                })
                .collect();
            out.insert("listeners".into(), Value::Array(listeners));
        }
        if !self.parents.is_empty() {
            out.remove("conditions");
            let parents: Vec<Value> = self
                .parents
                .iter()
                .map(|(p, cs)| {
                    let mut r = json!({"group": gateway::GROUP, "kind": KubeKind::Gateway.as_str(),
                        "namespace": p.namespace, "name": p.name});
                    if let Some(s) = &p.section_name {
                        r["sectionName"] = json!(s);
                    }
                    if let Some(port) = p.port {
                        r["port"] = json!(port);
                    }
                    json!({"parentRef": r, "controllerName": controller,
                        "conditions": conditions(cs)})
                })
                .collect();
            out.insert("parents".into(), Value::Array(parents));
        }
        Value::Object(out)
    }

    /// The status as text, one line per object part: the object's conditions, then each
    /// listener's (with `attachedRoutes` and `supportedKinds`), then each parent's; a
    /// condition reads `Type=Status Reason`, with its message unless the reason is the
    /// type's own (`Accepted=True Accepted`).
    ///
    /// ```
    /// use xdsc_kube::status::{reason, Condition, ObjectStatus};
    /// let mut s = ObjectStatus::default();
    /// s.conditions.push(Condition::new(reason::ACCEPTED, false, reason::LISTENERS_NOT_VALID, "some listeners are not valid"));
    /// assert_eq!(s.text_lines(), ["Accepted=False ListenersNotValid (some listeners are not valid)"]);
    /// ```
    pub fn text_lines(&self) -> Vec<String> {
        let conditions = |cs: &[Condition]| {
            cs.iter()
                .map(|c| {
                    let mut t = format!("{}={} {}", c.type_, c.status.as_str(), c.reason);
                    if c.reason != c.type_ && !c.message.is_empty() {
                        t.push_str(&format!(" ({})", c.message));
                    }
                    t
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut out = Vec::new();
        if !self.conditions.is_empty() {
            out.push(conditions(&self.conditions));
        }
        for (name, l) in &self.listeners {
            out.push(format!(
                "listener {name}: {}; attachedRoutes={}; supportedKinds=[{}]",
                conditions(&l.conditions),
                l.attached_routes,
                l.supported_kinds.join(",")
            ));
        }
        for (p, cs) in &self.parents {
            let mut who = format!("{}/{}", p.namespace, p.name);
            if let Some(s) = &p.section_name {
                who.push_str(&format!(" sectionName={s}"));
            }
            if let Some(port) = p.port {
                who.push_str(&format!(" port={port}"));
            }
            out.push(format!("parent {who}: {}", conditions(cs)));
        }
        if !self.load_balancer.is_empty() {
            let addresses: Vec<&str> = self
                .load_balancer
                .iter()
                .filter_map(|a| a.ip.as_deref().or(a.hostname.as_deref()))
                .collect();
            out.push(format!("loadBalancer: {}", addresses.join(", ")));
        }
        out
    }
}
