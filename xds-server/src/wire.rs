//! Discovery responses written straight from the snapshot's shared resource bytes, frame by
//! frame.
//!
//! The generated `DiscoveryResponse` holds each resource as an `Any` with an owned `Vec<u8>`,
//! so building one copies every resource's bytes per stream, and tonic's encoder then writes
//! the whole message into one per-stream buffer that it keeps (and reuses) after the message
//! was sent: after an initial sync at 10,000 services every idle stream held a multi-MiB
//! buffer. Here a response holds the shared `Arc<Resource>`s, and [`Frames`], the HTTP body of
//! a streaming method, writes it in chunks of [`CHUNK`] bytes only as HTTP/2 asks for more
//! (flow control), passing resource bodies of [`SHARE`] bytes or more as the shared bytes
//! themselves. The only copy is the one into the socket; nothing is kept once a response is
//! written. The bytes are those the generated messages encode to (checked by decoding them).
//!
//! A response of a type's whole map, which every wildcard stream is sent in its initial
//! sync, is the same bytes for every stream but its first and last fields: [`Bodies`]
//! encodes the resources part once per map version, as shared chunks, and each stream writes
//! only its own `version_info`, type and nonce around them (protobuf fields may come in any
//! order, and a repeated field's entries concatenate).
//!
//! Requests are read by [`Requests`] for the same reason: tonic's decoder keeps a per-stream
//! buffer of at least 8 KiB that grows to the largest request and stays that size (a named
//! endpoint subscription of 10,000 clusters is a request of ~100 KiB); here a request's bytes
//! are freed once it is decoded, so an idle stream keeps no receive buffer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{
    DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint, key_len,
};
use prost::{DecodeError, Message};
use tokio::sync::mpsc;
use tonic::Status;
use xdsc_core::snapshot::{Resource, ResourceType, Resources, Version};

use crate::protocol::{Entries, Response};

mod request;
#[cfg(any(test, feature = "test-util"))]
pub(crate) use request::SotwRequestOut;
pub(crate) use request::{Decode, SotwRequest};

/// The size of the chunks a response is written in (HTTP/2's default frame size).
pub(crate) const CHUNK: usize = 16 << 10;

/// Resource bodies at least this large are handed to HTTP/2 as the shared bytes, not copied.
pub(crate) const SHARE: usize = 4 << 10;

/// Where a response is written: small pieces are copied into the current chunk, large
/// resource bodies are queued as they are.
#[derive(Default)]
pub(crate) struct Out {
    chunk: BytesMut,
    ready: VecDeque<Bytes>,
}

impl Out {
    fn shared(&mut self, body: &Bytes) {
        if body.len() >= SHARE {
            self.flush();
            self.ready.push_back(body.clone());
        } else {
            self.chunk.extend_from_slice(body);
        }
    }

    fn flush(&mut self) {
        if !self.chunk.is_empty() {
            self.ready.push_back(self.chunk.split().freeze());
        }
    }

    /// Everything written, in one buffer (for tests and the copying conversions).
    fn concat(mut self, buf: &mut impl BufMut) {
        self.flush();
        for b in self.ready {
            buf.put_slice(&b);
        }
    }
}

/// A discovery response written in pieces: the fields before the resources, one resource at
/// a time, the fields after. The same pieces make its `prost::Message` encoding.
pub(crate) trait Pieces: Message + Unpin + Send + 'static {
    /// How many resources.
    fn count(&self) -> usize;
    /// The fields before the resources.
    fn head(&self, buf: &mut BytesMut);
    /// Resource `i`.
    fn resource(&self, i: usize, out: &mut Out);
    /// The fields after the resources.
    fn tail(&self, buf: &mut BytesMut);

    /// The whole message through the pieces.
    fn write_all(&self, buf: &mut impl BufMut) {
        let mut out = Out::default();
        self.head(&mut out.chunk);
        for i in 0..self.count() {
            self.resource(i, &mut out);
        }
        self.tail(&mut out.chunk);
        out.concat(buf);
    }
}

/// What a stream task hands its HTTP body: a response, or the status the stream ends with.
/// Boxed, so that the channel's block of 32 slots (tokio allocates them whether or not they
/// are used) is 0.5 KiB per stream, not 3.5 KiB.
pub(crate) type Outgoing<M> = Result<Box<M>, Status>;

/// The HTTP body of a streaming discovery method: the stream task's responses, each as a
/// length-prefixed gRPC message written chunk by chunk as HTTP/2 polls for more, then the
/// trailers (`grpc-status`, from the task's error if it ended with one).
pub(crate) struct Frames<M> {
    rx: mpsc::Receiver<Outgoing<M>>,
    /// The response being written and the index of its next resource (`count()`: the tail).
    current: Option<(Box<M>, usize)>,
    out: Out,
    max_message_bytes: usize,
    done: bool,
}

impl<M> Frames<M> {
    pub(crate) fn new(rx: mpsc::Receiver<Outgoing<M>>, max_message_bytes: usize) -> Self {
        Frames {
            rx,
            current: None,
            out: Out::default(),
            max_message_bytes,
            done: false,
        }
    }
}

