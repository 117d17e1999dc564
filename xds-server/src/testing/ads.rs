//! A scripted ADS client over the real gRPC transport, state of the world or delta:
//! [`AdsClient`] sends what a test tells it to and hands back each [`Reply`];
//! [`FakeEnvoy`] subscribes and acknowledges as Envoy does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use xdsc_core::snapshot::ResourceType;

use crate::protocol::{Request, RequestNames};
use crate::wire::SotwRequestOut;

/// One discovery response as the client received it, state of the world or delta.
///
/// Decoded lazily, as a fake Envoy needs it: the envelope (version, nonce, type, removed
/// names) is read as the message's frames arrive and the resources only counted; the frames
/// are kept as received (not copied into one buffer), and joined only when a test asks for
/// the resources' bytes or names (a state-of-the-world resource's name read from its first
/// field). A thousand fake Envoys in one load-test process would otherwise spend more CPU
/// decoding (and copying and allocating per resource) than the server spends sending; the
/// full generated message is decoded only on demand ([`Reply::sotw`], [`Reply::delta`]).
#[derive(Clone, Debug)]
pub struct Reply {
    /// The message as received: the data frames it came in (slices of the connection's
    /// reads; a large response is never copied into one buffer unless a test asks).
    chunks: Vec<Bytes>,
    /// The message in one piece, made when first asked for.
    raw: std::sync::OnceLock<Bytes>,
    delta: bool,
    envelope: Envelope,
    /// Delta: `removed_resources`.
    removed: Vec<String>,
    /// The resources' entries, decoded when first asked for (a load test that only times
    /// arrivals never asks).
    entries: std::sync::OnceLock<Vec<Entry>>,
}

/// Two replies are equal when they carry the same message, however it was split.
impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        self.delta == other.delta && self.raw() == other.raw()
    }
}

/// The fields of a response a fake Envoy reads; both variants (delta's
/// `system_version_info` in `version_info`). The resources are only counted: their bytes
/// are walked again when first asked for ([`Reply::entries`]).
#[derive(Clone, Debug, Default, PartialEq)]
struct Envelope {
    version_info: String,
    /// How many resource entries (field 2) the message has.
    resources: usize,
    type_url: String,
    nonce: String,
}

/// Hands each length-delimited top-level field of an encoded message (its tag and bytes) to
/// `field`, skipping fields of other wire types: one walk, no allocation or slice per field.
fn each_field<'a>(mut buf: &'a [u8], mut field: impl FnMut(u32, &'a [u8])) -> Result<(), Status> {
    use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(undecodable)?;
        if wire_type == WireType::LengthDelimited {
            let len = decode_varint(&mut buf).map_err(undecodable)?;
            let Some(bytes) = usize::try_from(len).ok().and_then(|len| buf.get(..len)) else {
                return Err(too_long());
            };
            field(tag, bytes);
            buf = &buf[bytes.len()..];
        } else {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default()).map_err(undecodable)?;
        }
    }
    Ok(())
}

fn undecodable(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("a response that does not decode: {e}"))
}

fn too_long() -> Status {
    Status::internal("a response that does not decode: a field longer than its message")
}

/// Reads a response's envelope as its bytes arrive ([`crate::wire::Walk`]), while they are
/// in the cache: the short fields are gathered, the resources (field 2) only counted and
/// skipped. One walk for both variants (delta's `system_version_info` is field 1 too).
#[derive(Debug, Default)]
struct EnvelopeWalk {
    delta: bool,
    /// The start of a field's key and length that ended a piece (at most [`HEAD`] bytes).
    head: Vec<u8>,
    /// Bytes of a skipped field still to come.
    skip: usize,
    /// A gathered field still coming: its tag and how many bytes are missing.
    gathering: Option<(u32, usize)>,
    value: Vec<u8>,
    envelope: Envelope,
    removed: Vec<String>,
}

/// A key and a length are at most 20 bytes.
const HEAD: usize = 20;

/// What the start of a field says, if enough of it is there.
enum Head {
    /// Its tag, its length when length-delimited (else how many bytes it has beyond the
    /// key, to skip), and how many bytes the key (and length) took.
    Field {
        tag: u32,
        len: Option<usize>,
        skip: usize,
        used: usize,
    },
    /// Cut short by the end of the piece.
    More,
}

/// A varint at the start of `buf`: its value and length, `None` when cut short.
fn varint(buf: &[u8]) -> Result<Option<(u64, usize)>, Status> {
    let mut value = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 10 {
        return Err(undecodable("a varint longer than ten bytes"));
    }
    Ok(None)
}

fn head(buf: &[u8]) -> Result<Head, Status> {
    let Some((key, k)) = varint(buf)? else {
        return Ok(Head::More);
    };
    let tag = u32::try_from(key >> 3).map_err(|_| undecodable("a tag out of range"))?;
    let (len, skip, used) = match key & 7 {
        0 => match varint(&buf[k..])? {
            Some((_, n)) => (None, 0, k + n),
            None => return Ok(Head::More),
        },
        1 => (None, 8, k),
        5 => (None, 4, k),
        2 => match varint(&buf[k..])? {
            Some((len, n)) => {
                let len = usize::try_from(len).map_err(|_| too_long())?;
                (Some(len), 0, k + n)
            }
            None => return Ok(Head::More),
        },
        w => {
            return Err(undecodable(format!("wire type {w} in a response envelope")));
        }
    };
    Ok(Head::Field {
        tag,
        len,
        skip,
        used,
    })
}

