//! A store node in memory: answers the transport's `QueryStore` from a
//! persistence stage, for suites and examples of stages that ask store nodes.

use actix::prelude::*;
use murmur_core::{
    storage,
    store::Page,
    transport::{self, QueryStore},
};

/// Answers [`QueryStore`] for [`MemoryStore::ADDRESS`] from its storage,
/// with the store protocol's status for what the storage refuses;
/// [`MemoryStore::REFUSING`] answers every query with 503; any other
/// address cannot be reached.
pub struct MemoryStore {
    storage: storage::Handle,
}

impl MemoryStore {
    /// The address of the store node it plays.
    pub const ADDRESS: &'static str = "memory-store";
    /// The address of a store node that refuses every query.
    pub const REFUSING: &'static str = "memory-store-refusing";

    /// Starts it, answering from `storage`.
    pub fn start(storage: storage::Handle) -> Addr<Self> {
        Self { storage }.start()
    }
}

impl Actor for MemoryStore {
    type Context = Context<Self>;
}

impl Handler<QueryStore> for MemoryStore {
    type Result = ResponseFuture<Result<Page, transport::Error>>;

    fn handle(&mut self, msg: QueryStore, _: &mut Context<Self>) -> Self::Result {
        let query = self.storage.query.clone();
        Box::pin(async move {
            let remote = |code, description: String| transport::Error::Remote {
                service: "store",
                code,
                description,
            };
            match msg.peer.as_str() {
                Self::ADDRESS => match query.send(storage::Query(msg.query)).await {
                    Ok(Ok(page)) => Ok(page),
                    Ok(Err(
                        e @ (storage::Error::BadQuery(_) | storage::Error::UnknownCursor(_)),
                    )) => Err(remote(400, e.to_string())),
                    Ok(Err(e)) => Err(remote(503, e.to_string())),
                    Err(_) => Err(remote(503, "the archive is gone".to_owned())),
                },
                Self::REFUSING => Err(remote(503, "the archive is unavailable".to_owned())),
                other => Err(transport::Error::Dial {
                    address: other.to_owned(),
                    reason: "no such store node".to_owned(),
                }),
            }
        })
    }
}
