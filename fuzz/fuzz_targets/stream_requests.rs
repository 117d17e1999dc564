//! Sequences of state-of-the-world or delta requests (any type URL, names, versions, nonces
//! current, stale or made up, ACKs and NACKs, `initial_resource_versions`, a tiny name limit)
//! and newer snapshots, driven into one stream of xdsc-server's protocol state machine
//! (`protocol::Stream`, sans-IO), as the service does. Nothing may panic, and the protocol's
//! promises hold after every step:
//! - at most one unacknowledged response per type: a type is sent again only after a request
//!   answered its latest nonce;
//! - nonces are never reused; a response's resources are in name order, without duplicates;
//!   a delta response never both sends and removes a name;
//! - content the client rejected (a NACK) is never sent again as the next response of its type.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xdsc_core::snapshot::{ResourceType, Snapshot};
use xdsc_server::protocol::{Limits, Request, Stream, Variant};

const NAMES: [&str; 8] = ["a", "b", "c", "http", "*", "v", "missing", ""];

fn snapshots() -> &'static [Arc<Snapshot>] {
    static S: OnceLock<Vec<Arc<Snapshot>>> = OnceLock::new();
    S.get_or_init(|| {
        use xdsc_server::testing::snapshot;
        vec![
            Arc::new(snapshot("a", &["a", "b"], 80)),
            Arc::new(snapshot("b", &["b", "c"], 81)),
            Arc::new(snapshot("a", &["a"], 80)),
            Arc::new(snapshot("missing", &["c"], 82)),
            Arc::new(Snapshot::default()),
        ]
    })
}

#[derive(Arbitrary, Debug)]
enum Nonce {
    Empty,
    /// The latest nonce sent for the request's type.
    Latest,
    /// Some nonce sent earlier on the stream, of any type.
    Earlier(u8),
    Made(String),
}

