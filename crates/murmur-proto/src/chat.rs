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
//!   8: group     GroupControl  a private group's events and keys, pairwise
//!   9: padding   bytes       fills a group message up to its size bucket
//!  10: channel   string      the community channel a group message is in
//!  11: heads     repeated bytes(32)   a group message's sender's log heads:
//!                            a member that lacks one asks for the log
//!  12: earlier   repeated Earlier   the sender device's last messages in
//!                            this conversation: a receiver that lacks
//!                            one reads the conversation's topic from
//!                            store nodes (SDS's causal history)
//!  13: batch     repeated bytes   several chat messages to one account,
//!                            each an encoded Content with an id and a
//!                            body, sealed in one ratchet message (the
//!                            other fields are empty)
//!
//! Earlier
//!   1: id        bytes(8)    the first eight bytes of a message's id
//!   2: sent_at   uint64      when it was sent (ms), on the oldest only:
//!                            where to read from
//!
//! GroupControl
//!   1: group     bytes(32)   the group's id
//!   2: events    repeated bytes   signed membership events
//!   3: chain     bytes       the sender device's chain key, secret
//!   4: bundles   repeated AccountBundles   bundles of accounts the
//!                            recipient may not know (members, joiners)
//!   5: join      JoinRequest asks an admin's device to be added
//!   6: want      bool        asks a member for its log (the recipient saw
//!                            heads it lacks)
//!
//! JoinRequest
//!   1: secret    bytes(32)   an invite's secret, if the code had one
//!
//! AccountBundles
//!   1: account   bytes(32)
//!   2: bundles   repeated bytes
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
    /// A private group's events and keys.
    #[prost(message, optional, tag = "8")]
    pub group: Option<GroupControl>,
    /// Bytes that pad a group message to its size bucket; ignored.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub padding: Option<Vec<u8>>,
    /// The community channel a group message is in.
    #[prost(string, optional, tag = "10")]
    pub channel: Option<String>,
    /// A group message's sender's log heads.
    #[prost(bytes = "vec", repeated, tag = "11")]
    pub heads: Vec<Vec<u8>>,
    /// The sender device's last messages in this conversation.
    #[prost(message, repeated, tag = "12")]
    pub earlier: Vec<Earlier>,
    /// Several chat messages to the same account, each an encoded
    /// `Content`, sealed together (the sender's messages that waited
    /// while the envelope before them was being sealed).
    #[prost(bytes = "vec", repeated, tag = "13")]
    pub batch: Vec<Vec<u8>>,
}

/// A message sent before this one in the same conversation.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Earlier {
    /// The first eight bytes of its id.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// When it was sent, in milliseconds since the Unix epoch (0, left
    /// off the wire, on all but the oldest).
    #[prost(uint64, tag = "2")]
    pub sent_at: u64,
}

/// A request to join a group, to an admin's device.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinRequest {
    /// An invite's secret, if the code carried one.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub secret: Option<Vec<u8>>,
}

/// A private group's membership events and keys, sent in a pairwise
/// session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupControl {
    /// The group's id.
    #[prost(bytes = "vec", tag = "1")]
    pub group: Vec<u8>,
    /// Signed membership events.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub events: Vec<Vec<u8>>,
    /// The sending device's chain key: secret.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub chain: Option<Vec<u8>>,
    /// Bundles of accounts the recipient may not know.
    #[prost(message, repeated, tag = "4")]
    pub bundles: Vec<AccountBundles>,
    /// A request to be added.
    #[prost(message, optional, tag = "5")]
    pub join: Option<JoinRequest>,
    /// Asks the recipient, a member, for its log.
    #[prost(bool, tag = "6")]
    pub want: bool,
    /// Asks the members for the key of a chain the sender cannot read: its
    /// owner answers with the key in `chain`.
    #[prost(message, optional, tag = "7")]
    pub chain_request: Option<ChainRequest>,
}

/// A group chain's key asked for again: its id, and the first message of
/// it the asker could not read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChainRequest {
    /// The chain's id (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub chain: Vec<u8>,
    /// The position of that message. The owner hands the key over from a
    /// while before it (the messages before it may still come), never from
    /// before the asker joined the chain.
    #[prost(uint32, tag = "2")]
    pub iteration: u32,
    /// The asker's log heads: a member that holds events the asker lacks
    /// (the one that made the chain's owner a member, say) sends its log.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub heads: Vec<Vec<u8>>,
}

/// The bundles of one account's devices.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AccountBundles {
    /// The account.
    #[prost(bytes = "vec", tag = "1")]
    pub account: Vec<u8>,
    /// Its devices' bundles.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub bundles: Vec<Vec<u8>>,
}
