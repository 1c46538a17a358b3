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
    held: usize,
}

impl Tasks {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            set: FuturesUnordered::new(),
            limit,
            held: 0,
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

    /// Starts `work` holding `units`, for which the caller made sure of
    /// room (see [`Tasks::room`]).
    pub(crate) fn start_holding<F>(&mut self, work: F, units: usize)
    where
        F: Future<Output = ()> + Send + 'static,
    {
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
        self.limit.saturating_sub(self.held)
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
    async fn a_task_holding_many_units_fills_the_bound_until_it_finishes() {
        let mut tasks = Tasks::new(4);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.start_holding(
            async move {
                let _ = rx.await;
            },
            3,
        );
        assert_eq!(tasks.room(), 1);
        assert!(tasks.start(std::future::ready(())).is_ok());
        assert!(tasks.is_full());
        assert!(tasks.start(std::future::ready(())).is_err());
        // The one-unit task finishes first; the three stay held.
        tasks.next().await;
        assert_eq!(tasks.room(), 1);
        tx.send(()).unwrap();
        tasks.next().await;
        assert_eq!(tasks.room(), 4);
        assert!(tasks.is_empty());
    }
}
