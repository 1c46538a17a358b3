//! A node whose persistence stage is this file's own: an append-only
//! journal on disk, replayed into memory at start, synced before every
//! answer. It passes the same conformance suite as SQLite and PostgreSQL
//! (`cargo test --example custom_storage`), and here two nodes on loopback
//! use it: one archives what the other sends, and still has it after its
//! storage is started again from the journal.
//!
//! ```text
//! cargo run --example custom_storage
//! ```

use std::{
    fs::{File, OpenOptions},
    io::{BufReader, Read, Write},
    path::Path,
    time::Duration,
};

use actix::prelude::*;
use murmur::{
    core::{
        now_nanos,
        storage::{
            self, Acquire, Cursor, Enqueue, Error, Lease, Leases, ListState, LoadCursor, LoadState,
            MarkSent, Pending, Prune, Query, Release, SaveAll, SaveCursor, SaveRaw, SaveState,
        },
        store::{self, Page, Stored},
        supervise, Delivery, MessageHash,
    },
    node::{Builder, Config},
};
#[path = "custom_storage/record.rs"]
mod record;
use record::Record;

/// The persistence stage on a journal file.
pub struct JournalStorage {
    path: std::path::PathBuf,
    journal: File,
    /// Archived messages in the store's order: (timestamp, hash).
    archive: Vec<((i64, MessageHash), Delivery)>,
    outbox: Vec<(Delivery, bool)>,
    cursors: std::collections::HashMap<String, Cursor>,
    state: std::collections::BTreeMap<String, Vec<u8>>,
    /// One process opens the journal: its lease needs no record.
    leases: Leases,
    /// A failed write could not be cut off: nothing more is written.
    torn: bool,
    fuse: supervise::Fuse,
}

impl JournalStorage {
    /// Opens (or creates) the journal at `path` and replays it.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut storage = Self {
            path: path.to_owned(),
            journal: OpenOptions::new().create(true).append(true).open(path)?,
            archive: Vec::new(),
            outbox: Vec::new(),
            cursors: Default::default(),
            state: Default::default(),
            leases: Leases::default(),
            torn: false,
            fuse: supervise::Fuse::default(),
        };
        let mut reader = BufReader::new(File::open(path)?);
        let mut len = [0u8; 4];
        // A record cut short by a crash ends the replay: it was never
        // answered, so nobody relies on it.
        while reader.read_exact(&mut len).is_ok() {
            let mut record = vec![0; u32::from_be_bytes(len) as usize];
            if reader.read_exact(&mut record).is_err() {
                break;
            }
            if let Some(r) = Record::decode(&record) {
                storage.apply(r);
            }
        }
        Ok(storage)
    }

    /// Starts the stage under a supervisor.
    pub fn start(path: &Path) -> std::io::Result<Addr<Self>> {
        let storage = Self::open(path)?;
        Ok(Supervisor::start(|_| storage))
    }

    /// Appends `record` with one write and one sync (a batch is one record,
    /// so a replay keeps all of it or none: a record cut short ends it). A
    /// failed write is cut off again, so that the next lands whole after
    /// the last good one.
    fn write(&mut self, record: Record) -> Result<(), Error> {
        // A write happens only while this stage may write (see `Leases`).
        self.leases.check()?;
        if self.torn {
            return Err(Error::Backend("a torn record: reopen the journal".into()));
        }
        let mut framed = Vec::new();
        record.frame(&mut framed);
        let backend = |e: std::io::Error| Error::Backend(e.to_string());
        let end = self.journal.metadata().map_err(backend)?.len();
        if let Err(e) = self
            .journal
            .write_all(&framed)
            .and_then(|()| self.journal.sync_data())
        {
            if self.journal.set_len(end).is_err() {
                // A torn record left in the middle would misframe every
                // later one: this stage writes nothing more.
                self.torn = true;
            }
            return Err(backend(e));
        }
        self.apply(record);
        Ok(())
    }

    fn position(&self, key: &(i64, MessageHash)) -> Result<usize, usize> {
        self.archive.binary_search_by(|(k, _)| k.cmp(key))
    }

    fn has(&self, hash: &MessageHash) -> Option<usize> {
        self.archive.iter().position(|(k, _)| k.1 == *hash)
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Batch(records) => {
                for record in records {
                    self.apply(record);
                }
            }
            Record::Archived(d) => {
                let key = (d.message.timestamp.unwrap_or(0), d.hash);
                if let Err(at) = self.position(&key) {
                    self.archive.insert(at, (key, d));
                }
            }
            Record::Queued(d) => {
                if !self.outbox.iter().any(|(o, _)| o.hash == d.hash) {
                    self.outbox.push((d, false));
                }
            }
            Record::InPlace(old, d) => {
                let waiting = |o: &(Delivery, bool)| o.0.hash == old && !o.1;
                if !self.outbox.iter().any(waiting) {
                    return self.apply(Record::Queued(d));
                }
                self.outbox.retain(|(o, _)| o.hash != d.hash);
                if let Some(at) = self.outbox.iter().position(waiting) {
                    self.outbox[at].1 = true;
                    self.outbox.insert(at + 1, (d, false));
                }
            }
            Record::Sent(h) => {
                for (d, sent) in &mut self.outbox {
                    *sent |= d.hash == h;
                }
            }
            Record::Cursor(name, c) => {
                self.cursors.insert(name, c);
            }
            Record::State(name, Some(v)) => {
                self.state.insert(name, v);
            }
            Record::State(name, None) => {
                self.state.remove(&name);
            }
            Record::Pruned(hashes) => self.archive.retain(|(k, _)| !hashes.contains(&k.1)),
        }
    }

    fn query(&self, q: &store::Query) -> Result<Page, Error> {
        q.check().map_err(Error::BadQuery)?;
        let wanted = |d: &Delivery| q.criteria.matches(d);
        // Where the cursor's message sits; the page starts just past it.
        let (from, to) = match q.cursor {
            None => (0, self.archive.len()),
            Some(hash) => {
                let at = self.has(&hash).ok_or(Error::UnknownCursor(hash))?;
                if q.forward {
                    (at + 1, self.archive.len())
                } else {
                    (0, at)
                }
            }
        };
        let slice = &self.archive[from..to];
        let limit = q.limit.clamp(1, store::MAX_PAGE) + 1;
        let pick = |d: &Delivery| {
            if q.include_data {
                Stored::new(d.hash, d.pubsub_topic.clone(), d.message.clone())
            } else {
                Stored::hash_only(d.hash)
            }
        };
        let rows: Vec<Stored> = if q.forward {
            slice
                .iter()
                .map(|(_, d)| d)
                .filter(|d| wanted(d))
                .take(limit)
                .map(pick)
                .collect()
        } else {
            slice
                .iter()
                .rev()
                .map(|(_, d)| d)
                .filter(|d| wanted(d))
                .take(limit)
                .map(pick)
                .collect()
        };
        Ok(Page::from_rows(rows, q))
    }
}

