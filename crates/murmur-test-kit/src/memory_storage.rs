use std::collections::{BTreeMap, HashMap};

use actix::prelude::*;
use murmur_core::{
    now_nanos,
    storage::{
        Acquire, Cursor, Enqueue, Error, Lease, Leases, ListState, LoadCursor, LoadState, MarkSent,
        Pending, Prune, Query, Release, SaveAll, SaveCursor, SaveRaw, SaveState,
    },
    store::{self, Page, Stored},
    supervise, Delivery, MessageHash,
};

/// The persistence stage in memory: the reference the SQL backends are
/// checked against, and a store for tests that need no database.
#[derive(Default)]
pub struct MemoryStorage {
    /// (timestamp, hash) -> delivery: the store's order.
    archive: BTreeMap<(i64, MessageHash), Delivery>,
    by_hash: HashMap<MessageHash, i64>,
    outbox: Vec<(Delivery, bool)>,
    cursors: HashMap<String, Cursor>,
    state: BTreeMap<String, Vec<u8>>,
    /// No other process sees this database: the lease is this stage's alone.
    leases: Leases,
    fuse: supervise::Fuse,
}

impl MemoryStorage {
    /// Starts an empty store under a supervisor.
    pub fn start() -> Addr<Self> {
        Supervisor::start(|_| Self::default())
    }

    fn query(&self, query: &store::Query) -> Result<Page, Error> {
        query.check().map_err(Error::BadQuery)?;
        let matches = |d: &Delivery| query.criteria.matches(d);
        let position = match query.cursor {
            Some(hash) => Some((
                *self.by_hash.get(&hash).ok_or(Error::UnknownCursor(hash))?,
                hash,
            )),
            None => None,
        };
        let candidates: Box<dyn Iterator<Item = (&(i64, MessageHash), &Delivery)>> =
            match (query.forward, position) {
                (true, Some(p)) => Box::new(
                    self.archive
                        .range((std::ops::Bound::Excluded(p), std::ops::Bound::Unbounded)),
                ),
                (true, None) => Box::new(self.archive.iter()),
                (false, Some(p)) => Box::new(self.archive.range(..p).rev()),
                (false, None) => Box::new(self.archive.iter().rev()),
            };
        let limit = query.limit.clamp(1, store::MAX_PAGE);
        let rows = candidates
            .map(|(_, d)| d)
            .filter(|d| matches(d))
            .take(limit + 1)
            .map(|d| {
                if query.include_data {
                    Stored::new(d.hash, d.pubsub_topic.clone(), d.message.clone())
                } else {
                    Stored::hash_only(d.hash)
                }
            })
            .collect();
        Ok(Page::from_rows(rows, query))
    }
}

impl Actor for MemoryStorage {
    type Context = Context<Self>;
}

impl Supervised for MemoryStorage {}

impl supervise::Restartable for MemoryStorage {
    const NAME: &'static str = "memory storage";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(MemoryStorage);

impl MemoryStorage {
    fn save(&mut self, d: Delivery) -> bool {
        if d.message.is_ephemeral() || self.by_hash.contains_key(&d.hash) {
            return false;
        }
        let ts = d.message.timestamp.unwrap_or(0);
        self.by_hash.insert(d.hash, ts);
        self.archive.insert((ts, d.hash), d);
        true
    }
}

impl Handler<SaveRaw> for MemoryStorage {
    type Result = Result<bool, Error>;

    fn handle(&mut self, SaveRaw(d): SaveRaw, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.leases.check()?;
            Ok(this.save(d))
        })?
    }
}

impl Handler<SaveAll> for MemoryStorage {
    type Result = Result<Vec<bool>, Error>;

    fn handle(&mut self, SaveAll(all): SaveAll, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            if all.is_empty() {
                return Ok(Vec::new());
            }
            this.leases.check()?;
            Ok(all.into_iter().map(|d| this.save(d)).collect())
        })?
    }
}

impl Handler<Query> for MemoryStorage {
    type Result = Result<Page, Error>;

