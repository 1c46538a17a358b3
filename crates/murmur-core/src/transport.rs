//! The transport stage: owns the network (a libp2p Waku node, or anything that
//! moves [`WakuMessage`]s), its peers and its subscriptions.
//!
//! Asked to: [`Publish`], [`Subscribe`], [`Unsubscribe`], [`Dial`], [`Stop`], [`GetStatus`],
//! [`QueryStore`].
//! Tells: [`Event`], to the recipient it was given when it started.
//!
//! Any actor that handles these messages is a transport ([`Stage`]); the
//! `murmur-test-kit` crate has the conformance suite a replacement runs.

use std::fmt;

use actix::{Actor, Addr, Context, Handler, Message, Recipient};
use thiserror::Error;

use crate::{supervise::InjectPanic, Delivery, MessageHash, PubsubTopic, WakuMessage};

/// A peer's id, in its text form (`16Uiu2…` for secp256k1 keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub String);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the transport could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The serialized message is larger than the network carries.
    #[error("message of {len} bytes exceeds the {max}-byte limit of the Waku network")]
    TooLarge {
        /// Its serialized size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message breaks a rule every Waku peer enforces.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// Nobody is there to receive the message on this topic.
    #[error("no peers to publish to on {0}")]
    NoPeers(PubsubTopic),
    /// The same bytes were published recently; relay would drop them as a duplicate.
    #[error("duplicate message {0}")]
    Duplicate(MessageHash),
    /// An address that cannot be parsed or used.
    #[error("invalid address `{address}`: {reason}")]
    Address {
        /// What was given.
        address: String,
        /// Why it is unusable.
        reason: String,
    },
    /// Connecting to a peer failed.
    #[error("could not connect to {address}: {reason}")]
    Dial {
        /// Whom we tried.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// The stage failed on this request (a defect: it panicked) and was
    /// restarted from its persisted state; the request was not carried out.
    #[error(transparent)]
    Restarted(#[from] crate::supervise::Panicked),
    /// Too much is in flight: the request was refused at once; ask again.
    #[error("the transport has too much in flight; try again")]
    Busy,
    /// The transport is shutting down or restarting; retry later.
    #[error("the transport is not running")]
    Stopped,
    /// A remote service answered with an error status.
    #[error("{service} answered {code}: {description}")]
    Remote {
        /// Which protocol: store, lightpush, filter.
        service: &'static str,
        /// The status code.
        code: u32,
        /// Its description.
        description: String,
    },
    /// A remote service answered with something that is not its protocol.
    #[error("bad response from {service}: {reason}")]
    BadResponse {
        /// Which protocol.
        service: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Publishes `message` on `topic`; answers with its hash once it is handed to the network.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<MessageHash, Error>")]
#[non_exhaustive]
pub struct Publish {
    /// Where.
    pub topic: PubsubTopic,
    /// What.
    pub message: WakuMessage,
}

impl Publish {
    /// Publish `message` on `topic`.
    pub fn new(topic: PubsubTopic, message: WakuMessage) -> Self {
        Self { topic, message }
    }
}

/// Starts receiving the messages of a pubsub topic (and relaying them, on a
/// relay node). A light client receives only the content topics named, through
/// a filter service; a relay node receives the whole pubsub topic.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
#[non_exhaustive]
pub struct Subscribe {
    /// The pubsub topic.
    pub topic: PubsubTopic,
    /// The content topics wanted on it (required by a light client).
    pub content_topics: Vec<String>,
}

impl Subscribe {
    /// Subscribe to `topic`.
    pub fn new(topic: PubsubTopic) -> Self {
        Self {
            topic,
            content_topics: Vec::new(),
        }
    }

    /// Names the content topics wanted.
    pub fn with_content_topics(mut self, topics: impl IntoIterator<Item = String>) -> Self {
        self.content_topics = topics.into_iter().collect();
        self
    }
}

/// Stops receiving a pubsub topic.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Unsubscribe(pub PubsubTopic);

/// Connects to a peer by address (a multiaddr ending in `/p2p/<peer id>` for libp2p);
/// answers once the connection is up.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PeerId, Error>")]
pub struct Dial(pub String);

/// Asks a store node for one page of a store query. `peer` is an address
/// ending in `/p2p/<peer id>`; the transport connects first if needed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<crate::store::Page, Error>")]
#[non_exhaustive]
pub struct QueryStore {
    /// The store node.
    pub peer: String,
    /// The query.
    pub query: crate::store::Query,
}

impl QueryStore {
    /// Ask `peer` for `query`.
    pub fn new(peer: impl Into<String>, query: crate::store::Query) -> Self {
        Self {
            peer: peer.into(),
            query,
        }
    }
}

/// Asks the node at `peer` (an address ending in `/p2p/<peer id>`) for up
/// to `n` peers it knows (peer exchange, 34/WAKU2-PEER-EXCHANGE): how a
/// light client finds service nodes beyond the ones it was given.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Found>, Error>")]
#[non_exhaustive]
pub struct PeerExchange {
    /// Whom to ask.
    pub peer: String,
    /// How many at most.
    pub n: u64,
}

impl PeerExchange {
    /// Ask `peer` for up to `n` peers.
    pub fn new(peer: impl Into<String>, n: u64) -> Self {
        Self {
            peer: peer.into(),
            n,
        }
    }
}

/// A peer another node told of, from its signed record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Found {
    /// Where to reach it, each ending in `/p2p/<peer id>`.
    pub addresses: Vec<String>,
    /// Whether its record says it serves store.
    pub store: bool,
}

impl Found {
    /// A peer at `addresses`; `store` if it serves store.
    pub fn new(addresses: Vec<String>, store: bool) -> Self {
        Self { addresses, store }
    }
}

/// Asks for the transport's view of the network.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// What [`GetStatus`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// This node's id.
    pub peer_id: Option<PeerId>,
    /// Where it listens, each ending in `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: Vec<PeerId>,
    /// Subscribed topics and, for each, how many peers receive what we publish there.
    pub topics: Vec<(PubsubTopic, usize)>,
    /// The node's discovery record (`enr:…`), if the transport has one.
    pub enr: Option<String>,
    /// What the transport knows of each connected peer, where it knows more
    /// than the id (an operator's view: nwaku's `/admin/v1/peers`).
    pub connected: Vec<Peer>,
}

/// A connected peer as the transport sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// Its id.
    pub id: PeerId,
    /// The address of its connection, ending in `/p2p/<peer id>`.
    pub address: String,
    /// The protocols it says it speaks (identify), once it said.
    pub protocols: Vec<String>,
    /// The shards it says it serves in our cluster (metadata), once it said.
    pub shards: Vec<u16>,
    /// What it calls itself (identify's agent version), once it said.
    pub agent: Option<String>,
    /// Whether this node dials it again when the connection drops (a
    /// static peer of its configuration).
    pub static_peer: bool,
}

impl Peer {
    /// A peer known only by its id and address.
    pub fn new(id: PeerId, address: impl Into<String>) -> Self {
        Self {
            id,
            address: address.into(),
            ..Self::default()
        }
    }
}

/// What the transport tells the stage that started it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum Event {
    /// A valid message arrived on a subscribed topic.
    Message(Delivery),
    /// A connection to a peer is up (and, on libp2p, the peer is on our cluster).
    PeerConnected {
        /// Who.
        peer: PeerId,
        /// Its address as we see it.
        address: String,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// Who.
        peer: PeerId,
    },
    /// A light client pushed this message through us (lightpush); it is
    /// relayed and, if archivable, already archived.
    Pushed(Delivery),
    /// A valid message arrived and the transport archived it (new, by hash)
    /// before accepting it for relay: do not archive it again.
    Archived(Delivery),
    /// A message a store node returned (store sync, a catch-up, a gap
    /// read): archived however old it is, since a store node kept it (the
    /// archive's 20 s window is for what relay brings), so that this node
    /// serves it on and does not fetch it again; then handled like any
    /// other.
    Fetched(Delivery),
    /// The messages of one page a store node returned, in its order: each
    /// as [`Event::Fetched`], archived together in one request
    /// ([`storage::SaveAll`](crate::storage::SaveAll)), so that catching up
    /// costs a write a page, not a write a message.
    FetchedPage(Vec<Delivery>),
}

