//! murmur's store-sync stage: the default actor behind `murmur_core::sync`.
//!
//! [`StoreSync`] asks store nodes (the one a request names, else those it
//! was given, the next one when one fails) through the transport's
//! `QueryStore`, follows every page's cursor, and hands each page to the
//! inbound path as a `transport::Event::FetchedPage`: the pipeline archives
//! its messages by hash, in one request, before anything else, so a message
//! fetched twice, or that also came by relay, enters once. For the topics
//! it watches it keeps, in the persistence stage's state, how far this node
//! has seen each at each store node, and a round asks every store node for
//! what came since: after a partition, each side's store nodes hold what
//! the other side lacks.
//! Before that position, an hour back ([`LATE`]), a round lists hashes and
//! fetches those the archive lacks: a store node that got a message late
//! (it fetched it from the other side of a healed partition) is asked
//! again. The
//! node runs a round at start, on every new connection and periodically.
//! Gap repair builds on it.
//!
//! A panic in a handler is caught (`murmur_core::supervise`), answered with
//! `sync::Error::Restarted`, and the stage restarts; what it keeps in
//! memory (the topics watched) the node tells it again before every round,
//! and positions move only after a store answered.
//!
//! ```
//! use murmur_core::{sync::{self, CatchUp}, transport};
//! use murmur_sync::StoreSync;
//! use murmur_test_kit::{MemoryStore, MemoryStorage, Probe};
//!
//! murmur_test_kit::run(async {
//!     // A store node in memory, and a probe in place of the pipeline.
//!     let store = MemoryStore::start(murmur_core::storage::Handle::from(MemoryStorage::start()));
//!     let (inbound, _events) = Probe::start();
//!     let stage = StoreSync::start(
//!         store.recipient(),
//!         inbound.recipient(),
//!         vec![MemoryStore::ADDRESS.to_owned()],
//!         // Where the stage keeps how far each watched topic was seen.
//!         murmur_core::storage::Handle::from(MemoryStorage::start()),
//!     );
//!     let sync = sync::Handle::from(stage);
//!     let ask = CatchUp::new(
//!         "/waku/2/rs/1/4".parse().unwrap(),
//!         vec!["/murmur/1/lobby/proto".parse().unwrap()],
//!     );
//!     // An empty store: nothing came back.
//!     assert_eq!(sync.catch_up.send(ask).await.unwrap(), Ok(0));
//! });
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use murmur_core::{
    storage::{self, LoadState, SaveState},
    store::{Page, Query},
    supervise,
    sync::{CatchUp, Confirm, Error, FetchMissing, Round, Source, Stores, Watch},
    transport::{self, QueryStore},
    ContentTopic, Delivery, MessageHash, PubsubTopic,
};

const MAILBOX: usize = 256;

/// How far before a topic's position a round asks from: a message stamped
/// before the last round may reach the store after it (in flight, or from
/// a sender whose clock is behind; store nodes keep nothing more than 20 s
/// off). What comes twice, the archive drops.
pub const OVERLAP: Duration = Duration::from_secs(120);

/// How far back every round lists what each store node holds, whatever
/// the positions say: a store node can get a message long after it was
/// sent (a partition healed elsewhere, and the store node fetched what the
/// other side sent), after this node already asked it about that time.
/// Before the position a round asks for hashes only, and fetches only
/// those the archive lacks.
pub const LATE: Duration = Duration::from_secs(3600);

/// The store-sync stage actor.
pub struct StoreSync {
    query: Recipient<QueryStore>,
    inbound: Recipient<transport::Event>,
    stores: Vec<String>,
    /// Store nodes learned since, by source (listed first), oldest first.
    learned: BTreeMap<Source, Vec<String>>,
    storage: storage::Handle,
    watched: BTreeMap<PubsubTopic, BTreeSet<ContentTopic>>,
    /// Held by the round that runs: rounds never overlap.
    rounds: Arc<tokio::sync::Mutex<()>>,
    fuse: supervise::Fuse,
}

