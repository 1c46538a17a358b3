//! A channel's state at rest: what it remembered, sent and held back, so
//! that a participant started again is the same participant (same clock,
//! same history, nothing delivered twice, nothing unacknowledged dropped).
//! Repair timers and kept bytes are not saved: they are rebuilt from what
//! is held back, or lapse.

use murmur_proto::sds::{HistoryEntry, Message};
use prost::Message as _;

use crate::{bloom::Filter, Channel, Config, Error};

/// The form this version writes.
const VERSION: u32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
struct State {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(uint64, tag = "2")]
    lamport: u64,
    #[prost(message, repeated, tag = "3")]
    log: Vec<LogEntry>,
    #[prost(bytes = "vec", tag = "4")]
    filter: Vec<u8>,
    #[prost(message, repeated, tag = "5")]
    outgoing: Vec<Outgoing>,
    #[prost(message, repeated, tag = "6")]
    incoming: Vec<Incoming>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LogEntry {
    #[prost(message, optional, tag = "1")]
    entry: Option<HistoryEntry>,
    #[prost(uint64, tag = "2")]
    lamport: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Outgoing {
    #[prost(message, optional, tag = "1")]
    message: Option<Message>,
    #[prost(uint32, tag = "2")]
    sends: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Incoming {
    #[prost(message, optional, tag = "1")]
    message: Option<Message>,
    #[prost(bytes = "vec", optional, tag = "2")]
    hint: Option<Vec<u8>>,
}

/// Borrowed from a channel, to save.
pub(crate) struct Parts<'a> {
    pub(crate) lamport: u64,
    pub(crate) log: Vec<(&'a HistoryEntry, u64)>,
    pub(crate) filter: &'a Filter,
    pub(crate) outgoing: Vec<(&'a Message, u32)>,
    pub(crate) incoming: Vec<(&'a Message, Option<&'a [u8]>)>,
}

/// Read back, to restore.
pub(crate) struct Restored {
    pub(crate) lamport: u64,
    pub(crate) log: Vec<(HistoryEntry, u64)>,
    pub(crate) filter: Filter,
    pub(crate) outgoing: Vec<(Message, u32)>,
    pub(crate) incoming: Vec<(Message, Option<Vec<u8>>)>,
}

impl Channel {
    /// The channel's state, to keep across restarts.
    pub fn save(&self) -> Vec<u8> {
        let parts = self.parts();
        State {
            version: VERSION,
            lamport: parts.lamport,
            log: parts
                .log
                .into_iter()
                .map(|(entry, lamport)| LogEntry {
                    entry: Some(entry.clone()),
                    lamport,
                })
                .collect(),
            filter: parts.filter.to_bytes(),
            outgoing: parts
                .outgoing
                .into_iter()
                .map(|(message, sends)| Outgoing {
                    message: Some(message.clone()),
                    sends,
                })
                .collect(),
            incoming: parts
                .incoming
                .into_iter()
                .map(|(message, hint)| Incoming {
                    message: Some(message.clone()),
                    hint: hint.map(<[u8]>::to_vec),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// The channel [`Channel::save`] gave `saved`, joined again at `now`.
    pub fn restore(
        id: impl Into<String>,
        me: impl Into<String>,
        config: Config,
        saved: &[u8],
        now: u64,
    ) -> Result<Self, Error> {
        let state = State::decode(saved).map_err(|e| Error::BadState(e.to_string()))?;
        if state.version != VERSION {
            return Err(Error::BadState(format!(
                "stored form {} (this version reads {VERSION})",
                state.version
            )));
        }
        let filter =
            Filter::from_bytes(&state.filter).map_err(|e| Error::BadState(e.to_string()))?;
        let missing = || Error::BadState("an entry without its message".into());
        let restored = Restored {
            lamport: state.lamport,
            log: state
                .log
                .into_iter()
                .map(|l| Ok((l.entry.ok_or_else(missing)?, l.lamport)))
                .collect::<Result<_, Error>>()?,
            filter,
            outgoing: state
                .outgoing
                .into_iter()
                .map(|o| Ok((o.message.ok_or_else(missing)?, o.sends)))
                .collect::<Result<_, Error>>()?,
            incoming: state
                .incoming
                .into_iter()
                .map(|i| Ok((i.message.ok_or_else(missing)?, i.hint)))
                .collect::<Result<_, Error>>()?,
        };
        let mut channel = Channel::new(id, me, config, now);
        channel.restore_parts(restored, now);
        Ok(channel)
    }
}
