//! The durable inbox: every chat message this node delivers, kept in the
//! database (sealed with the vault key) under a sequence number, so that a
//! subscriber resumes from the position it last said it was done with
//! ([`crate::chat::Durable`]) and a slow one reads on from here instead of
//! missing messages.
//!
//! A message is kept before any subscriber sees it, and once per sender and
//! message id: a copy that comes again (a sender's retry with the same id,
//! a plaintext the crypto stage kept and the node handles again after a
//! crash) is dropped while the first is kept. The oldest messages go past
//! `chat.inbox_keep`, but never one a durable subscriber has not passed.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use bytes::Bytes;
use murmur_core::{
    chat::{Body, ChatMessage, MessageId},
    crypto::{AccountId, DeviceId},
    groups::{GroupId, Role},
    storage,
};
use murmur_crypto::Vault;
use prost::Message as _;

use crate::Error;

/// Where the messages are: `inbox/m/<sequence, 20 digits>`.
const MESSAGES: &str = "inbox/m/";
/// Where the subscribers' positions are: `inbox/p/<subscriber>`.
const POSITIONS: &str = "inbox/p/";

fn message_name(seq: u64) -> String {
    format!("{MESSAGES}{seq:020}")
}

fn seq_of(name: &str) -> Option<u64> {
    name.strip_prefix(MESSAGES)?.parse().ok()
}

/// The record of subscriber `name`'s position.
pub(crate) fn position_record(name: &str, seq: u64) -> (String, Option<Vec<u8>>) {
    (
        format!("{POSITIONS}{name}"),
        Some(seq.to_be_bytes().to_vec()),
    )
}

/// State records to write in one transaction (`None` deletes).
pub(crate) type Records = Vec<(String, Option<Vec<u8>>)>;

/// A message as the inbox keeps it.
#[derive(Clone, PartialEq, prost::Message)]
struct Kept {
    #[prost(bytes = "vec", tag = "1")]
    id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    sender: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    device: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    to: Vec<u8>,
    #[prost(uint64, tag = "5")]
    sent_at: u64,
    #[prost(string, optional, tag = "6")]
    text: Option<String>,
    #[prost(string, optional, tag = "7")]
    kind: Option<String>,
    #[prost(bytes = "vec", optional, tag = "8")]
    data: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "9")]
    group: Option<Vec<u8>>,
    #[prost(string, optional, tag = "10")]
    channel: Option<String>,
    #[prost(uint32, optional, tag = "11")]
    role: Option<u32>,
    #[prost(bool, tag = "12")]
    request: bool,
}

fn encode(m: &ChatMessage) -> Vec<u8> {
    let (text, kind, data) = match &m.body {
        Body::Text(t) => (Some(t.clone()), None, None),
        Body::Typed { kind, data } => (None, Some(kind.clone()), Some(data.to_vec())),
        // Bodies a later version adds are kept as the typed payload they
        // are built on; this version has none.
        _ => (None, None, None),
    };
    Kept {
        id: m.id.0.to_vec(),
        sender: m.sender.0.to_vec(),
        device: m.device.0.to_vec(),
        to: m.to.0.to_vec(),
        sent_at: m.sent_at,
        text,
        kind,
        data,
        group: m.group.map(|g| g.0.to_vec()),
        channel: m.channel.clone(),
        role: m.role.map(|r| match r {
            Role::Owner => 0,
            Role::Admin => 1,
            Role::Moderator => 2,
            _ => 3,
        }),
        request: m.request,
    }
    .encode_to_vec()
}

fn decode(bytes: &[u8]) -> Result<ChatMessage, String> {
    fn array<const N: usize>(b: &[u8], what: &str) -> Result<[u8; N], String> {
        b.try_into().map_err(|_| format!("{what} is not {N} bytes"))
    }
    let k = Kept::decode(bytes).map_err(|e| e.to_string())?;
    let body = match (k.text, k.kind) {
        (Some(t), None) => Body::Text(t),
        (None, Some(kind)) => Body::Typed {
            kind,
            data: Bytes::from(k.data.unwrap_or_default()),
        },
        _ => return Err("neither text nor a typed payload".to_owned()),
    };
    let mut m = ChatMessage::new(
        MessageId(array(&k.id, "id")?),
        AccountId(array(&k.sender, "sender")?),
        DeviceId(array(&k.device, "device")?),
        AccountId(array(&k.to, "recipient")?),
        body,
    )
    .at(k.sent_at);
    m.group = k
        .group
        .map(|g| array(&g, "group").map(GroupId))
        .transpose()?;
    m.channel = k.channel;
    m.role = k.role.map(|r| match r {
        0 => Role::Owner,
        1 => Role::Admin,
        2 => Role::Moderator,
        _ => Role::Member,
    });
    m.request = k.request;
    Ok(m)
}