    fn handle(&mut self, Query(q): Query, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| this.query(&q))?
    }
}

impl Handler<Prune> for MemoryStorage {
    type Result = Result<u64, Error>;

    fn handle(&mut self, prune: Prune, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.leases.check()?;
            let before = this.archive.len();
            if let Some(age) = prune.max_age {
                let cutoff =
                    now_nanos().saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX));
                this.archive.retain(|(ts, _), _| *ts >= cutoff);
            }
            if let Some(count) = prune.max_count {
                let excess = this
                    .archive
                    .len()
                    .saturating_sub(usize::try_from(count).unwrap_or(usize::MAX));
                let old: Vec<_> = this.archive.keys().take(excess).copied().collect();
                for key in old {
                    this.archive.remove(&key);
                }
            }
            let archive = &this.archive;
            this.by_hash
                .retain(|hash, ts| archive.contains_key(&(*ts, *hash)));
            Ok((before - this.archive.len()) as u64)
        })?
    }
}

impl Handler<Enqueue> for MemoryStorage {
    type Result = Result<MessageHash, Error>;

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.leases.check()?;
            let d = Delivery::new(msg.pubsub_topic, msg.message);
            let hash = d.hash;
            let waiting = |outbox: &[(Delivery, bool)], hash| {
                outbox.iter().position(|(o, sent)| o.hash == hash && !sent)
            };
            match msg.replaces.filter(|old| *old != hash) {
                // In the old entry's turn; the old one taken out.
                Some(old) if waiting(&this.outbox, old).is_some() => {
                    this.outbox.retain(|(o, _)| o.hash != hash);
                    if let Some(at) = waiting(&this.outbox, old) {
                        this.outbox[at].1 = true;
                        this.outbox.insert(at + 1, (d, false));
                    }
                }
                _ if this.outbox.iter().any(|(o, _)| o.hash == hash) => {}
                _ => this.outbox.push((d, false)),
            }
            Ok(hash)
        })?
    }
}

impl Handler<MarkSent> for MemoryStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, MarkSent(hash): MarkSent, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.leases.check()?;
            for (d, sent) in &mut this.outbox {
                if d.hash == hash {
                    *sent = true;
                }
            }
            Ok(())
        })?
    }
}

impl Handler<Pending> for MemoryStorage {
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

impl Handler<SaveCursor> for MemoryStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: SaveCursor, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.leases.check()?;
            this.cursors.insert(msg.name, msg.cursor);
            Ok(())
        })?
    }
}

impl Handler<LoadCursor> for MemoryStorage {
    type Result = Result<Option<Cursor>, Error>;

    fn handle(&mut self, LoadCursor(name): LoadCursor, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| Ok(this.cursors.get(&name).copied()))?
    }
}

impl Handler<SaveState> for MemoryStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, SaveState(entries): SaveState, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.leases.check()?;
            for (name, value) in entries {
                match value {
                    Some(v) => this.state.insert(name, v),
                    None => this.state.remove(&name),
                };
            }
            Ok(())
        })?
    }
}

impl Handler<LoadState> for MemoryStorage {
    type Result = Result<Option<Vec<u8>>, Error>;

    fn handle(&mut self, LoadState(name): LoadState, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| Ok(this.state.get(&name).cloned()))?
    }
}

impl Handler<ListState> for MemoryStorage {
    type Result = Result<Vec<(String, Vec<u8>)>, Error>;

    fn handle(&mut self, ListState(prefix): ListState, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            Ok(this
                .state
                .range(prefix.clone()..)
                .take_while(|(name, _)| name.starts_with(&prefix))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect())
        })?
    }
}

impl Handler<Acquire> for MemoryStorage {
    type Result = Result<Lease, Error>;

    fn handle(&mut self, ask: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| this.leases.acquire(&ask)).map_err(Error::from)
    }
}

impl Handler<Release> for MemoryStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, ask: Release, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| this.leases.release(&ask)).map_err(Error::from)
    }
}
