//! Status writing, apart from translation and serving: a latest-wins slot per object, and a
//! writer task that writes only while this replica holds the Lease.
//!
//! The translation loop hands the [`StatusHub`] the statuses that changed (and the objects
//! whose Envoy resources are rejected now); the watches hand it the status each object has
//! in the cluster. Both only take a lock for a map update: a slow, failing or conflicting
//! write never delays a batch, a snapshot or an event. What waits is one slot per object
//! (the newest desired status replaces an older one still waiting), never a queue of writes.
//!
//! The writer builds the object's new status from the observed one, replacing only what
//! xdsc owns: Ingress `status.loadBalancer`; GatewayClass and Gateway conditions (and the
//! Gateway's listeners); a route's `status.parents` entries whose `controllerName` is ours
//! (other controllers' entries stay). A condition whose status is unchanged keeps its
//! `lastTransitionTime`. When the result equals the observed status, nothing is written.
//! Otherwise it is a JSON merge patch of the status subresource carrying the
//! resourceVersion it was built from: a 409 means the object changed, so it is read again
//! and the status rebuilt; other failures are retried with a backoff. A new leader
//! reconsiders every object once.
//!
//! An Envoy rejection (NACK) is attributed to the Kubernetes objects its resources came from
//! (their provenance) and shown in their status with Envoy's message: a Gateway's
//! `Programmed` condition turns False with reason `Invalid`; each of a route's parents gets
//! a `Programmed` condition (False, `Invalid`), an implementation-specific type. Ingress
//! status has no conditions: an Ingress's rejection is in the log, `/debug/clients` and
//! `/debug/sources` only.
//!
//! Not here: computing status (`xdsc_kube::status`, in the translation), leadership
//! ([`crate::lease`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};
use xdsc_kube::status::{Condition, ObjectStatus};
use xdsc_kube::translate::{KubeKind, ObjectRef};

use crate::health::Board;
use crate::kinds::Resources;

/// Writes in flight at once.
const CONCURRENCY: usize = 4;

#[derive(Clone, Debug, PartialEq)]
struct Observed {
    resource_version: String,
    status: Option<Value>,
}

#[derive(Default)]
struct HubState {
    computed: BTreeMap<ObjectRef, ObjectStatus>,
    rejected: BTreeMap<ObjectRef, String>,
    observed: BTreeMap<ObjectRef, Observed>,
    dirty: BTreeSet<ObjectRef>,
    in_flight: BTreeSet<ObjectRef>,
    retry: BTreeMap<ObjectRef, (Instant, u32)>,
    leader: bool,
}

/// One write to do: the object, the resourceVersion its status was built from, the status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Job {
    pub(crate) id: ObjectRef,
    pub(crate) resource_version: String,
    pub(crate) status: Value,
}

/// The slots between the translation, the watches and the writer.
pub struct StatusHub {
    state: Mutex<HubState>,
    notify: Notify,
    /// The Gateway API `controllerName` of route parent entries we own.
    controller: String,
}

