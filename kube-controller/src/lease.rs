//! Leader election on a `coordination.k8s.io/v1` Lease: every replica serves, only the
//! holder writes status.
//!
//! The rules are client-go's: a replica takes the Lease when it has no holder, or when its
//! record (holder and renew time, seen as the resourceVersion) has not changed for the
//! Lease's duration *by this replica's own clock since it saw the record change*, so clocks
//! need not agree. Every write is a replace with the resourceVersion it read, the API
//! server's compare-and-swap, so two replicas can never both take it. The holder renews every
//! retry period and stops leading once it could not renew for the renew deadline (shorter
//! than the duration, so it has stopped before anyone may take over). On shutdown the holder
//! releases the Lease (no holder), so another replica takes over at its next try instead of
//! after the duration.
//!
//! A maintained crate exists for kube 5 (`kube-lease-manager`), but it excludes concurrent
//! takers through server-side-apply field ownership conflicts, which the test API server
//! does not model (so it could not be tested here), and it judges expiry by comparing the
//! holder's renew time with the local clock. This module is small and its rules are tested
//! against the test API server with two electors.
//!
//! Not here: what the leader does ([`crate::status`]).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

/// Which Lease and how it is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// This replica's identity (the Pod name in a cluster).
    pub identity: String,
    /// How long a Lease not renewed stays held (default 15 s).
    pub duration: Duration,
    /// The holder stops leading when it could not renew for this long (default 10 s; less
    /// than `duration`).
    pub renew_deadline: Duration,
    /// Time between tries, to renew or to take (default 2 s).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A configuration with client-go's usual timing (15 s, 10 s, 2 s).
    pub fn new(name: &str, namespace: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The Lease as last read, and when this replica saw its record change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    holder: Option<String>,
    duration: Duration,
    transitions: i32,
    resource_version: String,
    changed_at: Instant,
}

/// What to do after reading the Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// There is no Lease: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Someone else holds it.
    Wait,
}

pub(crate) fn decide(identity: &str, observed: Option<&Observed>, now: Instant) -> Decision {
    let Some(o) = observed else {
        return Decision::Create;
    };
    match o.holder.as_deref() {
        Some(h) if h == identity => Decision::Renew,
        None | Some("") => Decision::Take,
        Some(_) if now.saturating_duration_since(o.changed_at) >= o.duration => Decision::Take,
        Some(_) => Decision::Wait,
    }
}

/// A new observation of the Lease, keeping the time of the last change when the record is
/// the one seen before.
pub(crate) fn observe(previous: Option<&Observed>, lease: &Lease, now: Instant) -> Observed {
    let spec = lease.spec.clone().unwrap_or_default();
    let rv = lease.resource_version().unwrap_or_default();
    let changed_at = match previous {
        Some(p) if p.resource_version == rv => p.changed_at,
        _ => now,
    };
    Observed {
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        duration: Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(15).max(1)).unwrap_or(15),
        ),
        transitions: spec.lease_transitions.unwrap_or(0),
        resource_version: rv,
        changed_at,
    }
}

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// Holds the Lease for as long as it can; publishes whether it leads.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observed>,
    last_renewed: Option<Instant>,
    leading: watch::Sender<bool>,
}

