//! The durable inboxes: every chat message this node delivers (sealed with
//! the vault key), and every raw message on a topic a durable subscription
//! asked for, kept in the database under a sequence number, so that a
//! subscriber resumes from the position it last said it was done with
//! ([`crate::Durable`]) and a slow one reads on from here instead of missing
//! messages.
//!
//! A message is kept before any durable subscriber sees it, and once per
//! key (a chat message's sender and id, a raw message's hash): a copy that
//! comes again (a sender's retry with the same id, a plaintext the crypto
//! stage kept and the node handles again after a crash, a store round's
//! overlap) is dropped while the first is kept. The oldest messages go past
//! the configured number kept, but not one a durable subscriber has not
//! passed, up to ten times that number ([`HARD_LIMIT`]): past it, a flood on
//! a topic a stopped subscriber asked for goes too.
//!
//! A reader sees a message only once every earlier one's write is done
//! ([`Book::settle`]), so that it never mistakes a write still on its way
//! for a message retention took.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    hash::Hash,
    marker::PhantomData,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use bytes::Bytes;
use murmur_core::{
    chat::{Body, ChatMessage, MessageId},
    crypto::{AccountId, DeviceId},
    groups::{GroupId, Role},
    storage, Delivery, MessageHash, PubsubTopic, WakuMessage,
};
use murmur_crypto::Vault;
use prost::Message as _;

use crate::Error;

/// What an inbox keeps, and under which records: `<prefix>m/<sequence, 20
/// digits>` for the messages, `<prefix>p/<subscriber>` for positions,
/// `<prefix>h` for the newest stamp retention let go (of a kind that keeps
/// one).
pub(crate) trait Kind: Send + Sync + 'static {
    /// A message as subscribers get it.
    type Item: Clone + Send + 'static;
    /// What makes two copies the same message.
    type Key: Copy + Eq + Hash + Send + 'static;
    /// The records' prefix.
    const PREFIX: &'static str;
    fn key(item: &Self::Item) -> Self::Key;
    /// Its stamp, for a kind that remembers how far retention went (what
    /// was let go must not be taken in again when it comes back); `None`
    /// for one that does not need to.
    fn stamp(item: &Self::Item) -> Option<i64>;
    fn encode(item: &Self::Item) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self::Item, String>;
}

/// The chat inbox: decrypted messages, sealed, one per sender and id.
pub(crate) struct Chat;

impl Kind for Chat {
    type Item = ChatMessage;
    type Key = (AccountId, MessageId);
    const PREFIX: &'static str = "inbox/";

    fn key(m: &ChatMessage) -> Self::Key {
        (m.sender, m.id)
    }

    /// A chat message let go is never taken in again by the pipeline's
    /// own path: only a stage's kept plaintext comes back, and it is let
    /// go once in the inbox.
    fn stamp(_: &ChatMessage) -> Option<i64> {
        None
    }

    fn encode(m: &ChatMessage) -> Vec<u8> {
        encode(m)
    }

    fn decode(bytes: &[u8]) -> Result<ChatMessage, String> {
        decode(bytes)
    }
}

/// The raw inbox: deliveries on the topics durable subscriptions asked
/// for, one per hash. What the network carries in the clear is kept so.
pub(crate) struct Raw;

/// A raw delivery as the raw inbox keeps it.
#[derive(Clone, PartialEq, prost::Message)]
struct KeptRaw {
    #[prost(string, tag = "1")]
    pubsub_topic: String,
    #[prost(bytes = "vec", tag = "2")]
    message: Vec<u8>,
}

impl Kind for Raw {
    type Item = Delivery;
    type Key = MessageHash;
    const PREFIX: &'static str = "raw/";

    fn key(d: &Delivery) -> MessageHash {
        d.hash
    }

    fn stamp(d: &Delivery) -> Option<i64> {
        Some(d.message.timestamp.unwrap_or(0))
    }

