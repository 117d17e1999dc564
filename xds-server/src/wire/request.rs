//! Requests as they are read off the wire and written by the test client.
//!
//! A state-of-the-world request is decoded field by field, as the generated
//! `DiscoveryRequest` would be, but its `resource_names` stay in the received bytes
//! ([`RequestNames`]): Envoy's endpoint acknowledgement repeats every cluster it holds, and a
//! `String` per name was most of the server's CPU for an endpoint change to a thousand named
//! subscribers (BENCHMARKS.md, issue 13).

use bytes::{Buf, Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use prost::Message;
use prost::encoding::{
    DecodeContext, WireType, check_wire_type, decode_key, decode_varint, encoded_len_varint,
    skip_field,
};
use tonic::Status;

use crate::protocol::{self, NAME_KEY, RequestNames, put_entry};

/// A request message as the service reads it from its bytes.
pub(crate) trait Decode: Sized + Send + 'static {
    /// Decodes one message. `last`: what this stream's reader remembers of the names of its
    /// last request.
    fn decode(message: Bytes, last: &mut LastNames) -> Result<Self, Status>;
}

/// What a stream's request reader remembers of the last state-of-the-world request's names,
/// when there were many ([`protocol::LISTED_MIN`]) and they came as one run of canonical
/// entries, checked: their 128-bit xxh3 hash, length in bytes and number. Envoy repeats its
/// endpoint subscription, in its own order, in every acknowledgement; a run with the same
/// hash is the same entries, taken without reading them or checking UTF-8 again.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LastNames(Option<(u128, usize, usize)>);

fn undecodable(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("a request that does not decode: {e}"))
}

impl Decode for DeltaDiscoveryRequest {
    fn decode(message: Bytes, _: &mut LastNames) -> Result<Self, Status> {
        Message::decode(message).map_err(undecodable)
    }
}

/// A state-of-the-world request: its node and the protocol's form of the rest.
#[derive(Debug, PartialEq)]
pub(crate) struct SotwRequest {
    pub(crate) node: Option<Node>,
    pub(crate) request: protocol::Request,
}

impl From<DiscoveryRequest> for SotwRequest {
    fn from(r: DiscoveryRequest) -> SotwRequest {
        let error = r.error_detail.map(|s| {
            if s.message.is_empty() {
                format!("code {}", s.code)
            } else {
                s.message
            }
        });
        SotwRequest {
            node: r.node,
            request: protocol::Request {
                type_url: r.type_url,
                version_info: r.version_info,
                resource_names: r.resource_names.into(),
                response_nonce: r.response_nonce,
                error,
                ..Default::default()
            },
        }
    }
}

/// Where the `resource_names` entries of a message are: one run of canonical entries in the
/// message itself (as every encoder writes them: a field's entries together), or, when they
/// are not, a copy of them made canonical.
struct Gathered {
    run: std::ops::Range<usize>,
    copied: Option<BytesMut>,
    count: usize,
    /// Some name is 128 bytes or more.
    long: bool,
    /// The run is exactly the last request's names: canonical and UTF-8 already.
    known: bool,
    /// The run's hash, when it is the last request's names.
    hash: Option<u128>,
}

impl Gathered {
    /// The entry at `entry` of `message`, its name at `name`.
    fn add(&mut self, message: &[u8], entry: std::ops::Range<usize>, name: std::ops::Range<usize>) {
        self.known = false;
        self.hash = None;
        let len = name.len();
        self.count += 1;
        self.long |= len >= 0x80;
        let canonical = name.start - entry.start == 1 + encoded_len_varint(len as u64);
        if self.copied.is_none() {
            if canonical && (self.run.is_empty() || self.run.end == entry.start) {
                if self.run.is_empty() {
                    self.run.start = entry.start;
                }
                self.run.end = entry.end;
                return;
            }
            self.copied = Some(BytesMut::from(&message[self.run.clone()]));
        }
        if let Some(out) = &mut self.copied {
            put_entry(&message[name], out);
        }
    }
}

