//! TEMPORARY placeholder until the canonical encoder lands (not committed).
pub(crate) fn encode<M: prost::Message + prost::Name>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}
