//! A stage's group commit, for stages that persist what a request changed
//! before they answer it (the crypto stage does; the membership stage does
//! not yet). While one
//! group of changes is being written, the stage's mailbox goes on, and what
//! the next requests change gathers into the next group, written as one
//! transaction once the first is done. Groups land in the order they were
//! made, so storage always holds a state the stage was in; a group that is
//! not written fails the one gathered on top of it.
//!
//! The stage owns a [`Commits`]: [`Commits::add`] for each change,
//! [`Commits::take`] to take a group to write (the stage adds what belongs
//! to its ledger, then [`Batch::write`]s it apart from the actor, so that a
//! restart meanwhile neither drops the answers nor reads the state back
//! before the write landed: [`Commits::landed`]), [`Commits::written`] when
//! it is done, [`Commits::restarted`] when the stage restarts.

use std::{future::Future, sync::Arc};

use actix::{MailboxError, Recipient};
use futures::{
    channel::oneshot,
    lock::{Mutex, OwnedMutexGuard},
};

use crate::storage::{self, SaveState};

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

    /// The group of `epoch` was written, or `failed`. False when it was
    /// written before a restart (nothing to do). A failed group takes the
    /// one gathered on top of it along, answered with its error: the
    /// stage then puts its ledger back and reads its state back.
    pub fn written(&mut self, epoch: u64, failed: Option<&E>) -> bool {
        if epoch != self.epoch {
            return false;
        }
        if let Some(e) = failed {
            self.fail(e);
        }
        true
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
    /// The group's epoch, for [`Commits::written`].
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Writes the group through `save` (its records, then those beside),
    /// answers every request in it, and answers how it went; `outcome`
    /// puts the storage stage's answer in the stage's terms.
    pub async fn write(
        self,
        save: Recipient<SaveState>,
        outcome: impl FnOnce(Result<Result<(), storage::Error>, MailboxError>) -> Result<(), E>,
    ) -> Result<(), E> {
        let _writing = match self.held {
            Some(held) => held,
            None => self.writing.lock_owned().await,
        };
        let mut records = self.records;
        records.extend(self.beside);
        let written = outcome(save.send(SaveState(records)).await);
        for waiter in self.waiters {
            let _ = waiter.send(written.clone());
        }
        written
    }
}
