//! Work the pipeline starts for a message and does not wait for in its
//! mailbox (a receipt to seal and send, group keys after a membership change,
//! the crypto stage's answers, archiving its own published message): run
//! beside the mailbox, a bounded number at a time from a bounded queue.
//! When the queue is full, the pipeline does the work itself before it
//! handles its next message (back-pressure on what arrives), or hands it to
//! the caller who waits for it; nothing is spawned without a bound.

use std::{future::Future, pin::Pin};

use actix::prelude::*;
use futures::{stream::FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

/// Work waiting to run, at most.
const QUEUE: usize = 1024;
/// Work running at once, at most.
const RUNNING: usize = 256;

/// One piece of work. The pipeline's futures stay on its thread.
pub(crate) type Work = Pin<Box<dyn Future<Output = ()>>>;

/// The queue of work beside a pipeline.
pub(crate) struct Background {
    queue: mpsc::Sender<Work>,
}

impl Background {
    /// A queue nobody runs yet: what a pipeline holds until it starts.
    pub(crate) fn idle() -> Self {
        Self {
            queue: mpsc::channel(1).0,
        }
    }

    /// Starts the runner as a future of `ctx`'s actor: it goes with the
    /// actor's restart (the work still queued then is let go, logged), and
    /// the restarted actor starts a new one.
    pub(crate) fn start<A>(act: &A, ctx: &mut Context<A>) -> Self
    where
        A: Actor<Context = Context<A>>,
    {
        let (queue, waiting) = mpsc::channel(QUEUE);
        ctx.spawn(run(waiting).into_actor(act));
        Self { queue }
    }

    /// Whether there is room for one more piece of work.
    pub(crate) fn has_room(&self) -> bool {
        self.queue.capacity() > 0 && !self.queue.is_closed()
    }

    /// Queues `work`; gives it back when there is no room.
    pub(crate) fn offer(&self, work: Work) -> Result<(), Work> {
        self.queue.try_send(work).map_err(|e| match e {
            mpsc::error::TrySendError::Full(w) | mpsc::error::TrySendError::Closed(w) => w,
        })
    }
}

async fn run(mut waiting: mpsc::Receiver<Work>) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            next = waiting.recv(), if running.len() < RUNNING => match next {
                Some(work) => running.push(work),
                None => break,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
    while running.next().await.is_some() {}
}
