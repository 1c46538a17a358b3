//! Store queries (13/WAKU2-STORE v3) as the persistence stage answers them:
//! the types the store server, the store client and the storage backends share.

use crate::{Delivery, MessageHash, PubsubTopic, WakuMessage};

/// How far a message's timestamp may be from our clock for the archive to
/// keep it (64/WAKU2-NETWORK; nwaku's archive applies the same window).
pub const ARCHIVE_WINDOW_NANOS: i64 = 20_000_000_000;

/// Whether an archive keeps `message`: not ephemeral, and stamped within
/// 20 s of our clock. It needs no hash, so callers can ask before hashing.
pub fn archivable(message: &WakuMessage) -> bool {
    let skew = message.timestamp.map_or(i64::MAX, |ts| {
        crate::now_nanos().saturating_sub(ts).saturating_abs()
    });
    !message.is_ephemeral() && skew <= ARCHIVE_WINDOW_NANOS
}

/// The most messages one page may hold (nwaku's cap).
pub const MAX_PAGE: usize = 100;
/// The page size when a query gives none.
pub const DEFAULT_PAGE: usize = 20;
/// The most content topics one query may name.
pub const MAX_CONTENT_TOPICS: usize = 10;
/// The most hashes one lookup may name.
pub const MAX_HASHES: usize = 100;

/// Which messages a query selects: by content, or by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Criteria {
    /// Messages on `pubsub_topic` with one of `content_topics` (all of them
    /// if empty and no pubsub topic is given), with `start <= timestamp < end`.
    Content {
        /// The pubsub topic, if any.
        pubsub_topic: Option<PubsubTopic>,
        /// The content topics; empty for all.
        content_topics: Vec<String>,
        /// Inclusive lower bound, Unix nanoseconds.
        start: Option<i64>,
        /// Exclusive upper bound, Unix nanoseconds.
        end: Option<i64>,
    },
    /// These messages, whatever their topics.
    Hashes(Vec<MessageHash>),
}

impl Criteria {
    /// Whether an archived message is one of those selected: what an
    /// in-memory store filters with (the SQL backends say it in SQL).
    pub fn matches(&self, d: &Delivery) -> bool {
        match self {
            Self::Content {
                pubsub_topic,
                content_topics,
                start,
                end,
            } => {
                let ts = d.message.timestamp.unwrap_or(0);
                pubsub_topic.as_ref().is_none_or(|t| *t == d.pubsub_topic)
                    && (content_topics.is_empty()
                        || content_topics.contains(&d.message.content_topic))
                    && start.is_none_or(|s| ts >= s)
                    && end.is_none_or(|e| ts < e)
            }
            Self::Hashes(hashes) => hashes.contains(&d.hash),
        }
    }
}

/// One page of a store query.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// What to select.
    pub criteria: Criteria,
    /// Return the messages, not only their hashes.
    pub include_data: bool,
    /// Start after (forward) or before (backward) this message, exclusive.
    pub cursor: Option<MessageHash>,
    /// Oldest first.
    pub forward: bool,
    /// Page size, at most [`MAX_PAGE`].
    pub limit: usize,
}

impl Query {
    /// A forward query by content, with the default page size.
    pub fn content(pubsub_topic: Option<PubsubTopic>, content_topics: Vec<String>) -> Self {
        Self {
            criteria: Criteria::Content {
                pubsub_topic,
                content_topics,
                start: None,
                end: None,
            },
            include_data: true,
            cursor: None,
            forward: true,
            limit: DEFAULT_PAGE,
        }
    }

    /// A lookup of these hashes.
    pub fn hashes(hashes: Vec<MessageHash>) -> Self {
        Self {
            criteria: Criteria::Hashes(hashes),
            include_data: true,
            cursor: None,
            forward: true,
            limit: MAX_PAGE,
        }
    }

    /// Restricts a content query to `start <= timestamp < end`.
    pub fn with_time(mut self, start: Option<i64>, end: Option<i64>) -> Self {
        if let Criteria::Content {
            start: s, end: e, ..
        } = &mut self.criteria
        {
            *s = start;
            *e = end;
        }
        self
    }

    /// Continues after `cursor`.
    pub fn with_cursor(mut self, cursor: Option<MessageHash>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Sets the direction.
    pub fn with_forward(mut self, forward: bool) -> Self {
        self.forward = forward;
        self
    }

    /// Sets the page size, capped at [`MAX_PAGE`]; 0 means the default.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = match limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        self
    }

    /// Whether the query breaks a rule of the protocol; the reason is what a
    /// 400 response says.
    pub fn check(&self) -> Result<(), &'static str> {
        match &self.criteria {
            Criteria::Content {
                pubsub_topic,
                content_topics,
                ..
            } => {
                if content_topics.len() > MAX_CONTENT_TOPICS {
                    return Err("too many content topics (at most 10)");
                }
                if pubsub_topic.is_none() != content_topics.is_empty() {
                    return Err("pubsub topic and content topics go together");
                }
                // No message murmur archives holds one (relay, filter,
                // lightpush and both store clients drop them), and
                // PostgreSQL's text refuses a NUL: refused as a bad query
                // on every backend, not failed on one.
                if content_topics
                    .iter()
                    .any(|t| t.chars().any(char::is_control))
                {
                    return Err("a control character in a content topic");
                }
            }
            Criteria::Hashes(hashes) => {
                if hashes.is_empty() {
                    return Err("no hashes to look up");
                }
                if hashes.len() > MAX_HASHES {
                    return Err("too many hashes (at most 100)");
                }
            }
        }
        Ok(())
    }
}

/// A message as the store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stored {
    /// Its hash.
    pub hash: MessageHash,
    /// Where it was published; with `message`, when data was asked for.
    pub pubsub_topic: Option<PubsubTopic>,
    /// The message, when data was asked for.
    pub message: Option<WakuMessage>,
}

impl Stored {
    /// A stored message with its data.
    pub fn new(hash: MessageHash, pubsub_topic: PubsubTopic, message: WakuMessage) -> Self {
        Self {
            hash,
            pubsub_topic: Some(pubsub_topic),
            message: Some(message),
        }
    }

    /// Only the hash (a presence answer).
    pub fn hash_only(hash: MessageHash) -> Self {
        Self {
            hash,
            pubsub_topic: None,
            message: None,
        }
    }
}

/// One page of results, always oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The messages, in ascending (timestamp, hash) order.
    pub messages: Vec<Stored>,
    /// Where the next page starts, if there may be one.
    pub cursor: Option<MessageHash>,
}

impl Page {
    /// A page of `messages` continuing at `cursor`.
    pub fn new(messages: Vec<Stored>, cursor: Option<MessageHash>) -> Self {
        Self { messages, cursor }
    }

    /// The page a store answers from what it read for `query`: up to
    /// `limit + 1` messages in the query's direction (the extra one only tells
    /// that another page follows). The cursor is the last message kept, and
    /// the page is put in ascending order, as the protocol wants.
    pub fn from_rows(mut rows: Vec<Stored>, query: &Query) -> Self {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let cursor = if more {
            rows.last().map(|m| m.hash)
        } else {
            None
        };
        if !query.forward {
            rows.reverse();
        }
        Self::new(rows, cursor)
    }
}