    fn encode(d: &Delivery) -> Vec<u8> {
        KeptRaw {
            pubsub_topic: d.pubsub_topic.as_str().to_owned(),
            message: d.message.encode_to_vec(),
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Delivery, String> {
        let kept = KeptRaw::decode(bytes).map_err(|e| e.to_string())?;
        let topic: PubsubTopic = kept.pubsub_topic.parse().map_err(|e| format!("{e}"))?;
        let message = WakuMessage::decode(kept.message.as_slice()).map_err(|e| e.to_string())?;
        Ok(Delivery::new(topic, message))
    }
}

fn messages<K: Kind>() -> String {
    format!("{}m/", K::PREFIX)
}

fn message_name<K: Kind>(seq: u64) -> String {
    format!("{}m/{seq:020}", K::PREFIX)
}

fn horizon_name<K: Kind>() -> String {
    format!("{}h", K::PREFIX)
}

fn position_name<K: Kind>(name: &str) -> String {
    format!("{}p/{name}", K::PREFIX)
}

/// The record of the topics raw subscriber `name` asked for.
fn topics_name(name: &str) -> String {
    format!("{}t/{name}", Raw::PREFIX)
}

fn seq_of<K: Kind>(name: &str) -> Option<u64> {
    name.strip_prefix(&messages::<K>())?.parse().ok()
}

/// The record of subscriber `name`'s position.
pub(crate) fn position_record<K: Kind>(name: &str, seq: u64) -> (String, Option<Vec<u8>>) {
    (position_name::<K>(name), Some(seq.to_be_bytes().to_vec()))
}

/// An inbox keeps at most this many times what it is configured to keep,
/// whatever durable subscribers have not read.
pub(crate) const HARD_LIMIT: usize = 10;

/// State records to write in one transaction (`None` deletes).
pub(crate) type Records = Vec<(String, Option<Vec<u8>>)>;

/// An inbox's records as anyone reads them: the node's handles and the
/// pipeline share it.
pub(crate) struct Shelf<K> {
    /// Seals what is kept; `None` keeps it as it is.
    vault: Option<Vault>,
    storage: storage::Handle,
    /// The newest sequence whose write, and every earlier one's, is done
    /// (committed, or failed: a failed chat write comes again at the next
    /// start, under a new sequence): readers see no further.
    /// The pipeline hands writes to the storage stage several at a time,
    /// and a full mailbox lets a later one be committed first; a reader
    /// that saw it would take the gap before it for retention and pass
    /// over the earlier message when it lands.
    settled: AtomicU64,
    kind: PhantomData<K>,
}

impl<K: Kind> Shelf<K> {
    pub(crate) fn new(vault: Option<Vault>, storage: storage::Handle) -> Self {
        Self {
            vault,
            storage,
            settled: AtomicU64::new(0),
            kind: PhantomData,
        }
    }

    async fn names(&self) -> Result<Vec<(u64, String, Vec<u8>)>, Error> {
        let listed = self
            .storage
            .list_state
            .send(storage::ListState(messages::<K>()))
            .await??;
        Ok(listed
            .into_iter()
            .filter_map(|(name, value)| Some((seq_of::<K>(&name)?, name, value)))
            .collect())
    }

    fn seal(&self, name: &str, item: &K::Item) -> Vec<u8> {
        let plain = K::encode(item);
        match &self.vault {
            Some(vault) => vault.seal(name, &plain),
            None => plain,
        }
    }

    fn open(&self, name: &str, value: &[u8]) -> Result<K::Item, Error> {
        let decoded = match &self.vault {
            Some(vault) => K::decode(
                &vault
                    .open(name, value)
                    .map_err(|e| Error::Corrupt(format!("{name}: {e}")))?,
            ),
            None => K::decode(value),
        };
        decoded.map_err(|e| Error::Corrupt(format!("{name}: {e}")))
    }

    /// The messages after `after`, in order, at most `limit`: those
    /// settled ([`Book::settle`]), no later one.
    pub(crate) async fn read(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, K::Item)>, Error> {
        // Read before the names: what settled by then is in them.
        let settled = self.settled();
        let mut names = self.names().await?;
        names.retain(|(seq, ..)| *seq > after && *seq <= settled);
        names.sort_unstable_by_key(|(seq, ..)| *seq);
        names
            .iter()
            .take(limit)
            .map(|(seq, name, value)| Ok((*seq, self.open(name, value)?)))
            .collect()
    }

    /// The newest message a reader may see: its write and every earlier
    /// one's are done.
    pub(crate) fn settled(&self) -> u64 {
        self.settled.load(Ordering::Acquire)
    }

    /// Where subscriber `name` last said it was done.
    pub(crate) async fn position(&self, name: &str) -> Result<Option<u64>, Error> {
        let stored = self
            .storage
            .load_state
            .send(storage::LoadState(position_name::<K>(name)))
            .await??;
        stored
            .map(|b| {
                <[u8; 8]>::try_from(b.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corrupt(format!("position of {name}")))
            })
            .transpose()
    }

    /// Deletes subscriber `name`'s position (and, raw, its topics).
    pub(crate) async fn forget(&self, name: &str) -> Result<(), Error> {
        self.save(vec![
            (position_name::<K>(name), None),
            (topics_name(name), None),
        ])
        .await
    }

    /// Writes `records` in one transaction (a position and what the
    /// application keeps with it).
    pub(crate) async fn save(&self, records: Records) -> Result<(), Error> {
        self.save_now(records).await
    }

    /// [`Shelf::save`], handed to the storage stage before this returns.
    pub(crate) fn save_now(
        &self,
        records: Records,
    ) -> impl std::future::Future<Output = Result<(), Error>> + 'static {
        let sent = self.storage.save_state.send(storage::SaveState(records));
        async move { Ok(sent.await??) }
    }
}

impl Shelf<Raw> {
    /// Keeps the topics raw subscriber `name` asked for, so that a node
    /// started again keeps what comes on them before it asks again.
    pub(crate) async fn keep_topics(
        &self,
        name: &str,
        topics: &BTreeSet<String>,
    ) -> Result<(), Error> {
        let joined = topics.iter().cloned().collect::<Vec<_>>().join("\n");
        self.save(vec![(topics_name(name), Some(joined.into_bytes()))])
            .await
    }