impl Decode for SotwRequest {
    fn decode(message: Bytes, last: &mut LastNames) -> Result<SotwRequest, Status> {
        let mut rest: &[u8] = &message;
        let mut r = DiscoveryRequest::default();
        let mut names = Gathered {
            run: 0..0,
            copied: None,
            count: 0,
            long: false,
            known: false,
            hash: None,
        };
        let at = |rest: &[u8]| message.len() - rest.len();
        while rest.has_remaining() {
            let start = at(rest);
            // Envoy's endpoint acknowledgement: the names of its last request again, in the
            // same order. One hash, no entry read, no UTF-8 check.
            if names.run.is_empty()
                && names.copied.is_none()
                && rest.first() == Some(&NAME_KEY)
                && let LastNames(Some((hash, len, count))) = *last
                && rest.len() >= len
                && xxhash_rust::xxh3::xxh3_128(&rest[..len]) == hash
            {
                names.run = start..start + len;
                names.count = count;
                names.known = true;
                names.hash = Some(hash);
                rest = &message[names.run.end..];
                continue;
            }
            // The common case without the general decoder: entries of names shorter than 128
            // bytes, one after another, continuing the run.
            if names.copied.is_none() && (names.run.is_empty() || names.run.end == start) {
                let mut end = start;
                while let [NAME_KEY, len, ..] = message[end..]
                    && len < 0x80
                    && end + 2 + usize::from(len) <= message.len()
                {
                    end += 2 + usize::from(len);
                    names.count += 1;
                }
                if end > start {
                    names.known = false;
                    names.hash = None;
                    if names.run.is_empty() {
                        names.run.start = start;
                    }
                    names.run.end = end;
                    rest = &message[end..];
                    continue;
                }
            }
            let (tag, wire_type) = decode_key(&mut rest).map_err(undecodable)?;
            if tag != 3 {
                r.merge_field(tag, wire_type, &mut rest, DecodeContext::default())
                    .map_err(undecodable)?;
                continue;
            }
            check_wire_type(WireType::LengthDelimited, wire_type).map_err(undecodable)?;
            // Checked whole first (a length past the end is the generated decoder's error).
            let mut entry = rest;
            skip_field(wire_type, tag, &mut entry, DecodeContext::default())
                .map_err(undecodable)?;
            let len = decode_varint(&mut rest).map_err(undecodable)? as usize;
            let name = at(rest)..at(rest) + len;
            rest = entry;
            names.add(&message, start..at(rest), name);
        }
        let mut request = SotwRequest::from(r);
        let in_run = names.copied.is_none();
        let run = names.run.clone();
        request.request.resource_names = match names.copied {
            None if names.known => RequestNames::trusted(message.slice(names.run), names.count),
            copied => {
                let entries = copied.map_or_else(|| message.slice(names.run), BytesMut::freeze);
                RequestNames::checked(entries, names.count, names.long)
                    .map_err(|i| undecodable(format!("resource_names[{i}] is not UTF-8")))?
            }
        };
        // Remembered for the next request: a run of many names, as received and checked.
        *last = LastNames(None);
        if in_run && names.count >= protocol::LISTED_MIN {
            let hash = names
                .hash
                .unwrap_or_else(|| xxhash_rust::xxh3::xxh3_128(&message[run.clone()]));
            *last = LastNames(Some((hash, run.len(), names.count)));
            request.request.resource_names = request.request.resource_names.with_hash(hash);
        }
        Ok(request)
    }
}

/// A `DiscoveryRequest` written with its `resource_names` as encoded (the test client's
/// requests: a fake Envoy encodes its subscription once, not for each acknowledgement).
#[cfg(any(test, feature = "test-util"))]
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SotwRequestOut {
    /// Every field but the names.
    pub(crate) rest: DiscoveryRequest,
    pub(crate) names: RequestNames,
}