/// Leaves the network: every connection and listener closes and nothing is
/// relayed any more; later requests are answered with [`Error::Stopped`].
/// The node is offline until a new transport starts (a new node on the same
/// data folder).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Any actor that handles the transport's messages.
pub trait Stage:
    Actor<Context = Context<Self>>
    + Handler<Publish>
    + Handler<Subscribe>
    + Handler<Unsubscribe>
    + Handler<Dial>
    + Handler<GetStatus>
    + Handler<QueryStore>
    + Handler<PeerExchange>
    + Handler<Stop>
    + Handler<InjectPanic>
{
}

impl<A> Stage for A where
    A: Actor<Context = Context<A>>
        + Handler<Publish>
        + Handler<Subscribe>
        + Handler<Unsubscribe>
        + Handler<Dial>
        + Handler<GetStatus>
        + Handler<QueryStore>
        + Handler<PeerExchange>
        + Handler<Stop>
        + Handler<InjectPanic>
{
}

/// The transport as the rest of the node holds it: one recipient per message,
/// never a concrete actor type.
#[derive(Clone)]
pub struct Handle {
    /// Where [`Publish`] goes.
    pub publish: Recipient<Publish>,
    /// Where [`Subscribe`] goes.
    pub subscribe: Recipient<Subscribe>,
    /// Where [`Unsubscribe`] goes.
    pub unsubscribe: Recipient<Unsubscribe>,
    /// Where [`Dial`] goes.
    pub dial: Recipient<Dial>,
    /// Where [`GetStatus`] goes.
    pub status: Recipient<GetStatus>,
    /// Where [`QueryStore`] goes.
    pub query_store: Recipient<QueryStore>,
    /// Where [`PeerExchange`] goes.
    pub peer_exchange: Recipient<PeerExchange>,
    /// Where [`Stop`] goes.
    pub stop: Recipient<Stop>,
    /// Where [`InjectPanic`] goes (tests of supervision).
    pub inject_panic: Recipient<InjectPanic>,
}

