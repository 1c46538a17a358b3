//! What the pipeline archives before it delivers: a message (relay's when
//! the transport did not archive it, a store round's) archived by hash,
//! and pages a store node returned, archived in one request, then settled
//! one message at a time in the page's order.

use std::collections::VecDeque;

use super::*;

/// Whether a message a store node returned is archived: a store node kept
/// it, however old; but not one from the future, which retention would
/// never let go, nor one with a control character in its content topic,
/// which no store query may name (and which, a NUL, would make the archive
/// refuse its whole page; murmur's store clients drop such entries, a
/// transport of another's may not).
pub(super) fn keeps_fetched(delivery: &Delivery) -> bool {
    let ahead = delivery.message.timestamp.is_some_and(|ts| {
        ts.saturating_sub(murmur_core::now_nanos()) > murmur_core::store::ARCHIVE_WINDOW_NANOS
    });
    let unnamed = delivery.message.content_topic.chars().any(char::is_control);
    !delivery.message.is_ephemeral() && !ahead && !unnamed
}

/// What is left to do with a fetched message.
enum Step {
    /// Not kept, or the archive gave no answer for it: delivered as it is,
    /// once in this run.
    Deliver,
    /// The archive answered whether it was new.
    Archived(bool),
}

impl Pipeline {
    /// Archives what `page` keeps in one request, then settles each of its
    /// messages in order: delivered unless the archive had it.
    pub(super) fn archive_and_deliver_page(
        &mut self,
        page: Vec<Delivery>,
        ctx: &mut Context<Self>,
    ) {
        let keep: Vec<bool> = page.iter().map(keeps_fetched).collect();
        let kept: Vec<Delivery> = page
            .iter()
            .zip(&keep)
            .filter(|(_, keep)| **keep)
            .map(|(d, _)| d.clone())
            .collect();
        let Some(storage) = self.storage.as_ref().filter(|_| !kept.is_empty()) else {
            let steps = page.into_iter().map(|d| (d, Step::Deliver)).collect();
            self.in_turn(steps, ctx, Self::settle);
            return;
        };
        let asked = kept.len();
        let save = storage.save_all.send(storage::SaveAll(kept));
        ctx.wait(save.into_actor(self).map(move |saved, act, ctx| {
            // Without an answer for each, the page is delivered as not
            // archived, as a single message is. Not archived again one by
            // one: perhaps written before it failed (a restart that lost
            // the answer), each would be "not new" and none delivered.
            let mut answers = match saved {
                Ok(Ok(new)) if new.len() == asked => Some(new.into_iter()),
                Ok(Ok(new)) => {
                    tracing::error!(
                        asked,
                        answered = new.len(),
                        "the storage stage answered another count; delivering the page as not archived"
                    );
                    None
                }
                Ok(Err(e)) => {
                    tracing::warn!(messages = asked, error = %e, "a fetched page not archived; delivering it anyway");
                    None
                }
                Err(_) => None,
            };
            let steps = page
                .into_iter()
                .zip(keep)
                .map(|(delivery, kept)| {
                    let step = match answers.as_mut().filter(|_| kept) {
                        Some(answers) => Step::Archived(answers.next().unwrap_or(true)),
                        None => Step::Deliver,
                    };
                    (delivery, step)
                })
                .collect();
            act.in_turn(steps, ctx, Self::settle);
        }));
    }

    /// One message of a page, once the archive answered for the page.
    fn settle(&mut self, (delivery, step): (Delivery, Step), ctx: &mut Context<Self>) {
        match step {
            Step::Deliver => self.deliver_unarchived(delivery, ctx),
            Step::Archived(new) => self.archived(delivery, new, ctx),
        }
    }

    /// Handles the first of `items` with `handle`, the rest after it.
    /// Handling one may make the mailbox wait (its archiving, a full lane,
    /// a durable subscriber's write), and actix runs the newest wait first:
    /// the rest waits in line before the first is handled, so that what
    /// handling it queued comes before them.
    pub(super) fn in_turn<T: 'static>(
        &mut self,
        mut items: VecDeque<T>,
        ctx: &mut Context<Self>,
        handle: fn(&mut Self, T, &mut Context<Self>),
    ) {
        let Some(item) = items.pop_front() else {
            return;
        };
        if !items.is_empty() {
            ctx.wait(
                fut::ready(()).map(move |(), act: &mut Self, ctx| act.in_turn(items, ctx, handle)),
            );
        }
        handle(self, item, ctx);
    }

    /// Archives `delivery` by hash (if this node archives, and `keep`)
    /// before any subscriber sees it, and delivers it unless the archive
    /// had it already. The mailbox waits, so deliveries keep their order.
    pub(super) fn archive_and_deliver(
        &mut self,
        delivery: Delivery,
        keep: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(storage) = self.storage.as_ref().filter(|_| keep) else {
            self.deliver_unarchived(delivery, ctx);
            return;
        };
        let save = storage.save_raw.send(storage::SaveRaw(delivery.clone()));
        ctx.wait(save.into_actor(self).map(move |saved, act, ctx| match saved {
            Ok(Ok(new)) => act.archived(delivery, new, ctx),
            Ok(Err(e)) => {
                tracing::warn!(hash = %delivery.hash, error = %e, "not archived; delivering anyway");
                act.deliver_unarchived(delivery, ctx);
            }
            Err(_) => act.deliver_unarchived(delivery, ctx),
        }));
    }

    /// Goes on with `delivery` once the archive answered whether it was new.
    pub(super) fn archived(&mut self, delivery: Delivery, new: bool, ctx: &mut Context<Self>) {
        if new {
            // New to the archive, not to this run: handed on before the
            // archive would keep it (stamped ahead of the clock then).
            if self.unarchived.contains(&delivery.hash) {
                self.stats.duplicates += 1;
            } else {
                self.deliver(delivery, ctx);
            }
            return;
        }
        // Subscribers and hooks had it when it was archived; the lane and
        // the raw inbox perhaps not (a crash).
        let kept = self.keep_raw_again(&delivery, ctx);
        if self.for_lane_again(&delivery) {
            self.queue_for_lane(delivery, ctx);
        } else if !kept {
            self.stats.duplicates += 1;
        }
    }
}
