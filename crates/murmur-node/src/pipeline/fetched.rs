//! Pages a store node returned: archived in one request, then settled one
//! message at a time in the page's order.

use std::collections::VecDeque;

use super::*;

/// Whether a message a store node returned is archived: a store node kept
/// it, however old; but not one from the future, which retention would
/// never let go.
pub(super) fn keeps_fetched(delivery: &Delivery) -> bool {
    let ahead = delivery.message.timestamp.is_some_and(|ts| {
        ts.saturating_sub(murmur_core::now_nanos()) > murmur_core::store::ARCHIVE_WINDOW_NANOS
    });
    !delivery.message.is_ephemeral() && !ahead
}

/// What is left to do with a fetched message.
#[derive(Clone, Copy)]
enum Step {
    /// Not kept: delivered as it is.
    Deliver,
    /// The archive answered whether it was new.
    Archived(bool),
    /// The page was refused for one message the archive cannot hold: the
    /// others archived alone, as a single fetched message is.
    Alone,
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
            self.settle(steps, ctx);
            return;
        };
        let asked = kept.len();
        let save = storage.save_all.send(storage::SaveAll(kept));
        ctx.wait(save.into_actor(self).map(move |saved, act, ctx| {
            // What becomes of the kept messages when there is no answer
            // for each.
            let (mut answers, otherwise) = match saved {
                Ok(Ok(new)) if new.len() == asked => (Some(new.into_iter()), Step::Deliver),
                Ok(Ok(new)) => {
                    tracing::error!(
                        asked,
                        answered = new.len(),
                        "the storage stage answered another count; delivering the page as not archived"
                    );
                    (None, Step::Deliver)
                }
                // One the archive cannot hold refused the page before
                // anything was written: the others are archived alone.
                Ok(Err(e @ storage::Error::Unstorable(_))) => {
                    tracing::debug!(messages = asked, error = %e, "a fetched page refused; archiving its messages one by one");
                    (None, Step::Alone)
                }
                // Perhaps written before it failed (a restart that lost the
                // answer): archived again, each would be "not new" and none
                // delivered. Delivered as not archived, as a single message.
                Ok(Err(e)) => {
                    tracing::warn!(messages = asked, error = %e, "a fetched page not archived; delivering it anyway");
                    (None, Step::Deliver)
                }
                // The stage is gone: delivered as a single message would be.
                Err(_) => (None, Step::Deliver),
            };
            let steps = page
                .into_iter()
                .zip(keep)
                .map(|(delivery, kept)| {
                    let step = match answers.as_mut() {
                        _ if !kept => Step::Deliver,
                        Some(answers) => Step::Archived(answers.next().unwrap_or(true)),
                        None => otherwise,
                    };
                    (delivery, step)
                })
                .collect();
            act.settle(steps, ctx);
        }));
    }

    /// Settles the first of `steps`, the rest after it. Settling one may
    /// make the mailbox wait (a full lane, a durable subscriber's write), and
    /// actix runs the newest wait first: the rest waits in line before the
    /// first is settled, so that what settling it queued comes before them.
    fn settle(&mut self, mut steps: VecDeque<(Delivery, Step)>, ctx: &mut Context<Self>) {
        let Some((delivery, step)) = steps.pop_front() else {
            return;
        };
        if !steps.is_empty() {
            ctx.wait(fut::ready(()).map(move |(), act: &mut Self, ctx| act.settle(steps, ctx)));
        }
        match step {
            Step::Deliver => self.deliver(delivery, ctx),
            Step::Archived(new) => self.archived(delivery, new, ctx),
            Step::Alone => self.archive_and_deliver(delivery, true, ctx),
        }
    }
}
