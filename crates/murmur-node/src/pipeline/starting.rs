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

/// Messages held at most; what comes beyond is left to the store rounds
/// (nothing of it was archived or marked as seen, so a round takes it as
/// new).
const HELD: usize = 4096;

/// What arrived before [`Started`].
#[derive(Default)]
pub(super) struct Held {
    events: VecDeque<transport::Event>,
    /// Messages that found it full.
    dropped: u64,
}

impl Pipeline {
    /// Holds `event` if it carries a message and the pipeline is not
    /// started yet; gives it back otherwise.
    pub(super) fn hold(&mut self, event: transport::Event) -> Option<transport::Event> {
        let Some(held) = self.starting.as_mut() else {
            return Some(event);
        };
        match event {
            transport::Event::Message(_)
            | transport::Event::Fetched(_)
            | transport::Event::FetchedPage(_)
            | transport::Event::Pushed(_)
            | transport::Event::Archived(_) => {
                if held.events.len() < HELD {
                    held.events.push_back(event);
                } else {
                    held.dropped += 1;
                }
                None
            }
            other => Some(other),
        }
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
        let _ = supervise::guard(self, ctx, |this, ctx| {
            let Some(held) = this.starting.take() else {
                return;
            };
            if held.dropped > 0 {
                tracing::warn!(
                    dropped = held.dropped,
                    "messages arrived faster than the node started; \
                     the next store round brings them"
                );
            }
            for event in held.events {
                this.on_event(event, ctx);
            }
        });
    }
}