impl StatusHub {
    /// A hub for the Gateway controller `controller` (`xdsc.dev/gateway-controller`).
    pub fn new(controller: &str) -> StatusHub {
        StatusHub {
            state: Mutex::default(),
            notify: Notify::new(),
            controller: controller.to_owned(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark(&self, s: &mut HubState, id: &ObjectRef) {
        if s.leader {
            s.dirty.insert(id.clone());
            self.notify.notify_one();
        }
    }

    /// The status `id` has in the cluster, at `resource_version` (from its watch).
    pub fn observe(&self, id: &ObjectRef, resource_version: &str, status: Option<Value>) {
        let mut s = self.state();
        let o = Observed {
            resource_version: resource_version.to_owned(),
            status,
        };
        let changed = s.observed.get(id).is_none_or(|old| old.status != o.status);
        s.observed.insert(id.clone(), o);
        if changed && (s.computed.contains_key(id) || s.rejected.contains_key(id)) {
            self.mark(&mut s, id);
        }
    }

    /// The object is gone.
    pub fn forget(&self, id: &ObjectRef) {
        let mut s = self.state();
        s.observed.remove(id);
        s.computed.remove(id);
        s.rejected.remove(id);
        s.dirty.remove(id);
        s.retry.remove(id);
    }

    /// Statuses the translation computed anew (`None`: it has none for the object now).
    pub fn computed(&self, statuses: impl IntoIterator<Item = (ObjectRef, Option<ObjectStatus>)>) {
        let mut s = self.state();
        for (id, status) in statuses {
            match status {
                Some(st) => s.computed.insert(id.clone(), st),
                None => s.computed.remove(&id),
            };
            self.mark(&mut s, &id);
        }
    }

    /// The objects whose Envoy resources are rejected now, with the message to show.
    pub fn set_rejected(&self, rejected: BTreeMap<ObjectRef, String>) {
        let mut s = self.state();
        let old = std::mem::take(&mut s.rejected);
        let changed: Vec<ObjectRef> = old
            .keys()
            .chain(rejected.keys())
            .filter(|k| old.get(*k) != rejected.get(*k))
            .cloned()
            .collect();
        s.rejected = rejected;
        for id in changed {
            self.mark(&mut s, &id);
        }
    }

    /// This replica leads (or not). A new leader reconsiders every object once.
    pub fn set_leader(&self, leader: bool) {
        let mut s = self.state();
        if leader == s.leader {
            return;
        }
        s.leader = leader;
        if leader {
            let all: Vec<ObjectRef> = s
                .computed
                .keys()
                .chain(s.rejected.keys())
                .chain(s.observed.keys())
                .cloned()
                .collect();
            s.dirty.extend(all);
            s.retry.clear();
            self.notify.notify_one();
        } else {
            s.dirty.clear();
            s.retry.clear();
        }
    }

    /// Objects waiting to be considered.
    pub fn pending(&self) -> usize {
        let s = self.state();
        s.dirty.len() + s.retry.len()
    }

    /// The next write to do, skipping objects whose status is already right. Returns
    /// `Err(when)` when nothing is due before `when` (a retry), `Err(None)` when idle.
    fn next_job(&self, skipped: &mut u64) -> Result<Job, Option<Instant>> {
        let mut s = self.state();
        if !s.leader {
            return Err(None);
        }
        let now = Instant::now();
        let due: Vec<ObjectRef> = s
            .retry
            .iter()
            .filter(|(_, (t, _))| *t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            s.dirty.insert(k);
        }
        loop {
            let Some(id) = s.dirty.iter().find(|k| !s.in_flight.contains(*k)).cloned() else {
                let next = s.retry.values().map(|(t, _)| *t).min();
                return Err(next);
            };
            s.dirty.remove(&id);
            let Some(observed) = s.observed.get(&id) else {
                // Not seen in the cluster (yet): its watch event marks it again.
                continue;
            };
            let desired = desired_status(
                &id,
                s.computed.get(&id),
                s.rejected.get(&id).map(String::as_str),
                observed.status.as_ref(),
                &self.controller,
                &now_rfc3339(),
            );
            match desired {
                Some(status) if Some(&status) != observed.status.as_ref() => {
                    let job = Job {
                        id: id.clone(),
                        resource_version: observed.resource_version.clone(),
                        status,
                    };
                    s.in_flight.insert(id);
                    return Ok(job);
                }
                _ => {
                    *skipped += 1;
                    s.retry.remove(&id);
                }
            }
        }
    }

    fn finished(&self, id: &ObjectRef, outcome: Outcome) {
        let mut s = self.state();
        s.in_flight.remove(id);
        match outcome {
            Outcome::Written(o) => {
                s.retry.remove(id);
                if s.observed
                    .get(id)
                    .is_none_or(|old| old.resource_version != o.resource_version)
                {
                    s.observed.insert(id.clone(), o);
                }
            }
            Outcome::Reread(o) => {
                s.observed.insert(id.clone(), o);
                self.mark(&mut s, id);
            }
            Outcome::Gone => {
                s.retry.remove(id);
            }
            Outcome::Failed => {
                let attempt = s.retry.get(id).map_or(0, |(_, n)| *n) + 1;
                let delay = Duration::from_millis(500 * 2u64.pow(attempt.min(7)))
                    .min(Duration::from_secs(60));
                s.retry
                    .insert(id.clone(), (Instant::now() + delay, attempt));
            }
        }
        self.notify.notify_one();
    }
}

enum Outcome {
    Written(Observed),
    Reread(Observed),
    Gone,
    Failed,
}

fn now_rfc3339() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Adds `lastTransitionTime` to computed conditions (JSON, from
/// [`ObjectStatus::to_json`]): the observed condition's time when its status is the same,
/// else `now`.
fn with_times(computed: Option<&Value>, observed: Option<&Value>, now: &str) -> Value {
    let old: BTreeMap<&str, &Value> = observed
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.get("type")?.as_str()?, c)))
        .collect();
    let list = computed
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.clone();
            let since = c
                .get("type")
                .and_then(Value::as_str)
                .and_then(|t| old.get(t))
                .filter(|o| o.get("status") == c.get("status"))
                .and_then(|o| o.get("lastTransitionTime"))
                .cloned()
                .unwrap_or_else(|| json!(now));
            c["lastTransitionTime"] = since;
            c
        })
        .collect();
    Value::Array(list)
}