impl crate::wire::Walk for EnvelopeWalk {
    fn feed(&mut self, mut buf: &[u8]) -> Result<(), Status> {
        // The kernel's copy of a large read leaves it out of the cache, and the walk below is
        // a chain of dependent loads (each field's length says where the next one starts): one
        // miss per resource. Reading one byte of every cache line first, loads that do not wait
        // for each other, brings the piece in at the memory's bandwidth instead.
        std::hint::black_box(buf.iter().step_by(64).fold(0u8, |a, &b| a ^ b));
        loop {
            let n = self.skip.min(buf.len());
            buf = &buf[n..];
            self.skip -= n;
            if let Some((tag, need)) = self.gathering {
                let n = need.min(buf.len());
                self.value.extend_from_slice(&buf[..n]);
                buf = &buf[n..];
                if n < need {
                    self.gathering = Some((tag, need - n));
                    return Ok(());
                }
                self.gathering = None;
                self.field(tag);
            }
            if buf.is_empty() || self.skip > 0 {
                return Ok(());
            }
            // A field's start: in this piece, or the end of the last one joined with it.
            let (parsed, joined) = if self.head.is_empty() {
                (head(&buf[..buf.len().min(HEAD)])?, 0)
            } else {
                let joined = self.head.len();
                let more = (HEAD - joined).min(buf.len());
                self.head.extend_from_slice(&buf[..more]);
                (head(&self.head)?, joined)
            };
            let Head::Field {
                tag,
                len,
                skip,
                used,
            } = parsed
            else {
                // Cut short: keep what there is of it (joined already, or now).
                if joined == 0 {
                    self.head.extend_from_slice(buf);
                }
                return Ok(());
            };
            self.head.clear();
            buf = &buf[used - joined..];
            match len {
                Some(len) if tag != 2 => {
                    self.value.clear();
                    self.gathering = Some((tag, len));
                }
                Some(len) => {
                    self.envelope.resources += 1;
                    self.skip = len;
                }
                None => self.skip = skip,
            }
        }
    }
}

impl EnvelopeWalk {
    fn for_variant(delta: bool) -> Self {
        EnvelopeWalk {
            delta,
            ..EnvelopeWalk::default()
        }
    }

    /// A gathered field is complete in `value`.
    fn field(&mut self, tag: u32) {
        let text = String::from_utf8_lossy(&self.value).into_owned();
        match tag {
            1 => self.envelope.version_info = text,
            4 => self.envelope.type_url = text,
            5 => self.envelope.nonce = text,
            // Delta: `removed_resources` (state of the world: `control_plane`, not read).
            6 if self.delta => self.removed.push(text),
            _ => {}
        }
    }

    /// The message is over: its envelope, and the walk is ready for the next message.
    fn finish(&mut self) -> Result<(Envelope, Vec<String>), Status> {
        let cut = self.skip > 0 || self.gathering.is_some() || !self.head.is_empty();
        let delta = self.delta;
        let done = std::mem::replace(self, EnvelopeWalk::for_variant(delta));
        if cut {
            return Err(too_long());
        }
        Ok((done.envelope, done.removed))
    }
}

/// A state-of-the-world `Any` (its value in field 2, the type URL skipped) or a delta
/// `Resource` (its `Any` in field 2, the name in field 3, the version skipped): one decoding
/// serves both, since field 2 is length-delimited in each.
#[derive(Clone, PartialEq, prost::Message)]
struct Entry {
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
    /// A string on the wire; kept as the received bytes (no allocation per resource).
    #[prost(bytes = "bytes", tag = "3")]
    name: Bytes,
}

/// Every xDS resource type xdsc serves has its name in field 1.
#[derive(Clone, PartialEq, prost::Message)]
struct Named {
    #[prost(string, tag = "1")]
    name: String,
}

/// The name of an encoded resource: field 1, read directly when it comes first (as xdsc and
/// every protobuf encoder write it), else by skipping the other fields.
fn name_of(body: &[u8]) -> String {
    match first_name(body) {
        Some(name) => String::from_utf8_lossy(name).into_owned(),
        None => Named::decode(body).unwrap_or_default().name,
    }
}

/// The last length-delimited field `tag` of an encoded message (the one a decoder keeps),
/// if it has one and decodes.
fn last_field(body: &[u8], tag: u32) -> Option<&[u8]> {
    let mut last = None;
    each_field(body, |t, bytes| {
        if t == tag {
            last = Some(bytes);
        }
    })
    .ok()?;
    last
}

/// The name of a resource whose first field is its name, as encoders write it.
fn first_name(body: &[u8]) -> Option<&[u8]> {
    let mut buf = body;
    if prost::encoding::decode_varint(&mut buf).ok()? != (1 << 3) | 2 {
        return None;
    }
    let len = prost::encoding::decode_varint(&mut buf).ok()?;
    buf.get(..usize::try_from(len).ok()?)
}

impl Reply {
    /// A reply from a message's pieces (walked here; the client walks them as they arrive).
    #[cfg(test)]
    fn decode(chunks: Vec<Bytes>, delta: bool) -> Result<Reply, Status> {
        use crate::wire::Walk;
        let mut walk = EnvelopeWalk::for_variant(delta);
        for c in &chunks {
            walk.feed(c)?;
        }
        Reply::walked(chunks, &mut walk)
    }

    /// The reply whose pieces `walk` has read.
    fn walked(chunks: Vec<Bytes>, walk: &mut EnvelopeWalk) -> Result<Reply, Status> {
        let delta = walk.delta;
        let (envelope, removed) = walk.finish()?;
        Ok(Reply {
            chunks,
            raw: std::sync::OnceLock::new(),
            delta,
            envelope,
            removed,
            entries: std::sync::OnceLock::new(),
        })
    }

    /// The message in one piece (a copy of it when it came in several frames), made once.
    fn raw(&self) -> &Bytes {
        self.raw.get_or_init(|| crate::wire::concat(&self.chunks))
    }

    /// The resources' entries, decoded once, each a slice of the received message.
    fn entries(&self) -> &[Entry] {
        self.entries.get_or_init(|| {
            let mut entries = Vec::with_capacity(self.envelope.resources);
            // The message walked once already in `decode`: it has no error now.
            let raw = self.raw();
            let _ = each_field(raw, |tag, bytes| {
                if tag == 2 {
                    let mut e = Entry::decode(raw.slice_ref(bytes)).unwrap_or_default();
                    if self.delta {
                        // A delta resource's `Any`: keep only its value.
                        e.value = Entry::decode(e.value.clone()).unwrap_or_default().value;
                    }
                    entries.push(e);
                }
            });
            entries
        })
    }

    /// The type, if the type URL is one of xdsc's.
    pub fn resource_type(&self) -> Option<ResourceType> {
        ResourceType::from_type_url(self.type_url())
    }