    /// Every topic a raw subscriber asked for.
    pub(crate) async fn topics(&self) -> Result<BTreeSet<String>, Error> {
        let listed = self
            .storage
            .list_state
            .send(storage::ListState(topics_name("")))
            .await??;
        Ok(listed
            .iter()
            .flat_map(|(_, value)| {
                String::from_utf8_lossy(value)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|t| !t.is_empty())
            .collect())
    }
}

/// An inbox as the pipeline writes it.
pub(crate) struct Book<K: Kind> {
    shelf: Arc<Shelf<K>>,
    last: u64,
    /// Messages kept, oldest first: their sequence, key and stamp.
    kept: VecDeque<(u64, K::Key, Option<i64>)>,
    /// The newest stamp of a message retention let go (`i64::MIN`: none).
    horizon: i64,
    seen: HashSet<K::Key>,
    /// Durable subscribers' positions, as last saved or told.
    positions: HashMap<String, u64>,
    keep: usize,
}

impl<K: Kind> Book<K> {
    /// Reads what the inbox holds.
    pub(crate) async fn load(shelf: Arc<Shelf<K>>, keep: usize) -> Result<Self, Error> {
        let mut names = shelf.names().await?;
        names.sort_unstable_by_key(|(seq, ..)| *seq);
        let mut kept = VecDeque::with_capacity(names.len());
        for (seq, name, value) in &names {
            let item = shelf.open(name, value)?;
            kept.push_back((*seq, K::key(&item), K::stamp(&item)));
        }
        let prefix = position_name::<K>("");
        let positions = shelf
            .storage
            .list_state
            .send(storage::ListState(prefix.clone()))
            .await??
            .into_iter()
            .filter_map(|(name, value)| {
                let seq = u64::from_be_bytes(value.as_slice().try_into().ok()?);
                Some((name.strip_prefix(&prefix)?.to_owned(), seq))
            })
            .collect();
        let horizon = shelf
            .storage
            .load_state
            .send(storage::LoadState(horizon_name::<K>()))
            .await??
            .map(|b| {
                <[u8; 8]>::try_from(b.as_slice())
                    .map(i64::from_be_bytes)
                    .map_err(|_| Error::Corrupt(horizon_name::<K>()))
            })
            .transpose()?
            .unwrap_or(i64::MIN);
        let last = kept.back().map_or(0, |(seq, ..)| *seq);
        shelf.settled.fetch_max(last, Ordering::AcqRel);
        Ok(Self {
            last,
            seen: kept.iter().map(|(_, k, _)| *k).collect(),
            kept,
            horizon,
            shelf,
            positions,
            keep,
        })
    }

    /// The write of `seq`, and of every sequence before it, is done
    /// (committed, or failed): readers may see up to it. The pipeline says
    /// so in the order it admitted them, whatever order the storage stage
    /// answered in.
    pub(crate) fn settle(&self, seq: u64) {
        self.shelf.settled.fetch_max(seq, Ordering::AcqRel);
    }