impl Actor for JournalStorage {
    type Context = Context<Self>;
}

/// A handler that panicked may have left memory half-changed: the journal
/// is what was answered, so the restarted stage replays it.
impl Supervised for JournalStorage {
    fn restarting(&mut self, _: &mut Context<Self>) {
        match Self::open(&self.path) {
            Ok(replayed) => *self = replayed,
            Err(e) => eprintln!("journal not replayed after a restart: {e}"),
        }
    }
}

impl supervise::Restartable for JournalStorage {
    const NAME: &'static str = "journal storage";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur::core::inject_panic_handler!(JournalStorage);

impl JournalStorage {
    /// Archives the new among `all` in one record; answers which were new.
    fn archive(&mut self, all: Vec<Delivery>) -> Result<Vec<bool>, Error> {
        let mut seen = std::collections::HashSet::new();
        let mut records = Vec::new();
        let mut new = Vec::with_capacity(all.len());
        for d in all {
            let fresh =
                !d.message.is_ephemeral() && self.has(&d.hash).is_none() && seen.insert(d.hash);
            new.push(fresh);
            if fresh {
                records.push(Record::Archived(d));
            }
        }
        match records.len() {
            0 => {}
            1 => self.write(records.remove(0))?,
            _ => self.write(Record::Batch(records))?,
        }
        Ok(new)
    }
}

impl Handler<SaveRaw> for JournalStorage {
    type Result = Result<bool, Error>;

    fn handle(&mut self, SaveRaw(d): SaveRaw, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            Ok(this.archive(vec![d])?.first() == Some(&true))
        })?
    }
}

impl Handler<SaveAll> for JournalStorage {
    type Result = Result<Vec<bool>, Error>;

    fn handle(&mut self, SaveAll(all): SaveAll, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| this.archive(all))?
    }
}

impl Handler<Query> for JournalStorage {
    type Result = Result<Page, Error>;

    fn handle(&mut self, Query(q): Query, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| this.query(&q))?
    }
}

impl Handler<Prune> for JournalStorage {
    type Result = Result<u64, Error>;

    fn handle(&mut self, p: Prune, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let cutoff = p.max_age.map(|age| {
                now_nanos().saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX))
            });
            let keep = p
                .max_count
                .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
            let excess = this.archive.len().saturating_sub(keep);
            let gone: Vec<MessageHash> = this
                .archive
                .iter()
                .enumerate()
                .filter(|(i, ((ts, _), _))| *i < excess || cutoff.is_some_and(|c| *ts < c))
                .map(|(_, (k, _))| k.1)
                .collect();
            let n = gone.len() as u64;
            if n > 0 {
                this.write(Record::Pruned(gone))?;
            }
            Ok(n)
        })?
    }
}