    /// The type URL.
    pub fn type_url(&self) -> &str {
        &self.envelope.type_url
    }

    /// `version_info` (state of the world) or `system_version_info` (delta).
    pub fn version_info(&self) -> &str {
        &self.envelope.version_info
    }

    /// The nonce to echo.
    pub fn nonce(&self) -> &str {
        &self.envelope.nonce
    }

    /// How many resources it carries.
    pub fn len(&self) -> usize {
        self.envelope.resources
    }

    /// Whether it carries no resources (a delta response may still remove some).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of the resources it carries, in order (read from the resources in state of
    /// the world, where a response does not name them).
    pub fn names(&self) -> Vec<String> {
        self.entries()
            .iter()
            .map(|e| {
                if self.delta {
                    String::from_utf8_lossy(&e.name).into_owned()
                } else {
                    name_of(&e.value)
                }
            })
            .collect()
    }

    /// Delta: the names the client must forget; empty in state of the world.
    pub fn removed(&self) -> &[String] {
        &self.removed
    }

    /// The same names, borrowed from the message without a copy each; `None` when one is not
    /// UTF-8 or (state of the world) not its resource's first field, for [`Reply::names`] to
    /// read.
    ///
    /// Read from the message itself, not from [`Reply::entries`]: a slice per name, no
    /// `Bytes` (and its reference count) per resource.
    fn name_refs(&self) -> Option<Vec<&str>> {
        let raw: &[u8] = self.raw();
        let mut names = Vec::with_capacity(self.envelope.resources);
        let mut all = true;
        each_field(raw, |tag, entry| {
            if tag != 2 || !all {
                return;
            }
            // A delta `Resource` names itself in field 3; a state-of-the-world `Any`'s value
            // (field 2) starts with the resource's name.
            let name = if self.delta {
                last_field(entry, 3)
            } else {
                last_field(entry, 2).and_then(first_name)
            };
            match name.and_then(|n| std::str::from_utf8(n).ok()) {
                Some(n) => names.push(n),
                None => all = false,
            }
        })
        .ok()?;
        all.then_some(names)
    }

    /// The encoded resources (each `Any`'s value), in order.
    pub fn bodies(&self) -> Vec<&[u8]> {
        self.entries().iter().map(|e| e.value.as_ref()).collect()
    }

    /// The size of the response on the wire (its protobuf encoding).
    pub fn encoded_len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// The state-of-the-world response, decoded in full, if it is one.
    pub fn sotw(&self) -> Option<DiscoveryResponse> {
        (!self.delta)
            .then(|| DiscoveryResponse::decode(self.raw().clone()).ok())
            .flatten()
    }

    /// The delta response, decoded in full, if it is one.
    pub fn delta(&self) -> Option<DeltaDiscoveryResponse> {
        self.delta
            .then(|| DeltaDiscoveryResponse::decode(self.raw().clone()).ok())
            .flatten()
    }
}

/// A request as the data it is written in: a gRPC message (its prefix and bytes), in one or
/// more pieces.
trait Framed: Send + 'static {
    fn framed(self) -> Result<Vec<Bytes>, Status>;
}

/// The gRPC prefix and `message`'s encoding, in one buffer, with `reserve` bytes more to come
/// after it.
fn prefixed(message: &impl Message, reserve: usize) -> Result<Bytes, Status> {
    let own = message.encoded_len();
    let len = u32::try_from(own + reserve).map_err(|_| Status::internal("a request over 4 GiB"))?;
    let mut buf = Vec::with_capacity(5 + own);
    buf.push(0);
    buf.extend_from_slice(&len.to_be_bytes());
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(format!("a request that does not encode: {e}")))?;
    Ok(Bytes::from(buf))
}

impl Framed for DeltaDiscoveryRequest {
    fn framed(self) -> Result<Vec<Bytes>, Status> {
        Ok(vec![prefixed(&self, 0)?])
    }
}

/// The names as the bytes they were encoded in, not copied: Envoy's acknowledgement of
/// endpoints lists every cluster (150 KB at 10,000), and a thousand fake Envoys copying it
/// into a new buffer for each acknowledgement spent the cores the server is measured on.
impl Framed for SotwRequestOut {
    fn framed(self) -> Result<Vec<Bytes>, Status> {
        let names = self.names.encoded_bytes().clone();
        let head = prefixed(&self.rest, names.len())?;
        Ok([head, names]
            .into_iter()
            .filter(|b| !b.is_empty())
            .collect())
    }
}

/// The data frames of a stream of requests: each request's pieces in turn ([`Framed`]).
struct Pieces<Q> {
    requests: ReceiverStream<Q>,
    queued: std::collections::VecDeque<Bytes>,
}

