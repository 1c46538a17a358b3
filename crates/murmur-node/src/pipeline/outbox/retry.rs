//! The outbox's retry: what waits in it offered to the network again at
//! each tick, stamped again when it waited too long, archived once out.

use super::*;

impl Pipeline {
    pub(super) fn retry_outbox(&mut self, ctx: &mut Context<Self>) {
        let (Some(outbox), Some(transport)) = (self.outbox.clone(), self.transport.as_ref()) else {
            return;
        };
        if self.sends.retrying {
            return;
        }
        self.sends.retrying = true;
        let marks = self.sends.take_marks();
        let busy: HashSet<MessageHash> = self.sends.unmarked.keys().copied().collect();
        let publish = transport.publish.clone();
        let archive = self.storage.as_ref().map(|s| s.save_raw.clone());
        let pipeline = ctx.address();
        let retry = async move {
            // All at once, so that the storage stage commits them in a few
            // group writes; one after another, each would be a write of
            // its own, and a busy relay's outbox would grow faster than
            // its ticks empty it.
            for marks in marks.chunks(MARKS_AT_ONCE) {
                let marking = marks
                    .iter()
                    .map(|hash| outbox.mark_sent.send(storage::MarkSent(*hash)));
                futures::future::join_all(marking).await;
            }
            let Ok(Ok(pending)) = outbox.pending.send(storage::Pending).await else {
                return 0;
            };
            let pending: Vec<Delivery> = pending
                .into_iter()
                .filter(|d| !busy.contains(&d.hash))
                .collect();
            let mut sent = 0;
            let mut rest = pending.as_slice();
            // The oldest alone first: while nobody takes it, nothing else
            // is stamped again or offered (through an outage, each tick
            // would otherwise stamp a whole chunk again).
            let mut at_once = 1;
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at(at_once.min(rest.len()));
                (rest, at_once) = (after, RETRIED_AT_ONCE);
                let (chunk, failed) = restamp(chunk, &outbox).await;
                let mut offered = Vec::with_capacity(chunk.len());
                // Up to one that could not be stamped again: it waits for
                // the next tick, and what is behind it with it.
                let offerable = failed.unwrap_or(chunk.len());
                let mut chunk = chunk.into_iter();
                for (queued_as, d) in chunk.by_ref().take(offerable) {
                    let attempt = again(&d, &outbox, &publish).await;
                    let still = matches!(attempt, Attempt::Queued(_));
                    offered.push((queued_as, d, attempt));
                    // Still nobody to publish to: the next tick tries again.
                    if still {
                        break;
                    }
                }
                // What went out is archived together, in a few group
                // writes, before its state says so.
                if let Some(archive) = &archive {
                    let archiving = offered
                        .iter()
                        .filter(|(_, d, attempt)| {
                            matches!(attempt, Attempt::Published(_))
                                && murmur_core::store::archivable(&d.message)
                        })
                        .map(|(_, d, _)| archive.send(storage::SaveRaw(d.clone())));
                    futures::future::join_all(archiving).await;
                }
                let still =
                    failed.is_some() || matches!(offered.last(), Some((_, _, Attempt::Queued(_))));
                for (hash, _, attempt) in offered {
                    if matches!(attempt, Attempt::Published(_)) {
                        sent += 1;
                    }
                    pipeline.do_send(Attempted {
                        hash,
                        outcome: attempt,
                        entered: true,
                    });
                }
                // Stamped again and not offered yet: their states follow
                // them to the hash they wait under now.
                for (queued_as, d) in chunk.filter(|(queued_as, d)| *queued_as != d.hash) {
                    pipeline.do_send(Attempted {
                        hash: queued_as,
                        outcome: Attempt::Queued(d.hash),
                        entered: true,
                    });
                }
                if still {
                    break;
                }
            }
            sent
        };
        ctx.spawn(retry.into_actor(self).map(|sent, act, _| {
            act.sends.retrying = false;
            if sent > 0 {
                tracing::info!(sent, "queued messages published");
            }
        }));
    }
}

/// Stamps again what waited in the outbox too long to go out as it is:
/// each new entry in the turn of the one it replaces, which goes in the
/// same write (`Enqueue::in_place_of`), so that an outage, through which
/// each tick stamps the oldest again, does not rotate the queue. All are
/// asked for at once, so that the storage stage commits them in a few
/// group writes, before any is offered. Each gets a stamp of its own (a
/// nanosecond apart), so that two alike in all else stay two messages.
///
/// Answers each message with the hash it was queued under, and the index
/// of the first whose new entry could not be written, if one could not
/// (it stays under its old hash, as it is).
async fn restamp(
    chunk: &[Delivery],
    outbox: &Outbox,
) -> (Vec<(MessageHash, Delivery)>, Option<usize>) {
    let now = murmur_core::now_nanos();
    let mut late = 0;
    let mut restamped = Vec::with_capacity(chunk.len());
    for d in chunk {
        if (d.message.timestamp).is_some_and(|t| now.saturating_sub(t) > RESTAMP_AFTER) {
            let stamp = now.saturating_add(late);
            late += 1;
            let message = d.message.clone().with_timestamp(stamp);
            restamped.push((d.hash, Delivery::new(d.pubsub_topic.clone(), message)));
        } else {
            restamped.push((d.hash, d.clone()));
        }
    }
    let entering = restamped
        .iter()
        .filter(|(queued_as, d)| *queued_as != d.hash)
        .map(|(queued_as, d)| {
            let enqueue = storage::Enqueue::new(d.pubsub_topic.clone(), d.message.clone());
            outbox.enqueue.send(enqueue.in_place_of(*queued_as))
        });
    let mut entered = futures::future::join_all(entering).await.into_iter();
    let mut failed = None;
    let mut left = Vec::new();
    for (i, (queued_as, d)) in restamped.iter_mut().enumerate() {
        if *queued_as == d.hash {
            continue;
        }
        if matches!(entered.next(), Some(Ok(Ok(_)))) {
            left.push(*queued_as);
        } else {
            failed.get_or_insert(i);
            *d = chunk[i].clone();
        }
    }
    // A stage that does not know `in_place_of` (one written before it)
    // would keep the old entry too and offer it again at every tick; it
    // goes now, after its new entry is in.
    let leaving = left
        .iter()
        .map(|hash| outbox.mark_sent.send(storage::MarkSent(*hash)));
    futures::future::join_all(leaving).await;
    (restamped, failed)
}

/// Offers one queued message to the network again; answers what came of
/// it (a lasting refusal takes it out of the outbox).
async fn again(d: &Delivery, outbox: &Outbox, publish: &Recipient<Publish>) -> Attempt {
    let answer = publish
        .send(Publish::new(d.pubsub_topic.clone(), d.message.clone()))
        .await;
    match Attempt::of(answer, d.hash) {
        Ok(attempt) => attempt,
        Err(e) => {
            let _ = outbox.mark_sent.send(storage::MarkSent(d.hash)).await;
            Attempt::Refused(e.to_string())
        }
    }
}