fn trailers(status: &Status) -> http_body::Frame<Bytes> {
    let mut map = tonic::codegen::http::HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        let _ = Status::internal("unencodable status").add_header(&mut map);
    }
    http_body::Frame::trailers(map)
}

impl<M: Pieces> http_body::Body for Frames<M> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let Frames {
            rx,
            current,
            out,
            max_message_bytes,
            done,
        } = self.get_mut();
        loop {
            if let Some(bytes) = out.ready.pop_front() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(bytes))));
            }
            if let Some((m, next)) = current {
                while out.chunk.len() < CHUNK && out.ready.is_empty() {
                    if *next < m.count() {
                        m.resource(*next, out);
                        *next += 1;
                    } else {
                        m.tail(&mut out.chunk);
                        *current = None;
                        break;
                    }
                }
                if current.is_none() {
                    out.flush();
                    // Nothing is kept between responses.
                    out.chunk = BytesMut::new();
                } else if out.chunk.len() >= CHUNK {
                    out.flush();
                }
                continue;
            }
            if *done {
                return Poll::Ready(None);
            }
            match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(m))) => {
                    let len = m.encoded_len();
                    if len > *max_message_bytes || u32::try_from(len).is_err() {
                        *done = true;
                        let status = Status::out_of_range(format!(
                            "a response of {len} bytes is larger than the limit of {max_message_bytes}"
                        ));
                        return Poll::Ready(Some(Ok(trailers(&status))));
                    }
                    out.chunk.reserve(CHUNK.min(len + 5));
                    // The gRPC message prefix: not compressed, then the length.
                    out.chunk.put_u8(0);
                    out.chunk.put_u32(len as u32);
                    m.head(&mut out.chunk);
                    *current = Some((m, 0));
                }
                Poll::Ready(Some(Err(status))) => {
                    *done = true;
                    return Poll::Ready(Some(Ok(trailers(&status))));
                }
                Poll::Ready(None) => {
                    *done = true;
                    return Poll::Ready(Some(Ok(trailers(&Status::ok("")))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The requests of a streaming discovery method, decoded from its HTTP body: each
/// length-prefixed gRPC message is gathered ([`Messages::next`]) and decoded, and nothing is
/// kept between messages but the start of the next one.
pub(crate) struct Requests<M> {
    messages: Messages,
    /// The names of the last request (`LastNames`).
    last: request::LastNames,
    _message: std::marker::PhantomData<fn() -> M>,
}

impl<M: Decode> Requests<M> {
    pub(crate) fn new(body: tonic::body::Body, max_message_bytes: usize) -> Self {
        Requests {
            messages: Messages::new(body, max_message_bytes),
            last: request::LastNames::default(),
            _message: std::marker::PhantomData,
        }
    }

    /// The next request; `None` when the client ended the stream. Cancel-safe: bytes read
    /// stay in `self` when the future is dropped.
    pub(crate) async fn message(&mut self) -> Result<Option<M>, Status> {
        let Some(message) = self.messages.next().await? else {
            return Ok(None);
        };
        M::decode(message, &mut self.last).map(Some)
    }
}

/// The length-prefixed gRPC messages of an HTTP body. The data frames are kept as received
/// (slices of the connection's reads, not copied) until a message is complete: a message is
/// handed over as those slices ([`Messages::next_walked`], the test client's responses, whose
/// bytes a [`Walk`] reads as they arrive, while they are in the cache), or as one `Bytes`
/// ([`Messages::next`], the server's requests: a slice when the message came in one frame,
/// else one copy of its size). Nothing is kept between messages but the start of the next
/// one (a tonic `Streaming` keeps a buffer of the largest message for the stream's life).
pub(crate) struct Messages {
    body: tonic::body::Body,
    /// Received data frames not yet taken: at most one message and the start of the next.
    pending: VecDeque<Bytes>,
    /// The bytes in `pending`.
    buffered: usize,
    /// How many bytes of the first message (after its prefix) a walk has been given.
    walked: usize,
    max_message_bytes: usize,
    ended: bool,
    /// A non-OK `grpc-status` in the trailers: the body's end is this error.
    status: Option<Status>,
}

/// Reads a message's bytes in order as they arrive ([`Messages::next_walked`]); it must keep
/// its state across calls (a cancelled read resumes where it stopped).
pub(crate) trait Walk {
    /// The next bytes of the message.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), Status>;
}

/// No walk: the server's requests are decoded whole.
impl Walk for () {
    fn feed(&mut self, _: &[u8]) -> Result<(), Status> {
        Ok(())
    }
}

impl Messages {
    pub(crate) fn new(body: tonic::body::Body, max_message_bytes: usize) -> Self {
        Messages {
            body,
            pending: VecDeque::new(),
            buffered: 0,
            walked: 0,
            max_message_bytes,
            ended: false,
            status: None,
        }
    }

    /// The next message's bytes (without the prefix), in one piece; `None` at the end of the
    /// body, or its trailers' error status. Cancel-safe: bytes read stay in `self` when the
    /// future is dropped.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        Ok(self
            .next_walked(&mut ())
            .await?
            .map(|chunks| concat(&chunks)))
    }

    /// [`Messages::next`], as the pieces it arrived in (in order; none when it is empty),
    /// each handed to `walk` as it arrives. Cancel-safe as long as `walk` is the same one
    /// when the read is resumed.
    pub(crate) async fn next_walked(
        &mut self,
        walk: &mut impl Walk,
    ) -> Result<Option<Vec<Bytes>>, Status> {
        use http_body_util::BodyExt;
        loop {
            if let Some(len) = self.prefix()? {
                self.walk(len, walk)?;
                if self.buffered >= 5 + len {
                    self.take(5);
                    self.walked = 0;
                    return Ok(Some(self.take(len)));
                }
            }
            if self.ended {
                if self.buffered != 0 {
                    return Err(Status::internal("unexpected end of a message stream"));
                }
                return match self.status.take() {
                    Some(status) => Err(status),
                    None => Ok(None),
                };
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Err(status)) => return Err(status),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if !data.is_empty() {
                            self.buffered += data.len();
                            self.pending.push_back(data);
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.status = Status::from_header_map(&trailers)
                                .filter(|s| s.code() != tonic::Code::Ok);
                        }
                    }
                },
            }
        }
    }

    /// The length of the first message, once its prefix has arrived.
    fn prefix(&self) -> Result<Option<usize>, Status> {
        if self.buffered < 5 {
            return Ok(None);
        }
        let mut prefix = [0u8; 5];
        let mut filled = 0;
        for chunk in &self.pending {
            let n = chunk.len().min(5 - filled);
            prefix[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if filled == 5 {
                break;
            }
        }
        let [flag, a, b, c, d] = prefix;
        if flag != 0 {
            return Err(Status::internal(format!(
                "a message with compression flag {flag}: no compression was negotiated"
            )));
        }
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > self.max_message_bytes {
            return Err(Status::out_of_range(format!(
                "a message of {len} bytes is larger than the limit of {}",
                self.max_message_bytes
            )));
        }
        Ok(Some(len))
    }

    /// Hands `walk` the bytes of the first message (of `len`) that arrived since it was last
    /// given some.
    fn walk(&mut self, len: usize, walk: &mut impl Walk) -> Result<(), Status> {
        let have = (self.buffered - 5).min(len);
        // Offsets in the buffer: the message starts after its prefix.
        let (mut from, to) = (5 + self.walked, 5 + have);
        // The first frame holding `from`, found from the back (the new bytes are in the last
        // frames), so that a message of many frames is not scanned again for each.
        let (mut first, mut at) = (self.pending.len(), self.buffered);
        while first > 0 && at > from {
            first -= 1;
            at -= self.pending[first].len();
        }
        for chunk in self.pending.range(first..) {
            if from >= to {
                break;
            }
            let end = at + chunk.len();
            if end > from {
                walk.feed(&chunk[from - at..to.min(end) - at])?;
                from = to.min(end);
            }
            at = end;
        }
        self.walked = have;
        Ok(())
    }

    /// The first `n` buffered bytes (no more than `buffered`), as slices of the frames.
    fn take(&mut self, mut n: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        while n > 0 {
            let Some(front) = self.pending.front_mut() else {
                break;
            };
            let piece = if front.len() <= n {
                self.pending.pop_front().unwrap_or_default()
            } else {
                front.split_to(n)
            };
            n -= piece.len();
            self.buffered -= piece.len();
            out.push(piece);
        }
        out
    }
}

