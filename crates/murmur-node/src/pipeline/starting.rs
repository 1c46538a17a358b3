//! What arrives while the node is being assembled. The transport and the
//! store-sync stage run before the builder has attached the chat stages
//! and the durable inboxes, and messages can come at once: a filter
//! service that still holds a light client's subscription from before its
//! restart pushes to it as soon as it connects. Handled then, a chat
//! message would find no chat stage, or no durable inbox to keep it in,
//! and be handed on to no one; and, seen, it would not be taken again in
//! this run. So messages are held, in arrival order, until the builder
//! says every stage is attached ([`Started`]).

use super::*;

/// Messages held at most (a page a store node returned counts each of its
/// messages). Only remote peers pushing in the moment the node starts fill
/// it; what comes beyond is dropped and counted in the log. A store round
/// brings back what of it this node never archived; a message the
/// transport archived before it reported it (a lightpush this node served)
/// is handed on to no subscriber then.
const HELD: usize = 4096;

/// What arrived before [`Started`].
#[derive(Default)]
pub(super) struct Held {
    events: VecDeque<transport::Event>,
    /// Messages held.
    messages: usize,
    /// Messages that found it full.
    dropped: usize,
}

impl Pipeline {
    /// Holds `event` if it carries a message and the pipeline is not
    /// started yet; gives it back otherwise.
    pub(super) fn hold(&mut self, event: transport::Event) -> Option<transport::Event> {
        let Some(held) = self.starting.as_mut() else {
            return Some(event);
        };
        let messages = match &event {
            transport::Event::FetchedPage(page) => page.len(),
            transport::Event::Message(_)
            | transport::Event::Fetched(_)
            | transport::Event::Pushed(_)
            | transport::Event::Archived(_) => 1,
            _ => return Some(event),
        };
        if held.messages + messages <= HELD {
            held.messages += messages;
            held.events.push_back(event);
        } else {
            held.dropped += messages;
        }
        None
    }
}

/// Every stage is attached: what arrived meanwhile is handled, in order,
/// and what arrives from now on at once. The builder sends it once.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Started;

impl Handler<Started> for Pipeline {
    type Result = ();

    fn handle(&mut self, _: Started, ctx: &mut Context<Self>) {
        // Taken whatever the handler does: held on, every message after
        // would be held too.
        let Some(held) = self.starting.take() else {
            return;
        };
        let _ = supervise::guard(self, ctx, |this, ctx| {
            if held.dropped > 0 {
                tracing::warn!(
                    dropped = held.dropped,
                    "messages arrived faster than the node started; \
                     those never archived come with the next store round"
                );
            }
            // One after another: handled in one go, the newest archive wait
            // would run first.
            this.in_turn(held.events, ctx, Self::on_event);
        });
    }
}
