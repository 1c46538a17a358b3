//! Work the swarm driver starts per request or per message (a store query,
//! a lightpush, a filter request, a metadata exchange, the archiving of a
//! relay message before it is accepted), polled on the driver's task beside
//! the swarm, in a bounded set: past the bound, work is refused at once (an
//! asker gets `transport::Error::Busy`, a relay message is let go unforwarded
//! and counted), never queued without end.

use std::{future::Future, pin::Pin};

use futures::{stream::FuturesUnordered, StreamExt};

/// Tasks in flight at most, by default.
pub(crate) const LIMIT: usize = 4096;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The driver's work in flight.
pub(crate) struct Tasks {
    set: FuturesUnordered<Task>,
    limit: usize,
}

impl Tasks {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            set: FuturesUnordered::new(),
            limit,
        }
    }

    /// Starts `work` if there is room; gives it back if not.
    pub(crate) fn start<F>(&mut self, work: F) -> Result<(), F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.is_full() {
            return Err(work);
        }
        self.set.push(Box::pin(work));
        Ok(())
    }

    pub(crate) fn is_full(&self) -> bool {
        self.set.len() >= self.limit
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Drives the work in flight; resolves when one task finished.
    pub(crate) async fn next(&mut self) {
        self.set.next().await;
    }
}