/// The pieces of one message as one `Bytes`: the piece itself when there is one.
pub(crate) fn concat(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.clone(),
        more => {
            let mut all = BytesMut::with_capacity(more.iter().map(Bytes::len).sum());
            for c in more {
                all.extend_from_slice(c);
            }
            all.freeze()
        }
    }
}

fn len_delimited(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_str(tag: u32, s: &str, buf: &mut impl BufMut) {
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.put_slice(s.as_bytes());
    }
}

fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        len_delimited(tag, s.len())
    }
}

/// The body length of `Any { type_url, value }` for a resource.
fn any_len(r: &Resource) -> usize {
    str_len(1, r.resource_type().type_url())
        + if r.body().is_empty() {
            0
        } else {
            len_delimited(2, r.body().len())
        }
}

fn put_any(tag: u32, r: &Resource, out: &mut Out) {
    let buf = &mut out.chunk;
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(any_len(r) as u64, buf);
    put_str(1, r.resource_type().type_url(), buf);
    if !r.body().is_empty() {
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(r.body().len() as u64, buf);
        out.shared(r.body());
    }
}

/// The resources of a response: each written from its shared bytes as the response goes out,
/// or all of them already written once ([`Encoded`]) and shared by every stream sent them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    Each(Vec<Arc<Resource>>),
    Whole(Arc<Encoded>),
}

impl Default for Body {
    fn default() -> Body {
        Body::Each(Vec::new())
    }
}

