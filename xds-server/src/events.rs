//! Stream events for the embedder: what go-control-plane's server callbacks report (a stream
//! opened or closed, a request, a response sent, an ACK, a NACK with Envoy's error detail),
//! delivered through a bounded queue the embedder reads at its own pace.
//!
//! An [`Observer`] registered with [`crate::XdsServer::with_observer`] is handed every event
//! with a non-blocking `try_send`: when the embedder falls behind and the queue is full, the
//! event is dropped and counted ([`Events::dropped`]), so a slow reader never slows a stream.
//! Events of one stream arrive in the order they happened; the streams' events interleave.
//!
//! Not here: metrics and logs (the server records those itself, observer or not), and any way
//! to change what a stream does: events are reports, not hooks.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use xdsc_server::events::{StreamEvent, observer};
//! use xdsc_server::{Publisher, XdsServer};
//!
//! let (observer, mut events) = observer(1024);
//! let _server = XdsServer::new(Publisher::new()).with_observer(observer);
//! tokio::spawn(async move {
//!     while let Some(event) = events.recv().await {
//!         if let StreamEvent::Nack { stream, nack } = &event {
//!             eprintln!("{} rejected {}: {}", stream.node.id, nack.resource_type, nack.detail);
//!         }
//!     }
//! });
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::mpsc;
use xdsc_core::snapshot::ResourceType;

use crate::protocol::{self, Nack, Variant};

/// The stream an event is about; shared by all of the stream's events.
#[derive(Debug)]
pub struct StreamInfo {
    /// The stream's id, as in `/debug/clients`.
    pub id: u64,
    /// The node of the stream's first request.
    pub node: Node,
    /// The fleet whose snapshots the stream was first served.
    pub fleet: String,
    /// The peer's address.
    pub peer: String,
    /// State of the world or delta.
    pub variant: Variant,
    /// The one type of a per-type service (`None`: aggregated).
    pub only: Option<ResourceType>,
}

/// Something that happened on an xDS stream.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// The stream's first request was read and the stream is being served.
    Opened {
        /// The stream.
        stream: Arc<StreamInfo>,
    },
    /// A request arrived (the first one included), as the protocol reads it.
    Request {
        /// The stream.
        stream: Arc<StreamInfo>,
        /// The request.
        request: protocol::Request,
    },
    /// A response was handed to the transport.
    ResponseSent {
        /// The stream.
        stream: Arc<StreamInfo>,
        /// The type.
        resource_type: ResourceType,
        /// The response's version (`system_version_info` in delta).
        version_info: String,
        /// The nonce the client will echo.
        nonce: String,
        /// The names of the resources sent, in name order.
        resources: Vec<Arc<str>>,
        /// Delta only: the names the client was told to remove.
        removed: Vec<Arc<str>>,
    },
    /// The client acknowledged a response.
    Ack {
        /// The stream.
        stream: Arc<StreamInfo>,
        /// The type.
        resource_type: ResourceType,
        /// The version acknowledged.
        version_info: String,
    },
    /// The client rejected a response; `nack.detail` is Envoy's error detail.
    Nack {
        /// The stream.
        stream: Arc<StreamInfo>,
        /// What was rejected, with the model objects it was built from.
        nack: Nack,
    },
    /// The stream ended.
    Closed {
        /// The stream.
        stream: Arc<StreamInfo>,
        /// The gRPC status it ended with (`None`: the client closed it, or went away).
        status: Option<String>,
    },
}

impl StreamEvent {
    /// The stream the event is about.
    pub fn stream(&self) -> &Arc<StreamInfo> {
        match self {
            StreamEvent::Opened { stream }
            | StreamEvent::Request { stream, .. }
            | StreamEvent::ResponseSent { stream, .. }
            | StreamEvent::Ack { stream, .. }
            | StreamEvent::Nack { stream, .. }
            | StreamEvent::Closed { stream, .. } => stream,
        }
    }
}

/// The sending side, registered with the server ([`crate::XdsServer::with_observer`]).
#[derive(Clone, Debug)]
pub struct Observer {
    tx: mpsc::Sender<StreamEvent>,
    dropped: Arc<AtomicU64>,
}

/// The receiving side, read by the embedder.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<StreamEvent>,
    dropped: Arc<AtomicU64>,
}

