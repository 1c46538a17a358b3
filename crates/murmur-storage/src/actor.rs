use actix::prelude::*;
use murmur_core::{
    storage::{
        Cursor, Enqueue, Error, LoadCursor, MarkSent, Pending, Prune, Query, SaveCursor, SaveRaw,
    },
    store::Page,
    Delivery, MessageHash,
};

use crate::Database;

const MAILBOX: usize = 4096;

/// The persistence stage actor: a thin shell around a [`Database`]. Each
/// request runs as its own future, so that slow queries do not hold up saves;
/// the pool bounds how many run at once.
pub struct Storage {
    db: Database,
}

impl Storage {
    /// Starts the actor under a supervisor.
    pub fn start(db: Database) -> Addr<Self> {
        Supervisor::start(move |_| Self { db })
    }
}

impl Actor for Storage {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl Supervised for Storage {}

macro_rules! forward {
    ($msg:ty, $out:ty, |$db:ident, $m:ident| $body:expr) => {
        impl Handler<$msg> for Storage {
            type Result = ResponseFuture<Result<$out, Error>>;

            fn handle(&mut self, $m: $msg, _: &mut Context<Self>) -> Self::Result {
                let $db = self.db.clone();
                Box::pin(async move { $body })
            }
        }
    };
}

forward!(SaveRaw, bool, |db, m| db.save(&m.0).await);
forward!(Query, Page, |db, m| db.query(&m.0).await);
forward!(Prune, u64, |db, m| db.prune(m).await);
forward!(Enqueue, MessageHash, |db, m| db
    .enqueue(&m.pubsub_topic, &m.message)
    .await);
forward!(MarkSent, (), |db, m| db.mark_sent(m.0).await);
forward!(Pending, Vec<Delivery>, |db, _m| db.pending().await);
forward!(SaveCursor, (), |db, m| db
    .save_cursor(&m.name, m.cursor)
    .await);
forward!(LoadCursor, Option<Cursor>, |db, m| db
    .load_cursor(&m.0)
    .await);