impl Body {
    /// How many pieces: resources, or encoded chunks.
    fn count(&self) -> usize {
        match self {
            Body::Each(v) => v.len(),
            Body::Whole(e) => e.chunks.len(),
        }
    }

    /// Piece `i`, each resource written by `put`.
    fn write(&self, i: usize, out: &mut Out, put: fn(&Resource, &mut Out)) {
        match self {
            Body::Each(v) => {
                if let Some(r) = v.get(i) {
                    put(r, out);
                }
            }
            Body::Whole(e) => {
                if let Some(c) = e.chunks.get(i) {
                    out.flush();
                    out.ready.push_back(c.clone());
                }
            }
        }
    }

    /// The encoded length, each resource's by `len`.
    fn encoded_len(&self, len: fn(&Resource) -> usize) -> usize {
        match self {
            Body::Each(v) => v.iter().map(|r| len(r)).sum(),
            Body::Whole(e) => e.len,
        }
    }
}

/// The resources part of a response, every resource written once, in chunks of about
/// [`CHUNK`] bytes (large bodies as the shared bytes themselves): what every wildcard stream
/// is sent in its initial sync, encoded once per type version instead of once per stream
/// ([`Bodies`]).
#[derive(Debug, PartialEq)]
pub(crate) struct Encoded {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Encoded {
    fn new(resources: &Entries, put: fn(&Resource, &mut Out)) -> Encoded {
        let mut out = Out::default();
        for r in resources.iter() {
            put(r, &mut out);
            if out.chunk.len() >= CHUNK {
                out.flush();
            }
        }
        out.flush();
        let chunks: Vec<Bytes> = out.ready.into();
        let len = chunks.iter().map(Bytes::len).sum();
        Encoded { chunks, len }
    }
}

/// Which form a shared body is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Form {
    Sotw,
    Delta,
}

/// The server's shared response bodies: per form and type, the body of the latest map version
/// some stream was sent whole. A body a large response (one sent under a sync permit) is
/// written from is held strongly until the wave of large responses is over
/// ([`Bodies::let_go`], called by the budget's wave loop), so the streams of one wave share
/// one encoding even at moments when none is being written; otherwise, and after the wave,
/// weakly: a body lives while a stream's response is written from it, so an idle server
/// keeps none (it would be a copy of the snapshot's bytes).
#[derive(Debug, Default)]
pub(crate) struct Bodies {
    latest: std::sync::Mutex<std::collections::HashMap<(Form, ResourceType), Latest>>,
}

#[derive(Debug)]
struct Latest {
    version: Version,
    body: std::sync::Weak<Encoded>,
    /// The body itself, until the current wave is over.
    kept: Option<Arc<Encoded>>,
}

impl Bodies {
    /// The shared body of `resources` in `form` when they are every resource of `map`, the
    /// snapshot's resources of `resource_type` (a response that sends the whole map, as an
    /// initial sync does), and whether this call encoded it; `None` otherwise.
    /// `version_info` is the version of the set the response makes the client hold: equal to
    /// the map's, with as many resources, it is the map. `wave`: the response is sent under
    /// a sync permit, so the body is kept until [`Bodies::let_go`].
    pub(crate) fn whole(
        &self,
        form: Form,
        resource_type: ResourceType,
        map: &Resources,
        version_info: &str,
        resources: &Entries,
        wave: bool,
    ) -> Option<(Arc<Encoded>, bool)> {
        if resources.is_empty() || resources.len() != map.len() {
            return None;
        }
        let version = map.version();
        // Without allocating: this runs for every response of every stream.
        if version_info != hex(version).as_str() {
            return None;
        }
        let key = (form, resource_type);
        // The current body, kept again for the wave that is using it.
        let live = |latest: &mut std::collections::HashMap<_, Latest>| {
            let l = latest.get_mut(&key).filter(|l| l.version == version)?;
            let body = l.body.upgrade()?;
            if wave {
                l.kept.get_or_insert_with(|| body.clone());
            }
            Some(body)
        };
        let lock = || self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(body) = live(&mut lock()) {
            return Some((body, false));
        }
        // Encoded outside the lock: two streams may both encode a version, never wait.
        let put = match form {
            Form::Sotw => put_sotw_resource,
            Form::Delta => put_delta_resource,
        };
        let fresh = Arc::new(Encoded::new(resources, put));
        let mut latest = lock();
        if let Some(body) = live(&mut latest) {
            return Some((body, false));
        }
        latest.insert(
            key,
            Latest {
                version,
                body: Arc::downgrade(&fresh),
                kept: wave.then(|| fresh.clone()),
            },
        );
        Some((fresh, true))
    }

    /// A wave of large responses is over: hold the bodies weakly again, so that those no
    /// stream is being written from go (before the freed memory is returned).
    pub(crate) fn let_go(&self) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        for l in latest.values_mut() {
            l.kept = None;
        }
    }
}

/// A resource as a state-of-the-world response's `resources` entry.
fn put_sotw_resource(r: &Resource, out: &mut Out) {
    put_any(2, r, out);
}

