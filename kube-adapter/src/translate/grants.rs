//! ReferenceGrants: which cross-namespace references (a route's `backendRefs` to Services, a
//! Gateway's `certificateRefs` to Secrets) a namespace allows.
//!
//! A reference from an object in one namespace to an object in another is valid only when a
//! ReferenceGrant in the target's namespace lists the referrer's group, kind and namespace
//! in `from` and the target's group, kind (and name, when given) in `to`. A reader asks
//! through [`Cx::granted`], which records that it read the grants of that namespace, so a
//! grant that appears or goes away recomputes exactly the units that asked there.
//!
//! Not here: parent references (routes to Gateways), which `allowedRoutes` governs.

use crate::context::Cx;
use crate::objects::gateway::{self, ReferenceGrant};
use crate::objects::{KubeKind, KubeObject, ObjectRef};

impl Cx<'_> {
    /// Whether a ReferenceGrant in `namespace` lets `from` (a route or a Gateway) refer to
    /// the object of kind `kind` (a core kind: `Service`, `Secret`) named `name` there.
    pub(crate) fn granted(
        &mut self,
        from: &ObjectRef,
        kind: KubeKind,
        namespace: &str,
        name: &str,
    ) -> bool {
        self.grants(namespace).iter().any(|(_, o)| match o {
            KubeObject::ReferenceGrant(g) => allows(g, from, kind, name),
            _ => false,
        })
    }
}

fn allows(g: &ReferenceGrant, from: &ObjectRef, kind: KubeKind, name: &str) -> bool {
    let from_ok = g.spec.from.iter().any(|f| {
        f.group == gateway::GROUP
            && f.kind == from.kind
            && from.namespace.as_deref() == Some(f.namespace.as_str())
    });
    let to_ok = g.spec.to.iter().any(|t| {
        t.group.is_empty() && t.kind == kind.as_str() && t.name.as_deref().is_none_or(|n| n == name)
    });
    from_ok && to_ok
}