/// The inbox's records as anyone reads them: the node's handles and the
/// pipeline share it.
pub(crate) struct Shelf {
    vault: Vault,
    storage: storage::Handle,
}

impl Shelf {
    pub(crate) fn new(vault: Vault, storage: storage::Handle) -> Self {
        Self { vault, storage }
    }

    async fn names(&self) -> Result<Vec<(u64, String, Vec<u8>)>, Error> {
        let listed = self
            .storage
            .list_state
            .send(storage::ListState(MESSAGES.to_owned()))
            .await??;
        Ok(listed
            .into_iter()
            .filter_map(|(name, value)| Some((seq_of(&name)?, name, value)))
            .collect())
    }

    fn open(&self, name: &str, value: &[u8]) -> Result<ChatMessage, Error> {
        let plain = self
            .vault
            .open(name, value)
            .map_err(|e| Error::Corrupt(format!("{name}: {e}")))?;
        decode(&plain).map_err(|e| Error::Corrupt(format!("{name}: {e}")))
    }

    /// The messages after `after`, in order, at most `limit`.
    pub(crate) async fn read(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, ChatMessage)>, Error> {
        let mut names = self.names().await?;
        names.retain(|(seq, ..)| *seq > after);
        names.sort_unstable_by_key(|(seq, ..)| *seq);
        names
            .iter()
            .take(limit)
            .map(|(seq, name, value)| Ok((*seq, self.open(name, value)?)))
            .collect()
    }

    /// Where subscriber `name` last said it was done.
    pub(crate) async fn position(&self, name: &str) -> Result<Option<u64>, Error> {
        let stored = self
            .storage
            .load_state
            .send(storage::LoadState(format!("{POSITIONS}{name}")))
            .await??;
        stored
            .map(|b| {
                <[u8; 8]>::try_from(b.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corrupt(format!("position of {name}")))
            })
            .transpose()
    }

    /// Deletes subscriber `name`'s position.
    pub(crate) async fn forget(&self, name: &str) -> Result<(), Error> {
        self.save(vec![(format!("{POSITIONS}{name}"), None)]).await
    }

    /// Writes `records` in one transaction (a position and what the
    /// application keeps with it).
    pub(crate) async fn save(&self, records: Records) -> Result<(), Error> {
        Ok(self
            .storage
            .save_state
            .send(storage::SaveState(records))
            .await??)
    }
}

/// The inbox as the pipeline writes it.
pub(crate) struct Book {
    shelf: Arc<Shelf>,
    last: u64,
    /// Messages kept, oldest first: their sequence and who sent which id.
    kept: VecDeque<(u64, (AccountId, MessageId))>,
    seen: HashSet<(AccountId, MessageId)>,
    /// Durable subscribers' positions, as last saved or told.
    positions: HashMap<String, u64>,
    keep: usize,
}

impl Book {
    /// Reads what the inbox holds.
    pub(crate) async fn load(shelf: Arc<Shelf>, keep: usize) -> Result<Self, Error> {
        let mut names = shelf.names().await?;
        names.sort_unstable_by_key(|(seq, ..)| *seq);
        let mut kept = VecDeque::with_capacity(names.len());
        for (seq, name, value) in &names {
            let m = shelf.open(name, value)?;
            kept.push_back((*seq, (m.sender, m.id)));
        }
        let positions = shelf
            .storage
            .list_state
            .send(storage::ListState(POSITIONS.to_owned()))
            .await??
            .into_iter()
            .filter_map(|(name, value)| {
                let seq = u64::from_be_bytes(value.as_slice().try_into().ok()?);
                Some((name.strip_prefix(POSITIONS)?.to_owned(), seq))
            })
            .collect();
        Ok(Self {
            last: kept.back().map_or(0, |(seq, _)| *seq),
            seen: kept.iter().map(|(_, k)| *k).collect(),
            kept,
            shelf,
            positions,
            keep,
        })
    }

