//! A durable subscriber of the chat inbox ([`Node::durable_inbox`]) or of
//! raw topics ([`Node::durable_subscribe`]): at least once, from where it
//! said it was done, across restarts and crashes.

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use futures::future::BoxFuture;
use murmur_core::{chat::ChatMessage, Delivery};
use tokio::sync::mpsc;

use crate::{
    inbox::{self, Kind, Shelf},
    pipeline::{Newest, Position, Which},
    Error, Node,
};

/// Messages read from the inbox at a time when catching up.
const PAGE: usize = 256;

/// A message from a durable inbox, with its place in it: a
/// [`ChatMessage`], or a raw [`Delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry<T = ChatMessage> {
    /// Its sequence in this node's inbox: what [`Durable::done`] takes.
    pub seq: u64,
    /// The message.
    pub message: T,
}

/// An inbox's shelf as a subscriber of its items reads it.
trait Read<T>: Send + Sync {
    fn read(&self, after: u64, limit: usize) -> BoxFuture<'_, Result<Vec<(u64, T)>, Error>>;
    fn position<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<u64>, Error>>;
    fn save(&self, records: inbox::Records) -> BoxFuture<'_, Result<(), Error>>;
    fn position_record(&self, name: &str, seq: u64) -> (String, Option<Vec<u8>>);
}

impl<K: Kind> Read<K::Item> for Shelf<K> {
    fn read(&self, after: u64, limit: usize) -> BoxFuture<'_, Result<Vec<(u64, K::Item)>, Error>> {
        Box::pin(Shelf::read(self, after, limit))
    }

    fn position<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<u64>, Error>> {
        Box::pin(Shelf::position(self, name))
    }

    fn save(&self, records: inbox::Records) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(Shelf::save(self, records))
    }

    fn position_record(&self, name: &str, seq: u64) -> (String, Option<Vec<u8>>) {
        inbox::position_record::<K>(name, seq)
    }
}

/// A named subscriber of a durable inbox: the chat inbox
/// ([`Node::durable_inbox`], `Durable<ChatMessage>`) or raw topics
/// ([`Node::durable_subscribe`], `Durable<Delivery>`); one reader per name
/// at a time.
///
/// It gets every message at least once, in the order the node kept
/// them: those after its saved position first (what arrived while it was
/// away, or before it said it was done with them), then each new one. Its
/// position moves only when it says so ([`Durable::done`],
/// [`Durable::commit`]), so a process killed while it handles a message
/// gets that message again at its next start; once `done` returned, never.
/// A subscriber that falls behind is not dropped: it reads on from the
/// inbox, up to the newest message whose write and every earlier one's
/// are done, so that a write the storage stage answered out of order is
/// not passed over.
///
/// What it misses: past the inbox's hard limit, the oldest unread
/// ([`Durable::lost`]); and, raw, a message archived and not yet kept
/// when the process died is kept when a store round brings it back,
/// unless its stamp is no newer than one the raw inbox's retention let go
/// (which could have been it, and would be handed out twice).
pub struct Durable<T = ChatMessage> {
    name: String,
    node: Node,
    which: Which,
    shelf: Arc<dyn Read<T>>,
    live: mpsc::Receiver<(u64, T)>,
    missed: Arc<AtomicBool>,
    backlog: VecDeque<Entry<T>>,
    /// A live message held while the gap before it is read from the inbox.
    arrived: Option<(u64, T)>,
    /// The highest sequence handed out.
    read: u64,
    /// The position saved.
    done: u64,
    /// Messages that went past the inbox's hard limit unread.
    lost: u64,
}

/// Sets a flag again when dropped: a read the flag asked for was cut off.
struct Rearm<'a>(&'a AtomicBool);

impl Drop for Rearm<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Durable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("name", &self.name)
            .field("read", &self.read)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Durable<ChatMessage> {
    pub(crate) async fn chat(node: &Node, name: &str, capacity: usize) -> Result<Self, Error> {
        let shelf = node.inner.inbox.clone().ok_or(Error::ChatDisabled)?;
        let (live, missed) = node
            .inner
            .pipeline
            .send(crate::pipeline::AddDurable { capacity })
            .await??;
        Self::attach(node, name, Which::Chat, shelf, live, missed).await
    }
}

impl Durable<Delivery> {
    pub(crate) async fn raw(
        node: &Node,
        name: &str,
        topics: std::collections::BTreeSet<String>,
        capacity: usize,
    ) -> Result<Self, Error> {
        let shelf = node.inner.raw.clone();
        shelf.keep_topics(name, &topics).await?;
        let (live, missed) = node
            .inner
            .pipeline
            .send(crate::pipeline::AddRawDurable { topics, capacity })
            .await??;
        Self::attach(node, name, Which::Raw, shelf, live, missed).await
    }
}