impl<Q: Framed> tokio_stream::Stream for Pieces<Q> {
    type Item = Result<http_body::Frame<Bytes>, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            if let Some(piece) = self.queued.pop_front() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(piece))));
            }
            match std::pin::Pin::new(&mut self.requests).poll_next(cx) {
                Poll::Ready(Some(request)) => match request.framed() {
                    Ok(pieces) => self.queued.extend(pieces),
                    Err(status) => return Poll::Ready(Some(Err(status))),
                },
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The largest response an [`AdsClient`] takes (the server's own limit is lower).
const MAX_RESPONSE: usize = 1 << 30;

/// Opens the streaming method `method` of the aggregated discovery service on `channel`, its
/// requests what `requests` yields; returns the response messages.
///
/// Over the channel's HTTP/2 directly rather than a tonic `Streaming`: that keeps a receive
/// buffer of the largest response for the stream's life (4 MiB at 10,000 services), so a
/// thousand idle fake Envoys in one load-test process held gigabytes, and faulted in fresh
/// pages for each. Here each response is its own allocation, freed with the [`Reply`].
async fn open_stream<Q: Framed>(
    mut channel: tonic::transport::Channel,
    method: &str,
    requests: mpsc::Receiver<Q>,
) -> Result<crate::wire::Messages, Status> {
    use tonic::client::GrpcService;
    use tonic::codegen::http;
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| Status::unknown(format!("the connection is not ready: {e}")))?;
    let service = "envoy.service.discovery.v3.AggregatedDiscoveryService";
    let body = tonic::body::Body::new(http_body_util::StreamBody::new(Pieces {
        requests: ReceiverStream::new(requests),
        queued: std::collections::VecDeque::new(),
    }));
    let request = http::Request::builder()
        .method(http::Method::POST)
        .version(http::Version::HTTP_2)
        .uri(format!("/{service}/{method}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(body)
        .map_err(|e| Status::internal(format!("a bad request: {e}")))?;
    let response = channel
        .call(request)
        .await
        .map_err(|e| Status::unavailable(format!("the request failed: {e}")))?;
    if response.status() != http::StatusCode::OK {
        return Err(Status::unknown(format!(
            "HTTP status {} from the server",
            response.status()
        )));
    }
    // A trailers-only response: the status is in the headers.
    if let Some(status) = Status::from_header_map(response.headers())
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    Ok(crate::wire::Messages::new(
        tonic::body::Body::new(response.into_body()),
        MAX_RESPONSE,
    ))
}

enum Tx {
    Sotw(mpsc::Sender<SotwRequestOut>),
    Delta(mpsc::Sender<DeltaDiscoveryRequest>),
}

/// How many requests may wait to be written (a script sends a few at a time).
const QUEUED: usize = 16;

fn error_detail(error: Option<String>) -> Option<RpcStatus> {
    error.map(|message| RpcStatus {
        code: 3,
        message,
        details: Vec::new(),
    })
}

/// One ADS stream (`StreamAggregatedResources` or `DeltaAggregatedResources`) driven by a
/// test: requests are [`Request`]s, the state machine's own form for both variants; the node
/// goes on the first one.
pub struct AdsClient {
    tx: Tx,
    /// In a mutex only so that the client is `Sync` (the body is not): it is only ever
    /// reached through `&mut self`, never locked. With the walk reading the envelope of the
    /// response being received (kept here, so that a cancelled [`AdsClient::next`] resumes).
    rx: std::sync::Mutex<(crate::wire::Messages, EnvelopeWalk)>,
}

impl std::fmt::Debug for AdsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdsClient")
            .field("delta", &self.is_delta())
            .finish_non_exhaustive()
    }
}

impl AdsClient {
    /// Opens a stream on `channel` whose first request is `first`, sent with `node`.
    pub async fn open(
        channel: tonic::transport::Channel,
        node: Node,
        delta: bool,
        first: Request,
    ) -> Result<AdsClient, Status> {
        let (tx, rx) = if delta {
            let (tx, rx) = mpsc::channel(QUEUED);
            let mut first = Self::delta_request(first);
            first.node = Some(node);
            let _ = tx.send(first).await;
            let rx = open_stream(channel, "DeltaAggregatedResources", rx).await?;
            (Tx::Delta(tx), rx)
        } else {
            let (tx, rx) = mpsc::channel(QUEUED);
            let mut first = Self::sotw_request(first);
            first.rest.node = Some(node);
            let _ = tx.send(first).await;
            let rx = open_stream(channel, "StreamAggregatedResources", rx).await?;
            (Tx::Sotw(tx), rx)
        };
        Ok(AdsClient {
            tx,
            rx: std::sync::Mutex::new((rx, EnvelopeWalk::for_variant(delta))),
        })
    }

    /// Whether the stream is delta.
    pub fn is_delta(&self) -> bool {
        matches!(self.tx, Tx::Delta(_))
    }

    fn sotw_request(r: Request) -> SotwRequestOut {
        SotwRequestOut {
            rest: DiscoveryRequest {
                type_url: r.type_url,
                version_info: r.version_info,
                response_nonce: r.response_nonce,
                error_detail: error_detail(r.error),
                ..Default::default()
            },
            names: r.resource_names,
        }
    }

    fn delta_request(r: Request) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: r.type_url,
            resource_names_subscribe: r.subscribe,
            resource_names_unsubscribe: r.unsubscribe,
            initial_resource_versions: r.initial_versions.into_iter().collect(),
            response_nonce: r.response_nonce,
            error_detail: error_detail(r.error),
            ..Default::default()
        }
    }

    /// Sends a request (the fields of the other variant are ignored). On a stream that has
    /// ended it does nothing: [`AdsClient::next`] reports the end.
    pub async fn send(&self, r: Request) {
        let _ = match &self.tx {
            Tx::Sotw(tx) => tx.send(Self::sotw_request(r)).await.is_ok(),
            Tx::Delta(tx) => tx.send(Self::delta_request(r)).await.is_ok(),
        };
    }

    /// Subscribes to `names` of type `t` (state of the world: the complete list, empty for a
    /// wildcard; delta: names added, empty for a wildcard).
    pub async fn subscribe(&self, t: ResourceType, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.send(Request {
            type_url: t.type_url().into(),
            resource_names: names.iter().collect(),
            subscribe: names,
            ..Request::default()
        })
        .await
    }

    /// Acknowledges `r`, keeping the subscription `names` (state of the world; ignored in
    /// delta).
    pub async fn ack(&self, r: &Reply, names: &[&str]) {
        self.answer(r, names, None).await
    }

    /// Rejects `r` with `detail`.
    pub async fn nack(&self, r: &Reply, names: &[&str], detail: &str) {
        self.answer(r, names, Some(detail.to_owned())).await
    }

    async fn answer(&self, r: &Reply, names: &[&str], error: Option<String>) {
        self.answer_with(r, names.iter().collect(), error).await
    }

    /// Answers `r`, repeating `names` as they were encoded.
    async fn answer_with(&self, r: &Reply, names: RequestNames, error: Option<String>) {
        self.send(Request {
            type_url: r.type_url().to_owned(),
            version_info: r.version_info().to_owned(),
            resource_names: names,
            response_nonce: r.nonce().to_owned(),
            error,
            ..Request::default()
        })
        .await
    }

    /// The next response; `None` when the server ended the stream, an error status when it
    /// ended it with one.
    pub async fn next(&mut self) -> Result<Option<Reply>, Status> {
        let (messages, walk) = self.rx.get_mut().unwrap_or_else(|e| e.into_inner());
        messages
            .next_walked(walk)
            .await?
            .map(|chunks| Reply::walked(chunks, walk))
            .transpose()
    }

    /// The next response, which must arrive within `timeout`.
    ///
    /// # Panics
    ///
    /// When none arrives in time or the stream ends (this is for tests).
    pub async fn expect(&mut self, timeout: Duration) -> Reply {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => panic!("the server ended the stream"),
            Ok(Err(status)) => panic!("the server ended the stream: {status}"),
            Err(_) => panic!("no response within {timeout:?}"),
        }
    }

    /// Asserts that nothing arrives within `wait`.
    ///
    /// # Panics
    ///
    /// When a response arrives (this is for tests).
    pub async fn expect_nothing(&mut self, wait: Duration) {
        if let Ok(r) = tokio::time::timeout(wait, self.next()).await {
            panic!("expected nothing, got {r:?}");
        }
    }
}