fn sotw_resource_len(r: &Resource) -> usize {
    len_delimited(2, any_len(r))
}

/// A resource as a delta response's `resources` entry.
fn put_delta_resource(r: &Resource, out: &mut Out) {
    let buf = &mut out.chunk;
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(delta_resource_len(r) as u64, buf);
    put_str(1, hex(r.version()).as_str(), buf);
    put_any(2, r, out);
    put_str(3, r.name(), &mut out.chunk);
}

fn delta_entry_len(r: &Resource) -> usize {
    len_delimited(2, delta_resource_len(r))
}

/// `envoy.service.discovery.v3.DiscoveryResponse`, written from shared bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SotwOut {
    version_info: String,
    resources: Body,
    type_url: &'static str,
    nonce: String,
}

impl From<&Response> for SotwOut {
    fn from(r: &Response) -> SotwOut {
        SotwOut::new(r, Body::Each(r.resources.to_vec()))
    }
}

impl SotwOut {
    /// `r` with its resources written as `resources`.
    pub(crate) fn new(r: &Response, resources: Body) -> SotwOut {
        SotwOut {
            version_info: r.version_info.clone(),
            resources,
            type_url: r.resource_type.type_url(),
            nonce: r.nonce.clone(),
        }
    }

    /// The generated message, with the bytes copied (for the unary fetches).
    pub(crate) fn to_generated(
        r: &Response,
    ) -> envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
        envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
            version_info: r.version_info.clone(),
            resources: r.resources.iter().map(|r| r.to_any()).collect(),
            type_url: r.resource_type.type_url().to_owned(),
            nonce: r.nonce.clone(),
            ..Default::default()
        }
    }
}

impl Pieces for SotwOut {
    fn count(&self) -> usize {
        self.resources.count()
    }

    fn head(&self, buf: &mut BytesMut) {
        put_str(1, &self.version_info, buf);
    }

    fn resource(&self, i: usize, out: &mut Out) {
        self.resources.write(i, out, put_sotw_resource);
    }

    fn tail(&self, buf: &mut BytesMut) {
        put_str(4, self.type_url, buf);
        put_str(5, &self.nonce, buf);
    }
}

impl Message for SotwOut {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.write_all(buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Encode-only: the server never decodes its own responses.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        str_len(1, &self.version_info)
            + self.resources.encoded_len(sotw_resource_len)
            + str_len(4, self.type_url)
            + str_len(5, &self.nonce)
    }

    fn clear(&mut self) {
        *self = SotwOut::default();
    }
}

/// `envoy.service.discovery.v3.DeltaDiscoveryResponse`, written from shared bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct DeltaOut {
    system_version_info: String,
    resources: Body,
    type_url: &'static str,
    removed: Vec<Arc<str>>,
    nonce: String,
}

impl From<&Response> for DeltaOut {
    fn from(r: &Response) -> DeltaOut {
        DeltaOut::new(r, Body::Each(r.resources.to_vec()))
    }
}

impl DeltaOut {
    /// `r` with its resources written as `resources`.
    pub(crate) fn new(r: &Response, resources: Body) -> DeltaOut {
        DeltaOut {
            system_version_info: r.version_info.clone(),
            resources,
            type_url: r.resource_type.type_url(),
            removed: r.removed.clone(),
            nonce: r.nonce.clone(),
        }
    }
}

/// A version's 32 hex digits, without allocating (this runs per resource per stream).
fn hex(v: xdsc_core::snapshot::Version) -> Hex {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    let n = v.as_u128();
    for (i, d) in out.iter_mut().enumerate() {
        *d = DIGITS[((n >> (4 * (31 - i))) & 0xf) as usize];
    }
    Hex(out)
}

struct Hex([u8; 32]);

impl Hex {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The body length of a delta `Resource { version = 1, resource = 2, name = 3 }`.
fn delta_resource_len(r: &Resource) -> usize {
    len_delimited(1, 32) + len_delimited(2, any_len(r)) + str_len(3, r.name())
}

#[cfg(test)]
impl DeltaOut {
    /// The generated message, with the bytes copied (for comparing in tests).
    pub(crate) fn to_generated(
        r: &Response,
    ) -> envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse {
        use envoy_types::pb::envoy::service::discovery::v3 as d;
        d::DeltaDiscoveryResponse {
            system_version_info: r.version_info.clone(),
            resources: r
                .resources
                .iter()
                .map(|r| d::Resource {
                    name: r.name().to_owned(),
                    version: r.version().to_string(),
                    resource: Some(r.to_any()),
                    ..Default::default()
                })
                .collect(),
            type_url: r.resource_type.type_url().to_owned(),
            removed_resources: r.removed.iter().map(|n| n.to_string()).collect(),
            nonce: r.nonce.clone(),
            ..Default::default()
        }
    }
}

impl Pieces for DeltaOut {
    fn count(&self) -> usize {
        self.resources.count()
    }

    fn head(&self, buf: &mut BytesMut) {
        put_str(1, &self.system_version_info, buf);
    }