#[cfg(any(test, feature = "test-util"))]
impl Message for SotwRequestOut {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        self.rest.encode_raw(buf);
        buf.put_slice(self.names.encoded());
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Encode-only: the client never decodes its own requests.
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.rest.encoded_len() + self.names.encoded().len()
    }

    fn clear(&mut self) {
        *self = SotwRequestOut::default();
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::rpc::Status as RpcStatus;
    use proptest::prelude::*;

    use super::*;

    fn generated(names: Vec<String>) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: "v1".into(),
            node: Some(Node {
                id: "n".into(),
                ..Node::default()
            }),
            resource_names: names,
            type_url: "t".into(),
            response_nonce: "3".into(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: "bad".into(),
                details: vec![],
            }),
            ..DiscoveryRequest::default()
        }
    }

    fn decode(bytes: Vec<u8>) -> Result<SotwRequest, Status> {
        <SotwRequest as Decode>::decode(Bytes::from(bytes), &mut LastNames::default())
    }

    proptest! {
        /// What the generated decoder reads, for names of any length and script, and for
        /// entries split by other fields or encoded with longer keys and lengths than needed.
        #[test]
        fn requests_decode_as_the_generated_message(
            names in prop::collection::vec("[a-z*]{0,3}|\\PC{0,6}|x{126,130}", 0..90),
            split in any::<prop::sample::Index>(),
            overlong in any::<bool>(),
        ) {
            let expected = generated(names.clone());
            let bytes = expected.encode_to_vec();
            let decoded = decode(bytes.clone()).unwrap();
            prop_assert_eq!(&decoded, &SotwRequest::from(expected.clone()));
            prop_assert_eq!(decoded.request.resource_names.iter().collect::<Vec<_>>(), names.clone());
            // The names around the other fields, one of them in an overlong encoding.
            let at = split.index(names.len() + 1);
            let mut odd = Vec::new();
            let part = |names: &[String]| generated(names.to_vec());
            odd.extend(DiscoveryRequest { resource_names: names[..at].to_vec(), ..Default::default() }.encode_to_vec());
            odd.extend(part(&[]).encode_to_vec());
            for n in &names[at..] {
                if overlong {
                    // Key 3/LEN as two bytes; the length as two.
                    odd.extend([0x9a, 0x00]);
                    odd.extend([0x80 | (n.len() as u8 & 0x7f), (n.len() >> 7) as u8]);
                    odd.extend(n.as_bytes());
                } else {
                    odd.extend(DiscoveryRequest { resource_names: vec![n.clone()], ..Default::default() }.encode_to_vec());
                }
            }
            let decoded = decode(odd.clone()).unwrap();
            prop_assert_eq!(&decoded, &SotwRequest::from(DiscoveryRequest::decode(&odd[..]).unwrap()));
            prop_assert_eq!(decoded.request.resource_names.iter().collect::<Vec<_>>(), names.clone());
            // Written back around the names as they were decoded: the same message.
            let out = SotwRequestOut {
                rest: DiscoveryRequest { resource_names: vec![], ..expected.clone() },
                names: decoded.request.resource_names.clone(),
            };
            prop_assert_eq!(out.encoded_len(), bytes.len());
            prop_assert_eq!(DiscoveryRequest::decode(&out.encode_to_vec()[..]).unwrap(), expected);
            // One reader, remembering the last request's names, for every message in turn
            // (each twice): the same again.
            let mut last = LastNames::default();
            for message in [&bytes, &bytes, &odd, &bytes, &odd, &odd] {
                let with = <SotwRequest as Decode>::decode(Bytes::from(message.clone()), &mut last).unwrap();
                prop_assert_eq!(&with, &SotwRequest::from(DiscoveryRequest::decode(&message[..]).unwrap()));
            }
        }
    }

    /// A reader that remembers the last request's names takes the same names again
    /// without reading them, and still reads and checks whatever follows them.
    #[test]
    fn the_last_requests_names_are_taken_again_and_what_follows_is_checked() {
        let many: Vec<String> = (0..100).map(|i| format!("n{i:02}")).collect();
        let listed: RequestNames = many.iter().collect();
        let tail = [0x22, 0x01, b't'];
        let good = [listed.encoded(), &tail].concat();
        let longer = [listed.encoded(), &[0x1a, 0x01, b'z'], &tail].concat();
        let bad = [listed.encoded(), &[0x1a, 0x02, 0xc3, 0x28], &tail].concat();
        let mut last = LastNames::default();
        let decode = |m: &[u8], last: &mut LastNames| {
            <SotwRequest as Decode>::decode(Bytes::from(m.to_vec()), last)
        };
        for _ in 0..2 {
            let r = decode(&good, &mut last).unwrap();
            assert_eq!(r.request.resource_names.iter().collect::<Vec<_>>(), many);
            assert!(matches!(last, LastNames(Some((_, _, 100)))));
        }
        let r = decode(&longer, &mut last).unwrap();
        assert_eq!(r.request.resource_names.len(), 101);
        assert_eq!(r.request.resource_names.iter().last(), Some("z"));
        decode(&good, &mut last).unwrap();
        let e = decode(&bad, &mut last).unwrap_err();
        assert!(
            e.message().contains("resource_names[100] is not UTF-8"),
            "{e}"
        );
        // A hash of the names as the protocol compares them, the same either way.
        let once = decode(&good, &mut LastNames::default()).unwrap();
        let again = decode(&good, &mut last).unwrap();
        assert_eq!(
            once.request.resource_names.hash(),
            again.request.resource_names.hash()
        );
        assert_eq!(once.request.resource_names.hash(), listed.hash());
    }

    #[test]
    fn a_request_in_one_run_is_a_slice_of_the_bytes_received() {
        let bytes = Bytes::from(generated(vec!["a".into(), "bb".into()]).encode_to_vec());
        let decoded =
            <SotwRequest as Decode>::decode(bytes.clone(), &mut LastNames::default()).unwrap();
        let names = decoded.request.resource_names.encoded_bytes();
        let inside = bytes.as_ptr_range();
        assert!(inside.contains(&names.as_ptr()), "not a copy");
        assert_eq!(&names[..], b"\x1a\x01a\x1a\x02bb");
    }

    #[test]
    fn requests_the_generated_decoder_refuses_are_refused() {
        let ok = generated(vec!["a".into()]).encode_to_vec();
        let mut not_utf8 = ok.clone();
        not_utf8.extend([0x1a, 0x02, 0xc3, 0x28]);
        let mut long_not_utf8 = ok.clone();
        long_not_utf8.extend([0x1a, 0x81, 0x01]);
        long_not_utf8.extend([b'x'; 128]);
        long_not_utf8.push(0xff);
        let cases = [
            (not_utf8, "resource_names[1] is not UTF-8"),
            (long_not_utf8, "resource_names[1] is not UTF-8"),
            // A name that is not UTF-8 right after another, with no other field.
            (
                vec![0x1a, 0x01, b'a', 0x1a, 0x02, 0xc3, 0x28, 0x22, 0x01, b't'],
                "resource_names[1] is not UTF-8",
            ),
            // A name longer than what is left.
            ([&ok[..], &[0x1a, 0x05, b'a']].concat(), "buffer underflow"),
            // Field 3 as a varint.
            ([&ok[..], &[0x18, 0x01]].concat(), "invalid wire type"),
            // Another field broken.
            ([&ok[..], &[0x22, 0x05, b'a']].concat(), "buffer underflow"),
        ];
        for (bytes, says) in cases {
            assert!(
                DiscoveryRequest::decode(&bytes[..]).is_err(),
                "the generated decoder refuses it"
            );
            let e = decode(bytes).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Internal);
            assert!(e.message().contains(says), "{e}");
        }
    }
}
