//! Handing events to the stage that started the node, with a backlog when
//! its mailbox is full.

use super::*;

/// Where events go.
pub(super) enum Sink {
    Channel(mpsc::Sender<Event>),
    Actor(Recipient<Event>),
}

/// What became of an event offered to the consumer.
// Lives for one match, never stored: boxing the event would cost more.
#[allow(clippy::large_enum_variant)]
pub(super) enum Offer {
    Taken,
    /// No room now; here it is back.
    Full(Event),
    /// The consumer is gone.
    Gone,
}

impl Sink {
    pub(super) fn offer(&self, event: Event) -> Offer {
        match self {
            Self::Channel(tx) => match tx.try_send(event) {
                Ok(()) => Offer::Taken,
                Err(mpsc::error::TrySendError::Full(event)) => Offer::Full(event),
                Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
            },
            Self::Actor(to) => match to.try_send(event) {
                Ok(()) => Offer::Taken,
                Err(SendError::Full(event)) => Offer::Full(event),
                Err(SendError::Closed(_)) => Offer::Gone,
            },
        }
    }
}

impl Driver {
    /// Hands an event to the consumer without waiting: what it cannot take now
    /// waits in a bounded backlog, in order; beyond that, deliveries are
    /// dropped and counted (gossip still forwards them to other peers).
    pub(super) fn emit(&mut self, event: Event) {
        self.flush();
        if self.backlog.is_empty() {
            match self.sink.offer(event) {
                Offer::Taken | Offer::Gone => return,
                Offer::Full(event) => self.backlog.push_back(event),
            }
        } else {
            self.backlog.push_back(event);
        }
        if self.backlog.len() > self.backlog_limit {
            if let Some(event) = self.backlog.pop_front() {
                self.metrics.inc_dropped();
                tracing::warn!(?event, "event consumer is behind; event dropped");
            }
        }
    }
    pub(super) fn flush(&mut self) {
        while let Some(event) = self.backlog.pop_front() {
            match self.sink.offer(event) {
                Offer::Taken => {}
                Offer::Full(event) => {
                    self.backlog.push_front(event);
                    return;
                }
                Offer::Gone => self.backlog.clear(),
            }
        }
    }
}