impl<T: Send + 'static> Durable<T> {
    async fn attach(
        node: &Node,
        name: &str,
        which: Which,
        shelf: Arc<dyn Read<T>>,
        live: mpsc::Receiver<(u64, T)>,
        missed: Arc<AtomicBool>,
    ) -> Result<Self, Error> {
        let done = shelf.position(name).await?.unwrap_or(0);
        let durable = Self {
            name: name.to_owned(),
            node: node.clone(),
            which,
            shelf,
            live,
            missed,
            backlog: VecDeque::new(),
            arrived: None,
            read: done,
            done,
            lost: 0,
        };
        if done > 0 {
            durable.moved(done).await;
        }
        // What the inbox holds after the position comes first.
        durable.missed.store(true, Ordering::Release);
        Ok(durable)
    }

    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The position saved: every message up to it is done.
    pub fn position(&self) -> u64 {
        self.done
    }

    /// Messages that went before this subscriber read them, since it was
    /// attached: past the inbox's hard limit (ten times what it keeps), the
    /// oldest go even unread, so that a subscriber that stopped reading
    /// cannot make the node keep a flood without end.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The next message; `None` once the node is gone, or once this
    /// process lost the database's lease to a replica ([`Node::lease_lost`]):
    /// a process that was frozen past its lease hands out nothing more
    /// before a renewal says it still holds it.
    ///
    /// Cancel-safe: a call dropped before it answers (a timeout, the other
    /// branch of a `select!`) loses nothing; the next call hands out what
    /// it would have.
    pub async fn recv(&mut self) -> Option<Entry<T>> {
        loop {
            if !self.backlog.is_empty() {
                if !self.node.holds_lease().await {
                    return None;
                }
                let entry = self.backlog.pop_front()?;
                if entry.seq > self.read {
                    self.read = entry.seq;
                    return Some(entry);
                }
                continue;
            }
            if self.arrived.is_none()
                && (self.missed.load(Ordering::Acquire) || self.read < self.done)
            {
                let missed = self.missed.clone();
                missed.store(false, Ordering::Release);
                // Set again if this call is dropped before the read is done.
                let rearm = Rearm(&missed);
                self.catch_up(u64::MAX).await;
                std::mem::forget(rearm);
                if !self.backlog.is_empty() {
                    continue;
                }
            }
            let (seq, message) = match self.arrived.take() {
                Some(item) => item,
                None => self.live.recv().await?,
            };
            if seq <= self.read {
                continue;
            }
            if seq > self.read + 1 {
                // Some went by while this one was not reading: from the
                // inbox first; this one waits here meanwhile, so that a
                // call dropped during the read does not lose it.
                self.arrived = Some((seq, message));
                self.catch_up(seq - 1).await;
                if self.backlog.is_empty() {
                    // Nothing between: those sequences were never written
                    // (a write that failed; what it held comes again under
                    // a new one). Every write up to this one is done, or
                    // it would not have come.
                    if let Some((seq, message)) = self.arrived.take() {
                        self.backlog.push_back(Entry { seq, message });
                    }
                }
                continue;
            }
            self.backlog.push_back(Entry { seq, message });
        }
    }

    /// Reads what the inbox holds after what was handed out, up to `until`.
    async fn catch_up(&mut self, until: u64) {
        let mut after = self.read;
        loop {
            match self.shelf.read(after, PAGE).await {
                Ok(page) => {
                    let full = page.len() == PAGE;
                    for (seq, message) in page {
                        if seq > until {
                            return;
                        }
                        // Sequences are contiguous: a jump past a position
                        // this subscriber had is what retention took.
                        if after > 0 && seq > after + 1 {
                            self.lost += seq - after - 1;
                            tracing::warn!(subscriber = %self.name, lost = seq - after - 1, "messages went before this subscriber read them");
                        }
                        after = seq;
                        self.backlog.push_back(Entry { seq, message });
                    }
                    if !full {
                        return;
                    }
                }
                Err(e) => {
                    // The live queue goes on; the gap is read again at
                    // the next miss or start.
                    tracing::warn!(subscriber = %self.name, error = %e, "inbox not read");
                    return;
                }
            }
        }
    }

    /// Saves the position: every message up to `seq` is done, and is not
    /// handed to this subscriber again, even after a restart.
    pub async fn done(&mut self, seq: u64) -> Result<(), Error> {
        self.commit(seq, Vec::new()).await
    }

    /// Saves the position with the application's own state, in one
    /// transaction: `state` as [`Node::save_app_state`] keeps it (`None`
    /// deletes a key). Either both are saved or neither. The position only
    /// moves on: a `seq` below it saves the state and leaves it.
    pub async fn commit(
        &mut self,
        seq: u64,
        state: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<(), Error> {
        let seq = seq.max(self.done);
        let mut records: Vec<_> = state
            .into_iter()
            .map(|(key, value)| (crate::handle::app_state_name(&key), value))
            .collect();
        records.push(self.shelf.position_record(&self.name, seq));
        self.shelf.save(records).await?;
        self.done = seq;
        self.read = self.read.max(seq);
        self.moved(seq).await;
        Ok(())
    }

    /// Skips everything the inbox holds now: the position moves to its
    /// newest message (a subscriber that starts from here on).
    pub async fn skip_to_end(&mut self) -> Result<u64, Error> {
        let last = self.node.inner.pipeline.send(Newest(self.which)).await??;
        self.backlog.clear();
        self.arrived = self.arrived.take().filter(|(seq, _)| *seq > last);
        if last > self.done {
            self.done(last).await?;
        }
        Ok(self.done)
    }

    async fn moved(&self, seq: u64) {
        let _ = self
            .node
            .inner
            .pipeline
            .send(Position(self.which, self.name.clone(), Some(seq)))
            .await;
    }
}
