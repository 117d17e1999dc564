//! The resource names of a state-of-the-world request, kept as the request's bytes.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{decode_varint, encode_varint};

/// The key of a `resource_names` entry (field 3, length-delimited) of a `DiscoveryRequest`.
pub(crate) const KEY: u8 = (3 << 3) | 2;

/// The resource names of a state-of-the-world request, in the order the client listed them,
/// kept as the `resource_names` entries of the encoded `DiscoveryRequest` (field 3, each its
/// key, length and UTF-8 bytes) rather than a `String` each.
///
/// Envoy repeats its whole subscription in every acknowledgement: an endpoint ACK lists every
/// cluster it holds (10,000 names at 10,000 services). The server reads such a request as a
/// slice of the bytes it received, compares the names with the subscription the stream has
/// without allocating any, and builds a set only when they differ. A test client writes a
/// subscription it encoded once.
///
/// ```
/// use xdsc_server::protocol::RequestNames;
/// let names: RequestNames = ["b", "a"].into_iter().collect();
/// assert_eq!((names.len(), names.iter().collect::<Vec<_>>()), (2, vec!["b", "a"]));
/// assert_eq!(names.encoded(), b"\x1a\x01b\x1a\x01a");
/// assert!(RequestNames::default().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct RequestNames {
    /// The entries, each encoded canonically (a one-byte key, the shortest length), every
    /// name valid UTF-8: equal lists are equal bytes.
    entries: Bytes,
    len: usize,
    /// [`RequestNames::hash`], when the decoder knew it already.
    hash: Option<u128>,
}

impl PartialEq for RequestNames {
    fn eq(&self, other: &RequestNames) -> bool {
        self.len == other.len && self.entries == other.entries
    }
}

impl Eq for RequestNames {}

impl RequestNames {
    /// How many names (a name listed twice counts twice).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none (a wildcard request, when it is the first of its type).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The names, in the order the client listed them.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        // Every entry was checked to be UTF-8 when the list was made.
        self.raw()
            .map(|n| std::str::from_utf8(n).unwrap_or_default())
    }

    /// The names' bytes, in order: what comparisons read, without checking UTF-8 again.
    pub(crate) fn raw(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest: &[u8] = &self.entries;
        std::iter::from_fn(move || {
            let (_key, tail) = rest.split_first()?;
            let mut tail = tail;
            let len = match tail.first() {
                Some(&b) if b < 0x80 => {
                    tail = &tail[1..];
                    usize::from(b)
                }
                _ => usize::try_from(decode_varint(&mut tail).ok()?).ok()?,
            };
            let (name, after) = tail.split_at_checked(len)?;
            rest = after;
            Some(name)
        })
    }

    /// The `resource_names` entries as encoded in a `DiscoveryRequest`, ready to be written
    /// into one.
    pub fn encoded(&self) -> &[u8] {
        &self.entries
    }

    /// The 128-bit xxh3 hash of the entries: equal for equal lists, in the same order.
    pub(crate) fn hash(&self) -> u128 {
        self.hash
            .unwrap_or_else(|| xxhash_rust::xxh3::xxh3_128(&self.entries))
    }

    /// The same names, whose entries are known to hash to `hash`.
    pub(crate) fn with_hash(mut self, hash: u128) -> RequestNames {
        self.hash = Some(hash);
        self
    }

    /// The entries as shared bytes ([`RequestNames::encoded`] without a copy).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn encoded_bytes(&self) -> &Bytes {
        &self.entries
    }

    /// Entries the server encoded itself (a key list of [`super::Shared`]): canonical, every
    /// name UTF-8, `len` of them.
    pub(crate) fn trusted(entries: Bytes, len: usize) -> RequestNames {
        RequestNames {
            entries,
            len,
            hash: None,
        }
    }

    /// Names gathered by the request decoder: `entries` are canonical `resource_names`
    /// entries, `len` of them, whose names are not yet known to be UTF-8. `long`: some name is
    /// 128 bytes or more (its length takes more than one byte). Returns the index of the
    /// first name that is not UTF-8.
    pub(crate) fn checked(entries: Bytes, len: usize, long: bool) -> Result<RequestNames, usize> {
        let names = RequestNames::trusted(entries, len);
        // With every key and length a single byte below 0x80, the entries are UTF-8 exactly
        // when each name is (an ASCII byte is never part of a multi-byte sequence), so one
        // check of the whole covers them all.
        if (long || std::str::from_utf8(&names.entries).is_err())
            && let Some(bad) = names.raw().position(|n| std::str::from_utf8(n).is_err())
        {
            return Err(bad);
        }
        Ok(names)
    }
}

/// Appends one canonical `resource_names` entry.
pub(crate) fn put_entry(name: &[u8], out: &mut BytesMut) {
    out.put_u8(KEY);
    encode_varint(name.len() as u64, out);
    out.put_slice(name);
}

impl<S: AsRef<str>> FromIterator<S> for RequestNames {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> RequestNames {
        let mut entries = BytesMut::new();
        let mut len = 0;
        for n in names {
            put_entry(n.as_ref().as_bytes(), &mut entries);
            len += 1;
        }
        RequestNames::trusted(entries.freeze(), len)
    }
}

impl From<Vec<String>> for RequestNames {
    fn from(names: Vec<String>) -> RequestNames {
        names.iter().collect()
    }
}

impl fmt::Debug for RequestNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_any_length_and_script_come_back_as_listed() {
        let long = "x".repeat(300);
        let listed = ["a", "", "ünïcødé", long.as_str(), "a", "*"];
        let names: RequestNames = listed.iter().collect();
        assert_eq!(names.len(), 6);
        assert_eq!(names.iter().collect::<Vec<_>>(), listed);
        let encoded = names.encoded_bytes().clone();
        assert_eq!(
            RequestNames::checked(encoded, 6, true).as_ref(),
            Ok(&names),
            "checked one by one"
        );
    }

    #[test]
    fn a_name_that_is_not_utf8_is_found_by_its_index() {
        for long in [false, true] {
            let mut entries = BytesMut::new();
            put_entry(b"ok", &mut entries);
            // A multi-byte sequence cut short by the next entry's key, then a stray
            // continuation byte at the start of a name.
            put_entry(b"\xe2\x82", &mut entries);
            put_entry(b"\x82x", &mut entries);
            if long {
                put_entry("y".repeat(200).as_bytes(), &mut entries);
            }
            let n = 3 + usize::from(long);
            assert_eq!(
                RequestNames::checked(entries.freeze(), n, long),
                Err(1),
                "long: {long}"
            );
        }
        let mut entries = BytesMut::new();
        put_entry(b"fine", &mut entries);
        put_entry(b"\x82", &mut entries);
        assert_eq!(RequestNames::checked(entries.freeze(), 2, false), Err(1));
    }
}
