//! 66/WAKU2-METADATA (`/vac/waku/metadata/1.0.0`): cluster id and shards,
//! exchanged on every new connection.

use prost::Message as _;

/// The largest metadata frame nwaku reads.
pub const MAX_LEN: usize = 1024;

/// A metadata request or response: both carry the sender's cluster and shards.
///
/// Shards are written twice, for the three peer implementations: field 2
/// unpacked (js-waku decodes only that, and only unpacked) and field 3 packed
/// (go-waku reads only that; nwaku prefers it).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Metadata {
    /// The sender's cluster.
    #[prost(uint32, optional, tag = "1")]
    pub cluster_id: Option<u32>,
    #[prost(uint32, repeated, packed = "false", tag = "2")]
    shards_unpacked: Vec<u32>,
    #[prost(uint32, repeated, tag = "3")]
    shards_packed: Vec<u32>,
}

impl Metadata {
    /// Metadata for a node on `cluster_id` serving `shards`.
    pub fn new(cluster_id: u32, shards: impl IntoIterator<Item = u32>) -> Self {
        let shards: Vec<u32> = shards.into_iter().collect();
        Self {
            cluster_id: Some(cluster_id),
            shards_unpacked: shards.clone(),
            shards_packed: shards,
        }
    }

    /// The shards the sender serves: field 3 when present, else field 2.
    pub fn shards(&self) -> &[u32] {
        if self.shards_packed.is_empty() {
            &self.shards_unpacked
        } else {
            &self.shards_packed
        }
    }

    /// Decodes a frame, bounded by [`MAX_LEN`].
    pub fn decode_frame(bytes: &[u8]) -> Result<Self, crate::Error> {
        if bytes.len() > MAX_LEN {
            return Err(crate::Error::TooLarge {
                len: bytes.len(),
                max: MAX_LEN,
            });
        }
        Ok(Self::decode(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_go_out_unpacked_in_field_2_and_packed_in_field_3() {
        let bytes = Metadata::new(1, [0, 4]).encode_to_vec();
        // 08 01 | 10 00 | 10 04 | 1a 02 00 04
        assert_eq!(
            bytes,
            vec![0x08, 0x01, 0x10, 0x00, 0x10, 0x04, 0x1a, 0x02, 0x00, 0x04]
        );
    }

    #[test]
    fn reads_js_waku_field_2_only() {
        let md = Metadata::decode_frame(&[0x08, 0x01, 0x10, 0x03, 0x10, 0x05]).unwrap();
        assert_eq!(md.cluster_id, Some(1));
        assert_eq!(md.shards(), &[3, 5]);
    }

    #[test]
    fn reads_go_waku_field_3_only() {
        let md = Metadata::decode_frame(&[0x08, 0x10, 0x1a, 0x01, 0x07]).unwrap();
        assert_eq!(md.cluster_id, Some(16));
        assert_eq!(md.shards(), &[7]);
    }

    #[test]
    fn oversized_frame_is_refused() {
        assert!(matches!(
            Metadata::decode_frame(&[0u8; MAX_LEN + 1]),
            Err(crate::Error::TooLarge { .. })
        ));
    }
}
