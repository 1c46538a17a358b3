//! murmur's chat content: what a ratchet message carries, once decrypted.
//!
//! ```text
//! Content
//!   1: id        bytes(16)   random, chosen by the sender
//!   2: sent_at   uint64      milliseconds since the Unix epoch
//!   3: text      string      a text message, or
//!   4: kind      string      a typed payload's type, with
//!   5: data      bytes       its bytes, or
//!   6: receipts  repeated bytes(16)   the ids of messages received
//!   7: to        bytes(32)   the recipient account (copies to the sender's
//!                            other devices say whom it went to)
//! ```

/// One chat message, or a receipt.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Content {
    /// The message id, chosen by the sender.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// When it was sent, in milliseconds since the Unix epoch.
    #[prost(uint64, tag = "2")]
    pub sent_at: u64,
    /// A text message.
    #[prost(string, optional, tag = "3")]
    pub text: Option<String>,
    /// A typed payload's type.
    #[prost(string, optional, tag = "4")]
    pub kind: Option<String>,
    /// A typed payload's bytes.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub data: Option<Vec<u8>>,
    /// The ids of messages this one acknowledges.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub receipts: Vec<Vec<u8>>,
    /// The recipient account.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub to: Option<Vec<u8>>,
}