#[derive(Arbitrary, Debug)]
enum Version {
    Empty,
    /// The version of the latest response of the request's type.
    Latest,
    /// A resource's real version in the current snapshot.
    OfResource(u8),
    Made(String),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Snapshot(u8),
    Request {
        ty: u8,
        version: Version,
        names: Vec<u8>,
        nonce: Nonce,
        nack: Option<String>,
        subscribe: Vec<u8>,
        unsubscribe: Vec<u8>,
        initial: Vec<(u8, Version)>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    delta: bool,
    only: Option<u8>,
    first: u8,
    max_names: u8,
    ops: Vec<Op>,
}

fn type_url(ty: u8) -> String {
    match ResourceType::ALL.get(usize::from(ty) % 6) {
        Some(t) => t.type_url().to_owned(),
        None => "type.googleapis.com/envoy.config.core.v3.Unknown".to_owned(),
    }
}

fn name(i: u8) -> String {
    NAMES[usize::from(i) % NAMES.len()].to_owned()
}

/// What the harness remembers of the responses sent, to check the promises.
#[derive(Default)]
struct Seen {
    nonces: BTreeSet<String>,
    all: Vec<String>,
    /// The unanswered nonce and version per type.
    outstanding: BTreeMap<ResourceType, (String, String)>,
    latest: BTreeMap<ResourceType, (String, String)>,
    /// The content of the response per nonce: version and (name, version) sent, removed.
    content: BTreeMap<String, (ResourceType, String, Vec<(String, String)>, Vec<String>)>,
    /// Content the client rejected, per type, until a different response of the type is sent.
    rejected: BTreeMap<ResourceType, (String, Vec<(String, String)>, Vec<String>)>,
}

fuzz_target!(|input: Input| {
    let snaps = snapshots();
    let variant = if input.delta { Variant::Delta } else { Variant::Sotw };
    let only = input
        .only
        .and_then(|t| ResourceType::ALL.get(usize::from(t) % 5).copied());
    let limits = Limits {
        max_subscribed_names: usize::from(input.max_names % 12),
    };
    let mut current = Arc::clone(&snaps[usize::from(input.first) % snaps.len()]);
    let mut stream = Stream::new(variant, only, limits, Arc::clone(&current));
    let mut seen = Seen::default();
    for op in input.ops.into_iter().take(64) {
        let step = match op {
            Op::Snapshot(i) => {
                current = Arc::clone(&snaps[usize::from(i) % snaps.len()]);
                stream.on_snapshot(Arc::clone(&current))
            }
            Op::Request {
                ty,
                version,
                names,
                nonce,
                nack,
                subscribe,
                unsubscribe,
                initial,
            } => {
                let type_url = type_url(ty);
                let t = ResourceType::from_type_url(&type_url);
                let version_of = |v: Version| match v {
                    Version::Empty => String::new(),
                    Version::Latest => t
                        .and_then(|t| seen.latest.get(&t))
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                    Version::OfResource(i) => t
                        .and_then(|t| {
                            let rs = current.resources(t);
                            let n = rs.len();
                            (n > 0).then(|| {
                                rs.iter().nth(usize::from(i) % n).map(|r| r.version().to_string())
                            })
                        })
                        .flatten()
                        .unwrap_or_default(),
                    Version::Made(s) => s,
                };
                let response_nonce = match nonce {
                    Nonce::Empty => String::new(),
                    Nonce::Latest => t
                        .and_then(|t| seen.latest.get(&t))
                        .map(|(n, _)| n.clone())
                        .unwrap_or_default(),
                    Nonce::Earlier(i) if !seen.all.is_empty() => {
                        seen.all[usize::from(i) % seen.all.len()].clone()
                    }
                    Nonce::Earlier(_) => String::new(),
                    Nonce::Made(s) => s,
                };
                let req = Request {
                    type_url,
                    version_info: version_of(version),
                    resource_names: names.into_iter().take(16).map(name).collect(),
                    subscribe: subscribe.into_iter().take(16).map(name).collect(),
                    unsubscribe: unsubscribe.into_iter().take(16).map(name).collect(),
                    initial_versions: initial
                        .into_iter()
                        .take(16)
                        .map(|(n, v)| (name(n), version_of(v)))
                        .collect(),
                    response_nonce: response_nonce.clone(),
                    error: nack.clone(),
                };
                if let Some(t) = t
                    && seen
                        .outstanding
                        .get(&t)
                        .is_some_and(|(n, _)| *n == response_nonce)
                {
                    seen.outstanding.remove(&t);
                    if nack.is_some() {
                        let (_, v, sent, removed) = seen.content[&response_nonce].clone();
                        seen.rejected.insert(t, (v, sent, removed));
                    }
                }
                let result = match variant {
                    Variant::Sotw => stream.on_request(req),
                    Variant::Delta => stream.on_delta_request(req),
                };
                match result {
                    Ok(step) => step,
                    // The service ends the stream with a gRPC status.
                    Err(_) => return,
                }
            }
        };
        for r in &step.responses {
            let t = r.resource_type;
            if let Some(only) = only {
                assert_eq!(t, only, "a per-type stream sent another type");
            }
            assert!(
                !seen.outstanding.contains_key(&t),
                "{t:?} sent while its previous response is unacknowledged"
            );
            assert!(seen.nonces.insert(r.nonce.clone()), "nonce {} reused", r.nonce);
            let names: Vec<&str> = r.resources.iter().map(|x| x.name()).collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "resources out of order or repeated: {names:?}"
            );
            let removed: Vec<String> = r.removed.iter().map(|n| n.to_string()).collect();
            if variant == Variant::Sotw {
                assert!(removed.is_empty(), "a state-of-the-world response removes names");
            }
            for n in &removed {
                assert!(!names.contains(&n.as_str()), "{n} both sent and removed");
            }
            let sent: Vec<(String, String)> = r
                .resources
                .iter()
                .map(|x| (x.name().to_owned(), x.version().to_string()))
                .collect();
            if let Some((v, s, rm)) = seen.rejected.remove(&t) {
                assert!(
                    !(v == r.version_info && s == sent && rm == removed),
                    "rejected content of {t:?} sent again: {v}"
                );
            }
            seen.outstanding
                .insert(t, (r.nonce.clone(), r.version_info.clone()));
            seen.latest.insert(t, (r.nonce.clone(), r.version_info.clone()));
            seen.all.push(r.nonce.clone());
            seen.content
                .insert(r.nonce.clone(), (t, r.version_info.clone(), sent, removed));
        }
        let _ = (stream.status(), stream.awaiting_ack());
    }
});