/// How a [`FakeEnvoy`] subscribes to endpoints and route configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Everything by wildcard (what `xdsc-load` measured first).
    Wildcard,
    /// As real Envoy does with an ADS bootstrap: clusters and listeners by wildcard, endpoints
    /// by the names of the clusters it holds, route configurations by the names its
    /// listeners' HTTP connection managers refer to.
    Named,
}

/// An ADS client that behaves like Envoy: it subscribes to clusters and listeners, then to
/// the endpoints and route configurations they need, and acknowledges every response,
/// asking for the endpoints of new clusters before acknowledging them (as Envoy does while
/// they warm).
#[derive(Debug)]
pub struct FakeEnvoy {
    client: AdsClient,
    mode: Subscription,
    /// The named subscriptions (endpoints, route configurations; absent: wildcard), each
    /// encoded once for every state-of-the-world acknowledgement that repeats it.
    listed: BTreeMap<ResourceType, SubscribedNames>,
    /// The names held per type.
    held: BTreeMap<ResourceType, BTreeSet<String>>,
    /// The last acknowledged version and nonce received, per type.
    last: BTreeMap<ResourceType, (String, String)>,
    /// Whether `held` is kept for every type, or only where subscribing needs it.
    keep_names: bool,
    /// Orders the names of a new subscription as Envoy does (per node, not sorted).
    seed: u64,
}

impl FakeEnvoy {
    /// Opens the stream for node `node_id` (fleet `default`) and sends the initial
    /// subscriptions.
    pub async fn start(
        channel: tonic::transport::Channel,
        node_id: &str,
        delta: bool,
        mode: Subscription,
    ) -> Result<FakeEnvoy, Status> {
        let node = Node {
            id: node_id.to_owned(),
            cluster: crate::DEFAULT_FLEET.to_owned(),
            ..Default::default()
        };
        let wildcard = |t: ResourceType| Request {
            type_url: t.type_url().into(),
            ..Request::default()
        };
        let client = AdsClient::open(channel, node, delta, wildcard(ResourceType::Cluster)).await?;
        let initial: &[ResourceType] = match mode {
            Subscription::Wildcard => &[
                ResourceType::Endpoint,
                ResourceType::Listener,
                ResourceType::Route,
            ],
            Subscription::Named => &[ResourceType::Listener],
        };
        for t in initial {
            client.send(wildcard(*t)).await;
        }
        Ok(FakeEnvoy {
            client,
            mode,
            listed: BTreeMap::new(),
            held: BTreeMap::new(),
            last: BTreeMap::new(),
            keep_names: true,
            seed: xxhash_rust::xxh3::xxh3_64(node_id.as_bytes()),
        })
    }

    /// This fake Envoy without the names it holds, except where it needs them to subscribe
    /// (the clusters, in [`Subscription::Named`]): [`FakeEnvoy::held`] is empty for the other
    /// types. For load tests: a thousand fake Envoys in one process, each keeping the names
    /// of 20,000 resources of a 10,000-service snapshot, spent more CPU building those sets
    /// than the server spent sending (BENCHMARKS.md, issue 13).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use xdsc_core::snapshot::ResourceType;
    /// use xdsc_server::testing::{FakeEnvoy, Subscription, TestServer, snapshot};
    /// let server = TestServer::start(snapshot("a", &["a"], 80), |x| x).await;
    /// let mut envoy = FakeEnvoy::start(server.channel().await, "n1", false, Subscription::Named)
    ///     .await
    ///     .unwrap()
    ///     .without_names();
    /// envoy.until_synced().await.unwrap();
    /// assert_eq!(envoy.held(ResourceType::Cluster), ["a"], "needed to subscribe");
    /// assert!(envoy.held(ResourceType::Endpoint).is_empty());
    /// # }
    /// ```
    pub fn without_names(mut self) -> FakeEnvoy {
        self.keep_names = false;
        self
    }

