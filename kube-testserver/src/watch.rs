//! Watch streams: newline-delimited `{"type","object"}` events after a resourceVersion, the
//! initial state as ADDED events (for a watch without a version, or `sendInitialEvents`),
//! the `k8s.io/initial-events-end` bookmark, periodic BOOKMARKs when asked, and a 410
//! Expired ERROR event when the version asked for is older than the history kept.
//!
//! One task per open watch reads the resource's event history under the store lock (never
//! across an await) and sends frames through a small channel, so a slow client slows only
//! its own task. A filtered watch sees an object that stops matching as DELETED and one
//! that starts matching as ADDED, as the real server's watch cache sends them.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Inner;
use crate::error::ApiError;
use crate::faults::Signal;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType};

/// Events read from the history per lock.
const BATCH: usize = 256;

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Send every current object as ADDED first.
    Initial,
    /// Send the changes after this version.
    After(u64),
}

/// An open watch's parameters.
pub(crate) struct Watch {
    pub(crate) id: usize,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) start: Start,
    pub(crate) bookmarks: bool,
    /// Send the `k8s.io/initial-events-end` bookmark after the initial state.
    pub(crate) initial_events_end: bool,
    pub(crate) timeout: Duration,
}

pub(crate) type Chunk = Result<Frame<Bytes>, io::Error>;

impl Watch {
    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns))
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event this watch sends for a change, if any.
    fn translate<'a>(&self, ev: &'a Event) -> Option<(&'static str, &'a Value)> {
        let now = self.matches(&ev.object);
        let before = ev.previous.as_deref().map(|p| self.matches(p));
        let kind = match (ev.kind, before, now) {
            (EventType::Deleted, Some(true), _) => EventType::Deleted,
            (EventType::Deleted, _, _) => return None,
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, Some(true), true) => EventType::Modified,
            (EventType::Modified, _, true) => EventType::Added,
            (EventType::Modified, Some(true), false) => EventType::Deleted,
            _ => return None,
        };
        Some((kind.as_str(), &ev.object))
    }

    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        let stored = obj.get("apiVersion").and_then(Value::as_str);
        let mut bytes = if stored == Some(self.api_version.as_str()) {
            serde_json::to_vec(&json!({"type": kind, "object": obj}))
        } else {
            let mut obj = obj.clone();
            obj["apiVersion"] = json!(self.api_version);
            serde_json::to_vec(&json!({"type": kind, "object": obj}))
        }
        .expect("JSON values serialize");
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line(
            "BOOKMARK",
            &json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": meta}),
        )
    }
}

async fn send(tx: &mpsc::Sender<Chunk>, bytes: Bytes) -> bool {
    tx.send(Ok(Frame::data(bytes))).await.is_ok()
}

/// Counts a watch as open while it lives.
struct Open(Arc<Inner>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Opens a watch: it is counted and sees every fault from now on, before its task runs.
pub(crate) fn start(inner: &Arc<Inner>, w: Watch, tx: mpsc::Sender<Chunk>) {
    inner.watches.fetch_add(1, Ordering::SeqCst);
    let open = Open(inner.clone());
    let mut signal = inner.signal.subscribe();
    let opened = *signal.borrow_and_update();
    tokio::spawn(run(open, w, tx, signal, opened));
}

/// Runs one watch until its timeout, a fault, an expired version or the client leaving.
async fn run(
    open: Open,
    w: Watch,
    tx: mpsc::Sender<Chunk>,
    mut signal: tokio::sync::watch::Receiver<Signal>,
    opened: Signal,
) {
    let inner = &open.0;
    let deadline = Instant::now() + w.timeout;
    let mut pos = match w.start {
        Start::After(rv) => rv,
        Start::Initial => {
            // Paused watches send nothing, the initial state included.
            while signal.borrow_and_update().paused {
                if signal.changed().await.is_err() {
                    return;
                }
            }
            let (objects, rv) = inner.state().snapshot(w.id);
            for obj in objects.values().filter(|o| w.matches(o)) {
                if !send(&tx, w.line(EventType::Added.as_str(), obj)).await {
                    return;
                }
            }
            if w.initial_events_end && !send(&tx, w.bookmark(rv, true)).await {
                return;
            }
            rv
        }
    };
    loop {
        let now = *signal.borrow_and_update();
        if now.end != opened.end {
            return;
        }
        if now.cut != opened.cut {
            let _ = tx
                .send(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "watch cut by the test server",
                )))
                .await;
            return;
        }
        if !now.paused {
            let read = inner.state().events_after(w.id, pos, BATCH);
            match read {
                Err(compacted) => {
                    let err =
                        ApiError::expired(format!("too old resource version: {pos} ({compacted})"));
                    let _ = send(&tx, w.line("ERROR", &err.to_status())).await;
                    return;
                }
                Ok((events, seen)) => {
                    let full = events.len() == BATCH;
                    for ev in &events {
                        if let Some((kind, obj)) = w.translate(ev)
                            && !send(&tx, w.line(kind, obj)).await
                        {
                            return;
                        }
                    }
                    pos = seen;
                    if full {
                        continue;
                    }
                }
            }
        }
        let bookmark = inner.bookmark_interval;
        tokio::select! {
            changed = signal.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(deadline) => return,
            () = tokio::time::sleep(bookmark), if w.bookmarks && !now.paused => {
                if !send(&tx, w.bookmark(pos, false)).await {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}