impl StoreSync {
    /// Starts the stage under a supervisor: it asks store nodes through
    /// `query` (the transport's), `stores` first to last, hands what comes
    /// back to `inbound` (the pipeline), and keeps how far each watched
    /// topic was seen in `storage`'s state.
    pub fn start(
        query: Recipient<QueryStore>,
        inbound: Recipient<transport::Event>,
        stores: Vec<String>,
        storage: storage::Handle,
    ) -> Addr<Self> {
        Supervisor::start(move |_| Self {
            query,
            inbound,
            stores,
            learned: BTreeMap::new(),
            storage,
            watched: BTreeMap::new(),
            rounds: Arc::default(),
            fuse: supervise::Fuse::default(),
        })
    }

    /// Who to ask for a request: the store it names, or every store known.
    fn ask(&self, store: Option<String>) -> Asker {
        Asker {
            query: self.query.clone(),
            inbound: self.inbound.clone(),
            stores: store.map_or_else(
                || {
                    self.stores
                        .iter()
                        .chain(self.learned.values().flatten())
                        .cloned()
                        .collect()
                },
                |s| vec![s],
            ),
        }
    }
}

/// One request's way to the store nodes and back.
struct Asker {
    query: Recipient<QueryStore>,
    inbound: Recipient<transport::Event>,
    stores: Vec<String>,
}

