//! Deterministic protobuf encoding.
//!
//! `envoy-types` generates protobuf `map` fields as `std::collections::HashMap`, whose
//! iteration order is seeded per process (and per map), so plain `prost` encoding of a message
//! with a two-entry map, such as `Cluster.typed_extension_protocol_options`,
//! `Route.typed_per_filter_config` or `google.protobuf.Struct.fields`, differs from run to run.
//! Resource versions are hashes of the encoding, so that would break every determinism promise.
//!
//! [`encode`] therefore encodes with `prost` and then canonicalizes at the wire level, guided by
//! the descriptors in [`crate::descriptors`]: the entries of every map field are sorted by key
//! (a duplicate key keeps its last entry, as a decoder would), recursively, including inside
//! `google.protobuf.Any.value` whenever the `Any`'s type is in the descriptor pool. Everything
//! else stays exactly as `prost` emitted it. For speed, each message type knows whether it can
//! reach a map or an `Any` at all; subtrees that cannot are copied without being looked at.
//!
//! This module does not validate messages (bytes it has no reason to parse are copied as they
//! are), does not normalize anything but map order (field order, unknown fields, non-minimal
//! varints outside rewritten lengths are kept), and cannot canonicalize an `Any` whose type is
//! not in the descriptor pool, or whose value does not parse as that type: such an `Any` is left
//! as it is.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use prost_reflect::Kind;

use crate::descriptors;

/// The error of [`canonicalize`]: the bytes could not be canonicalized.
///
/// Offsets count bytes from the start of the input given to [`canonicalize`].
///
/// ```
/// use xdsc_core::{CanonicalError, canonicalize};
/// let err = canonicalize("no.such.Message", b"").unwrap_err();
/// assert!(matches!(err, CanonicalError::UnknownMessage(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// The message type is not in xdsc's descriptor pool (see `xds-core/build.rs`).
    #[error("unknown protobuf message type {0:?}")]
    UnknownMessage(String),
    /// The bytes are not a valid protobuf encoding where they had to be parsed.
    #[error("malformed protobuf in {message} at byte {offset}: {reason}")]
    Malformed {
        /// The message type being parsed (the innermost one).
        message: String,
        /// Where in the input the problem was found.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Messages (or groups) are nested deeper than 100 levels.
    #[error("protobuf nested deeper than {MAX_DEPTH} levels in {message}")]
    TooDeep {
        /// The message type at which the limit was reached.
        message: String,
    },
}

/// How deeply messages may nest (the limit protobuf decoders use too).
const MAX_DEPTH: usize = 100;

