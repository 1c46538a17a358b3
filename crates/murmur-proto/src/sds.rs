//! Scalable Data Sync (Vac raw spec "SDS"), as `@waku/sds` 0.0.8 puts it on
//! the wire: the payload of a Waku message on a reliable channel's content
//! topic, with no framing around it.
//!
//! Two differences from the written spec, both js-waku's and followed here so
//! that the bytes agree: the lamport timestamp is a `uint64` (js-waku starts
//! it at the epoch in milliseconds, past what the spec's `int32` holds), and
//! the message carries a repeated `repair_request` (SDS-R, field 13).

/// A message this one depends on, and where to fetch it.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HistoryEntry {
    /// The message id: lowercase hex SHA-256 of its content.
    #[prost(string, tag = "1")]
    pub message_id: String,
    /// The 32-byte Waku message hash it travelled in: what a store node is
    /// asked for.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub retrieval_hint: Option<Vec<u8>>,
    /// Who wrote it (SDS-R picks who answers a repair request by it).
    #[prost(string, optional, tag = "3")]
    pub sender_id: Option<String>,
}

/// One SDS message: content, sync (no content) or ephemeral (no lamport
/// timestamp).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Message {
    /// Who sent it, as the channel's participants name themselves.
    #[prost(string, tag = "1")]
    pub sender_id: String,
    /// Its id: lowercase hex SHA-256 of the content (a sync message's is
    /// random).
    #[prost(string, tag = "2")]
    pub message_id: String,
    /// The channel.
    #[prost(string, tag = "3")]
    pub channel_id: String,
    /// The sender's lamport clock; absent on ephemeral messages.
    #[prost(uint64, optional, tag = "10")]
    pub lamport_timestamp: Option<u64>,
    /// The sender's most recent messages, oldest first.
    #[prost(message, repeated, tag = "11")]
    pub causal_history: Vec<HistoryEntry>,
    /// A bloom filter of every id the sender received: its acknowledgement.
    #[prost(bytes = "vec", optional, tag = "12")]
    pub bloom_filter: Option<Vec<u8>>,
    /// Messages the sender misses and asks the channel to send again.
    #[prost(message, repeated, tag = "13")]
    pub repair_request: Vec<HistoryEntry>,
    /// What the application sent; absent or empty on a sync message.
    #[prost(bytes = "vec", optional, tag = "20")]
    pub content: Option<Vec<u8>>,
}

impl Message {
    /// The three kinds js-waku tells apart, by the same rule.
    pub fn kind(&self) -> Option<Kind> {
        let has_content = self.content.as_ref().is_some_and(|c| !c.is_empty());
        match (self.lamport_timestamp.is_some(), has_content) {
            (true, true) => Some(Kind::Content),
            (true, false) => Some(Kind::Sync),
            (false, true) => Some(Kind::Ephemeral),
            (false, false) => None,
        }
    }
}

/// What an SDS message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Content, ordered and acknowledged.
    Content,
    /// No content: carries history, filter and repair requests.
    Sync,
    /// Content that is neither ordered nor acknowledged.
    Ephemeral,
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    /// Bytes `@waku/sds` 0.0.8 produced for this message (computed with its
    /// dist code under Node.js).
    #[test]
    fn encodes_as_js_waku_does() {
        let message = Message {
            sender_id: "alice".into(),
            message_id: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into(),
            channel_id: "chan".into(),
            lamport_timestamp: Some(5),
            causal_history: vec![HistoryEntry {
                message_id: "ab".repeat(32),
                retrieval_hint: Some(vec![1, 2, 3]),
                sender_id: Some("bob".into()),
            }],
            bloom_filter: Some(vec![9, 9]),
            repair_request: vec![HistoryEntry {
                message_id: "cd".into(),
                retrieval_hint: None,
                sender_id: Some("carol".into()),
            }],
            content: Some(b"hello".to_vec()),
        };
        let expected = [
            "0a05616c696365",
            "1240",
            &hex::encode(&message.message_id),
            "1a046368616e",
            "5005",
            "5a4c0a40",
            &hex::encode("ab".repeat(32)),
            "12030102031a03626f62",
            "62020909",
            "6a0b0a0263641a056361726f6c",
            "a2010568656c6c6f",
        ]
        .concat();
        let bytes = message.encode_to_vec();
        assert_eq!(hex::encode(&bytes), expected);
        assert_eq!(Message::decode(bytes.as_slice()).unwrap(), message);
        assert_eq!(message.kind(), Some(Kind::Content));
    }

    #[test]
    fn a_sync_message_keeps_lamport_zero_and_kinds_follow_js_waku() {
        let sync = Message {
            sender_id: "alice".into(),
            message_id: "sync-x".into(),
            channel_id: "chan".into(),
            lamport_timestamp: Some(7),
            ..Default::default()
        };
        assert_eq!(
            hex::encode(sync.encode_to_vec()),
            "0a05616c696365120673796e632d781a046368616e5007"
        );
        assert_eq!(sync.kind(), Some(Kind::Sync));
        let zero = Message {
            lamport_timestamp: Some(0),
            ..Default::default()
        };
        assert_eq!(zero.encode_to_vec(), [0x50, 0]);
        let ephemeral = Message {
            content: Some(vec![1]),
            ..Default::default()
        };
        assert_eq!(ephemeral.kind(), Some(Kind::Ephemeral));
        assert_eq!(Message::default().kind(), None);
    }
}
