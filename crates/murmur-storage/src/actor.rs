use actix::prelude::*;
use murmur_core::{
    storage::{
        Acquire, Cursor, Enqueue, Error, Lease, ListState, LoadCursor, LoadState, MarkSent,
        Pending, Prune, Query, Release, SaveAll, SaveCursor, SaveRaw, SaveState,
    },
    store::Page,
    supervise, Delivery, MessageHash,
};
use tokio::sync::{mpsc, oneshot};

use crate::{Database, Metrics};

const MAILBOX: usize = 4096;

/// How often what superseded state left in the WAL is erased.
const ERASE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Writes committed in one transaction at most.
const MAX_GROUP: usize = 1000;
/// Writes waiting for the writer: past this, an asker's future waits for
/// room instead of the queue growing.
const QUEUE: usize = 4 * MAX_GROUP;

/// Answers a write once its group is committed: for the messages it
/// archived, whether each was new (empty for the other writes).
type Waiter = oneshot::Sender<Result<Vec<bool>, Error>>;

/// A write the writer groups with others into one transaction.
enum Write {
    /// Archive messages (answers, for each, whether it was new).
    Save(Vec<Delivery>),
    /// Put a message in the outbox, in place of an entry if one is named.
    Enqueue(Box<Delivery>, Option<MessageHash>),
    /// Take an entry the network took out of the outbox.
    Sent(MessageHash),
    /// Write or delete entries of stage state.
    State(Vec<(String, Option<Vec<u8>>)>),
}

/// The persistence stage actor: a thin shell around a [`Database`]. Each
/// request runs as its own future, so that slow queries do not hold up saves;
/// the pool bounds how many run at once.
///
/// Writes (archive saves, outbox entries in and out, stage state) are
/// group-committed: one writer takes what is queued (at most
/// `MAX_GROUP`) into one transaction while the next writes queue behind
/// it, and each is answered only once its transaction is committed. The
/// stages' state writes of a group go as a few multi-row statements, the
/// last write of each name winning, as if applied one after the other. The
/// queue is bounded: when it is full, writers wait. On SQLite without a
/// lease the writer commits on a connection of its own, from the actor's
/// thread, so that a write is one round trip to SQLite's thread and no
/// more.
pub struct Storage {
    db: Database,
    writes: mpsc::Sender<(Write, Waiter)>,
    metrics: Metrics,
    fuse: supervise::Fuse,
}

impl Storage {
    /// Starts the actor under a supervisor.
    pub fn start(db: Database) -> Addr<Self> {
        Self::start_with(db, Metrics::default())
    }

    /// Starts the actor under a supervisor, counting its writes in
    /// `metrics`.
    pub fn start_with(db: Database, metrics: Metrics) -> Addr<Self> {
        Supervisor::start(move |_| Self {
            db,
            // Replaced in `started`, with the writer that drains it.
            writes: mpsc::channel(1).0,
            metrics,
            fuse: supervise::Fuse::default(),
        })
    }
}

/// Writes what is queued, a group at a time, until the stage restarts.
async fn write(db: Database, mut queue: mpsc::Receiver<(Write, Waiter)>, metrics: Metrics) {
    let mut writer = crate::sql::Writer::new(db);
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let (started, requests) = (std::time::Instant::now(), group.len());
        let mut batch = crate::sql::Batch::default();
        // Each waiter with the range of `batch.saves` its write archives.
        let mut waiters = Vec::with_capacity(requests);
        for (write, waiter) in group.drain(..) {
            let first = batch.saves.len();
            match write {
                Write::Save(all) => batch.saves.extend(all),
                Write::Enqueue(d, replaces) => batch.enqueue(*d, replaces),
                Write::Sent(hash) => batch.sent.push(hash),
                Write::State(entries) => batch.state.extend(entries),
            }
            waiters.push((waiter, first..batch.saves.len()));
        }
        let written = writer.write(batch).await;
        metrics.written(requests, started.elapsed());
        match written {
            Ok(new) => {
                for (waiter, saved) in waiters {
                    let _ = waiter.send(Ok(new.get(saved).unwrap_or_default().to_vec()));
                }
            }
            Err(e) => {
                for (waiter, _) in waiters {
                    let _ = waiter.send(Err(e.clone()));
                }
            }
        }
    }
}

fn restarted() -> Error {
    Error::Restarted(supervise::Panicked(
        <Storage as supervise::Restartable>::NAME,
    ))
}

impl Storage {
    /// Queues `write` for the writer; answers once its group is committed.
    fn queue(
        &mut self,
        write: Write,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<Vec<bool>, Error>> {
        let writes = match supervise::guard(self, ctx, |act, _| act.writes.clone()) {
            Ok(writes) => writes,
            Err(p) => return Box::pin(std::future::ready(Err(p.into()))),
        };
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            writes.send((write, tx)).await.map_err(|_| restarted())?;
            // A writer that went with a restart dropped its waiters.
            rx.await.unwrap_or_else(|_| Err(restarted()))
        })
    }
}

