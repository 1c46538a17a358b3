//! A store node in memory: answers the transport's `QueryStore` from a
//! persistence stage, for suites and examples of stages that ask store nodes.

use actix::prelude::*;
use murmur_core::{
    storage,
    store::Page,
    transport::{self, QueryStore},
};

/// Answers [`QueryStore`] for [`MemoryStore::ADDRESS`] from its storage
/// (or for each address [`MemoryStore::start_many`] was given, from its
/// own), with the store protocol's status for what the storage refuses;
/// [`MemoryStore::REFUSING`] answers every query with 503; any other
/// address cannot be reached.
pub struct MemoryStore {
    stores: std::collections::HashMap<String, storage::Handle>,
}

impl MemoryStore {
    /// The address of the store node it plays.
    pub const ADDRESS: &'static str = "memory-store";
    /// The address of a store node that refuses every query.
    pub const REFUSING: &'static str = "memory-store-refusing";

    /// Starts it, answering from `storage`.
    pub fn start(storage: storage::Handle) -> Addr<Self> {
        Self::start_many([(Self::ADDRESS, storage)])
    }

    /// Starts several store nodes behind one recipient: each address
    /// answers from its own storage, as store nodes that saw different
    /// messages (a partition) do.
    pub fn start_many<'a>(
        stores: impl IntoIterator<Item = (&'a str, storage::Handle)>,
    ) -> Addr<Self> {
        Self {
            stores: stores
                .into_iter()
                .map(|(address, storage)| (address.to_owned(), storage))
                .collect(),
        }
        .start()
    }
}

impl Actor for MemoryStore {
    type Context = Context<Self>;
}

impl Handler<QueryStore> for MemoryStore {
    type Result = ResponseFuture<Result<Page, transport::Error>>;

    fn handle(&mut self, msg: QueryStore, _: &mut Context<Self>) -> Self::Result {
        let query = self.stores.get(&msg.peer).map(|s| s.query.clone());
        Box::pin(async move {
            let remote = |code, description: String| transport::Error::Remote {
                service: "store",
                code,
                description,
            };
            match (query, msg.peer.as_str()) {
                (Some(query), _) => match query.send(storage::Query(msg.query)).await {
                    Ok(Ok(page)) => Ok(page),
                    Ok(Err(
                        e @ (storage::Error::BadQuery(_) | storage::Error::UnknownCursor(_)),
                    )) => Err(remote(400, e.to_string())),
                    Ok(Err(e)) => Err(remote(503, e.to_string())),
                    Err(_) => Err(remote(503, "the archive is gone".to_owned())),
                },
                (None, Self::REFUSING) => Err(remote(503, "the archive is unavailable".to_owned())),
                (None, other) => Err(transport::Error::Dial {
                    address: other.to_owned(),
                    reason: "no such store node".to_owned(),
                }),
            }
        })
    }
}