/// Encodes `msg` with `prost` and canonicalizes map order, so that equal messages always give
/// equal bytes, in every process.
///
/// A message whose type cannot reach a map or an `Any` is returned exactly as `prost` encoded
/// it. If `M` is not in the descriptor pool its maps cannot be found: that is a bug (add its
/// `.proto` file to `build.rs`), reported by a panic in debug builds; release builds return the
/// plain `prost` encoding.
pub(crate) fn encode<M: prost::Message + prost::Name>(msg: &M) -> Vec<u8> {
    let bytes = msg.encode_to_vec();
    let plans = plans();
    let Some(index) = plans.index(&M::full_name()) else {
        debug_assert!(false, "{} is not in the descriptor pool", M::full_name());
        return bytes;
    };
    if !plans.messages[index].needs_work {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    match plans.message(index, &bytes, 0, 0, &mut out) {
        Ok(()) => out,
        Err(e) => {
            // prost's own output of a type in the pool always parses.
            debug_assert!(false, "canonicalizing {}: {e}", M::full_name());
            bytes
        }
    }
}

/// Canonicalizes the protobuf encoding of a message of type `message_name` (fully qualified,
/// e.g. `envoy.config.cluster.v3.Cluster`): map entries sorted by key at every depth, including
/// inside `Any` values of known types (an `Any` of an unknown type, or whose value does not parse
/// as its type, is kept as it is); all other bytes unchanged.
///
/// This is what xdsc's compiler applies to every resource it encodes. It never panics, whatever
/// the bytes; parts that cannot contain a map are copied without being parsed, so `Ok` does not
/// mean the bytes are a valid message.
///
/// ```
/// use xdsc_core::canonicalize;
/// // google.protobuf.Struct { fields: {"b": {}, "a": {}} } (empty values), "b" encoded first.
/// let b_first = [10, 5, 10, 1, b'b', 18, 0, 10, 5, 10, 1, b'a', 18, 0];
/// let a_first = [10, 5, 10, 1, b'a', 18, 0, 10, 5, 10, 1, b'b', 18, 0];
/// assert_eq!(canonicalize("google.protobuf.Struct", &b_first).unwrap(), a_first);
/// ```
pub fn canonicalize(message_name: &str, bytes: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    let plans = plans();
    let index = plans
        .index(message_name)
        .ok_or_else(|| CanonicalError::UnknownMessage(message_name.to_owned()))?;
    let mut out = Vec::with_capacity(bytes.len());
    plans.message(index, bytes, 0, 0, &mut out)?;
    Ok(out)
}

/// What canonicalization does with the fields of one message type.
struct MessagePlan {
    name: Box<str>,
    /// Whether a map or an `Any` is reachable from this type; if not, its bytes are copied.
    needs_work: bool,
    /// This is `google.protobuf.Any`.
    is_any: bool,
    /// The fields that need work, sorted by field number.
    fields: Vec<(u32, FieldPlan)>,
}

#[derive(Clone, Copy)]
enum FieldPlan {
    /// A (possibly repeated) message field whose type needs work: recurse.
    Message(usize),
    /// A map field: canonicalize every entry (a message type), then sort them by key.
    Map { entry: usize, key: KeyKind },
}

/// How a map key sorts; a missing key is the default of its kind.
#[derive(Clone, Copy)]
enum KeyKind {
    /// `string` keys (and anything length-delimited): by their bytes.
    Bytes,
    /// Integer and `bool` keys: by value as an unsigned 64-bit number.
    Int,
}

/// The canonicalization plan of every message type in the pool.
struct Plans {
    by_name: BTreeMap<Box<str>, usize>,
    /// `(hash of the name, index)` sorted by hash, for fast lookups; names whose hash collides
    /// with another's are left out and found in `by_name`.
    by_hash: Vec<(u64, usize)>,
    messages: Vec<MessagePlan>,
}

fn plans() -> &'static Plans {
    static PLANS: OnceLock<Plans> = OnceLock::new();
    PLANS.get_or_init(Plans::build)
}

