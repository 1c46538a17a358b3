use actix::prelude::*;
use murmur_core::{
    storage::{
        Cursor, Enqueue, Error, ListState, LoadCursor, LoadState, MarkSent, Pending, Prune, Query,
        SaveCursor, SaveRaw, SaveState,
    },
    store::Page,
    Delivery, MessageHash,
};

use crate::Database;

const MAILBOX: usize = 4096;

/// Saves written in one transaction at most.
const MAX_GROUP: usize = 1000;

type Waiter = tokio::sync::oneshot::Sender<Result<bool, Error>>;

/// The persistence stage actor: a thin shell around a [`Database`]. Each
/// request runs as its own future, so that slow queries do not hold up saves;
/// the pool bounds how many run at once.
///
/// Saves are group-committed: while one transaction is being written, the
/// saves that arrive wait and go together in the next one, and each is
/// answered only once its transaction is committed.
pub struct Storage {
    db: Database,
    waiting: Vec<(Delivery, Waiter)>,
    writing: bool,
}

impl Storage {
    /// Starts the actor under a supervisor.
    pub fn start(db: Database) -> Addr<Self> {
        Supervisor::start(move |_| Self {
            db,
            waiting: Vec::new(),
            writing: false,
        })
    }

    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.waiting.is_empty() {
            return;
        }
        self.writing = true;
        let take = self.waiting.len().min(MAX_GROUP);
        let (deliveries, waiters): (Vec<Delivery>, Vec<Waiter>) =
            self.waiting.drain(..take).unzip();
        let db = self.db.clone();
        ctx.spawn(
            async move { db.save_batch(&deliveries).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    match result {
                        Ok(new) => {
                            for (waiter, new) in waiters.into_iter().zip(new) {
                                let _ = waiter.send(Ok(new));
                            }
                        }
                        Err(e) => {
                            for waiter in waiters {
                                let _ = waiter.send(Err(e.clone()));
                            }
                        }
                    }
                    act.writing = false;
                    act.write(ctx);
                }),
        );
    }
}

impl Handler<SaveRaw> for Storage {
    type Result = ResponseFuture<Result<bool, Error>>;

    fn handle(&mut self, SaveRaw(delivery): SaveRaw, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.push((delivery, tx));
        self.write(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(Error::Backend("the storage stage restarted".to_owned())))
        })
    }
}

impl Actor for Storage {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl Supervised for Storage {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Their futures report the restart; the senders retry.
        self.waiting.clear();
        self.writing = false;
    }
}

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
forward!(SaveState, (), |db, m| db.save_state(&m.0).await);
forward!(LoadState, Option<Vec<u8>>, |db, m| db
    .load_state(&m.0)
    .await);
forward!(ListState, Vec<(String, Vec<u8>)>, |db, m| db
    .list_state(&m.0)
    .await);