    fn resource(&self, i: usize, out: &mut Out) {
        self.resources.write(i, out, put_delta_resource);
    }

    fn tail(&self, buf: &mut BytesMut) {
        put_str(4, self.type_url, buf);
        put_str(5, &self.nonce, buf);
        for n in &self.removed {
            put_str(6, n, buf);
        }
    }
}

impl Message for DeltaOut {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.write_all(buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Encode-only: the server never decodes its own responses.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        str_len(1, &self.system_version_info)
            + self.resources.encoded_len(delta_entry_len)
            + str_len(4, self.type_url)
            + str_len(5, &self.nonce)
            + self.removed.iter().map(|n| str_len(6, n)).sum::<usize>()
    }

    fn clear(&mut self) {
        *self = DeltaOut::default();
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    };
    use xdsc_core::snapshot::ResourceType;

    use super::*;

    /// A request body delivering `chunks` as its data frames.
    fn body(chunks: Vec<Vec<u8>>) -> tonic::body::Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, Status>(http_body::Frame::data(Bytes::from(c))));
        tonic::body::Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
    }

    fn framed(m: &impl Message) -> Vec<u8> {
        let mut out = vec![0];
        out.extend((m.encoded_len() as u32).to_be_bytes());
        out.extend(m.encode_to_vec());
        out
    }

    fn request(names: usize) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: ResourceType::Endpoint.type_url().into(),
            resource_names: (0..names).map(|i| format!("svc-{i}")).collect(),
            ..DiscoveryRequest::default()
        }
    }

    #[tokio::test]
    async fn requests_split_anywhere_decode_and_leave_no_buffer() {
        let (big, small) = (request(2000), request(1));
        let bytes = [framed(&big), framed(&small), framed(&big)].concat();
        // Chunks of 7 bytes cut through prefixes and messages alike; then one chunk of all.
        for chunks in [
            bytes.chunks(7).map(<[u8]>::to_vec).collect(),
            vec![bytes.clone()],
        ] {
            let mut requests = Requests::<SotwRequest>::new(body(chunks), 1 << 20);
            for expected in [&big, &small, &big] {
                let expected = SotwRequest::from(expected.clone());
                assert_eq!(requests.message().await.unwrap(), Some(expected));
                assert!(
                    requests.messages.pending.len() <= 1,
                    "nothing kept between requests but the rest of the last frame read"
                );
            }
            assert_eq!(
                (requests.messages.pending.len(), requests.messages.buffered),
                (0, 0),
                "nothing kept after the last"
            );
            assert_eq!(requests.message().await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn a_walk_is_given_each_message_once_in_order_as_its_frames_arrive() {
        struct Record(Vec<u8>);
        impl Walk for Record {
            fn feed(&mut self, bytes: &[u8]) -> Result<(), Status> {
                self.0.extend_from_slice(bytes);
                Ok(())
            }
        }
        let (big, small) = (request(2000), request(1));
        let bytes = [framed(&big), framed(&small), framed(&big)].concat();
        // One byte per frame, frames cutting through prefixes, and one frame of all.
        for size in [1, 7, 4096, bytes.len()] {
            let chunks = bytes.chunks(size).map(<[u8]>::to_vec).collect();
            let mut messages = Messages::new(body(chunks), 1 << 20);
            for expected in [&big, &small, &big] {
                let mut walk = Record(Vec::new());
                let pieces = messages.next_walked(&mut walk).await.unwrap().unwrap();
                assert_eq!(walk.0, expected.encode_to_vec(), "frames of {size}");
                assert_eq!(concat(&pieces), walk.0, "the pieces are what was walked");
            }
            let mut rest = Record(Vec::new());
            assert!(messages.next_walked(&mut rest).await.unwrap().is_none());
            assert!(rest.0.is_empty());
        }
    }

    #[tokio::test]
    async fn bad_request_frames_are_errors() {
        let big = framed(&request(100));
        let mut compressed = big.clone();
        compressed[0] = 1;
        let cases = [
            (vec![big.clone()], 100, tonic::Code::OutOfRange),
            (vec![compressed], 1 << 20, tonic::Code::Internal),
            (
                vec![big[..big.len() - 1].to_vec()],
                1 << 20,
                tonic::Code::Internal,
            ),
            (
                vec![vec![0, 0, 0, 0, 2, 0xff, 0xff]],
                1 << 20,
                tonic::Code::Internal,
            ),
        ];
        for (chunks, max, code) in cases {
            let mut requests = Requests::<SotwRequest>::new(body(chunks), max);
            let e = requests.message().await.unwrap_err();
            assert_eq!(e.code(), code, "{e}");
        }
    }

    fn response() -> Response {
        Response {
            resource_type: ResourceType::Cluster,
            nonce: "7".into(),
            version_info: "v1".into(),
            resources: Entries::List(vec![
                Arc::new(Resource::new(
                    ResourceType::Cluster,
                    "a",
                    vec![10, 1, b'a'],
                    vec![],
                )),
                Arc::new(Resource::new(
                    ResourceType::Cluster,
                    "b",
                    Vec::<u8>::new(),
                    vec![],
                )),
            ]),
            removed: vec![Arc::from("gone")],
        }
    }

    /// Every frame of a body: the data concatenated, and the trailers.
    async fn collect<M: Pieces>(
        mut body: Frames<M>,
    ) -> (Vec<Bytes>, tonic::codegen::http::HeaderMap) {
        use http_body_util::BodyExt;
        let mut data = Vec::new();
        loop {
            let frame = body.frame().await.expect("a frame").expect("no error");
            match frame.into_data() {
                Ok(d) => data.push(d),
                Err(frame) => return (data, frame.into_trailers().expect("trailers")),
            }
        }
    }

    #[tokio::test]
    async fn frames_are_the_grpc_messages_in_chunks_sharing_large_bodies() {
        let big = Arc::new(Resource::new(
            ResourceType::Route,
            "big",
            vec![7u8; 3 * CHUNK],
            vec![],
        ));
        let mut many: Vec<Arc<Resource>> = (0..200)
            .map(|i| {
                Arc::new(Resource::new(
                    ResourceType::Cluster,
                    format!("c{i}"),
                    vec![b'x'; 300],
                    vec![],
                ))
            })
            .collect();
        many.push(big.clone());
        let first = DeltaOut::from(&Response {
            resources: many.into(),
            ..response()
        });
        let second = DeltaOut::from(&response());
        let (tx, rx) = mpsc::channel(2);
        let (a, b) = (first.clone(), second.clone());
        tokio::spawn(async move {
            let _ = tx.send(Ok(Box::new(a))).await;
            let _ = tx.send(Ok(Box::new(b))).await;
        });
        let (data, trailers) = collect(Frames::new(rx, usize::MAX)).await;
        let mut expected = Vec::new();
        for m in [first.encode_to_vec(), second.encode_to_vec()] {
            expected.push(0u8);
            expected.extend_from_slice(&(m.len() as u32).to_be_bytes());
            expected.extend_from_slice(&m);
        }
        assert_eq!(data.concat(), expected);
        // A chunk ends after the resource that fills it: at most one small body more.
        assert!(
            data.iter()
                .all(|d| d.len() < CHUNK + SHARE + 64 || d.len() == big.body().len())
        );
        assert!(
            data.iter().any(|d| d.as_ptr() == big.body().as_ptr()),
            "the large body is passed as the shared bytes"
        );
        assert_eq!(trailers["grpc-status"], "0");
    }

    #[tokio::test]
    async fn a_stream_error_ends_the_body_with_its_status() {
        let (tx, rx) = mpsc::channel::<Outgoing<SotwOut>>(1);
        tx.send(Err(Status::resource_exhausted("too many names")))
            .await
            .unwrap();
        let (data, trailers) = collect(Frames::new(rx, usize::MAX)).await;
        assert!(data.is_empty());
        assert_eq!(trailers["grpc-status"], "8");
        assert_eq!(trailers["grpc-message"], "too%20many%20names");
    }

    #[test]
    fn sotw_bytes_decode_as_the_generated_message() {
        let r = response();
        let out = SotwOut::from(&r);
        let bytes = out.encode_to_vec();
        assert_eq!(bytes.len(), out.encoded_len());
        let decoded = DiscoveryResponse::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded.version_info, "v1");
        assert_eq!(decoded.nonce, "7");
        assert_eq!(decoded.type_url, ResourceType::Cluster.type_url());
        assert_eq!(
            decoded.resources,
            r.resources.iter().map(|x| x.to_any()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_generated_conversions_match_the_wire_bytes() {
        let r = response();
        let sotw = SotwOut::from(&r);
        assert_eq!(
            DiscoveryResponse::decode(sotw.encode_to_vec().as_slice()).unwrap(),
            SotwOut::to_generated(&r)
        );
        let delta = DeltaOut::from(&r);
        assert_eq!(
            DeltaDiscoveryResponse::decode(delta.encode_to_vec().as_slice()).unwrap(),
            DeltaOut::to_generated(&r)
        );
    }

    /// A snapshot of `n` clusters of `size` body bytes each (one of them large).
    fn clusters(n: usize, size: usize) -> xdsc_core::snapshot::Snapshot {
        let mut s = xdsc_core::snapshot::Snapshot::default();
        for i in 0..n {
            let body = vec![b'c'; if i == n / 2 { 3 * SHARE } else { size }];
            s = s.with(Resource::new(
                ResourceType::Cluster,
                format!("c{i:04}"),
                body,
                vec![],
            ));
        }
        s
    }

    /// A snapshot of 500 clusters, its cluster map's resources, and a response of them all.
    fn whole_map() -> (xdsc_core::snapshot::Snapshot, Entries, Response) {
        let snapshot = clusters(500, 120);
        let map = snapshot.resources(ResourceType::Cluster);
        let resources = Entries::Whole(map.clone());
        let r = Response {
            version_info: map.version().to_string(),
            resources: resources.clone(),
            removed: vec![],
            ..response()
        };
        (snapshot, resources, r)
    }

    #[test]
    fn a_shared_whole_map_body_writes_the_bytes_each_stream_would() {
        let (snapshot, resources, r) = whole_map();
        let map = snapshot.resources(ResourceType::Cluster);
        let bodies = Bodies::default();
        let whole = |form, wave| {
            bodies
                .whole(
                    form,
                    ResourceType::Cluster,
                    map,
                    &r.version_info,
                    &resources,
                    wave,
                )
                .expect("the whole map")
        };
        let none_kept = || {
            bodies
                .latest
                .lock()
                .unwrap()
                .values()
                .all(|l| l.body.upgrade().is_none())
        };
        for form in [Form::Sotw, Form::Delta] {
            let (body, fresh) = whole(form, true);
            assert!(fresh, "encoded for the first stream");
            let (again, fresh) = whole(form, true);
            assert!(!fresh && Arc::ptr_eq(&body, &again), "shared by the next");
            assert!(body.chunks.len() > 1 && body.chunks.iter().all(|c| c.len() <= CHUNK + SHARE));
            match form {
                Form::Sotw => same_bytes(SotwOut::from(&r), SotwOut::new(&r, Body::Whole(body))),
                Form::Delta => same_bytes(DeltaOut::from(&r), DeltaOut::new(&r, Body::Whole(body))),
            }
        }
        // Within the wave, a body no response holds now is still the one shared.
        assert!(!whole(Form::Sotw, true).1, "kept for the rest of the wave");
        // After the wave a body lives while a response holds it: none is kept for an idle
        // server.
        bodies.let_go();
        assert!(none_kept(), "no body outlives its responses after the wave");
        // A response outside a wave (too small for a permit) does not keep its body.
        assert!(whole(Form::Sotw, false).1, "encoded again");
        assert!(none_kept(), "no wave, nothing kept");
        // Not the whole map (fewer resources, or another version): each stream's own.
        // A list of every resource of the map is the map (a named subscription to all).
        let listed = Entries::List(resources.to_vec());
        let (body, fresh) = bodies
            .whole(
                Form::Sotw,
                ResourceType::Cluster,
                map,
                &r.version_info,
                &listed,
                false,
            )
            .expect("every resource listed is the whole map");
        assert!(fresh && body.len == whole(Form::Sotw, false).0.len);
        let fewer = Entries::List(resources.to_vec()[1..].to_vec());
        for (version, resources) in [(r.version_info.as_str(), &fewer), ("another", &resources)] {
            let whole = bodies.whole(
                Form::Sotw,
                ResourceType::Cluster,
                map,
                version,
                resources,
                true,
            );
            assert!(whole.is_none());
        }
    }

    #[tokio::test]
    async fn a_shared_body_goes_out_as_its_own_chunks_not_a_copy() {
        let (snapshot, resources, r) = whole_map();
        let map = snapshot.resources(ResourceType::Cluster);
        let (body, _) = Bodies::default()
            .whole(
                Form::Sotw,
                ResourceType::Cluster,
                map,
                &r.version_info,
                &resources,
                false,
            )
            .expect("the whole map");
        let (tx, rx) = mpsc::channel(1);
        tx.send(Ok(Box::new(SotwOut::new(&r, Body::Whole(body.clone())))))
            .await
            .unwrap();
        drop(tx);
        let (data, _) = collect(Frames::new(rx, usize::MAX)).await;
        for chunk in &body.chunks {
            assert!(
                data.iter()
                    .any(|d| d.as_ptr() == chunk.as_ptr() && d.len() == chunk.len()),
                "every chunk of the body is handed on as the shared bytes"
            );
        }
        let copied: usize = data.iter().map(Bytes::len).sum::<usize>() - body.len;
        assert!(
            copied < 256,
            "only the head and tail are written per stream: {copied} bytes"
        );
    }

    /// `each` (written resource by resource) and `shared` (from a shared body) are the same
    /// message, in bytes and in frames.
    fn same_bytes<M: Pieces>(each: M, shared: M) {
        assert_eq!(shared.encoded_len(), each.encoded_len());
        assert_eq!(shared.encode_to_vec(), each.encode_to_vec());
    }

    #[test]
    fn delta_bytes_decode_as_the_generated_message() {
        let r = response();
        let out = DeltaOut::from(&r);
        let bytes = out.encode_to_vec();
        assert_eq!(bytes.len(), out.encoded_len());
        let d = DeltaDiscoveryResponse::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(
            (d.system_version_info.as_str(), d.nonce.as_str()),
            ("v1", "7")
        );
        assert_eq!(d.removed_resources, ["gone"]);
        assert_eq!(d.resources.len(), 2);
        assert_eq!(d.resources[0].name, "a");
        let listed = r.resources.to_vec();
        assert_eq!(d.resources[0].version, listed[0].version().to_string());
        assert_eq!(
            hex(listed[1].version()).as_str(),
            listed[1].version().to_string()
        );
        assert_eq!(d.resources[0].resource, Some(listed[0].to_any()));
    }
}
