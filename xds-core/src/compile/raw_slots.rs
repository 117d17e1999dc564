//! The raw Envoy resources' side of a compilation: a changed raw resource checked and linked
//! into the indexes, a raw resource that loses its name to a compiled one reported, and the
//! bytes served for one whose references resolve.
//!
//! Not here: what a raw resource must look like ([`super::raw`]), and the compiled
//! resources' builds ([`super::Compiled`]).

use std::sync::Arc;

use bytes::Bytes;

use super::index::{Dirty, link};
use super::raw::{self, CheckedRaw};
use super::translate::SecretState;
use super::{Compiled, DiagKey};
use crate::diagnostic::{Diagnostic, Diags, Problem, Severity};
use crate::model::{Kind, Object, ObjectKey};
use crate::snapshot::ResourceType;

impl Compiled {
    /// Checks a changed raw resource, updates the indexes for what it refers to before and
    /// after, and marks its slot and what depends on it.
    pub(super) fn raw_changed(
        &mut self,
        key: &ObjectKey,
        t: ResourceType,
        new: Option<&Object>,
        dirty: &mut Dirty,
    ) {
        let name = &key.name;
        let mut d = Diags::new(key.clone());
        let checked_new = new.and_then(|o| raw::check_object(o, &mut d)).map(Arc::new);
        self.set_diags(DiagKey::Raw(key.clone()), d.finish());
        if new.is_none() {
            self.set_diags(DiagKey::Object(key.clone()), Vec::new());
        }
        let checked_old = self.raws.get(key).cloned();
        for (c, add) in [(checked_old, false), (checked_new.clone(), true)] {
            let Some(c) = c else { continue };
            let refs = &c.refs;
            match t {
                ResourceType::Cluster => {
                    for (_, s, _) in &refs.secrets {
                        link(&mut self.index.secret_clusters, s, name, add);
                    }
                    if let Some(e) = &refs.eds_service {
                        link(&mut self.index.eds_clusters, e, name, add);
                        dirty.endpoints.insert(Arc::from(e.as_str()));
                    }
                }
                ResourceType::Listener => {
                    let compiled = self
                        .model
                        .get(&ObjectKey::new(Kind::Listener, name.clone()));
                    if let Some(addr) = &refs.address
                        && compiled.is_none()
                    {
                        self.link_address(addr, name, add, dirty);
                    }
                    for (_, s, _) in &refs.secrets {
                        link(&mut self.index.secret_listeners, s, name, add);
                    }
                    for (_, c) in &refs.clusters {
                        link(&mut self.index.cluster_listeners, c, name, add);
                    }
                    for (_, rc) in &refs.route_configs {
                        link(&mut self.index.raw_route_listeners, rc, name, add);
                        dirty.routes.insert(Arc::from(rc.as_str()));
                    }
                }
                ResourceType::Route => {
                    for (_, c) in &refs.clusters {
                        link(&mut self.index.cluster_routes, c, name, add);
                    }
                }
                ResourceType::Endpoint | ResourceType::Secret => {}
            }
        }
        match checked_new {
            Some(c) => self.raws.insert(key.clone(), c),
            None => self.raws.remove(key),
        };
        let slot = match t {
            ResourceType::Cluster => &mut dirty.clusters,
            ResourceType::Endpoint => &mut dirty.endpoints,
            ResourceType::Listener => &mut dirty.listeners,
            ResourceType::Route => &mut dirty.routes,
            ResourceType::Secret => &mut dirty.secrets,
        };
        slot.insert(name.clone());
    }

    /// The checked raw resource of this kind and name, if the model holds one.
    pub(super) fn raw(&self, kind: Kind, name: &Arc<str>) -> Option<(ObjectKey, Arc<CheckedRaw>)> {
        let key = ObjectKey::new(kind, name.clone());
        let c = self.raws.get(&key)?.clone();
        Some((key, c))
    }

    /// A raw resource's slot taken by a compiled object of the same name: reported on the raw
    /// object, which is left out.
    pub(super) fn raw_conflict(&mut self, raw: &ObjectKey, what: &str, winner: ObjectKey) {
        let p = Problem::Conflict {
            what: format!("{what} {:?}", raw.name),
            winner,
        };
        let d = Diagnostic::new(raw.clone(), Severity::Error, "resource", p);
        self.set_diags(DiagKey::Object(raw.clone()), vec![d]);
    }

    /// The body of a resource a compiled object (`compiled`: `Some` of what it compiled to,
    /// when the model holds it) and a raw resource may both claim, and the key of the object
    /// it is built from. The compiled object wins; the raw one is then reported.
    pub(super) fn compiled_or_raw(
        &mut self,
        key: &ObjectKey,
        raw_kind: Kind,
        what: &str,
        compiled: Option<Option<Bytes>>,
    ) -> (Option<Bytes>, ObjectKey) {
        let raw = self.raw(raw_kind, &key.name);
        match (compiled, raw) {
            (Some(body), raw) => {
                if let Some((r, _)) = raw {
                    self.raw_conflict(&r, what, key.clone());
                }
                (body, key.clone())
            }
            (None, Some((r, c))) => (self.raw_body(&r, &c), r),
            (None, None) => (None, key.clone()),
        }
    }

    /// Builds a raw resource of a slot no compiled object claims: its canonical bytes if it
    /// checked and its secrets exist (a missing one is an error and leaves it out), warning
    /// about clusters it names that do not exist.
    pub(super) fn raw_body(&mut self, key: &ObjectKey, c: &CheckedRaw) -> Option<Bytes> {
        let mut d = Diags::new(key.clone());
        let mut ok = c.body.is_some();
        for (at, s, holds) in &c.refs.secrets {
            let state = self.secret_state(s);
            if state == SecretState::Missing {
                d.error(
                    at,
                    Problem::Dangling(ObjectKey::new(Kind::Secret, s.as_str())),
                );
                ok = false;
            } else if state != *holds {
                let (is, wanted) = match holds {
                    SecretState::TlsCertificate => ("a validation context", "a certificate"),
                    _ => ("a certificate", "a validation context"),
                };
                d.error(
                    at,
                    Problem::invalid(format!("secret {s:?} is {is}, not {wanted}")),
                );
                ok = false;
            }
        }
        for (at, cl) in &c.refs.clusters {
            if !self.has_cluster(cl) {
                d.warn(
                    at,
                    Problem::Dangling(ObjectKey::new(Kind::Cluster, cl.as_str())),
                );
            }
        }
        self.set_diags(DiagKey::Object(key.clone()), d.finish());
        if ok { c.body.clone() } else { None }
    }
}
