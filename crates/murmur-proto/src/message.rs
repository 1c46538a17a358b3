use bytes::{Buf, BufMut, Bytes};
use prost::{
    encoding::{self, DecodeContext, WireType},
    DecodeError,
};

/// The largest serialized [`WakuMessage`] the network carries: 150 KiB
/// (64/WAKU2-NETWORK; nwaku's and go-waku's default).
pub const MAX_WAKU_MESSAGE_LEN: usize = 150 * 1024;

/// The largest `meta` attribute 14/WAKU2-MESSAGE allows.
pub const MAX_META_LEN: usize = 64;

/// A 14/WAKU2-MESSAGE: the unit every Waku protocol carries.
///
/// `payload` and `content_topic` are always written to the wire, even when
/// empty: nwaku's decoder refuses a message without them, although proto3
/// encoders would leave empty values out.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct WakuMessage {
    /// The application payload; for murmur, a sealed envelope.
    pub payload: Bytes,
    /// `/{application}/{version}/{name}/{encoding}`, with an optional generation prefix.
    pub content_topic: String,
    /// 0 for application-level encryption (murmur), 1 and 2 for Waku's payload
    /// encryption schemes.
    pub version: Option<u32>,
    /// Unix epoch time in nanoseconds.
    pub timestamp: Option<i64>,
    /// Up to 64 bytes the application wants covered by the message hash.
    pub meta: Option<Bytes>,
    /// An RLN proof, kept opaque.
    pub rate_limit_proof: Option<Bytes>,
    /// An ephemeral message is relayed but never stored.
    pub ephemeral: Option<bool>,
}

impl WakuMessage {
    /// A message with the attributes js-waku's encoder writes: version 0 and
    /// `ephemeral = false`. Set a timestamp before publishing.
    pub fn new(content_topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            content_topic: content_topic.into(),
            version: Some(0),
            ephemeral: Some(false),
            ..Self::default()
        }
    }

    /// Sets the timestamp, in Unix nanoseconds.
    pub fn with_timestamp(mut self, nanos: i64) -> Self {
        self.timestamp = Some(nanos);
        self
    }

    /// Sets the `meta` attribute.
    pub fn with_meta(mut self, meta: impl Into<Bytes>) -> Self {
        self.meta = Some(meta.into());
        self
    }

    /// Marks the message ephemeral: relayed, never stored.
    pub fn with_ephemeral(mut self, ephemeral: bool) -> Self {
        self.ephemeral = Some(ephemeral);
        self
    }

    /// Whether the message asks not to be stored.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral.unwrap_or(false)
    }
}

// Payloads are application ciphertext and can be large: show their length only.
impl std::fmt::Debug for WakuMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakuMessage")
            .field("content_topic", &self.content_topic)
            .field("payload_len", &self.payload.len())
            .field("version", &self.version)
            .field("timestamp", &self.timestamp)
            .field("meta_len", &self.meta.as_ref().map(Bytes::len))
            .field("ephemeral", &self.ephemeral)
            .finish_non_exhaustive()
    }
}

impl prost::Message for WakuMessage {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::bytes::encode(1, &self.payload, buf);
        encoding::string::encode(2, &self.content_topic, buf);
        if let Some(v) = &self.version {
            encoding::uint32::encode(3, v, buf);
        }
        if let Some(v) = &self.timestamp {
            encoding::sint64::encode(10, v, buf);
        }
        if let Some(v) = &self.meta {
            encoding::bytes::encode(11, v, buf);
        }
        if let Some(v) = &self.rate_limit_proof {
            encoding::bytes::encode(21, v, buf);
        }
        if let Some(v) = &self.ephemeral {
            encoding::bool::encode(31, v, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::bytes::merge(wire_type, &mut self.payload, buf, ctx),
            2 => encoding::string::merge(wire_type, &mut self.content_topic, buf, ctx),
            3 => encoding::uint32::merge(wire_type, self.version.get_or_insert(0), buf, ctx),
            10 => encoding::sint64::merge(wire_type, self.timestamp.get_or_insert(0), buf, ctx),
            11 => encoding::bytes::merge(
                wire_type,
                self.meta.get_or_insert_with(Bytes::new),
                buf,
                ctx,
            ),
            21 => encoding::bytes::merge(
                wire_type,
                self.rate_limit_proof.get_or_insert_with(Bytes::new),
                buf,
                ctx,
            ),
            31 => encoding::bool::merge(wire_type, self.ephemeral.get_or_insert(false), buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::bytes::encoded_len(1, &self.payload)
            + encoding::string::encoded_len(2, &self.content_topic)
            + self
                .version
                .as_ref()
                .map_or(0, |v| encoding::uint32::encoded_len(3, v))
            + self
                .timestamp
                .as_ref()
                .map_or(0, |v| encoding::sint64::encoded_len(10, v))
            + self
                .meta
                .as_ref()
                .map_or(0, |v| encoding::bytes::encoded_len(11, v))
            + self
                .rate_limit_proof
                .as_ref()
                .map_or(0, |v| encoding::bytes::encoded_len(21, v))
            + self
                .ephemeral
                .as_ref()
                .map_or(0, |v| encoding::bool::encoded_len(31, v))
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn encodes_byte_for_byte_like_js_waku() {
        let msg = WakuMessage::new("/test/1/hash/proto", vec![1, 2, 3])
            .with_timestamp(1_700_000_000_000_000_000);
        assert_eq!(
            hex::encode(msg.encode_to_vec()),
            "0a0301020312122f746573742f312f686173682f70726f746f1800508080d0e2c6bfce972ff80100"
        );
    }

    #[test]
    fn empty_payload_and_topic_stay_on_the_wire() {
        let msg = WakuMessage::default();
        // Field 1 and field 2, both zero length: nwaku requires their presence.
        assert_eq!(msg.encode_to_vec(), vec![0x0a, 0x00, 0x12, 0x00]);
        assert_eq!(msg.encoded_len(), 4);
    }

    #[test]
    fn round_trips_every_field() {
        let msg = WakuMessage {
            payload: Bytes::from_static(b"hello"),
            content_topic: "/murmur/1/chat/proto".into(),
            version: Some(0),
            timestamp: Some(-5),
            meta: Some(Bytes::from_static(b"m")),
            rate_limit_proof: Some(Bytes::from_static(b"proof")),
            ephemeral: Some(true),
        };
        let bytes = msg.encode_to_vec();
        assert_eq!(bytes.len(), msg.encoded_len());
        assert_eq!(WakuMessage::decode(bytes.as_slice()).unwrap(), msg);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        for bytes in [&[0xff][..], &[0x0a, 0x05, 0x01], &[0x12, 0x02, 0xff, 0xfe]] {
            assert!(WakuMessage::decode(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut bytes = WakuMessage::new("/a/1/b/c", vec![9]).encode_to_vec();
        bytes.extend([0xa0, 0x06, 0x01]); // field 100, varint 1
        let decoded = WakuMessage::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.payload.as_ref(), &[9]);
    }

    #[test]
    fn debug_leaves_the_payload_out() {
        let msg = WakuMessage::new("/a/1/b/c", b"secret".to_vec());
        assert!(!format!("{msg:?}").contains("secret"));
    }
}