/// A bounded observer queue holding at most `capacity` events (at least 1).
///
/// ```
/// let (observer, events) = xdsc_server::events::observer(16);
/// assert_eq!(events.dropped(), 0);
/// # drop(observer);
/// ```
pub fn observer(capacity: usize) -> (Observer, Events) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        Observer {
            tx,
            dropped: Arc::clone(&dropped),
        },
        Events { rx, dropped },
    )
}

impl Observer {
    /// Offers an event without waiting: dropped (and counted) when the queue is full. Once
    /// the [`Events`] side is gone nothing is counted.
    pub(crate) fn offer(&self, event: StreamEvent) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether anyone still reads the events (so that they are worth building).
    pub(crate) fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }
}

impl Events {
    /// The next event; `None` once every server holding the observer is gone.
    pub async fn recv(&mut self) -> Option<StreamEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<StreamEvent> {
        self.rx.try_recv().ok()
    }

    /// How many events were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A stream's view of the observer: its info, built once, and the observer, if any.
pub(crate) struct StreamObserver {
    observer: Option<Observer>,
    info: Option<Arc<StreamInfo>>,
}

impl StreamObserver {
    pub(crate) fn new(observer: Option<Observer>) -> StreamObserver {
        StreamObserver {
            observer: observer.filter(Observer::is_open),
            info: None,
        }
    }

    /// Whether events are wanted (an observer is registered and read).
    pub(crate) fn wanted(&self) -> bool {
        self.observer.as_ref().is_some_and(Observer::is_open)
    }

    /// Records the stream's identity and reports it opened.
    pub(crate) fn opened(&mut self, info: impl FnOnce() -> StreamInfo) {
        if self.wanted() {
            let info = Arc::new(info());
            self.info = Some(Arc::clone(&info));
            self.offer(|stream| StreamEvent::Opened { stream });
        }
    }

    /// Reports an event of the opened stream, built only when it is wanted.
    pub(crate) fn offer(&self, event: impl FnOnce(Arc<StreamInfo>) -> StreamEvent) {
        if let (Some(o), Some(info)) = (&self.observer, &self.info)
            && o.is_open()
        {
            o.offer(event(Arc::clone(info)));
        }
    }

    /// Reports the protocol events of one step (ACKs and NACKs).
    pub(crate) fn protocol(&self, events: &[protocol::Event]) {
        for e in events {
            match e {
                protocol::Event::Ack {
                    resource_type,
                    version_info,
                } => self.offer(|stream| StreamEvent::Ack {
                    stream,
                    resource_type: *resource_type,
                    version_info: version_info.clone(),
                }),
                protocol::Event::Nack(nack) => self.offer(|stream| StreamEvent::Nack {
                    stream,
                    nack: nack.clone(),
                }),
                protocol::Event::StaleNonce { .. } => {}
            }
        }
    }

    /// Reports a response handed to the transport.
    pub(crate) fn sent(&self, r: &protocol::Response) {
        self.offer(|stream| StreamEvent::ResponseSent {
            stream,
            resource_type: r.resource_type,
            version_info: r.version_info.clone(),
            nonce: r.nonce.clone(),
            resources: r.resources.iter().map(|x| x.name_arc().clone()).collect(),
            removed: r.removed.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (o, mut events) = observer(2);
        let mut s = StreamObserver::new(Some(o));
        s.opened(|| StreamInfo {
            id: 1,
            node: Node::default(),
            fleet: "default".into(),
            peer: "p".into(),
            variant: Variant::Sotw,
            only: None,
        });
        for _ in 0..5 {
            s.offer(|stream| StreamEvent::Closed {
                stream,
                status: None,
            });
        }
        assert_eq!(events.dropped(), 4, "two fit: the opening and one close");
        assert!(matches!(
            events.try_recv(),
            Some(StreamEvent::Opened { .. })
        ));
        assert!(matches!(
            events.try_recv(),
            Some(StreamEvent::Closed { .. })
        ));
        assert!(events.try_recv().is_none());
        drop(events);
        // No reader: nothing is built or counted.
        assert!(!s.wanted());
    }

    #[test]
    fn without_an_opened_stream_nothing_is_reported() {
        let (o, mut events) = observer(4);
        let s = StreamObserver::new(Some(o));
        s.offer(|stream| StreamEvent::Closed {
            stream,
            status: None,
        });
        assert!(events.try_recv().is_none());
        assert_eq!(events.dropped(), 0);
    }
}