/// The same, for a list of named parts (Gateway listeners by `name`, route parents by
/// `parentRef`): each part's conditions keep the times of the observed part with that key.
fn parts_with_times(
    computed: Option<&Value>,
    observed: Option<&Value>,
    key: &str,
    now: &str,
) -> Vec<Value> {
    let old: BTreeMap<String, &Value> = observed
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p.get(key)?.to_string(), p)))
        .collect();
    computed
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let mut p = p.clone();
            let before = p
                .get(key)
                .and_then(|k| old.get(&k.to_string()))
                .and_then(|o| o.get("conditions"));
            p["conditions"] = with_times(p.get("conditions"), before, now);
            p
        })
        .collect()
}

/// A condition saying Envoy rejected the configuration built from the object.
fn rejected_condition(message: &str) -> Condition {
    Condition::new(
        xdsc_kube::status::reason::PROGRAMMED,
        false,
        xdsc_kube::status::reason::INVALID,
        message,
    )
}

/// Replaces (or adds) one condition by type.
fn set_condition(list: &mut Vec<Condition>, c: Condition) {
    list.retain(|x| x.type_ != c.type_);
    list.push(c);
    list.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// The status `id` should have: the observed one with what xdsc owns replaced by the
/// translation's status ([`ObjectStatus::to_json`]) and Envoy's rejection, if any. `None`
/// when xdsc owns nothing of it.
pub(crate) fn desired_status(
    id: &ObjectRef,
    computed: Option<&ObjectStatus>,
    rejected: Option<&str>,
    observed: Option<&Value>,
    controller: &str,
    now: &str,
) -> Option<Value> {
    let mut out: Map<String, Value> = observed
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let kind = KubeKind::named(&id.kind)?;
    let mut computed = computed.cloned();
    if let (Some(c), Some(m)) = (computed.as_mut(), rejected) {
        if kind == KubeKind::Gateway {
            set_condition(&mut c.conditions, rejected_condition(m));
        }
        for conds in c.parents.values_mut() {
            set_condition(conds, rejected_condition(m));
        }
    }
    let ours = computed.as_ref().map(|c| c.to_json(kind, controller));
    let ours = ours.as_ref();
    match kind {
        KubeKind::Ingress => {
            let mut lb = ours?
                .get("loadBalancer")
                .cloned()
                .unwrap_or_else(|| json!({}));
            // The API server drops an empty list (the Go type's omitempty): so do we, or
            // every comparison would differ.
            if lb
                .get("ingress")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                lb = json!({});
            }
            out.insert("loadBalancer".into(), lb);
        }
        KubeKind::GatewayClass | KubeKind::Gateway => {
            let ours = ours?;
            let conditions = with_times(ours.get("conditions"), out.get("conditions"), now);
            out.insert("conditions".into(), conditions);
            if kind == KubeKind::Gateway {
                let listeners =
                    parts_with_times(ours.get("listeners"), out.get("listeners"), "name", now);
                out.insert("listeners".into(), Value::Array(listeners));
            }
        }
        _ => {
            // Routes: our entries of status.parents; other controllers' stay.
            let theirs =
                |p: &&Value| p.get("controllerName").and_then(Value::as_str) != Some(controller);
            let observed_parents: Vec<Value> = out
                .get("parents")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let had_ours = observed_parents.iter().any(|p| !theirs(&p));
            if ours.is_none() && !had_ours {
                return None;
            }
            let mut parents: Vec<Value> = observed_parents.iter().filter(theirs).cloned().collect();
            let observed_ours = Value::Array(
                observed_parents
                    .iter()
                    .filter(|p| !theirs(p))
                    .cloned()
                    .collect(),
            );
            parents.extend(parts_with_times(
                ours.and_then(|o| o.get("parents")),
                Some(&observed_ours),
                "parentRef",
                now,
            ));
            out.insert("parents".into(), Value::Array(parents));
        }
    }
    Some(Value::Object(out))
}