impl<A: Stage> From<Addr<A>> for Handle {
    fn from(addr: Addr<A>) -> Self {
        Self {
            publish: addr.clone().recipient(),
            subscribe: addr.clone().recipient(),
            unsubscribe: addr.clone().recipient(),
            dial: addr.clone().recipient(),
            status: addr.clone().recipient(),
            query_store: addr.clone().recipient(),
            peer_exchange: addr.clone().recipient(),
            stop: addr.clone().recipient(),
            inject_panic: addr.recipient(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("transport::Handle").finish_non_exhaustive()
    }
}

/// Checks the rules every Waku relay peer applies to a message before it
/// accepts or sends it: a non-empty payload and content topic (js-waku rejects
/// others), `meta` of at most 64 bytes (nwaku), and the 150 KiB size limit;
/// and one rule of murmur's own, a content topic without control
/// characters: topics are `/app/version/name/encoding` text, and a NUL in
/// one is refused by PostgreSQL's text. Other Waku peers do not apply it,
/// so a relay node ignores such a message (neither forwards nor scores it)
/// rather than rejecting it.
pub fn validate(message: &WakuMessage, encoded_len: usize) -> Result<(), Error> {
    match broken(message, encoded_len) {
        None => Ok(()),
        Some(Rule::TooLarge) => Err(Error::TooLarge {
            len: encoded_len,
            max: murmur_proto::MAX_WAKU_MESSAGE_LEN,
        }),
        Some(rule) => Err(Error::Invalid(rule.text())),
    }
}

/// A rule of [`validate`]'s. Not `non_exhaustive`: a relay counts each
/// refusal by its rule, and a new rule is a change of the contract that
/// every such count must take in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// At most `murmur_proto::MAX_WAKU_MESSAGE_LEN` bytes encoded.
    TooLarge,
    /// A payload.
    EmptyPayload,
    /// A content topic.
    EmptyContentTopic,
    /// No control character in the content topic (murmur's own).
    ControlInContentTopic,
    /// `meta` of at most `murmur_proto::MAX_META_LEN` bytes.
    MetaTooLong,
}

impl Rule {
    /// What [`Error::Invalid`] says of it.
    pub const fn text(self) -> &'static str {
        match self {
            Self::TooLarge => "too large",
            Self::EmptyPayload => "empty payload",
            Self::EmptyContentTopic => "empty content topic",
            Self::ControlInContentTopic => "control character in content topic",
            Self::MetaTooLong => "meta longer than 64 bytes",
        }
    }
}

/// The first rule of [`validate`]'s that `message` (`encoded_len` bytes
/// encoded) breaks, if any.
pub fn broken(message: &WakuMessage, encoded_len: usize) -> Option<Rule> {
    if encoded_len > murmur_proto::MAX_WAKU_MESSAGE_LEN {
        Some(Rule::TooLarge)
    } else if message.payload.is_empty() {
        Some(Rule::EmptyPayload)
    } else if message.content_topic.is_empty() {
        Some(Rule::EmptyContentTopic)
    } else if message.content_topic.chars().any(char::is_control) {
        Some(Rule::ControlInContentTopic)
    } else if message
        .meta
        .as_ref()
        .is_some_and(|m| m.len() > murmur_proto::MAX_META_LEN)
    {
        Some(Rule::MetaTooLong)
    } else {
        None
    }
}
