use sha2::{Digest, Sha256};

use crate::WakuMessage;

/// The deterministic message hash of 14/WAKU2-MESSAGE.
///
/// `sha256(pubsub_topic || payload || content_topic || meta || timestamp)`, where
/// `meta` is left out when absent and the timestamp is always 8 big-endian bytes of
/// the raw `i64` (zero when absent), as nwaku and go-waku compute it. js-waku leaves
/// a zero timestamp out instead, which is why murmur always sets one on the
/// messages it creates.
pub fn message_hash(pubsub_topic: &str, message: &WakuMessage) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(pubsub_topic.as_bytes());
    hasher.update(&message.payload);
    hasher.update(message.content_topic.as_bytes());
    if let Some(meta) = &message.meta {
        hasher.update(meta);
    }
    hasher.update(message.timestamp.unwrap_or(0).to_be_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(meta: Option<Vec<u8>>, payload: &str) -> WakuMessage {
        let mut msg = WakuMessage::new(
            "/waku/2/default-content/proto",
            hex::decode(payload).unwrap(),
        )
        .with_timestamp(0x175789bfa23f8400);
        msg.meta = meta.map(Into::into);
        msg
    }

    fn hex_hash(topic: &str, msg: &WakuMessage) -> String {
        hex::encode(message_hash(topic, msg))
    }

    const SPEC_TOPIC: &str = "/waku/2/default-waku/proto";
    const SPEC_META: &str = "73757065722d736563726574";

    #[test]
    fn spec_vector_meta_12_bytes() {
        let msg = vector(
            Some(hex::decode(SPEC_META).unwrap()),
            "010203045445535405060708",
        );
        assert_eq!(
            hex_hash(SPEC_TOPIC, &msg),
            "64cce733fed134e83da02b02c6f689814872b1a0ac97ea56b76095c3c72bfe05"
        );
    }

    #[test]
    fn spec_vector_meta_64_bytes() {
        let msg = vector(Some((0u8..64).collect()), "010203045445535405060708");
        assert_eq!(
            hex_hash(SPEC_TOPIC, &msg),
            "7158b6498753313368b9af8f6e0a0a05104f68f972981da42a43bc53fb0c1b27"
        );
    }

    #[test]
    fn spec_vector_meta_absent() {
        let msg = vector(None, "010203045445535405060708");
        assert_eq!(
            hex_hash(SPEC_TOPIC, &msg),
            "a2554498b31f5bcdfcbf7fa58ad1c2d45f0254f3f8110a85588ec3cf10720fd8"
        );
    }

    #[test]
    fn spec_vector_empty_payload() {
        let msg = vector(Some(hex::decode(SPEC_META).unwrap()), "");
        assert_eq!(
            hex_hash(SPEC_TOPIC, &msg),
            "483ea950cb63f9b9d6926b262bb36194d3f40a0463ce8446228350bd44e96de4"
        );
    }

    fn js_waku_message(timestamp: i64) -> WakuMessage {
        WakuMessage::new("/test/1/hash/proto", vec![1, 2, 3]).with_timestamp(timestamp)
    }

    #[test]
    fn js_waku_vectors() {
        let msg = js_waku_message(1_700_000_000_000_000_000);
        assert_eq!(
            hex_hash("/waku/2/rs/0/0", &msg),
            "fe98bc45bab13f10504307a791aabcd31691e73cc05cc8687ef8913520e9d4ee"
        );
        assert_eq!(
            hex_hash("/waku/2/rs/1/4", &msg),
            "bfd57923726173c6af604c44d06be2927922c30985e80fa5337162f27327317e"
        );
    }

    #[test]
    fn zero_timestamp_hashes_eight_zero_bytes_like_nwaku() {
        let mut msg = js_waku_message(0);
        assert_eq!(
            hex_hash("/waku/2/rs/0/0", &msg),
            "81bb2719be9d5e7b5e22a48445711e59cc0b2e496d15d4448d9838a44e25a628"
        );
        msg.timestamp = None;
        assert_eq!(
            hex_hash("/waku/2/rs/0/0", &msg),
            "81bb2719be9d5e7b5e22a48445711e59cc0b2e496d15d4448d9838a44e25a628"
        );
    }
}