    /// The names held of type `t`, in order.
    pub fn held(&self, t: ResourceType) -> Vec<String> {
        if !self.keep_names && self.mode == Subscription::Named && t == ResourceType::Cluster {
            // Not kept twice: the endpoint subscription is the clusters held.
            return self
                .listed
                .get(&ResourceType::Endpoint)
                .map(|l| l.sorted.clone())
                .unwrap_or_default();
        }
        self.held
            .get(&t)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Receives the next response, reacts as Envoy would, and returns it; `None` when the
    /// server ended the stream.
    pub async fn step(&mut self) -> Result<Option<Reply>, Status> {
        let Some(reply) = self.client.next().await? else {
            return Ok(None);
        };
        let Some(t) = reply.resource_type() else {
            return Ok(Some(reply));
        };
        if self.keep_names {
            let held = self.held.entry(t).or_default();
            // State of the world: clusters and listeners come complete; other types only
            // what changed, wildcard or not.
            let full = !self.client.is_delta()
                && matches!(t, ResourceType::Cluster | ResourceType::Listener);
            if full {
                *held = reply.names().into_iter().collect();
            } else {
                held.extend(reply.names());
            }
            for n in reply.removed() {
                held.remove(n);
            }
        }
        if self.mode == Subscription::Named {
            let (owned, routes);
            let child = match t {
                ResourceType::Cluster => {
                    let names = match reply.name_refs() {
                        Some(names) => names,
                        None => {
                            owned = reply.names();
                            owned.iter().map(String::as_str).collect()
                        }
                    };
                    Some((ResourceType::Endpoint, names, self.client.is_delta()))
                }
                ResourceType::Listener => {
                    routes = route_names(&reply);
                    let names = routes.iter().map(String::as_str).collect();
                    Some((ResourceType::Route, names, false))
                }
                _ => None,
            };
            if let Some((child, names, delta)) = child {
                let sorted = self.listed.get(&child).map_or(&[][..], |l| &l.sorted[..]);
                let change = if delta {
                    NameChange::delta(sorted, names, reply.removed())
                } else {
                    NameChange::whole(sorted, names)
                };
                self.resubscribe(child, change).await;
            }
        }
        // A state-of-the-world ACK repeats the subscription; a delta one names nothing.
        let names = match self.listed.get(&t) {
            Some(l) if !self.client.is_delta() => l.listed.clone(),
            _ => RequestNames::default(),
        };
        self.client.answer_with(&reply, names, None).await;
        self.last.insert(
            t,
            (reply.version_info().to_owned(), reply.nonce().to_owned()),
        );
        Ok(Some(reply))
    }

    /// Changes the named subscription of type `t` by `change`, listing the names as Envoy
    /// does: in an order of its own, not sorted (one watch per name, new watches first; the
    /// first ones in hash order), the same order in every request until the names change.
    /// The first subscription of a type is sent even when it names nothing.
    async fn resubscribe(&mut self, t: ResourceType, change: NameChange<'_>) {
        if self.listed.contains_key(&t) && change.is_empty() {
            return;
        }
        let listed = self.listed.entry(t).or_default();
        listed.apply(&change, self.seed);
        if let Some(held) = self.held.get_mut(&t) {
            for n in &change.removed {
                held.remove(n);
            }
        }
        let request = if self.client.is_delta() {
            Request {
                type_url: t.type_url().into(),
                subscribe: change.added.iter().map(|n| n.to_string()).collect(),
                unsubscribe: change.removed,
                ..Request::default()
            }
        } else {
            let (version_info, response_nonce) = self.last.get(&t).cloned().unwrap_or_default();
            Request {
                type_url: t.type_url().into(),
                version_info,
                resource_names: listed.listed.clone(),
                response_nonce,
                ..Request::default()
            }
        };
        self.client.send(request).await;
    }

    /// Steps until a route configuration has arrived (the last type of an initial sync).
    pub async fn until_synced(&mut self) -> Result<(), Status> {
        while let Some(r) = self.step().await? {
            if r.resource_type() == Some(ResourceType::Route) {
                return Ok(());
            }
        }
        Err(Status::cancelled("the stream ended before it synced"))
    }
}

/// A named subscription of a [`FakeEnvoy`]: its names sorted, to compare a new list with in
/// one walk, and as it lists them.
///
/// A thousand fake Envoys resubscribe to 10,000 endpoint names each when a cluster is added;
/// sets of `String`s built and compared per change cost those clients twice the server's CPU
/// for the same change (BENCHMARKS.md, issue 13).
#[derive(Debug, Default)]
struct SubscribedNames {
    /// Sorted, each name once.
    sorted: Vec<String>,
    /// In Envoy's order.
    listed: RequestNames,
}

impl SubscribedNames {
    /// Applies `change` (computed against `sorted`): new names first, in the order `seed`
    /// gives them, then the kept ones in the order they had.
    fn apply(&mut self, change: &NameChange<'_>, seed: u64) {
        let gone = |n: &str| {
            change
                .removed
                .binary_search_by(|r| r.as_str().cmp(n))
                .is_ok()
        };
        let mut added = change.added.clone();
        added.sort_by_cached_key(|n| xxhash_rust::xxh3::xxh3_64_with_seed(n.as_bytes(), seed));
        // The kept names' entries as they were encoded: copied whole when none goes.
        let old = self.listed.encoded();
        let new: usize = added.iter().map(|a| a.len() + 2).sum();
        let mut entries = bytes::BytesMut::with_capacity(old.len() + new);
        for a in &added {
            crate::protocol::put_entry(a.as_bytes(), &mut entries);
        }
        let mut len = added.len();
        if change.removed.is_empty() {
            entries.extend_from_slice(old);
            len += self.listed.len();
        } else {
            for n in self.listed.iter().filter(|n| !gone(n)) {
                crate::protocol::put_entry(n.as_bytes(), &mut entries);
                len += 1;
            }
        }
        self.listed = RequestNames::trusted(entries.freeze(), len);
        // A few names: in place. Many: both lists sorted, merged.
        if change.added.len() + change.removed.len() <= 8 {
            if !change.removed.is_empty() {
                self.sorted.retain(|n| !gone(n));
            }
            for a in &change.added {
                let at = self.sorted.partition_point(|n| n.as_str() < *a);
                self.sorted.insert(at, (*a).to_owned());
            }
            return;
        }
        let mut next = Vec::with_capacity(self.sorted.len() + change.added.len());
        let mut new = change.added.iter().copied().peekable();
        for n in self.sorted.drain(..).filter(|n| !gone(n)) {
            while let Some(a) = new.next_if(|a| *a < n.as_str()) {
                next.push(a.to_owned());
            }
            next.push(n);
        }
        next.extend(new.map(str::to_owned));
        self.sorted = next;
    }
}

/// How a named subscription changes: names added and removed, each sorted and listed once.
#[derive(Debug)]
struct NameChange<'a> {
    added: Vec<&'a str>,
    removed: Vec<String>,
}