/// Writes statuses while this replica leads; for ever.
pub(crate) async fn run_writer(
    hub: Arc<StatusHub>,
    client: Client,
    resources: Arc<Resources>,
    board: Arc<Board>,
    mut leader: watch::Receiver<bool>,
) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        let leading = *leader.borrow_and_update();
        hub.set_leader(leading);
        let counters = &board.counters;
        counters.leader.store(u64::from(leading), Ordering::Relaxed);
        if !leading {
            // Writes in flight are dropped (their requests cancelled).
            in_flight = FuturesUnordered::new();
            hub.state().in_flight.clear();
        }
        let mut wake_at = None;
        while leading && in_flight.len() < CONCURRENCY {
            let mut skipped = 0;
            let next = hub.next_job(&mut skipped);
            counters
                .status_skipped
                .fetch_add(skipped, Ordering::Relaxed);
            match next {
                Ok(job) => in_flight.push(write(
                    Arc::clone(&hub),
                    client.clone(),
                    Arc::clone(&resources),
                    Arc::clone(&board),
                    job,
                )),
                Err(when) => {
                    wake_at = when;
                    break;
                }
            }
        }
        let pending = hub.pending();
        counters
            .status_pending
            .store(pending as u64, Ordering::Relaxed);
        board.set_status(
            "status_writer",
            json!({"leader": leading, "pending": pending, "in_flight": in_flight.len()}),
        );
        let sleep = async {
            match wake_at {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = leader.changed() => {
                if changed.is_err() {
                    // The elector is gone (shutdown): stop writing.
                    hub.set_leader(false);
                    std::future::pending::<()>().await;
                }
                let was = counters.leader.load(Ordering::Relaxed) == 1;
                if *leader.borrow() != was {
                    counters.leader_transitions.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = hub.notify.notified() => {}
            () = sleep => {}
        }
    }
}

async fn write(
    hub: Arc<StatusHub>,
    client: Client,
    resources: Arc<Resources>,
    board: Arc<Board>,
    job: Job,
) {
    let counters = &board.counters;
    let Some(api) = resources.api(&client, &job.id) else {
        hub.finished(&job.id, Outcome::Failed);
        return;
    };
    let patch = json!({
        "metadata": {"resourceVersion": job.resource_version},
        "status": job.status,
    });
    let observed_of = |o: kube::api::DynamicObject| Observed {
        resource_version: o.metadata.resource_version.clone().unwrap_or_default(),
        status: o.data.get("status").cloned(),
    };
    let outcome = match api
        .patch_status(&job.id.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(obj) => {
            counters.status_writes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(object = %job.id, "status written");
            Outcome::Written(observed_of(obj))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            counters.status_conflicts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(object = %job.id, "status write conflicted; reading the object again");
            match api.get_opt(&job.id.name).await {
                Ok(Some(obj)) => Outcome::Reread(observed_of(obj)),
                Ok(None) => Outcome::Gone,
                Err(_) => Outcome::Failed,
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Outcome::Gone,
        Err(e) => {
            counters.status_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(object = %job.id, error = %e, "status write failed; retrying later");
            Outcome::Failed
        }
    };
    hub.finished(&job.id, outcome);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::GATEWAY_GROUP;
    use xdsc_kube::status::{ListenerStatus, LoadBalancerAddress, ParentRef, reason};

    const CTRL: &str = "xdsc.dev/gateway-controller";

    fn accepted(ok: bool) -> Condition {
        Condition::new(
            reason::ACCEPTED,
            ok,
            if ok {
                reason::ACCEPTED
            } else {
                reason::NOT_ALLOWED_BY_LISTENERS
            },
            "m",
        )
    }

    #[test]
    fn an_unchanged_condition_keeps_its_transition_time() {
        let id = ObjectRef::new("GatewayClass", None, "xdsc");
        let computed = ObjectStatus {
            observed_generation: Some(3),
            conditions: vec![accepted(true)],
            ..ObjectStatus::default()
        };
        let first = desired_status(&id, Some(&computed), None, None, CTRL, "T1").unwrap();
        assert_eq!(first["conditions"][0]["lastTransitionTime"], "T1");
        assert_eq!(first["conditions"][0]["observedGeneration"], 3);
        let again = desired_status(&id, Some(&computed), None, Some(&first), CTRL, "T2").unwrap();
        assert_eq!(again, first, "same status: nothing to write");
        let flipped = ObjectStatus {
            conditions: vec![accepted(false)],
            ..computed
        };
        let later = desired_status(&id, Some(&flipped), None, Some(&first), CTRL, "T3").unwrap();
        assert_eq!(later["conditions"][0]["lastTransitionTime"], "T3");
        assert_eq!(later["conditions"][0]["status"], "False");
    }

    #[test]
    fn route_parents_of_other_controllers_stay() {
        let id = ObjectRef::new("HTTPRoute", Some("shop"), "web");
        let theirs = json!({"parentRef": {"name": "other"}, "controllerName": "example.com/x", "conditions": []});
        let observed = json!({"parents": [theirs]});
        let parent = ParentRef {
            namespace: "shop".into(),
            name: "gw".into(),
            section_name: Some("http".into()),
            port: None,
        };
        let computed = ObjectStatus {
            observed_generation: Some(1),
            parents: BTreeMap::from([(parent, vec![accepted(true)])]),
            ..ObjectStatus::default()
        };
        let out = desired_status(&id, Some(&computed), None, Some(&observed), CTRL, "T").unwrap();
        let parents = out["parents"].as_array().unwrap();
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[0], theirs);
        assert_eq!(parents[1]["controllerName"], CTRL);
        assert_eq!(parents[1]["parentRef"]["sectionName"], "http");
        // Rejected by Envoy: each of our parents says so.
        let out = desired_status(
            &id,
            Some(&computed),
            Some("Envoy rejected it"),
            Some(&observed),
            CTRL,
            "T",
        )
        .unwrap();
        let conds = out["parents"][1]["conditions"].as_array().unwrap();
        assert!(
            conds.iter().any(|c| c["type"] == "Programmed"
                && c["status"] == "False"
                && c["message"] == "Envoy rejected it"),
            "{conds:?}"
        );
        // No longer ours: our entry goes, theirs stays.
        let gone = desired_status(&id, None, None, Some(&out), CTRL, "T").unwrap();
        assert_eq!(gone["parents"], json!([theirs]));
        // Never ours: nothing to write.
        assert_eq!(
            desired_status(&id, None, None, Some(&observed), CTRL, "T"),
            None
        );
    }

    #[test]
    fn ingress_and_gateway_shapes() {
        let ing = ObjectRef::new("Ingress", Some("shop"), "web");
        let computed = ObjectStatus {
            load_balancer: vec![LoadBalancerAddress {
                ip: Some("10.0.0.1".into()),
                hostname: None,
            }],
            ..ObjectStatus::default()
        };
        let out = desired_status(
            &ing,
            Some(&computed),
            None,
            Some(&json!({"loadBalancer": {}})),
            CTRL,
            "T",
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}})
        );
        let empty = desired_status(
            &ing,
            Some(&ObjectStatus::default()),
            None,
            Some(&json!({"loadBalancer": {}})),
            CTRL,
            "T",
        );
        assert_eq!(
            empty,
            Some(json!({"loadBalancer": {}})),
            "equal to observed: skipped"
        );

        let gw = ObjectRef::new("Gateway", Some("shop"), "gw");
        let computed = ObjectStatus {
            observed_generation: Some(2),
            conditions: vec![accepted(true)],
            listeners: BTreeMap::from([(
                "http".to_owned(),
                ListenerStatus {
                    conditions: vec![accepted(true)],
                    attached_routes: 2,
                    supported_kinds: vec!["HTTPRoute".into()],
                },
            )]),
            ..ObjectStatus::default()
        };
        let observed = json!({"addresses": [{"value": "10.0.0.9"}]});
        let out = desired_status(
            &gw,
            Some(&computed),
            Some("rejected: bad listener"),
            Some(&observed),
            CTRL,
            "T",
        )
        .unwrap();
        assert_eq!(out["addresses"], observed["addresses"], "not ours: kept");
        assert_eq!(out["listeners"][0]["attachedRoutes"], 2);
        assert_eq!(
            out["listeners"][0]["supportedKinds"],
            json!([{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}])
        );
        let programmed = out["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Programmed")
            .unwrap();
        assert_eq!(
            (programmed["status"].as_str(), programmed["reason"].as_str()),
            (Some("False"), Some("Invalid"))
        );
    }

    #[test]
    fn the_hub_skips_right_statuses_and_keeps_one_slot_per_object() {
        let hub = StatusHub::new(CTRL);
        let id = ObjectRef::new("GatewayClass", None, "xdsc");
        let st = |ok| ObjectStatus {
            conditions: vec![accepted(ok)],
            ..ObjectStatus::default()
        };
        hub.observe(&id, "1", None);
        for i in 0..100 {
            hub.computed([(id.clone(), Some(st(i % 2 == 0)))]);
        }
        let mut skipped = 0;
        assert_eq!(
            hub.next_job(&mut skipped),
            Err(None),
            "not leading: nothing to do"
        );
        hub.set_leader(true);
        let job = hub.next_job(&mut skipped).unwrap();
        assert_eq!(job.status["conditions"][0]["status"], "False", "the newest");
        assert_eq!(hub.next_job(&mut skipped), Err(None), "one slot, in flight");
        hub.finished(
            &id,
            Outcome::Written(Observed {
                resource_version: "2".into(),
                status: Some(job.status.clone()),
            }),
        );
        hub.computed([(id.clone(), Some(st(false)))]);
        assert_eq!(hub.next_job(&mut skipped), Err(None));
        assert_eq!(skipped, 1, "already written: skipped");
    }
}