impl Handler<Enqueue> for JournalStorage {
    type Result = Result<MessageHash, Error>;

    fn handle(&mut self, e: Enqueue, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let d = Delivery::new(e.pubsub_topic, e.message);
            let hash = d.hash;
            match e.replaces.filter(|old| *old != hash) {
                Some(old) => this.write(Record::InPlace(old, d))?,
                None => this.write(Record::Queued(d))?,
            }
            Ok(hash)
        })?
    }
}

impl Handler<MarkSent> for JournalStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, MarkSent(hash): MarkSent, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| this.write(Record::Sent(hash)))?
    }
}

impl Handler<Pending> for JournalStorage {
    type Result = Result<Vec<Delivery>, Error>;

    fn handle(&mut self, _: Pending, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            Ok(this
                .outbox
                .iter()
                .filter(|(_, sent)| !sent)
                .map(|(d, _)| d.clone())
                .collect())
        })?
    }
}

impl Handler<SaveCursor> for JournalStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, c: SaveCursor, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.write(Record::Cursor(c.name, c.cursor))
        })?
    }
}

impl Handler<LoadCursor> for JournalStorage {
    type Result = Result<Option<Cursor>, Error>;

    fn handle(&mut self, LoadCursor(name): LoadCursor, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| Ok(this.cursors.get(&name).copied()))?
    }
}

impl Handler<SaveState> for JournalStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, SaveState(entries): SaveState, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            entries
                .into_iter()
                .try_for_each(|(name, value)| this.write(Record::State(name, value)))
        })?
    }
}

impl Handler<LoadState> for JournalStorage {
    type Result = Result<Option<Vec<u8>>, Error>;

    fn handle(&mut self, LoadState(name): LoadState, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| Ok(this.state.get(&name).cloned()))?
    }
}

impl Handler<ListState> for JournalStorage {
    type Result = Result<Vec<(String, Vec<u8>)>, Error>;

    fn handle(&mut self, ListState(prefix): ListState, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            Ok(this
                .state
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect())
        })?
    }
}

/// A node on loopback whose storage is a journal in `dir`.
async fn node(
    dir: &Path,
    peer: Option<&str>,
) -> Result<murmur::node::Node, Box<dyn std::error::Error>> {
    let mut config = Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    config.network.peers = peer.map(|p| p.parse()).transpose()?.into_iter().collect();
    let journal = dir.join("journal");
    Ok(Builder::new(config)
        .with_storage(move |_| async move {
            let addr = JournalStorage::start(&journal)
                .map_err(|e| murmur::node::Error::Config(format!("journal: {e}")))?;
            Ok(storage::Handle::from(addr))
        })
        .start()
        .await?)
}

#[actix::main]
#[allow(clippy::print_stdout)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let a = node(dirs[0].path(), None).await?;
    let b = node(dirs[1].path(), Some(&a.listen_addrs()[0])).await?;
    let topic = "/murmur/1/journal/proto".parse()?;
    let pubsub = b.pubsub_topic(&topic);
    b.wait_for_peers(&pubsub, 1, Duration::from_secs(20))
        .await?;
    let hash = a.send(&topic, b"kept in a journal".to_vec()).await?.hash();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let query = store::Query::content(Some(pubsub), vec![topic.to_string()]);
    let page = b.query_store(&a.listen_addrs()[0], query.clone()).await?;
    println!(
        "a's store (its journal) answers b: {} message(s), {}",
        page.messages.len(),
        hash
    );
    // The journal alone, read back as a fresh stage would at start.
    let again = JournalStorage::open(&dirs[0].path().join("journal"))?;
    let page = again.query(&query)?;
    println!(
        "replayed from the journal file: {} message(s)",
        page.messages.len()
    );
    assert!(page.messages.iter().any(|m| m.hash == hash));
    Ok(())
}

impl Handler<Acquire> for JournalStorage {
    type Result = Result<Lease, Error>;

    fn handle(&mut self, ask: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        Ok(supervise::guard(self, ctx, |this, _| {
            this.leases.acquire(&ask)
        })?)
    }
}

impl Handler<Release> for JournalStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, ask: Release, ctx: &mut Context<Self>) -> Self::Result {
        Ok(supervise::guard(self, ctx, |this, _| {
            this.leases.release(&ask)
        })?)
    }
}

#[cfg(test)]
mod conformance {
    use super::*;

    async fn start() -> storage::Handle {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        storage::Handle::from(JournalStorage::start(&dir.join("journal")).expect("opens"))
    }

    murmur_test_kit::storage_conformance_tests!(start);
}