impl Plans {
    fn build() -> Plans {
        let pool = descriptors::pool();
        let by_name: BTreeMap<Box<str>, usize> = pool
            .all_messages()
            .enumerate()
            .map(|(i, m)| (Box::from(m.full_name()), i))
            .collect();
        let index_of = |name: &str| by_name.get(name).copied();

        let mut messages: Vec<MessagePlan> = Vec::with_capacity(by_name.len());
        for m in pool.all_messages() {
            let is_any = m.full_name() == "google.protobuf.Any";
            let mut fields = Vec::new();
            for f in m.fields() {
                let Kind::Message(target) = f.kind() else {
                    continue;
                };
                let Some(target_index) = index_of(target.full_name()) else {
                    continue;
                };
                let plan = if f.is_map() {
                    let key = match target.map_entry_key_field().kind() {
                        Kind::String | Kind::Bytes => KeyKind::Bytes,
                        _ => KeyKind::Int,
                    };
                    FieldPlan::Map {
                        entry: target_index,
                        key,
                    }
                } else {
                    FieldPlan::Message(target_index)
                };
                fields.push((f.number(), plan));
            }
            fields.sort_by_key(|(number, _)| *number);
            let needs_work = is_any
                || fields
                    .iter()
                    .any(|(_, p)| matches!(p, FieldPlan::Map { .. }));
            messages.push(MessagePlan {
                name: Box::from(m.full_name()),
                needs_work,
                is_any,
                fields,
            });
        }

        // Propagate "needs work" up through message fields until nothing changes.
        loop {
            let mut changed = false;
            for i in 0..messages.len() {
                if messages[i].needs_work {
                    continue;
                }
                let reaches = messages[i].fields.iter().any(|(_, p)| match *p {
                    FieldPlan::Message(t) => messages[t].needs_work,
                    FieldPlan::Map { .. } => true,
                });
                if reaches {
                    messages[i].needs_work = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Keep only the fields that lead somewhere; the rest are copied verbatim.
        let needs: Vec<bool> = messages.iter().map(|m| m.needs_work).collect();
        for m in &mut messages {
            m.fields.retain(|(_, p)| match *p {
                FieldPlan::Message(t) => needs[t],
                FieldPlan::Map { .. } => true,
            });
        }
        let mut by_hash: Vec<(u64, usize)> = by_name
            .iter()
            .map(|(name, &i)| (xxhash_rust::xxh3::xxh3_64(name.as_bytes()), i))
            .collect();
        by_hash.sort_unstable();
        let collides = |k: usize| {
            let h = by_hash[k].0;
            (k > 0 && by_hash[k - 1].0 == h) || by_hash.get(k + 1).is_some_and(|n| n.0 == h)
        };
        let by_hash = (0..by_hash.len())
            .filter(|&k| !collides(k))
            .map(|k| by_hash[k])
            .collect();
        Plans {
            by_name,
            by_hash,
            messages,
        }
    }

    /// The plan index of a fully qualified message name.
    fn index(&self, name: &str) -> Option<usize> {
        let hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes());
        match self.by_hash.binary_search_by_key(&hash, |(h, _)| *h) {
            Ok(k) => {
                let index = self.by_hash[k].1;
                (*self.messages[index].name == *name).then_some(index)
            }
            Err(_) => self.by_name.get(name).copied(),
        }
    }

    fn field(&self, message: usize, number: u32) -> Option<FieldPlan> {
        let fields = &self.messages[message].fields;
        fields
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .map(|i| fields[i].1)
    }

    /// Appends the canonical form of `input`, a message of type `index`, to `out`.
    /// `offset` is where `input` starts in the caller's original bytes (for errors).
    fn message(
        &self,
        index: usize,
        input: &[u8],
        offset: usize,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CanonicalError> {
        let plan = &self.messages[index];
        if !plan.needs_work {
            out.extend_from_slice(input);
            return Ok(());
        }
        if depth >= MAX_DEPTH {
            return Err(CanonicalError::TooDeep {
                message: plan.name.to_string(),
            });
        }
        if plan.is_any {
            return self.any(index, input, offset, depth, out);
        }
        let mut reader = Reader::new(input, offset, &plan.name);
        // Map fields already written (all their entries at the first one's position).
        let mut maps_done: Vec<u32> = Vec::new();
        // Fields that need no work are copied in runs: `verbatim` is where the current run began.
        let mut verbatim = 0;
        while let Some(field) = reader.next_field()? {
            let action = match field.wire_type {
                WIRE_LEN => self.field(index, field.number),
                _ => None,
            };
            let Some(action) = action else {
                continue;
            };
            out.extend_from_slice(&input[verbatim..field.start]);
            verbatim = field.end;
            match action {
                FieldPlan::Message(target) => {
                    self.message_field(target, input, offset, &field, depth, out)?;
                }
                FieldPlan::Map { entry, key } => {
                    if !maps_done.contains(&field.number) {
                        maps_done.push(field.number);
                        self.map(index, entry, key, input, offset, &field, depth, out)?;
                    }
                }
            }
        }
        out.extend_from_slice(&input[verbatim..]);
        Ok(())
    }

    /// Writes every entry of the map field `first` belongs to, canonicalized, deduplicated by
    /// key (the last entry wins, as in a decoder) and sorted by key.
    #[allow(clippy::too_many_arguments)]
    fn map(
        &self,
        index: usize,
        entry: usize,
        key_kind: KeyKind,
        input: &[u8],
        offset: usize,
        first: &Field,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CanonicalError> {
        let name = &self.messages[index].name;
        // The other entries of this map field, wherever they are in the message.
        let mut others = Vec::new();
        let mut rest = Reader::new(input, offset, name);
        rest.pos = first.end;
        while let Some(field) = rest.next_field()? {
            if field.number == first.number && field.wire_type == WIRE_LEN {
                others.push(field);
            }
        }
        if others.is_empty() {
            // A single entry: nothing to sort.
            return self.message_field(entry, input, offset, first, depth, out);
        }
        // Each entry canonicalized into `scratch`: (key, range of its whole field encoding).
        let entry_name = &self.messages[entry].name;
        let mut scratch = Vec::with_capacity(input.len() - first.start);
        let mut entries = Vec::with_capacity(others.len() + 1);
        for field in std::iter::once(first).chain(&others) {
            let start = scratch.len();
            self.message_field(entry, input, offset, field, depth, &mut scratch)?;
            let key_offset = offset + field.payload_start;
            let key = map_key(field.payload(input), key_offset, key_kind, entry_name)?;
            entries.push((key, start..scratch.len()));
        }
        // A stable sort; of equal keys only the last is kept, as a decoder would keep it.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (key, range)) in entries.iter().enumerate() {
            if entries.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            out.extend_from_slice(&scratch[range.clone()]);
        }
        Ok(())
    }

    /// Canonicalizes a `google.protobuf.Any`: its `value` as the message its `type_url` names,
    /// if that type is in the pool and the value parses as one; otherwise the bytes are kept.
    fn any(
        &self,
        index: usize,
        input: &[u8],
        offset: usize,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CanonicalError> {
        const TYPE_URL: u32 = 1;
        const VALUE: u32 = 2;
        let name = &self.messages[index].name;
        // Decoders keep the last occurrence of a singular field.
        let mut type_url: Option<&[u8]> = None;
        let mut value_at: Option<usize> = None;
        let mut reader = Reader::new(input, offset, name);
        while let Some(field) = reader.next_field()? {
            match (field.number, field.wire_type) {
                (TYPE_URL, WIRE_LEN) => type_url = Some(field.payload(input)),
                (VALUE, WIRE_LEN) => value_at = Some(field.start),
                _ => {}
            }
        }
        let target = type_url
            .and_then(|url| std::str::from_utf8(url).ok())
            .map(|url| url.rsplit('/').next().unwrap_or(url))
            .and_then(|type_name| self.index(type_name))
            .filter(|&t| self.messages[t].needs_work);
        let (Some(target), Some(value_at)) = (target, value_at) else {
            out.extend_from_slice(input);
            return Ok(());
        };
        let start = out.len();
        let mut reader = Reader::new(input, offset, name);
        while let Some(field) = reader.next_field()? {
            if field.start != value_at {
                out.extend_from_slice(field.whole(input));
                continue;
            }
            if self
                .message_field(target, input, offset, &field, depth, out)
                .is_err()
            {
                // A value that is not a valid message of its type is kept as it is, like one of
                // an unknown type: the Any is opaque data then, and still deterministic.
                out.truncate(start);
                out.extend_from_slice(input);
                return Ok(());
            }
        }
        Ok(())
    }

    /// Writes `field` (of `input`, which starts at `offset`), a message of type `target` one
    /// level below `depth`: its tag, its length and its canonical payload. The length is first
    /// written for the input's payload (canonicalization almost never changes a length: only
    /// dropping duplicate map keys or re-encoding an overlong length does) and fixed if needed.
    fn message_field(
        &self,
        target: usize,
        input: &[u8],
        offset: usize,
        field: &Field,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CanonicalError> {
        let payload = field.payload(input);
        out.extend_from_slice(field.tag(input));
        let len_at = out.len();
        encode_varint(payload.len() as u64, out);
        let body_at = out.len();
        let payload_offset = offset + field.payload_start;
        self.message(target, payload, payload_offset, depth + 1, out)?;
        let body_len = out.len() - body_at;
        if body_len != payload.len() {
            let mut prefix = Vec::with_capacity(10);
            encode_varint(body_len as u64, &mut prefix);
            out.splice(len_at..body_at, prefix);
        }
        Ok(())
    }
}

/// A map entry's key, for sorting and deduplication.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum MapKey<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

/// The key of a map entry (field 1 of the entry message; the last one if repeated).
fn map_key<'a>(
    entry: &'a [u8],
    offset: usize,
    kind: KeyKind,
    name: &str,
) -> Result<MapKey<'a>, CanonicalError> {
    let mut key = match kind {
        KeyKind::Bytes => MapKey::Bytes(&[]),
        KeyKind::Int => MapKey::Int(0),
    };
    let mut reader = Reader::new(entry, offset, name);
    while let Some(field) = reader.next_field()? {
        if field.number != 1 {
            continue;
        }
        let payload = field.payload(entry);
        key = match field.wire_type {
            WIRE_LEN => MapKey::Bytes(payload),
            WIRE_VARINT => {
                let mut pos = 0;
                MapKey::Int(decode_varint(payload, &mut pos).unwrap_or(0))
            }
            // Fixed-width keys: little-endian on the wire.
            _ => MapKey::Int(
                payload
                    .iter()
                    .rev()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
            ),
        };
    }
    Ok(key)
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_FIXED32: u8 = 5;

/// One field of a message on the wire; positions index the message's bytes.
struct Field {
    number: u32,
    wire_type: u8,
    /// Where the tag starts.
    start: usize,
    /// Where the value starts: after the tag, and after the length for length-delimited fields.
    payload_start: usize,
    /// Where the value ends (for a group: after its end-group tag).
    end: usize,
    /// Where the tag ends.
    tag_end: usize,
}

impl Field {
    fn whole<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        &input[self.start..self.end]
    }

    fn tag<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        &input[self.start..self.tag_end]
    }

    fn payload<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        &input[self.payload_start..self.end]
    }
}

/// Splits a message's bytes into fields, checking only framing (tags, lengths, groups).
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    offset: usize,
    name: &'a str,
}

