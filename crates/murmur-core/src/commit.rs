//! A stage's group commit, for stages that persist what a request changed
//! before they answer it (the crypto and membership stages). While one
//! group of changes is being written, the stage's mailbox goes on, and what
//! the next requests change gathers into the next group, written as one
//! transaction once the first is done. Groups land in the order they were
//! made, so storage always holds a state the stage was in; a group that is
//! not written fails the one gathered on top of it.
//!
//! The stage owns a [`Commits`]: [`Commits::add`] for each change,
//! [`Commits::take`] to take a group to write (the stage adds what belongs
//! to its ledger, then [`Batch::spawn`]s its write apart from the actor, so
//! that a restart meanwhile neither drops the answers nor reads the state
//! back before the write landed: [`Commits::landed`]), [`Commits::written`]
//! when it hears [`Written`], [`Commits::restarted`] when the stage
//! restarts.

use std::{future::Future, sync::Arc};

use actix::{Message, Recipient};
use futures::{
    channel::oneshot,
    lock::{Mutex, OwnedMutexGuard},
};

use crate::{
    storage::{self, SaveState},
    supervise::Panicked,
};

/// Entries of stage state: a name, and its sealed value or `None` to
/// delete it.
pub type Records = Vec<(String, Option<Vec<u8>>)>;

type Waiter<E> = oneshot::Sender<Result<(), E>>;

/// The groups of one stage: at most one being written, the next gathering.
pub struct Commits<E> {
    /// Held while a group is being written.
    writing: Arc<Mutex<()>>,
    busy: bool,
    /// The next group's records in the stage's ledger, in the order the
    /// changes were made.
    records: Records,
    /// The next group's records outside the ledger.
    beside: Records,
    waiters: Vec<Waiter<E>>,
    /// Counts restarts: a write that finishes after one moves nothing on.
    epoch: u64,
}

impl<E> Default for Commits<E> {
    fn default() -> Self {
        Self {
            writing: Arc::new(Mutex::new(())),
            busy: false,
            records: Records::new(),
            beside: Records::new(),
            waiters: Vec::new(),
            epoch: 0,
        }
    }
}

/// How a group's write went, told to the stage by [`Batch::spawn`]: with
/// what puts the stage's ledger back if it `failed`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Written<E, U> {
    /// The group's epoch: a write that lands after a restart moves
    /// nothing on.
    pub epoch: u64,
    /// The error and the ledger's undo, when it was not written.
    pub failed: Option<(E, U)>,
}

/// The answer to a change once its group is written ([`Commits::add`]):
/// `result`, or the group's error, or `gone()` if the group went with a
/// restart.
pub async fn answer<T, E>(
    written: oneshot::Receiver<Result<(), E>>,
    result: T,
    gone: impl FnOnce() -> E,
) -> Result<T, E> {
    match written.await {
        Ok(Ok(())) => Ok(result),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(gone()),
    }
}

/// How a stage names a write that failed: the storage stage restarted on
/// it, or it failed for the reason given.
pub type Errors<E> = (fn(Panicked) -> E, fn(String) -> E);

/// A group taken to be written.
pub struct Batch<E> {
    /// Its records in the stage's ledger; the stage appends its tip.
    pub records: Records,
    /// Its records outside the ledger, written after `records`.
    pub beside: Records,
    waiters: Vec<Waiter<E>>,
    epoch: u64,
    writing: Arc<Mutex<()>>,
    /// Taken when the group is: a reload that starts before the write task
    /// runs still waits for it.
    held: Option<OwnedMutexGuard<()>>,
}

impl<E: Clone + 'static> Commits<E> {
    /// Adds a change to the next group. Answers when that group was
    /// written (`Err(Canceled)` if it went with a restart), and whether
    /// nothing is being written, so that the stage starts now
    /// ([`Commits::take`]).
    pub fn add(
        &mut self,
        records: Records,
        beside: Option<(String, Option<Vec<u8>>)>,
    ) -> (oneshot::Receiver<Result<(), E>>, bool) {
        self.records.extend(records);
        self.beside.extend(beside);
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        (rx, !self.busy)
    }

    /// The next group, marked as being written; `None` when nothing
    /// gathered (and then nothing is being written).
    pub fn take(&mut self) -> Option<Batch<E>> {
        if self.waiters.is_empty() {
            self.busy = false;
            return None;
        }
        self.busy = true;
        Some(Batch {
            records: std::mem::take(&mut self.records),
            beside: std::mem::take(&mut self.beside),
            waiters: std::mem::take(&mut self.waiters),
            epoch: self.epoch,
            writing: self.writing.clone(),
            held: self.writing.try_lock_owned(),
        })
    }

    /// What the stage heard of a group's write means: `None` when it was
    /// written before a restart (nothing to do), else whether it failed,
    /// with the undo of its ledger. A failed group takes the one gathered
    /// on top of it along, answered with its error: the stage then puts
    /// its ledger back and reads its state back. Either way, the stage
    /// [`Commits::take`]s the next group after.
    pub fn written<U>(&mut self, Written { epoch, failed }: Written<E, U>) -> Option<Option<U>> {
        if epoch != self.epoch {
            return None;
        }
        Some(failed.map(|(e, undo)| {
            self.fail(&e);
            undo
        }))
    }

    /// The stage restarts: the group gathering goes (its changes with the
    /// state in memory), answered `error`.
    pub fn restarted(&mut self, error: &E) {
        self.epoch += 1;
        self.busy = false;
        self.fail(error);
    }

    fn fail(&mut self, error: &E) {
        self.records.clear();
        self.beside.clear();
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    /// Resolves once no group is being written: a stage reads its state
    /// back after this.
    pub fn landed(&self) -> impl Future<Output = ()> + 'static {
        let writing = self.writing.clone();
        async move {
            let _landed = writing.lock_owned().await;
        }
    }
}

impl<E: Clone> Batch<E> {
    /// Writes the group through `save` (its records, then those beside),
    /// answers every request in it, and answers how it went: `restarted`
    /// if the storage stage restarted on it, else `failed` with why.
    async fn write(
        self,
        save: Recipient<SaveState>,
        restarted: fn(Panicked) -> E,
        failed: fn(String) -> E,
    ) -> Result<(), E> {
        let _writing = match self.held {
            Some(held) => held,
            None => self.writing.lock_owned().await,
        };
        let mut records = self.records;
        records.extend(self.beside);
        let written = match save.send(SaveState(records)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(storage::Error::Restarted(p))) => Err(restarted(p)),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(e) => Err(failed(e.to_string())),
        };
        for waiter in self.waiters {
            let _ = waiter.send(written.clone());
        }
        written
    }
}

impl<E: Clone + Send + 'static> Batch<E> {
    /// Writes the group through `save` (its records, then those beside)
    /// apart from the actor, on the arbiter; answers every request in it;
    /// then tells the stage how it went, with `undo` if it failed: with
    /// `restarted` if the storage stage restarted on it, else `failed`
    /// with why.
    pub fn spawn<U: Send + 'static>(
        self,
        save: Recipient<SaveState>,
        (restarted, failed): Errors<E>,
        undo: U,
        tell: Recipient<Written<E, U>>,
    ) {
        let epoch = self.epoch;
        actix::spawn(async move {
            let written = self.write(save, restarted, failed).await;
            tell.do_send(Written {
                epoch,
                failed: written.err().map(|e| (e, undo)),
            });
        });
    }
}