    /// The sequence of the newest message kept (0: none yet).
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// Subscriber `name` is done up to `seq`.
    pub(crate) fn moved(&mut self, name: String, seq: u64) {
        self.positions.insert(name, seq);
    }

    /// Subscriber `name` is gone.
    pub(crate) fn forget(&mut self, name: &str) {
        self.positions.remove(name);
    }

    /// Takes `message` in: its sequence and the records to write (it, and
    /// the oldest that go), or `None` when it was kept before.
    pub(crate) fn admit(&mut self, message: &ChatMessage) -> Option<(u64, Records)> {
        let key = (message.sender, message.id);
        if !self.seen.insert(key) {
            return None;
        }
        self.last += 1;
        let seq = self.last;
        self.kept.push_back((seq, key));
        let name = message_name(seq);
        let sealed = self.shelf.vault.seal(&name, &encode(message));
        let mut records = vec![(name, Some(sealed))];
        let passed = self.positions.values().copied().min().unwrap_or(u64::MAX);
        while self.kept.len() > self.keep {
            match self.kept.front() {
                Some((oldest, _)) if *oldest <= passed => {}
                _ => break,
            }
            if let Some((oldest, key)) = self.kept.pop_front() {
                self.seen.remove(&key);
                records.push((message_name(oldest), None));
            }
        }
        Some((seq, records))
    }

    /// The shelf, to write through.
    pub(crate) fn shelf(&self) -> &Arc<Shelf> {
        &self.shelf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8, sender: u8) -> ChatMessage {
        let mut m = ChatMessage::new(
            MessageId([n; 16]),
            AccountId([sender; 32]),
            DeviceId([sender; 16]),
            AccountId([9; 32]),
            Body::Typed {
                kind: "k".to_owned(),
                data: Bytes::from_static(b"\x00\x01"),
            },
        )
        .at(1234);
        m.group = Some(GroupId([3; 32]));
        m.channel = Some("general".to_owned());
        m.role = Some(Role::Moderator);
        m.request = true;
        m
    }

    #[test]
    fn a_kept_message_reads_back_whole() {
        let m = message(1, 2);
        assert_eq!(decode(&encode(&m)), Ok(m));
        assert!(decode(b"\x0a\x01").is_err(), "a short id is refused");
    }

    fn book(keep: usize) -> Book {
        let storage = storage::Handle::from(murmur_test_kit::MemoryStorage::start());
        Book {
            shelf: Arc::new(Shelf::new(Vault::new(b"test"), storage)),
            last: 0,
            kept: VecDeque::new(),
            seen: HashSet::new(),
            positions: HashMap::new(),
            keep,
        }
    }

    #[test]
    fn a_copy_is_dropped_and_the_oldest_go_only_once_passed() {
        murmur_test_kit::run(async { copies_and_retention() });
    }

    fn copies_and_retention() {
        let mut book = book(2);
        assert_eq!(
            book.admit(&message(1, 1)).map(|(s, r)| (s, r.len())),
            Some((1, 1))
        );
        assert!(
            book.admit(&message(1, 1)).is_none(),
            "the same id from the same sender"
        );
        assert_eq!(
            book.admit(&message(1, 2)).map(|(s, _)| s),
            Some(2),
            "another sender"
        );
        book.moved("bot".to_owned(), 0);
        let (seq, records) = book.admit(&message(2, 1)).expect("new");
        assert_eq!(
            (seq, records.len()),
            (3, 1),
            "nothing goes that the bot has not read"
        );
        book.moved("bot".to_owned(), 2);
        let (_, records) = book.admit(&message(3, 1)).expect("new");
        let gone: Vec<_> = records
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(gone, vec![message_name(1), message_name(2)]);
        assert!(
            book.admit(&message(1, 1)).is_some(),
            "forgotten once it went"
        );
    }
}
