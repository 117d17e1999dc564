//! Who may connect: the limits on open xDS connections in total and per peer address, and the
//! accept path's counters (rendered into `/metrics`).
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

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_peer` are open from this address.
    Peer,
}

/// Why the server closed an admitted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The TLS handshake and the HTTP/2 preface did not arrive within `handshake_timeout`.
    HandshakeTimeout,
    /// The client did not speak HTTP/2.
    BadHandshake,
    /// The TLS handshake failed (no client certificate where one is required, one from an
    /// untrusted CA, a client that does not speak TLS).
    TlsHandshake,
    /// An HTTP/2 PING went unanswered for `http2_keepalive_timeout`.
    KeepaliveTimeout,
    /// A response stayed unacknowledged for `response_timeout`: the client stopped reading.
    Stalled,
    /// Still open at the end of the shutdown grace period.
    Shutdown,
}

const CLOSED: [(Closed, &str); 6] = [
    (Closed::HandshakeTimeout, "handshake_timeout"),
    (Closed::BadHandshake, "bad_handshake"),
    (Closed::TlsHandshake, "tls_handshake"),
    (Closed::KeepaliveTimeout, "keepalive_timeout"),
    (Closed::Stalled, "stalled"),
    (Closed::Shutdown, "shutdown"),
];

/// The label of a refusal or close reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The accept path's counters.
#[derive(Debug)]
pub(crate) struct Counters {
    open: Gauge,
    accepted: Counter,
    refused: Family<Reason, Counter>,
    closed: Family<Reason, Counter>,
    tls_reloads: Family<Outcome, Counter>,
}

/// The label of a reload's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: &'static str,
}

impl Default for Counters {
    fn default() -> Counters {
        let c = Counters {
            open: Gauge::default(),
            accepted: Counter::default(),
            refused: Family::default(),
            closed: Family::default(),
            tls_reloads: Family::default(),
        };
        for result in ["ok", "error"] {
            let _ = c.tls_reloads.get_or_create(&Outcome { result });
        }
        // Every reason is shown from the start, at 0.
        for reason in ["total", "peer"] {
            let _ = c.refused.get_or_create(&Reason { reason });
        }
        for (_, reason) in CLOSED {
            let _ = c.closed.get_or_create(&Reason { reason });
        }
        c
    }
}

impl Counters {
    pub(crate) fn closed(&self, why: Closed) {
        if let Some((_, reason)) = CLOSED.iter().find(|(c, _)| *c == why) {
            self.closed.get_or_create(&Reason { reason }).inc();
        }
    }

    /// Counts a reload of changed TLS files: used (`ok`) or refused, the previous
    /// configuration kept.
    pub(crate) fn tls_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.tls_reloads.get_or_create(&Outcome { result }).inc();
    }

    fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    /// Adds these counters' families to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "xdsc_xds_connections",
            "Open xDS connections",
            self.open.clone(),
        );
        registry.register(
            "xdsc_xds_connections_accepted",
            "xDS connections admitted",
            self.accepted.clone(),
        );
        registry.register(
            "xdsc_xds_connections_refused",
            "xDS connections refused by a connection limit (total: max_connections; peer: max_connections_per_peer)",
            self.refused.clone(),
        );
        registry.register(
            "xdsc_xds_connections_closed",
            "xDS connections the server closed, by reason",
            self.closed.clone(),
        );
        registry.register(
            "xdsc_xds_tls_reloads",
            "Changes of the xDS TLS files read: ok (new connections get them) or error (the previous certificate kept)",
            self.tls_reloads.clone(),
        );
    }
}

/// The open connections, counted in total and per peer address.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_peer: usize,
    open: Mutex<Open>,
    counters: Arc<crate::metrics::Metrics>,
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
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_peer,
            open: Mutex::default(),
            counters: metrics,
            warned: [Throttle::default(), Throttle::default()],
        })
    }

    fn counters(&self) -> &Counters {
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
                c.open.inc();
                c.accepted.inc();
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
        a.counters().open.dec();
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
        let metrics = Arc::new(crate::metrics::Metrics::default());
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