impl<'a> NameChange<'a> {
    /// From `current` (sorted, each once) to exactly `wanted` (any order), in one walk of
    /// both once `wanted` is sorted.
    fn whole(current: &[String], mut wanted: Vec<&'a str>) -> NameChange<'a> {
        if !wanted.is_sorted() {
            wanted.sort_unstable();
        }
        wanted.dedup();
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        let (mut have, mut want) = (current.iter().peekable(), wanted.into_iter().peekable());
        loop {
            match (have.peek(), want.peek()) {
                (Some(h), Some(w)) => match h.as_str().cmp(w) {
                    std::cmp::Ordering::Equal => {
                        have.next();
                        want.next();
                    }
                    std::cmp::Ordering::Less => removed.extend(have.next().cloned()),
                    std::cmp::Ordering::Greater => added.extend(want.next()),
                },
                (Some(_), None) => removed.extend(have.next().cloned()),
                (None, Some(_)) => added.extend(want.next()),
                (None, None) => return NameChange { added, removed },
            }
        }
    }

    /// From `current` (sorted, each once), by what a delta response says: `names` sent (new
    /// or changed) and `removed`.
    fn delta(current: &[String], names: Vec<&'a str>, removed: &[String]) -> NameChange<'a> {
        let held = |n: &str| current.binary_search_by(|c| c.as_str().cmp(n)).is_ok();
        let mut gone: Vec<&str> = removed.iter().map(String::as_str).collect();
        gone.sort_unstable();
        // A name both sent and removed is removed.
        let mut added: Vec<&str> = names
            .into_iter()
            .filter(|n| !held(n) && gone.binary_search(n).is_err())
            .collect();
        added.sort_unstable();
        added.dedup();
        gone.retain(|n| held(n));
        gone.dedup();
        let removed = gone.into_iter().map(str::to_owned).collect();
        NameChange { added, removed }
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The route configuration names the listeners of a reply refer to (RDS in their HTTP
/// connection managers), sorted.
fn route_names(reply: &Reply) -> Vec<String> {
    let mut out = BTreeSet::new();
    for body in reply.bodies() {
        let Ok(listener) = Listener::decode(body) else {
            continue;
        };
        let chains = listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.as_ref());
        for f in chains.flat_map(|c| &c.filters) {
            if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
                && let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                && let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier
            {
                out.insert(rds.route_config_name);
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::discovery::v3::Resource;
    use envoy_types::pb::google::protobuf::Any;

    use super::*;

    fn any(value: Vec<u8>) -> Any {
        Any {
            type_url: ResourceType::Cluster.type_url().into(),
            value,
        }
    }

    /// A state-of-the-world request is written as its gRPC message, the names being the
    /// bytes they were encoded in (not a copy); a request without names, and a delta one, in
    /// one piece.
    #[test]
    fn a_request_is_written_with_its_names_as_encoded() {
        let names: RequestNames = (0..100).map(|i| format!("c{i}")).collect();
        let rest = DiscoveryRequest {
            version_info: "3".into(),
            type_url: ResourceType::Endpoint.type_url().into(),
            response_nonce: "7".into(),
            ..Default::default()
        };
        let out = SotwRequestOut {
            rest: rest.clone(),
            names: names.clone(),
        };
        let expected = DiscoveryRequest {
            resource_names: names.iter().map(String::from).collect(),
            ..rest.clone()
        };
        let pieces = out.framed().unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!(
            pieces[1].as_ptr(),
            names.encoded_bytes().as_ptr(),
            "not copied"
        );
        let message = crate::wire::concat(&pieces);
        let len = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
        assert_eq!((message[0], len as usize), (0, message.len() - 5));
        assert_eq!(DiscoveryRequest::decode(&message[5..]).unwrap(), expected);
        let wildcard = SotwRequestOut {
            rest: rest.clone(),
            names: RequestNames::default(),
        };
        let pieces = wildcard.framed().unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(DiscoveryRequest::decode(&pieces[0][5..]).unwrap(), rest);
        let delta = DeltaDiscoveryRequest {
            resource_names_subscribe: vec!["a".into()],
            ..Default::default()
        };
        let pieces = delta.clone().framed().unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(
            DeltaDiscoveryRequest::decode(&pieces[0][5..]).unwrap(),
            delta
        );
    }

    #[test]
    fn a_reply_reads_the_envelope_and_names_and_slices_the_resources() {
        // A name in field 1 first, as encoders write it; and one after another field.
        let first = Named { name: "a".into() }.encode_to_vec();
        let later = [vec![0x10, 0x05], Named { name: "b".into() }.encode_to_vec()].concat();
        let sotw = DiscoveryResponse {
            version_info: "v1".into(),
            resources: vec![any(first.clone()), any(later.clone())],
            type_url: ResourceType::Cluster.type_url().into(),
            nonce: "7".into(),
            ..Default::default()
        };
        let raw = Bytes::from(sotw.encode_to_vec());
        let r = Reply::decode(vec![raw.clone()], false).unwrap();
        assert_eq!(
            (r.version_info(), r.nonce(), r.resource_type(), r.len()),
            ("v1", "7", Some(ResourceType::Cluster), 2)
        );
        assert_eq!(r.names(), ["a", "b"]);
        assert_eq!(r.bodies(), [&first[..], &later[..]]);
        assert!(r.removed().is_empty());
        assert_eq!(
            (r.encoded_len(), r.sotw(), r.delta()),
            (raw.len(), Some(sotw), None)
        );
        // A message cut short is an error, not a reply with fewer resources.
        assert!(Reply::decode(vec![raw.slice(..raw.len() - 1)], false).is_err());
        // The same message in pieces, split anywhere (inside keys, lengths and fields), or
        // one byte per piece: the same reply.
        for at in 0..=raw.len() {
            let pieces = vec![raw.slice(..at), raw.slice(at..)];
            let split = Reply::decode(pieces, false).unwrap();
            assert_eq!(
                (
                    split.version_info(),
                    split.nonce(),
                    split.len(),
                    split.names()
                ),
                ("v1", "7", 2, r.names())
            );
            assert_eq!((split.encoded_len(), &split), (raw.len(), &r));
        }
        let bytes: Vec<Bytes> = (0..raw.len()).map(|i| raw.slice(i..i + 1)).collect();
        assert_eq!(Reply::decode(bytes, false).unwrap(), r);

        let delta = DeltaDiscoveryResponse {
            system_version_info: "v2".into(),
            resources: vec![Resource {
                name: "c".into(),
                version: "x".into(),
                resource: Some(any(first.clone())),
                ..Default::default()
            }],
            type_url: ResourceType::Cluster.type_url().into(),
            removed_resources: vec!["gone".into()],
            nonce: "8".into(),
            ..Default::default()
        };
        let raw = Bytes::from(delta.encode_to_vec());
        let r = Reply::decode(vec![raw.clone()], true).unwrap();
        let bytes: Vec<Bytes> = (0..raw.len()).map(|i| raw.slice(i..i + 1)).collect();
        assert_eq!(Reply::decode(bytes, true).unwrap().removed(), r.removed());
        assert_eq!((r.version_info(), r.nonce(), r.len()), ("v2", "8", 1));
        assert_eq!(
            (r.names(), r.removed()),
            (vec!["c".to_owned()], &["gone".to_owned()][..])
        );
        assert_eq!(r.bodies(), [&first[..]]);
        assert_eq!((r.delta(), r.sotw()), (Some(delta), None));
    }

    /// What a named subscription becomes, by sets: the wanted names, new ones first in the
    /// seed's order, then the kept ones as they were listed.
    fn by_sets(listed: &[String], wanted: &BTreeSet<String>, seed: u64) -> Vec<String> {
        let had: BTreeSet<&String> = listed.iter().collect();
        let mut added: Vec<&String> = wanted.iter().filter(|n| !had.contains(n)).collect();
        added.sort_by_key(|n| xxhash_rust::xxh3::xxh3_64_with_seed(n.as_bytes(), seed));
        let kept = listed.iter().filter(|n| wanted.contains(*n));
        added.into_iter().chain(kept).cloned().collect()
    }

    proptest::proptest! {
        /// A named subscription changed by whole lists (state of the world) and by delta
        /// responses is what sets of names make of the same steps: listed in the same
        /// order, sorted without duplicates, and the change says exactly what was added and
        /// removed.
        #[test]
        fn a_named_subscription_changes_as_sets_of_names_say(
            steps in proptest::collection::vec(
                (
                    proptest::bool::ANY,
                    proptest::collection::vec(0u8..24, 0..16),
                    proptest::collection::vec(0u8..24, 0..6),
                ),
                1..12,
            ),
            seed in proptest::num::u64::ANY,
        ) {
            let name = |i: &u8| format!("c{i}");
            let mut listed = SubscribedNames::default();
            let mut model: Vec<String> = Vec::new();
            for (whole, names, removed) in steps {
                let names: Vec<String> = names.iter().map(name).collect();
                let removed: Vec<String> = removed.iter().map(name).collect();
                let before: BTreeSet<String> = model.iter().cloned().collect();
                let wanted: BTreeSet<String> = if whole {
                    names.iter().cloned().collect()
                } else {
                    let mut w = before.clone();
                    w.extend(names.iter().cloned());
                    w.retain(|n| !removed.contains(n));
                    w
                };
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let change = if whole {
                    NameChange::whole(&listed.sorted, refs)
                } else {
                    NameChange::delta(&listed.sorted, refs, &removed)
                };
                let added: Vec<&str> = wanted.difference(&before).map(String::as_str).collect();
                let gone: Vec<String> = before.difference(&wanted).cloned().collect();
                proptest::prop_assert_eq!(&change.added, &added);
                proptest::prop_assert_eq!(&change.removed, &gone);
                proptest::prop_assert_eq!(change.is_empty(), wanted == before);
                listed.apply(&change, seed);
                model = by_sets(&model, &wanted, seed);
                let sorted: Vec<String> = wanted.iter().cloned().collect();
                proptest::prop_assert_eq!(&listed.sorted, &sorted);
                proptest::prop_assert_eq!(listed.listed.len(), model.len());
                proptest::prop_assert_eq!(listed.listed.iter().collect::<Vec<_>>(), model.clone());
            }
        }
    }

    #[test]
    fn a_reply_borrows_its_names_only_where_they_come_first() {
        let first = Named { name: "a".into() }.encode_to_vec();
        let later = [vec![0x10, 0x05], Named { name: "b".into() }.encode_to_vec()].concat();
        let reply = |bodies: Vec<Vec<u8>>| {
            let sotw = DiscoveryResponse {
                resources: bodies.into_iter().map(any).collect(),
                type_url: ResourceType::Cluster.type_url().into(),
                ..Default::default()
            };
            Reply::decode(vec![Bytes::from(sotw.encode_to_vec())], false).unwrap()
        };
        assert_eq!(reply(vec![first.clone()]).name_refs(), Some(vec!["a"]));
        // A name after another field, or not UTF-8: read by `names`.
        assert_eq!(reply(vec![first.clone(), later]).name_refs(), None);
        let bad = reply(vec![vec![0x0a, 0x01, 0xff]]);
        assert_eq!(
            (bad.name_refs(), bad.names()),
            (None, vec!["\u{FFFD}".to_owned()])
        );
        assert_eq!(first_name(&[0x0a, 0x05, b'a']), None, "cut short");
        // A value given twice: the last one, as a decoder keeps it.
        let twice = Any {
            type_url: ResourceType::Cluster.type_url().into(),
            value: Named { name: "x".into() }.encode_to_vec(),
        }
        .encode_to_vec();
        let twice = [twice, any(first.clone()).encode_to_vec()].concat();
        let sotw = [vec![0x12, u8::try_from(twice.len()).unwrap()], twice].concat();
        let reply = Reply::decode(vec![Bytes::from(sotw)], false).unwrap();
        assert_eq!(
            (reply.name_refs(), reply.names()),
            (Some(vec!["a"]), vec!["a".into()])
        );
        // Delta names each resource in field 3, whatever its body.
        let delta = DeltaDiscoveryResponse {
            resources: ["c", "d"]
                .map(|name| Resource {
                    name: name.into(),
                    version: "x".into(),
                    resource: Some(any(vec![0x10, 0x05])),
                    ..Default::default()
                })
                .into(),
            ..Default::default()
        };
        let reply = Reply::decode(vec![Bytes::from(delta.encode_to_vec())], true).unwrap();
        assert_eq!(reply.name_refs(), Some(vec!["c", "d"]));
        assert_eq!(reply.names(), ["c", "d"]);
    }
}
