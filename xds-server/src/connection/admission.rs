//! Who may connect: the limits on open xDS connections in total and per peer address, counted
//! in the accept path's families of [`Metrics`].
//!
//! A refused connection is closed at once, before any byte is read; a warning is logged at
//! most every 10 s per reason, with how many were refused since, so a flood of connections
//! does not become a flood of log lines.
//!
//! Not here: timeouts of admitted connections (the connection task).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics::{Closed, Connections, Metrics};

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_peer` are open from this address.
    Peer,
}

/// The open connections, counted in total and per peer address.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_peer: usize,
    open: Mutex<Open>,
    counters: Arc<Metrics>,
    warned: [Throttle; 2],
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// An admitted connection's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    peer: IpAddr,
}

impl Admission {
    pub(crate) fn new(
        max_total: usize,
        max_per_peer: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_peer,
            open: Mutex::default(),
            counters: metrics,
            warned: [Throttle::default(), Throttle::default()],
        })
    }

    fn counters(&self) -> &Connections {
        &self.counters.connections
    }

    /// Admits a connection from `peer`, or says which limit refuses it (and logs and counts
    /// the refusal).
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refusal> {
        let peer = canonical(peer);
        let refusal = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let from_peer = open.per_peer.get(&peer).copied().unwrap_or(0);
            if open.total >= self.max_total {
                Some(Refusal::Total)
            } else if from_peer >= self.max_per_peer {
                Some(Refusal::Peer)
            } else {
                open.total += 1;
                *open.per_peer.entry(peer).or_default() += 1;
                None
            }
        };
        let c = self.counters();
        match refusal {
            None => {
                c.admitted();
                Ok(Ticket {
                    admission: Arc::clone(self),
                    peer,
                })
            }
            Some(Refusal::Total) => {
                c.refused("total");
                if let Some(since) = self.warned[0].allow() {
                    tracing::warn!(%peer, limit = self.max_total, refused_since_last_warning = since, "xDS connection refused: the server's connection limit is reached (max_connections)");
                }
                Err(Refusal::Total)
            }
            Some(Refusal::Peer) => {
                c.refused("peer");
                if let Some(since) = self.warned[1].allow() {
                    tracing::warn!(%peer, limit = self.max_per_peer, refused_since_last_warning = since, "xDS connection refused: this peer's connection limit is reached (max_connections_per_peer)");
                }
                Err(Refusal::Peer)
            }
        }
    }

    /// Counts a connection the server closed.
    pub(crate) fn closed(&self, why: Closed) {
        self.counters().closed(why);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let a = &self.admission;
        {
            let mut open = a.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.total = open.total.saturating_sub(1);
            if let Some(n) = open.per_peer.get_mut(&self.peer) {
                *n -= 1;
                if *n == 0 {
                    open.per_peer.remove(&self.peer);
                }
            }
        }
        a.counters().left();
    }
}

/// An IPv4 peer seen through an IPv6 socket counts as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Allows one log line per period; counts the ones it suppressed.
#[derive(Debug, Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

const THROTTLE: Duration = Duration::from_secs(10);

impl Throttle {
    /// `Some(suppressed since the last allowed line)` when a line may be logged now.
    fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < THROTTLE) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_total_and_per_peer_and_places_given_back() {
        let metrics = Arc::new(Metrics::default());
        let a = Admission::new(3, 2, Arc::clone(&metrics));
        let (p, q) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let one = a.admit(p).expect("first");
        let two = a.admit(p).expect("second");
        assert_eq!(a.admit(p).err(), Some(Refusal::Peer));
        // The same peer seen as an IPv4-mapped IPv6 address is the same peer.
        assert_eq!(
            a.admit("::ffff:10.0.0.1".parse().unwrap()).err(),
            Some(Refusal::Peer)
        );
        let three = a.admit(q).expect("another peer");
        assert_eq!(
            a.admit("10.0.0.3".parse().unwrap()).err(),
            Some(Refusal::Total)
        );
        drop((one, three));
        let _again = a.admit(p).expect("a place was given back");
        drop(two);
        let text = metrics.render();
        assert!(text.contains("xdsc_xds_connections 1\n"), "{text}");
        assert!(
            text.contains("xdsc_xds_connections_accepted_total 4\n"),
            "{text}"
        );
        assert!(
            text.contains("refused_total{reason=\"peer\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("refused_total{reason=\"total\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_flood_of_refusals_logs_once_per_period_with_the_count() {
        let t = Throttle::default();
        assert_eq!(t.allow(), Some(0));
        for _ in 0..1000 {
            assert_eq!(t.allow(), None);
        }
        *t.last.lock().unwrap() = Some(Instant::now() - THROTTLE);
        assert_eq!(t.allow(), Some(1000));
    }
}