impl<'a> Reader<'a> {
    fn new(input: &'a [u8], offset: usize, name: &'a str) -> Reader<'a> {
        Reader {
            input,
            pos: 0,
            offset,
            name,
        }
    }

    fn error(&self, at: usize, reason: &'static str) -> CanonicalError {
        CanonicalError::Malformed {
            message: self.name.to_owned(),
            offset: self.offset + at,
            reason,
        }
    }

    /// The next field, `None` at the end of the input.
    fn next_field(&mut self) -> Result<Option<Field>, CanonicalError> {
        if self.pos >= self.input.len() {
            return Ok(None);
        }
        let start = self.pos;
        let (number, wire_type) = self.tag()?;
        let tag_end = self.pos;
        let payload_start = match wire_type {
            WIRE_START_GROUP => {
                self.skip_group(number)?;
                tag_end
            }
            WIRE_END_GROUP => return Err(self.error(start, "unexpected end-group tag")),
            _ => self.skip_value(wire_type, start)?,
        };
        Ok(Some(Field {
            number,
            wire_type,
            start,
            payload_start,
            end: self.pos,
            tag_end,
        }))
    }

    fn tag(&mut self) -> Result<(u32, u8), CanonicalError> {
        let at = self.pos;
        let tag = decode_varint(self.input, &mut self.pos)
            .ok_or_else(|| self.error(at, "truncated or overlong tag"))?;
        let number = tag >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(self.error(at, "invalid field number"));
        }
        // Both conversions are exact: number < 2^29 and the wire type is 3 bits.
        Ok((number as u32, (tag & 7) as u8))
    }

    fn advance(&mut self, n: usize) -> Result<(), CanonicalError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.input.len() => {
                self.pos = end;
                Ok(())
            }
            _ => Err(self.error(self.pos, "field runs past the end of its message")),
        }
    }

    /// Skips a group's contents and its end tag (groups are never canonicalized).
    fn skip_group(&mut self, number: u32) -> Result<(), CanonicalError> {
        let mut open = vec![number];
        while let Some(&innermost) = open.last() {
            if self.pos >= self.input.len() {
                return Err(self.error(self.pos, "unterminated group"));
            }
            let at = self.pos;
            let (n, wire_type) = self.tag()?;
            match wire_type {
                WIRE_START_GROUP => {
                    if open.len() >= MAX_DEPTH {
                        return Err(CanonicalError::TooDeep {
                            message: self.name.to_owned(),
                        });
                    }
                    open.push(n);
                }
                WIRE_END_GROUP if n == innermost => {
                    open.pop();
                }
                WIRE_END_GROUP => return Err(self.error(at, "mismatched end-group tag")),
                _ => {
                    self.skip_value(wire_type, at)?;
                }
            }
        }
        Ok(())
    }

    /// Skips the value of a field that is not a group, whose tag started at `start` and has
    /// just been read. Returns where the payload starts (after the length, if there is one).
    fn skip_value(&mut self, wire_type: u8, start: usize) -> Result<usize, CanonicalError> {
        let value_at = self.pos;
        match wire_type {
            WIRE_VARINT => {
                decode_varint(self.input, &mut self.pos)
                    .ok_or_else(|| self.error(value_at, "truncated or overlong varint"))?;
            }
            WIRE_FIXED64 => self.advance(8)?,
            WIRE_FIXED32 => self.advance(4)?,
            WIRE_LEN => {
                let len = decode_varint(self.input, &mut self.pos)
                    .ok_or_else(|| self.error(value_at, "truncated or overlong length"))?;
                let payload_start = self.pos;
                let len =
                    usize::try_from(len).map_err(|_| self.error(value_at, "length too large"))?;
                self.advance(len)?;
                return Ok(payload_start);
            }
            _ => return Err(self.error(start, "invalid wire type")),
        }
        Ok(value_at)
    }
}

/// Decodes a base-128 varint at `*pos`, advancing it; `None` if truncated or longer than 10
/// bytes.
fn decode_varint(input: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let byte = *input.get(*pos + i)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *pos += i + 1;
            return Some(value);
        }
    }
    None
}

fn encode_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests;
