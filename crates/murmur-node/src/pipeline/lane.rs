//! The chat lane: deliveries for chat opened in arrival order beside the
//! mailbox, each handled to the end before the next; what waits in it
//! handed to the crypto stage together; what the lane owes for what it
//! handled (receipts, kept plaintexts to let go, messages on their way to
//! the durable inbox) settled once it runs dry.

use std::task::Poll;

use super::*;

/// A step of the lane: what opening one delivery leads to, finished before
/// the next delivery is opened.
pub(super) type Step = Pin<Box<dyn ActorFuture<Pipeline, Output = ()>>>;

/// Messages one receipt acknowledges at most, and kept plaintexts let go
/// of in one request at most.
pub(super) const OWED: usize = 64;

/// What the lane owes for what it handled, settled when it runs dry (or
/// when there is much of it): receipts, by sender, and the kept plaintexts
/// to let go of. Under load, many messages share each.
#[derive(Default)]
pub(super) struct Owed {
    pub(super) receipts: HashMap<AccountId, Vec<MessageId>>,
    /// Receipts being sent: each answers once it is in the outbox (or
    /// failed, which is logged). Kept plaintexts are let go only once the
    /// receipts sent before them are done, so that a process that dies
    /// between the two handles the messages again at start and sends their
    /// receipts then.
    pub(super) sending: Vec<tokio::sync::oneshot::Receiver<()>>,
    pub(super) crypto: Vec<MessageHash>,
    pub(super) group: Vec<MessageHash>,
    /// Kept plaintexts that hold several messages, and how many of them
    /// are not handled yet: one not written to the durable inbox keeps
    /// the plaintext, and the whole batch comes again at the next start
    /// (what was written is not handed out twice).
    pub(super) parts: HashMap<Journal, usize>,
    /// Whether the lane is being driven now; outside it nothing waits.
    pub(super) driving: bool,
    /// Messages on their way into the durable inbox, in the lane's order.
    pub(super) delivering: VecDeque<Delivering>,
}

impl Owed {
    /// A kept plaintext holds `messages` chat messages: it goes once every
    /// one of them is handled (a batch), not with the first.
    pub(super) fn expect(&mut self, journal: Journal, messages: usize) {
        if messages > 1 {
            *self.parts.entry(journal).or_default() += messages;
        }
    }
}

/// A message being written to the durable inbox.
pub(super) struct Delivering {
    pub(super) message: ChatMessage,
    pub(super) seq: u64,
    pub(super) journal: Journal,
    pub(super) saved: Pin<Box<dyn Future<Output = Result<(), Error>>>>,
}

pub(super) fn done() -> Step {
    Box::pin(actix::fut::ready(()))
}

/// The pipeline's chat lane at work: spawned once per context, it never
/// ends. The step in flight is the actor's, not this future's, so that
/// whoever waits for room in the lane can move it on too.
pub(super) struct Lane;

impl ActorFuture<Pipeline> for Lane {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut Pipeline,
        ctx: &mut Context<Pipeline>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        act.drive_lane(ctx, task);
        Poll::Pending
    }
}

/// A delivery waiting for room in the full lane. The mailbox waits with it
/// (`Context::wait`), and while it waits actix polls nothing else of the
/// actor, the lane's own reader included: so this future moves the lane on
/// itself until there is room.
pub(super) struct Room(pub(super) Option<Delivery>);

impl ActorFuture<Pipeline> for Room {
    type Output = ();

    fn poll(
        mut self: Pin<&mut Self>,
        act: &mut Pipeline,
        ctx: &mut Context<Pipeline>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        loop {
            let Some(delivery) = self.0.take() else {
                return Poll::Ready(());
            };
            match act.lane.try_send(delivery) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return Poll::Ready(()),
                Err(mpsc::error::TrySendError::Full(delivery)) => self.0 = Some(delivery),
            }
            let room = act.lane.capacity();
            act.drive_lane(ctx, task);
            if act.lane.capacity() == room {
                // The step in flight is pending: it wakes this task.
                return Poll::Pending;
            }
        }
    }
}

/// A delivery handed to the stage that opens it, its answer to come.
pub(super) enum Opening {
    /// A pairwise envelope, with the crypto stage.
    Pairwise(Answer<Result<crypto::Opened, crypto::Error>>),
    /// A group message, with the membership stage.
    Group(Answer<Result<groups::Opened, groups::Error>>),
}

/// A stage's answer to come.
pub(super) type Answer<T> = Pin<Box<dyn Future<Output = Result<T, MailboxError>>>>;

/// Deliveries taken from the lane ahead of the one being handled, at most.
const AHEAD: usize = 64;