impl Elector {
    /// An elector for `config`, not yet leading.
    pub fn new(client: Client, config: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            last_renewed: None,
            leading: watch::Sender::new(false),
        }
    }

    /// Whether this replica leads, now and as it changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    fn set_leading(&self, leading: bool) {
        if *self.leading.borrow() != leading {
            if leading {
                tracing::info!(lease = %self.config.name, identity = %self.config.identity, "leading: this replica writes status");
            } else {
                tracing::warn!(lease = %self.config.name, identity = %self.config.identity, "no longer leading: status is written by another replica");
            }
            self.leading.send_replace(leading);
        }
    }

    fn spec(&self, acquire: bool, transitions: i32) -> LeaseSpec {
        let now = now_micro();
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds(self.config.duration)),
            acquire_time: acquire.then(|| now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One try: read the Lease, then create, renew or take it as `decide` says.
    pub async fn try_once(&mut self) {
        let now = Instant::now();
        let lease = match self.api.get_opt(&self.config.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(lease = %self.config.name, error = %e, "cannot read the Lease");
                self.check_deadline(now);
                return;
            }
        };
        self.observed = lease
            .as_ref()
            .map(|l| observe(self.observed.as_ref(), l, now));
        let decision = decide(&self.config.identity, self.observed.as_ref(), now);
        let result = match (decision, lease) {
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(true, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Decision::Renew | Decision::Take, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                let taking = decision == Decision::Take;
                let transitions = old.lease_transitions.unwrap_or(0) + i32::from(taking);
                let mut spec = self.spec(taking, transitions);
                if !taking {
                    spec.acquire_time = old.acquire_time;
                }
                lease.spec = Some(spec);
                lease.metadata.managed_fields = None;
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
            (Decision::Wait, _) | (_, None) => {
                self.set_leading(false);
                return;
            }
        };
        match result {
            Ok(lease) => {
                self.observed = Some(observe(None, &lease, now));
                self.last_renewed = Some(now);
                if decision != Decision::Renew {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "took the Lease");
                }
                self.set_leading(true);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Someone wrote first (a renewal, a taker): read again next time.
                tracing::debug!(lease = %self.config.name, "the Lease changed under us");
                if decision != Decision::Renew {
                    self.set_leading(false);
                }
                self.check_deadline(now);
            }
            Err(e) => {
                tracing::warn!(lease = %self.config.name, error = %e, "cannot write the Lease");
                self.check_deadline(now);
            }
        }
    }

    /// A holder that could not renew for the renew deadline stops leading.
    fn check_deadline(&mut self, now: Instant) {
        if *self.leading.borrow()
            && self
                .last_renewed
                .is_none_or(|t| now.saturating_duration_since(t) >= self.config.renew_deadline)
        {
            self.set_leading(false);
        }
    }

    /// Tries every retry period until `stop` resolves; then releases the Lease if held.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            self.try_once().await;
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        self.release().await;
    }

    /// Gives the Lease up if held, so another replica takes it at its next try.
    pub async fn release(&mut self) {
        if !*self.leading.borrow() {
            return;
        }
        self.set_leading(false);
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        lease.metadata.managed_fields = None;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the Lease"),
            Err(e) => {
                tracing::warn!(lease = %self.config.name, error = %e, "cannot release the Lease; it expires instead");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, rv: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn expiry_is_judged_by_our_clock_since_the_record_changed() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(decide("me", None, t0), Decision::Create);
        let o = observe(None, &lease(Some("other"), "1"), t0);
        assert_eq!(decide("me", Some(&o), at(14)), Decision::Wait);
        // Read again at 10 s, unchanged: the clock keeps running from t0.
        let o = observe(Some(&o), &lease(Some("other"), "1"), at(10));
        assert_eq!(decide("me", Some(&o), at(15)), Decision::Take);
        // Renewed (new resourceVersion) at 12 s: 15 s from then.
        let o = observe(Some(&o), &lease(Some("other"), "2"), at(12));
        assert_eq!(decide("me", Some(&o), at(26)), Decision::Wait);
        assert_eq!(decide("me", Some(&o), at(27)), Decision::Take);
        let mine = observe(None, &lease(Some("me"), "3"), t0);
        assert_eq!(decide("me", Some(&mine), at(100)), Decision::Renew);
        let free = observe(None, &lease(None, "4"), t0);
        assert_eq!(decide("me", Some(&free), t0), Decision::Take);
        let empty = observe(None, &lease(Some(""), "5"), t0);
        assert_eq!(decide("me", Some(&empty), t0), Decision::Take);
    }
}
