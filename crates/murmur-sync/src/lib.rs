//! murmur's store-sync stage: the default actor behind `murmur_core::sync`.
//!
//! [`StoreSync`] asks store nodes (the one a request names, else those it
//! was given, the next one when one fails) through the transport's
//! `QueryStore`, follows every page's cursor, and hands each message to the
//! inbound path as a `transport::Event::Message`: the pipeline archives it by
//! hash before anything else, so a message fetched twice, or that also came
//! by relay, enters once. What it does today is what `Node::catch_up` asks of
//! it; per-topic cursors and gap repair build on it.
//!
//! A panic in a handler is caught (`murmur_core::supervise`), answered with
//! `sync::Error::Restarted`, and the stage restarts; it keeps nothing of its
//! own that could be half-changed.
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

use actix::prelude::*;
use murmur_core::{
    store::Query,
    supervise,
    sync::{CatchUp, Error, FetchMissing},
    transport::{self, QueryStore},
    Delivery, PubsubTopic,
};

const MAILBOX: usize = 256;

/// The store-sync stage actor.
pub struct StoreSync {
    query: Recipient<QueryStore>,
    inbound: Recipient<transport::Event>,
    stores: Vec<String>,
    fuse: supervise::Fuse,
}

impl StoreSync {
    /// Starts the stage under a supervisor: it asks store nodes through
    /// `query` (the transport's), `stores` first to last, and hands what
    /// comes back to `inbound` (the pipeline).
    pub fn start(
        query: Recipient<QueryStore>,
        inbound: Recipient<transport::Event>,
        stores: Vec<String>,
    ) -> Addr<Self> {
        Supervisor::start(move |_| Self {
            query,
            inbound,
            stores,
            fuse: supervise::Fuse::default(),
        })
    }

    /// Who to ask for a request: the store it names, or every store known.
    fn ask(&self, store: Option<String>) -> Asker {
        Asker {
            query: self.query.clone(),
            inbound: self.inbound.clone(),
            stores: store.map_or_else(|| self.stores.clone(), |s| vec![s]),
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
    async fn fetch(self, query: Query, topic: Option<PubsubTopic>) -> Result<usize, Error> {
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

    async fn pages(
        &self,
        store: &str,
        mut query: Query,
        topic: Option<&PubsubTopic>,
    ) -> Result<usize, Error> {
        let mut count = 0;
        loop {
            let page = self
                .query
                .send(QueryStore::new(store, query.clone()))
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
                })?;
            for stored in page.messages {
                let (Some(message), Some(topic)) = (
                    stored.message,
                    stored.pubsub_topic.or_else(|| topic.cloned()),
                ) else {
                    continue;
                };
                self.inbound
                    .send(transport::Event::Message(Delivery::new(topic, message)))
                    .await
                    .map_err(|_| Error::Stopped)?;
                count += 1;
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
            .with_time(msg.since_nanos, None);
        Box::pin(asker.fetch(query, Some(msg.pubsub_topic)))
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
        Box::pin(asker.fetch(Query::hashes(hashes), None))
    }
}
