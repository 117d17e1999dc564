//! Discovery responses encoded straight from the snapshot's shared resource bytes.
//!
//! The generated `DiscoveryResponse` holds each resource as an `Any` with an owned `Vec<u8>`,
//! so building one copies every resource's bytes per stream. These two messages hold the
//! shared `Arc<Resource>`s instead and write the same wire format as the generated types when
//! tonic encodes them into the HTTP/2 frame: the only copy is the one into the socket buffer.
//! They are encode-only: decoding one skips every field.

use std::sync::Arc;

use bytes::{Buf, BufMut};
use prost::encoding::{
    DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint, key_len,
};
use prost::{DecodeError, Message};
use xdsc_core::snapshot::Resource;

use crate::protocol::Response;

/// The gRPC codec of the streaming methods: prost, except that each response reserves its
/// exact size before it is written. tonic encodes a whole message into one buffer; grown by
/// doubling, that buffer is copied on every growth and left with slack into which the next
/// small message is written, which keeps the large allocation alive for as long as the stream
/// is idle afterwards.
pub(crate) struct ExactCodec<O, I>(std::marker::PhantomData<(O, I)>);

impl<O, I> Default for ExactCodec<O, I> {
    fn default() -> Self {
        ExactCodec(std::marker::PhantomData)
    }
}

/// The encoder of [`ExactCodec`].
pub(crate) struct ExactEncoder<O>(std::marker::PhantomData<O>);

impl<O: Message> tonic::codec::Encoder for ExactEncoder<O> {
    type Item = O;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: O,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        buf.reserve(item.encoded_len());
        item.encode_raw(buf);
        Ok(())
    }
}

impl<O, I> tonic::codec::Codec for ExactCodec<O, I>
where
    O: Message + Send + 'static,
    I: Message + Default + Send + 'static,
{
    type Encode = O;
    type Decode = I;
    type Encoder = ExactEncoder<O>;
    type Decoder = tonic_prost::ProstDecoder<I>;

    fn encoder(&mut self) -> ExactEncoder<O> {
        ExactEncoder(std::marker::PhantomData)
    }

    fn decoder(&mut self) -> tonic_prost::ProstDecoder<I> {
        tonic_prost::ProstCodec::<O, I>::raw_decoder(tonic::codec::BufferSettings::default())
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

fn put_any(tag: u32, r: &Resource, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(any_len(r) as u64, buf);
    put_str(1, r.resource_type().type_url(), buf);
    if !r.body().is_empty() {
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(r.body().len() as u64, buf);
        buf.put_slice(r.body());
    }
}

/// `envoy.service.discovery.v3.DiscoveryResponse`, written from shared bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SotwOut {
    version_info: String,
    resources: Vec<Arc<Resource>>,
    type_url: &'static str,
    nonce: String,
}

impl From<&Response> for SotwOut {
    fn from(r: &Response) -> SotwOut {
        SotwOut {
            version_info: r.version_info.clone(),
            resources: r.resources.clone(),
            type_url: r.resource_type.type_url(),
            nonce: r.nonce.clone(),
        }
    }
}

impl SotwOut {
    /// The generated message, with the bytes copied (for the generated tonic services).
    pub(crate) fn to_generated(
        &self,
    ) -> envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
        envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
            version_info: self.version_info.clone(),
            resources: self.resources.iter().map(|r| r.to_any()).collect(),
            type_url: self.type_url.to_owned(),
            nonce: self.nonce.clone(),
            ..Default::default()
        }
    }
}

impl Message for SotwOut {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        put_str(1, &self.version_info, buf);
        for r in &self.resources {
            put_any(2, r, buf);
        }
        put_str(4, self.type_url, buf);
        put_str(5, &self.nonce, buf);
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
            + self
                .resources
                .iter()
                .map(|r| len_delimited(2, any_len(r)))
                .sum::<usize>()
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
    resources: Vec<Arc<Resource>>,
    type_url: &'static str,
    removed: Vec<Arc<str>>,
    nonce: String,
}

impl From<&Response> for DeltaOut {
    fn from(r: &Response) -> DeltaOut {
        DeltaOut {
            system_version_info: r.version_info.clone(),
            resources: r.resources.clone(),
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

impl DeltaOut {
    /// The generated message, with the bytes copied (for the generated tonic services).
    pub(crate) fn to_generated(
        &self,
    ) -> envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse {
        use envoy_types::pb::envoy::service::discovery::v3 as d;
        d::DeltaDiscoveryResponse {
            system_version_info: self.system_version_info.clone(),
            resources: self
                .resources
                .iter()
                .map(|r| d::Resource {
                    name: r.name().to_owned(),
                    version: r.version().to_string(),
                    resource: Some(r.to_any()),
                    ..Default::default()
                })
                .collect(),
            type_url: self.type_url.to_owned(),
            removed_resources: self.removed.iter().map(|n| n.to_string()).collect(),
            nonce: self.nonce.clone(),
            ..Default::default()
        }
    }
}

impl Message for DeltaOut {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        put_str(1, &self.system_version_info, buf);
        for r in &self.resources {
            encode_key(2, WireType::LengthDelimited, buf);
            encode_varint(delta_resource_len(r) as u64, buf);
            put_str(1, hex(r.version()).as_str(), buf);
            put_any(2, r, buf);
            put_str(3, r.name(), buf);
        }
        put_str(4, self.type_url, buf);
        put_str(5, &self.nonce, buf);
        for n in &self.removed {
            put_str(6, n, buf);
        }
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
            + self
                .resources
                .iter()
                .map(|r| len_delimited(2, delta_resource_len(r)))
                .sum::<usize>()
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
        DeltaDiscoveryResponse, DiscoveryResponse,
    };
    use xdsc_core::snapshot::ResourceType;

    use super::*;

    fn response() -> Response {
        Response {
            resource_type: ResourceType::Cluster,
            nonce: "7".into(),
            version_info: "v1".into(),
            resources: vec![
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
            ],
            removed: vec![Arc::from("gone")],
        }
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
            sotw.to_generated()
        );
        let delta = DeltaOut::from(&r);
        assert_eq!(
            DeltaDiscoveryResponse::decode(delta.encode_to_vec().as_slice()).unwrap(),
            delta.to_generated()
        );
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
        assert_eq!(d.resources[0].version, r.resources[0].version().to_string());
        assert_eq!(
            hex(r.resources[1].version()).as_str(),
            r.resources[1].version().to_string()
        );
        assert_eq!(d.resources[0].resource, Some(r.resources[0].to_any()));
    }
}