    /// Subscriber `name` is done up to `seq`.
    pub(crate) fn moved(&mut self, name: String, seq: u64) {
        self.positions.insert(name, seq);
    }

    /// Subscriber `name` is gone.
    pub(crate) fn forget(&mut self, name: &str) {
        self.positions.remove(name);
    }

    /// Takes `item` in: its sequence and the records to write (it, and
    /// the oldest that go), or `None` when it was kept before.
    pub(crate) fn admit(&mut self, item: &K::Item) -> Option<(u64, Records)> {
        let key = K::key(item);
        if !self.seen.insert(key) {
            return None;
        }
        self.last += 1;
        let seq = self.last;
        self.kept.push_back((seq, key, K::stamp(item)));
        let name = message_name::<K>(seq);
        let sealed = self.shelf.seal(&name, item);
        let mut records = vec![(name, Some(sealed))];
        let passed = self.positions.values().copied().min().unwrap_or(u64::MAX);
        let before = records.len();
        while self.kept.len() > self.keep {
            match self.kept.front() {
                Some((oldest, ..)) if *oldest <= passed => {}
                _ => break,
            }
            self.let_go_oldest(&mut records);
        }
        // A subscriber that stopped reading must not make the node keep a
        // flood without end: past the hard limit the oldest go, passed or
        // not (the subscriber counts them, `Durable::lost`).
        while self.kept.len() > self.keep.saturating_mul(HARD_LIMIT) {
            if let Some(oldest) = self.let_go_oldest(&mut records) {
                tracing::warn!(
                    seq = oldest,
                    "inbox past its hard limit: a message no durable subscriber read went"
                );
            }
        }
        // With every write that lets a stamped message go, not only when
        // the horizon moves: a write that failed may have carried its move.
        if records.len() > before && self.horizon > i64::MIN {
            let stamp = self.horizon.to_be_bytes().to_vec();
            records.push((horizon_name::<K>(), Some(stamp)));
        }
        Some((seq, records))
    }

    /// Lets the oldest message go: its record's deletion joins `records`.
    /// Answers its sequence.
    fn let_go_oldest(&mut self, records: &mut Records) -> Option<u64> {
        let (oldest, key, stamp) = self.kept.pop_front()?;
        self.seen.remove(&key);
        if let Some(stamp) = stamp {
            // Only what is archivable comes back to be taken again: a stamp
            // further ahead (anyone can send one) must not move the
            // horizon past every message for good.
            let ahead =
                murmur_core::now_nanos().saturating_add(murmur_core::store::ARCHIVE_WINDOW_NANOS);
            self.horizon = self.horizon.max(stamp.min(ahead));
        }
        records.push((message_name::<K>(oldest), None));
        Some(oldest)
    }

    /// The write that took sequence `seq` in failed: its item is not kept,
    /// and may be taken in again (a store round brings it back).
    pub(crate) fn failed(&mut self, seq: u64) {
        if let Some(at) = self.kept.iter().rposition(|(s, ..)| *s == seq) {
            if let Some((_, key, _)) = self.kept.remove(at) {
                self.seen.remove(&key);
            }
        }
    }

    /// Whether `item`, which an earlier run may have meant to take in and
    /// did not (it stopped before the write, or the write failed), may be
    /// taken in now: it is not kept, and not as old as what retention let
    /// go, which may have been it (taken in again, a subscriber done with
    /// it would get it twice). Always `false` for a kind that keeps no
    /// stamps.
    pub(crate) fn may_take_again(&self, item: &K::Item) -> bool {
        !self.seen.contains(&K::key(item)) && K::stamp(item).is_some_and(|s| s > self.horizon)
    }

    /// The shelf, to write through.
    pub(crate) fn shelf(&self) -> &Arc<Shelf<K>> {
        &self.shelf
    }
}

impl Book<Chat> {
    /// The ids of the newest messages from `sender` this inbox keeps, at
    /// most `at_most`, oldest first.
    pub(crate) fn kept_from(&self, sender: AccountId, at_most: usize) -> Vec<MessageId> {
        let mut ids: Vec<MessageId> = self
            .kept
            .iter()
            .rev()
            .filter(|(_, (from, _), _)| *from == sender)
            .map(|(_, (_, id), _)| *id)
            .take(at_most)
            .collect();
        ids.reverse();
        ids
    }
}

mod kept;
use kept::{decode, encode};

#[cfg(test)]
mod tests;