impl Pipeline {
    /// Moves the lane on: finishes the step in flight, then opens the next
    /// delivery, until a step is pending or the lane is empty.
    ///
    /// Deliveries waiting in the lane are handed to the stage that opens
    /// them together, before the first of them is handled: the stage
    /// opens them in arrival order as before, and writes what they change
    /// as one group instead of one write each. Each is still handled to
    /// the end, in order, before the next. A group message goes ahead only
    /// behind group messages: a pairwise one before it may carry what it
    /// needs (a chain key, the group's log), given to the membership stage
    /// only once that one is handled.
    pub(super) fn drive_lane(
        &mut self,
        ctx: &mut Context<Self>,
        task: &mut std::task::Context<'_>,
    ) {
        self.driving(true);
        loop {
            self.settle_deliveries(ctx, task);
            if let Some(mut step) = self.lane_step.take() {
                if step.as_mut().poll(self, ctx, task).is_pending() {
                    self.lane_step = Some(step);
                    self.driving(false);
                    return;
                }
            }
            while self.lane_ahead.len() < AHEAD {
                let Poll::Ready(Some(delivery)) = self.lane_rx.poll_recv(task) else {
                    break;
                };
                self.lane_ahead.push_back((delivery, None));
            }
            self.hand_on();
            let writing = self.writing();
            // With enough on its way to the inbox, the next waits for it.
            if writing < OWED {
                if let Some((delivery, opening)) = self.lane_ahead.pop_front() {
                    self.lane_step = Some(self.open(delivery, opening, ctx));
                    continue;
                }
            }
            // Nothing to open now. What the last step sent to the inbox is
            // polled too (its write wakes the lane).
            self.settle_deliveries(ctx, task);
            let still = self.writing();
            if still < writing {
                continue;
            }
            self.driving(false);
            if still == 0 {
                // The lane ran dry: what it handled is settled (receipts
                // first, see `let_go`).
                self.let_go(ctx);
            }
            return;
        }
    }

    /// Messages on their way to the durable inbox.
    fn writing(&self) -> usize {
        self.chat.as_ref().map_or(0, |c| c.owed.delivering.len())
    }

    fn driving(&mut self, driving: bool) {
        if let Some(chat) = self.chat.as_mut() {
            chat.owed.driving = driving;
        }
    }

    /// Hands what waits in the lane to the stages that open it (see
    /// [`Pipeline::drive_lane`]): every pairwise envelope, and the group
    /// messages with only group messages before them.
    fn hand_on(&mut self) {
        let Some(chat) = self.chat.as_ref() else {
            return;
        };
        let mut behind_pairwise = false;
        for (delivery, opening) in &mut self.lane_ahead {
            let group = chat.group_topics.contains(&delivery.message.content_topic);
            if opening.is_none() && !(group && behind_pairwise) {
                *opening = Self::opening(chat, delivery.clone());
            }
            behind_pairwise |= !group;
        }
    }

    /// `delivery` in the mailbox of the stage that opens it now, asked
    /// again if that stage restarted on it; `None` for a group message on
    /// a node without a membership stage.
    pub(super) fn opening(chat: &Chat, delivery: Delivery) -> Option<Opening> {
        if !chat.group_topics.contains(&delivery.message.content_topic) {
            return Some(Opening::Pairwise(Box::pin(ask_now(
                chat.crypto.open.clone(),
                crypto::Open(delivery),
                |r| matches!(r, Err(crypto::Error::Restarted(_))),
            ))));
        }
        let groups = chat.groups.clone()?;
        Some(Opening::Group(Box::pin(ask_now(
            groups.open,
            groups::Open(delivery),
            groups_restarted,
        ))))
    }
}

impl Pipeline {
    /// Acknowledges what the lane read, one envelope per sender (of `only`,
    /// or of every sender owed one): under load many messages share a
    /// receipt, and so its sealing, publishing and archiving on both sides.
    pub(super) fn send_receipts(&mut self, only: Option<AccountId>, ctx: &mut Context<Self>) {
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let owed: Vec<(AccountId, Vec<MessageId>)> = match only {
            Some(sender) => chat
                .owed
                .receipts
                .remove_entry(&sender)
                .into_iter()
                .collect(),
            None => chat.owed.receipts.drain().collect(),
        };
        let (seal, sharding, outbox) = (
            chat.crypto.seal.clone(),
            chat.sharding.clone(),
            chat.outbox.clone(),
        );
        let mut sending = Vec::with_capacity(owed.len());
        for (sender, ids) in owed {
            // Asked for each receipt: one the mailbox itself waits for (no
            // room beside it) must not publish through the mailbox.
            let publisher = self.mailbox(ctx).publisher();
            let publish = publish_sealed(
                seal.clone(),
                crypto::Seal::new(sender, chat::encode_receipt(&ids)),
                sharding.clone(),
                outbox.clone(),
                publisher,
            );
            let (done, finished) = tokio::sync::oneshot::channel();
            sending.push(finished);
            self.background(ctx, "a receipt", async move {
                let published = publish.await;
                let _ = done.send(());
                published
            });
        }
        if let Some(chat) = self.chat.as_mut() {
            chat.owed.sending.append(&mut sending);
        }
    }
}
