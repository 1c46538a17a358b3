//! Relay messages archived before they are accepted (and so forwarded): a
//! message this node accepted survives a crash.
//!
//! The messages one wake-up of the swarm brings go to the archive together,
//! in one request ([`murmur_core::storage::SaveAll`]) from one task that
//! reports back once: a message apiece cost the driver a task, a report and
//! a turn of its loop (with a poll of the whole swarm) each, and the storage
//! stage a message, an answer and a wake-up each, where its writer commits
//! what is queued at once anyway.

use super::*;

/// A relay message waiting for its archiving, accepted after.
pub(super) struct Held {
    id: gossipsub::MessageId,
    source: PeerId,
    delivery: Delivery,
    arrived: Instant,
}

/// Whether an archived message was new; `Err` if the archive failed.
pub(super) type Saved = Result<bool, ()>;

impl Driver {
    /// Keeps `delivery` to be archived with the rest of this wake-up's, or
    /// lets it go unforwarded when the work in flight is at its bound
    /// (Ignore costs the sender nothing).
    pub(super) fn hold(&mut self, id: &gossipsub::MessageId, source: PeerId, delivery: Delivery) {
        if !self.tasks.reserve() {
            self.swarm
                .behaviour_mut()
                .relay
                .report_message_validation_result(id, &source, MessageAcceptance::Ignore);
            self.metrics.inc_dropped();
            tracing::warn!("too many relay messages being archived; one let go");
            return;
        }
        self.gathered.push(Held {
            id: id.clone(),
            source,
            delivery,
            arrived: Instant::now(),
        });
    }

    /// Sends what this wake-up gathered to the archive, as one task.
    pub(super) fn archive_gathered(&mut self) {
        let Some(archive) = self.archive.clone() else {
            return;
        };
        if self.gathered.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.gathered);
        let (units, myself, metrics) = (held.len(), self.myself.clone(), self.metrics.clone());
        let archiving = async move {
            let all = held.iter().map(|h| h.delivery.clone()).collect();
            let saved = match archive.send(murmur_core::storage::SaveAll(all)).await {
                Ok(Ok(new)) if new.len() == held.len() => new.into_iter().map(Ok).collect(),
                answer => {
                    if let Ok(Ok(new)) = answer {
                        tracing::error!(
                            asked = held.len(),
                            answered = new.len(),
                            "the storage stage answered an archive request for another count"
                        );
                    }
                    vec![Err(()); held.len()]
                }
            };
            let done = held
                .into_iter()
                .zip(saved)
                .map(|(held, saved)| {
                    metrics.archived_after(held.arrived.elapsed());
                    (held, saved)
                })
                .collect();
            myself.archived(done).await;
        };
        // `hold` reserved a unit for each.
        self.tasks.start_reserved(archiving, units);
    }

    /// Accepts what was archived, and hands it on.
    pub(super) fn on_archived(&mut self, done: Vec<(Held, Saved)>) {
        for (held, saved) in done {
            let Held {
                id,
                source,
                delivery,
                ..
            } = held;
            // Forwarded only now: what we accept is on disk first.
            self.swarm
                .behaviour_mut()
                .relay
                .report_message_validation_result(&id, &source, MessageAcceptance::Accept);
            match saved {
                Ok(true) => {
                    self.metrics.inc_received();
                    self.push_to_filter_subscribers(&delivery);
                    self.emit(Event::Archived(delivery));
                }
                // Archived before (a store sync, a lightpush relayed back):
                // already delivered here.
                Ok(false) => {}
                // The archive failed: the pipeline tries again and delivers.
                Err(()) => {
                    self.metrics.inc_received();
                    self.push_to_filter_subscribers(&delivery);
                    self.emit(Event::Message(delivery));
                }
            }
        }
    }
}