impl Asker {
    /// Runs `query` on the first store node that answers it to the end.
    async fn fetch(&self, query: Query, topic: Option<PubsubTopic>) -> Result<usize, Error> {
        let mut last = Error::NoStoreNode;
        for store in &self.stores {
            match self.pages(store, query.clone(), topic.as_ref()).await {
                Ok(count) => return Ok(count),
                Err(Error::Stopped) => return Err(Error::Stopped),
                Err(e) => {
                    tracing::debug!(%store, error = %e, "store node failed; trying the next");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Asks the first store node that answers which of `hashes` it holds.
    async fn held(&self, hashes: &[MessageHash]) -> Result<Vec<MessageHash>, Error> {
        let mut last = Error::NoStoreNode;
        for store in &self.stores {
            match self.held_at(store, hashes).await {
                Ok(held) => return Ok(held),
                Err(Error::Stopped) => return Err(Error::Stopped),
                Err(e) => {
                    tracing::debug!(%store, error = %e, "store node failed; trying the next");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn held_at(
        &self,
        store: &str,
        hashes: &[MessageHash],
    ) -> Result<Vec<MessageHash>, Error> {
        let mut held = Vec::new();
        // Store nodes take at most this many hashes in one query.
        for chunk in hashes.chunks(murmur_core::store::MAX_HASHES) {
            let mut query = Query::hashes(chunk.to_vec());
            query.include_data = false;
            loop {
                let page = self.page(store, query.clone()).await?;
                held.extend(page.messages.iter().map(|m| m.hash));
                match page.cursor {
                    Some(cursor) => query = query.with_cursor(Some(cursor)),
                    None => break,
                }
            }
        }
        Ok(held)
    }

    /// What `store` holds under `query`, as hashes; then the messages among
    /// them this node's archive lacks, fetched by hash and handed on.
    /// Answers how many were fetched.
    async fn missing(
        &self,
        store: &str,
        query: Query,
        topic: &PubsubTopic,
        archive: &storage::Handle,
    ) -> Result<usize, Error> {
        let mut listed = Vec::new();
        let mut query = query.with_limit(murmur_core::store::MAX_PAGE);
        query.include_data = false;
        loop {
            let page = self.page(store, query.clone()).await?;
            listed.extend(page.messages.iter().map(|m| m.hash));
            match page.cursor {
                Some(cursor) => query = query.with_cursor(Some(cursor)),
                None => break,
            }
        }
        let held = archived(archive, &listed).await?;
        let missing: Vec<MessageHash> = listed.into_iter().filter(|h| !held.contains(h)).collect();
        let mut fetched = 0;
        for chunk in missing.chunks(murmur_core::store::MAX_HASHES) {
            fetched += self
                .pages(store, Query::hashes(chunk.to_vec()), Some(topic))
                .await?;
        }
        Ok(fetched)
    }

    /// One page of `query` from `store`.
    async fn page(&self, store: &str, query: Query) -> Result<Page, Error> {
        self.query
            .send(QueryStore::new(store, query))
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(|e| match e {
                transport::Error::Remote {
                    code, description, ..
                } => Error::Store { code, description },
                // The transport met a panic on it: the caller may ask again.
                transport::Error::Restarted(p) => Error::Restarted(p),
                other => Error::Unreachable {
                    store: store.to_owned(),
                    reason: other.to_string(),
                },
            })
    }

    async fn pages(
        &self,
        store: &str,
        mut query: Query,
        topic: Option<&PubsubTopic>,
    ) -> Result<usize, Error> {
        let mut count = 0;
        loop {
            let page = self.page(store, query.clone()).await?;
            let fetched: Vec<Delivery> = page
                .messages
                .into_iter()
                .filter_map(|stored| {
                    let topic = stored.pubsub_topic.or_else(|| topic.cloned())?;
                    Some(Delivery::new(topic, stored.message?))
                })
                .collect();
            if !fetched.is_empty() {
                count += fetched.len();
                self.inbound
                    .send(transport::Event::FetchedPage(fetched))
                    .await
                    .map_err(|_| Error::Stopped)?;
            }
            match page.cursor {
                Some(cursor) => query = query.with_cursor(Some(cursor)),
                None => return Ok(count),
            }
        }
    }
}

impl Actor for StoreSync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

/// Nothing to reload: the stage keeps only where to ask.
impl Supervised for StoreSync {}

impl supervise::Restartable for StoreSync {
    const NAME: &'static str = "store sync";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(StoreSync);

impl Handler<CatchUp> for StoreSync {
    type Result = ResponseFuture<Result<usize, Error>>;

    fn handle(&mut self, msg: CatchUp, ctx: &mut Context<Self>) -> Self::Result {
        let asker = match supervise::guard(self, ctx, |act, _| act.ask(msg.store.clone())) {
            Ok(asker) => asker,
            Err(p) => return Box::pin(std::future::ready(Err(p.into()))),
        };
        let content_topics = msg
            .content_topics
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        let query = Query::content(Some(msg.pubsub_topic.clone()), content_topics)
            .with_time(msg.since_nanos, None)
            .with_limit(murmur_core::store::MAX_PAGE);
        Box::pin(async move { asker.fetch(query, Some(msg.pubsub_topic)).await })
    }
}

/// Where a topic's position is kept in the persistence stage's state.
fn position_key(pubsub: &PubsubTopic, content: &ContentTopic) -> String {
    format!("sync/position{pubsub}{content}")
}

/// Where this node left `store` on a topic: a round asks each store node
/// from its own position.
fn store_position_key(store: &str, pubsub: &PubsubTopic, content: &ContentTopic) -> String {
    format!("sync/at/{store}/{pubsub}{content}")
}

/// The earliest of the positions under `keys`, `unsaved` for one never saved.
async fn earliest(storage: &storage::Handle, keys: &[String], unsaved: i64) -> Result<i64, Error> {
    let mut since = None::<i64>;
    for key in keys {
        let at = load_position(storage, key.clone())
            .await?
            .unwrap_or(unsaved);
        since = Some(since.map_or(at, |s| s.min(at)));
    }
    Ok(since.unwrap_or(unsaved))
}

/// Which of `hashes` this node's archive holds (none, if it keeps no
/// archive: then everything listed is fetched, and the pipeline drops what
/// it has seen).
async fn archived(
    archive: &storage::Handle,
    hashes: &[MessageHash],
) -> Result<BTreeSet<MessageHash>, Error> {
    let mut held = BTreeSet::new();
    for chunk in hashes.chunks(murmur_core::store::MAX_HASHES) {
        let mut query = Query::hashes(chunk.to_vec());
        query.include_data = false;
        loop {
            let page = archive
                .query
                .send(storage::Query(query.clone()))
                .await
                .map_err(|_| Error::Stopped)?
                .map_err(|e| Error::Archive(e.to_string()))?;
            held.extend(page.messages.iter().map(|m| m.hash));
            match page.cursor {
                Some(cursor) => query = query.with_cursor(Some(cursor)),
                None => break,
            }
        }
    }
    Ok(held)
}

async fn load_position(storage: &storage::Handle, key: String) -> Result<Option<i64>, Error> {
    let stored = storage
        .load_state
        .send(LoadState(key))
        .await
        .map_err(|_| Error::Stopped)?
        .map_err(|e| Error::Positions(e.to_string()))?;
    Ok(stored.and_then(|bytes| Some(i64::from_be_bytes(bytes.try_into().ok()?))))
}

async fn save_positions(
    storage: &storage::Handle,
    entries: Vec<(String, i64)>,
) -> Result<(), Error> {
    let entries = entries
        .into_iter()
        .map(|(key, nanos)| (key, Some(nanos.to_be_bytes().to_vec())))
        .collect();
    storage
        .save_state
        .send(SaveState(entries))
        .await
        .map_err(|_| Error::Stopped)?
        .map_err(|e| Error::Positions(e.to_string()))
}

impl Handler<Watch> for StoreSync {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, msg: Watch, ctx: &mut Context<Self>) -> Self::Result {
        let storage = match supervise::guard(self, ctx, |act, _| {
            act.watched
                .entry(msg.pubsub_topic.clone())
                .or_default()
                .extend(msg.content_topics.iter().cloned());
            act.storage.clone()
        }) {
            Ok(storage) => storage,
            Err(p) => return Box::pin(std::future::ready(Err(p.into()))),
        };
        Box::pin(async move {
            let now = murmur_core::now_nanos();
            let mut new = Vec::new();
            for content in &msg.content_topics {
                let key = position_key(&msg.pubsub_topic, content);
                if load_position(&storage, key.clone()).await?.is_none() {
                    new.push((key, now));
                }
            }
            if new.is_empty() {
                return Ok(());
            }
            save_positions(&storage, new).await
        })
    }
}

impl Handler<Round> for StoreSync {
    type Result = ResponseFuture<Result<usize, Error>>;

    fn handle(&mut self, Round(reason): Round, ctx: &mut Context<Self>) -> Self::Result {
        let prepared = supervise::guard(self, ctx, |act, _| {
            (
                act.ask(None),
                act.watched.clone(),
                act.storage.clone(),
                act.rounds.clone(),
            )
        });
        let (asker, watched, storage, rounds) = match prepared {
            Ok(prepared) => prepared,
            Err(p) => return Box::pin(std::future::ready(Err(p.into()))),
        };
        Box::pin(async move {
            let _turn = rounds.lock().await;
            let started = murmur_core::now_nanos();
            let overlap = i64::try_from(OVERLAP.as_nanos()).unwrap_or(i64::MAX);
            let late = started.saturating_sub(i64::try_from(LATE.as_nanos()).unwrap_or(i64::MAX));
            let (mut fetched, mut asked, mut failed) = (0, 0, None);
            for (pubsub, contents) in watched {
                let floor_keys: Vec<String> =
                    contents.iter().map(|c| position_key(&pubsub, c)).collect();
                // A topic watched but never saved starts now.
                let floor = earliest(&storage, &floor_keys, started).await?;
                // Pages as large as store nodes serve: a round trip each.
                let query = Query::content(
                    Some(pubsub.clone()),
                    contents.iter().map(|c| c.as_str().to_owned()).collect(),
                )
                .with_limit(murmur_core::store::MAX_PAGE);
                if asker.stores.is_empty() {
                    failed = Some(Error::NoStoreNode);
                }
                // Every store node, each from where this node left it: what
                // one never got (it was cut off, or down) another may have,
                // and the archive drops what comes twice.
                let mut every = true;
                for store in &asker.stores {
                    let keys: Vec<String> = contents
                        .iter()
                        .map(|c| store_position_key(store, &pubsub, c))
                        .collect();
                    let since = earliest(&storage, &keys, floor)
                        .await?
                        .saturating_sub(overlap);
                    let asked_store = async {
                        // Everything since the position, as before: what
                        // the archive has but the node never handled (it
                        // was killed) comes again too.
                        let recent = query.clone().with_time(Some(since), None);
                        let mut n = asker.pages(store, recent, Some(&pubsub)).await?;
                        // Before it, an hour back: only what came late.
                        if late < since {
                            let older = query.clone().with_time(Some(late), Some(since));
                            n += asker.missing(store, older, &pubsub, &storage).await?;
                        }
                        Ok::<_, Error>(n)
                    };
                    match asked_store.await {
                        Ok(n) => {
                            fetched += n;
                            asked += 1;
                            save_positions(
                                &storage,
                                keys.into_iter().map(|k| (k, started)).collect(),
                            )
                            .await?;
                        }
                        Err(Error::Stopped) => return Err(Error::Stopped),
                        Err(e) => {
                            tracing::debug!(%pubsub, %store, error = %e, "store sync: this store node stays where it was");
                            every = false;
                            failed = Some(e);
                        }
                    }
                }
                // Where a store node asked for the first time starts.
                if every && !asker.stores.is_empty() {
                    save_positions(
                        &storage,
                        floor_keys.into_iter().map(|k| (k, started)).collect(),
                    )
                    .await?;
                }
            }
            tracing::debug!(?reason, fetched, asked, "store sync round");
            match failed {
                Some(e) if asked == 0 => Err(e),
                _ => Ok(fetched),
            }
        })
    }
}

impl Handler<FetchMissing> for StoreSync {
    type Result = ResponseFuture<Result<usize, Error>>;

    fn handle(
        &mut self,
        FetchMissing(hashes): FetchMissing,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        let asker = match supervise::guard(self, ctx, |act, _| act.ask(None)) {
            Ok(asker) => asker,
            Err(p) => return Box::pin(std::future::ready(Err(p.into()))),
        };
        Box::pin(async move { asker.fetch(Query::hashes(hashes), None).await })
    }
}

impl Handler<Stores> for StoreSync {
    type Result = usize;

    fn handle(&mut self, found: Stores, ctx: &mut Context<Self>) -> usize {
        supervise::guard(self, ctx, |act, _| {
            for store in found.stores {
                let known =
                    act.stores.contains(&store) || act.learned.values().any(|l| l.contains(&store));
                if known {
                    continue;
                }
                let learned = act.learned.entry(found.source).or_default();
                learned.push(store);
                if learned.len() > Stores::KEPT {
                    learned.remove(0);
                }
            }
            act.stores.len() + act.learned.values().map(Vec::len).sum::<usize>()
        })
        .unwrap_or(0)
    }
}

impl Handler<Confirm> for StoreSync {
    type Result = ResponseFuture<Result<Vec<MessageHash>, Error>>;

    fn handle(&mut self, Confirm(hashes): Confirm, ctx: &mut Context<Self>) -> Self::Result {
        let asker = match supervise::guard(self, ctx, |act, _| act.ask(None)) {
            Ok(asker) => asker,
            Err(p) => return Box::pin(std::future::ready(Err(p.into()))),
        };
        Box::pin(async move { asker.held(&hashes).await })
    }
}

#[cfg(test)]
mod tests;
