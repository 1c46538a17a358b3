use std::collections::{BTreeMap, HashMap};

use actix::prelude::*;
use murmur_core::{
    now_nanos,
    storage::{
        Cursor, Enqueue, Error, ListState, LoadCursor, LoadState, MarkSent, Pending, Prune, Query,
        SaveCursor, SaveRaw, SaveState,
    },
    store::{self, Page, Stored},
    Delivery, MessageHash,
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

impl Handler<SaveRaw> for MemoryStorage {
    type Result = Result<bool, Error>;

    fn handle(&mut self, SaveRaw(d): SaveRaw, _: &mut Context<Self>) -> Self::Result {
        if d.message.is_ephemeral() || self.by_hash.contains_key(&d.hash) {
            return Ok(false);
        }
        let ts = d.message.timestamp.unwrap_or(0);
        self.by_hash.insert(d.hash, ts);
        self.archive.insert((ts, d.hash), d);
        Ok(true)
    }
}

impl Handler<Query> for MemoryStorage {
    type Result = Result<Page, Error>;

    fn handle(&mut self, Query(q): Query, _: &mut Context<Self>) -> Self::Result {
        self.query(&q)
    }
}

impl Handler<Prune> for MemoryStorage {
    type Result = Result<u64, Error>;

    fn handle(&mut self, prune: Prune, _: &mut Context<Self>) -> Self::Result {
        let before = self.archive.len();
        if let Some(age) = prune.max_age {
            let cutoff =
                now_nanos().saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX));
            self.archive.retain(|(ts, _), _| *ts >= cutoff);
        }
        if let Some(count) = prune.max_count {
            let excess = self
                .archive
                .len()
                .saturating_sub(usize::try_from(count).unwrap_or(usize::MAX));
            let old: Vec<_> = self.archive.keys().take(excess).copied().collect();
            for key in old {
                self.archive.remove(&key);
            }
        }
        let archive = &self.archive;
        self.by_hash
            .retain(|hash, ts| archive.contains_key(&(*ts, *hash)));
        Ok((before - self.archive.len()) as u64)
    }
}

impl Handler<Enqueue> for MemoryStorage {
    type Result = Result<MessageHash, Error>;

    fn handle(&mut self, msg: Enqueue, _: &mut Context<Self>) -> Self::Result {
        let d = Delivery::new(msg.pubsub_topic, msg.message);
        let hash = d.hash;
        if !self.outbox.iter().any(|(o, _)| o.hash == hash) {
            self.outbox.push((d, false));
        }
        Ok(hash)
    }
}

impl Handler<MarkSent> for MemoryStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, MarkSent(hash): MarkSent, _: &mut Context<Self>) -> Self::Result {
        for (d, sent) in &mut self.outbox {
            if d.hash == hash {
                *sent = true;
            }
        }
        Ok(())
    }
}

impl Handler<Pending> for MemoryStorage {
    type Result = Result<Vec<Delivery>, Error>;

    fn handle(&mut self, _: Pending, _: &mut Context<Self>) -> Self::Result {
        Ok(self
            .outbox
            .iter()
            .filter(|(_, sent)| !sent)
            .map(|(d, _)| d.clone())
            .collect())
    }
}

impl Handler<SaveCursor> for MemoryStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: SaveCursor, _: &mut Context<Self>) -> Self::Result {
        self.cursors.insert(msg.name, msg.cursor);
        Ok(())
    }
}

impl Handler<LoadCursor> for MemoryStorage {
    type Result = Result<Option<Cursor>, Error>;

    fn handle(&mut self, LoadCursor(name): LoadCursor, _: &mut Context<Self>) -> Self::Result {
        Ok(self.cursors.get(&name).copied())
    }
}

impl Handler<SaveState> for MemoryStorage {
    type Result = Result<(), Error>;

    fn handle(&mut self, SaveState(entries): SaveState, _: &mut Context<Self>) -> Self::Result {
        for (name, value) in entries {
            match value {
                Some(v) => self.state.insert(name, v),
                None => self.state.remove(&name),
            };
        }
        Ok(())
    }
}

impl Handler<LoadState> for MemoryStorage {
    type Result = Result<Option<Vec<u8>>, Error>;

    fn handle(&mut self, LoadState(name): LoadState, _: &mut Context<Self>) -> Self::Result {
        Ok(self.state.get(&name).cloned())
    }
}

impl Handler<ListState> for MemoryStorage {
    type Result = Result<Vec<(String, Vec<u8>)>, Error>;

    fn handle(&mut self, ListState(prefix): ListState, _: &mut Context<Self>) -> Self::Result {
        Ok(self
            .state
            .range(prefix.clone()..)
            .take_while(|(name, _)| name.starts_with(&prefix))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect())
    }
}
