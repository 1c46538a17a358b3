//! Work the swarm driver starts per request or per message (a store query,
//! a lightpush, a filter request, a metadata exchange, the archiving of the
//! relay messages that arrived at once before they are accepted), polled on
//! the driver's task beside the swarm, in a bounded set: past the bound,
//! work is refused at once (an asker gets `transport::Error::Busy`, a relay
//! message is let go unforwarded and counted), never queued without end.
//!
//! The bound counts units of work, not tasks: a task archiving forty relay
//! messages holds forty, so that gathering messages into one task does not
//! let more of them wait than when each had a task of its own.

use std::{future::Future, pin::Pin};

use futures::{stream::FuturesUnordered, FutureExt, StreamExt};

/// Units of work in flight at most, by default.
pub(crate) const LIMIT: usize = 4096;

/// A task's future, answering the units of work it held.
type Task = Pin<Box<dyn Future<Output = usize> + Send>>;

/// The driver's work in flight.
pub(crate) struct Tasks {
    set: FuturesUnordered<Task>,
    limit: usize,
    /// Units the tasks in flight hold.
    held: usize,
    /// Units kept for a task about to start ([`Tasks::reserve`]).
    reserved: usize,
}

impl Tasks {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            set: FuturesUnordered::new(),
            limit,
            held: 0,
            reserved: 0,
        }
    }

    /// Starts `work`, one unit, if there is room; gives it back if not.
    pub(crate) fn start<F>(&mut self, work: F) -> Result<(), F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.is_full() {
            return Err(work);
        }
        self.push(work, 1);
        Ok(())
    }

    /// Keeps one unit for a task about to start with
    /// [`Tasks::start_reserved`]; `false` if there is no room.
    pub(crate) fn reserve(&mut self) -> bool {
        if self.is_full() {
            return false;
        }
        self.reserved += 1;
        true
    }

    /// Starts `work` holding the `units` reserved for it.
    pub(crate) fn start_reserved<F>(&mut self, work: F, units: usize)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        debug_assert!(
            units <= self.reserved,
            "{units} units started, {} reserved",
            self.reserved
        );
        self.reserved -= units.min(self.reserved);
        self.push(work, units);
    }

    fn push<F>(&mut self, work: F, units: usize)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.held += units;
        self.set.push(Box::pin(work.map(move |()| units)));
    }

    /// Units of work that could start now.
    pub(crate) fn room(&self) -> usize {
        self.limit.saturating_sub(self.held + self.reserved)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.room() == 0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Drives the work in flight; resolves when one task finished.
    pub(crate) async fn next(&mut self) {
        if let Some(units) = self.set.next().await {
            self.held -= units;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn units_reserved_and_held_fill_the_bound_until_their_task_finishes() {
        let mut tasks = Tasks::new(4);
        assert!(tasks.reserve() && tasks.reserve() && tasks.reserve());
        // Reserved units count before their task starts: one left.
        assert_eq!(tasks.room(), 1);
        assert!(tasks.start(std::future::ready(())).is_ok());
        assert!(tasks.is_full());
        assert!(!tasks.reserve(), "no room to reserve");
        assert!(tasks.start(std::future::ready(())).is_err());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.start_reserved(
            async move {
                let _ = rx.await;
            },
            3,
        );
        assert!(tasks.is_full());
        // The one-unit task finishes first; the three stay held.
        tasks.next().await;
        assert_eq!(tasks.room(), 1);
        tx.send(()).unwrap();
        tasks.next().await;
        assert_eq!(tasks.room(), 4);
        assert!(tasks.is_empty());
    }
}