/// Refuses what the database cannot hold before it joins a group, where it
/// would fail every write committed with it: a NUL in a text column.
fn storable(delivery: &Delivery) -> Result<(), Error> {
    if delivery.message.content_topic.contains('\0') {
        return Err(Error::Unstorable("a NUL character in the content topic"));
    }
    Ok(())
}

fn refused<T: Send + 'static>(e: Error) -> ResponseFuture<Result<T, Error>> {
    Box::pin(std::future::ready(Err(e)))
}

impl Handler<SaveRaw> for Storage {
    type Result = ResponseFuture<Result<bool, Error>>;

    fn handle(&mut self, SaveRaw(delivery): SaveRaw, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = storable(&delivery) {
            return refused(e);
        }
        let saved = self.queue(Write::Save(vec![delivery]), ctx);
        Box::pin(async move { Ok(saved.await?.first() == Some(&true)) })
    }
}

impl Handler<SaveAll> for Storage {
    type Result = ResponseFuture<Result<Vec<bool>, Error>>;

    fn handle(&mut self, SaveAll(all): SaveAll, ctx: &mut Context<Self>) -> Self::Result {
        // All or none: one the database cannot hold refuses the request.
        if let Err(e) = all.iter().try_for_each(storable) {
            return refused(e);
        }
        if all.is_empty() {
            // Nothing to write, so nothing a lease could fence.
            return match supervise::guard(self, ctx, |_, _| ()) {
                Ok(()) => Box::pin(std::future::ready(Ok(Vec::new()))),
                Err(p) => refused(p.into()),
            };
        }
        self.queue(Write::Save(all), ctx)
    }
}

impl Handler<Enqueue> for Storage {
    type Result = ResponseFuture<Result<MessageHash, Error>>;

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) -> Self::Result {
        // The outbox keeps the content topic inside the message's bytes,
        // which take a NUL, so nothing here is refused.
        let delivery = Delivery::new(msg.pubsub_topic, msg.message);
        let hash = delivery.hash;
        let queued = self.queue(Write::Enqueue(Box::new(delivery), msg.replaces), ctx);
        Box::pin(async move { queued.await.map(|_| hash) })
    }
}

impl Handler<MarkSent> for Storage {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, MarkSent(hash): MarkSent, ctx: &mut Context<Self>) -> Self::Result {
        let marked = self.queue(Write::Sent(hash), ctx);
        Box::pin(async move { marked.await.map(drop) })
    }
}

impl Handler<SaveState> for Storage {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, SaveState(entries): SaveState, ctx: &mut Context<Self>) -> Self::Result {
        if entries.iter().any(|(name, _)| name.contains('\0')) {
            return refused(Error::Unstorable("a NUL character in a state name"));
        }
        let saved = self.queue(Write::State(entries), ctx);
        Box::pin(async move { saved.await.map(drop) })
    }
}

impl Actor for Storage {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        let (tx, rx) = mpsc::channel(QUEUE);
        self.writes = tx;
        let writer = Box::pin(write(self.db.clone(), rx, self.metrics.clone())).into_actor(self);
        ctx.spawn(supervise::Guarded::new(writer).map(|_, _, _| ()));
        let beside = crate::checkpoint_beside(
            self.db.clone(),
            self.db.sql().growth(),
            self.metrics.clone(),
        );
        ctx.spawn(beside.into_actor(self));
        ctx.run_interval(ERASE_EVERY, |act, ctx| {
            let db = act.db.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = db.erase_superseded().await {
                        tracing::warn!(error = %e, "superseded state not erased");
                    }
                }
                .into_actor(act),
            );
        });
    }
}

/// Nothing to reload: the database is the state, and the saves that were
/// queued when it restarted are answered with [`Error::Restarted`].
impl Supervised for Storage {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("storage stage restarting");
    }
}

impl supervise::Restartable for Storage {
    const NAME: &'static str = "storage";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Storage);

macro_rules! forward {
    ($msg:ty, $out:ty, |$db:ident, $m:ident| $body:expr) => {
        impl Handler<$msg> for Storage {
            type Result = ResponseFuture<Result<$out, Error>>;

            fn handle(&mut self, $m: $msg, ctx: &mut Context<Self>) -> Self::Result {
                match supervise::guard(self, ctx, |act, _| act.db.clone()) {
                    Ok($db) => Box::pin(async move { $body }),
                    Err(p) => Box::pin(std::future::ready(Err(p.into()))),
                }
            }
        }
    };
}

forward!(Query, Page, |db, m| db.query(&m.0).await);
forward!(Prune, u64, |db, m| db.prune(m).await);
forward!(Pending, Vec<Delivery>, |db, _m| db.pending().await);
forward!(SaveCursor, (), |db, m| db
    .save_cursor(&m.name, m.cursor)
    .await);
forward!(LoadCursor, Option<Cursor>, |db, m| db
    .load_cursor(&m.0)
    .await);
forward!(LoadState, Option<Vec<u8>>, |db, m| db
    .load_state(&m.0)
    .await);
forward!(ListState, Vec<(String, Vec<u8>)>, |db, m| db
    .list_state(&m.0)
    .await);
forward!(Acquire, Lease, |db, m| db.acquire(&m).await);
forward!(Release, (), |db, m| db.release(&m).await);
