//! Nothing lost between the stages and the application: what the crypto
//! and membership stages opened is kept by them until the chat message is
//! in the durable inbox (`crate::inbox`), then let go; what a previous run
//! left kept is handled again at start; durable subscribers get each
//! message with its sequence, and read on from the inbox when they fall
//! behind.

use std::sync::atomic::{AtomicBool, Ordering};

use super::lane::{done, Step};
use super::*;
use crate::inbox::{self, Book};

/// Which stage keeps an opened plaintext until the pipeline handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Journal {
    /// The crypto stage, by the envelope's hash.
    Crypto(MessageHash),
    /// The membership stage, by the group message's hash.
    Group(MessageHash),
}

/// Which durable inbox a subscriber reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// The chat inbox.
    Chat,
    /// The raw inbox.
    Raw,
}

/// A durable subscriber as the pipeline feeds it.
pub(crate) struct Tap<T> {
    tx: mpsc::Sender<(u64, T)>,
    /// Set when a message did not fit: the subscriber reads on from the
    /// inbox.
    missed: Arc<AtomicBool>,
}

impl<T: Clone> Tap<T> {
    /// A tap and the subscriber's end of it.
    pub(super) fn new(capacity: usize) -> (Self, mpsc::Receiver<(u64, T)>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let missed = Arc::new(AtomicBool::new(false));
        let tap = Self {
            tx,
            missed: missed.clone(),
        };
        (tap, rx, missed)
    }

    /// Hands the message on; answers whether the subscriber is still there.
    pub(super) fn offer(&self, seq: u64, message: &T) -> bool {
        match self.tx.try_send((seq, message.clone())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed.store(true, Ordering::Release);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Envelopes and group messages held because they are too far ahead of
/// their session or chain, at most.
const AHEAD: usize = 1024;
/// How long one is held before it counts as refused.
const AHEAD_FOR: std::time::Duration = std::time::Duration::from_secs(600);

impl Pipeline {
    /// Holds an envelope (or a group message) further ahead of its session
    /// (or chain) than a step may skip:
    /// the messages before it are on their way (a store round after an
    /// outage), and once they opened, so does it.
    pub(super) fn hold_ahead(&mut self, delivery: Delivery) {
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let now = std::time::Instant::now();
        let since = match chat.ahead_since.get(&delivery.hash) {
            Some(since) => *since,
            None => {
                self.stats.chat_ahead += 1;
                if chat.ahead_since.len() < 4 * AHEAD {
                    chat.ahead_since.insert(delivery.hash, now);
                }
                now
            }
        };
        if chat.ahead.len() >= AHEAD {
            if let Some((_, dropped)) = chat.ahead.pop_front() {
                self.stats.chat_refused += 1;
                tracing::warn!(hash = %dropped.hash, "too many envelopes ahead of their session; the oldest is dropped");
            }
        }
        tracing::debug!(hash = %delivery.hash, "an envelope ahead of its session is held");
        chat.ahead.push_back((since, delivery));
    }

    /// Offers the held envelopes to the lane again; those held too long
    /// count as refused.
    pub(super) fn retry_ahead(&mut self) {
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        chat.ahead_since
            .retain(|_, since| since.elapsed() <= AHEAD_FOR);
        let mut offered = std::mem::take(&mut chat.ahead);
        while let Some((since, delivery)) = offered.pop_front() {
            if since.elapsed() > AHEAD_FOR {
                self.stats.chat_refused += 1;
                tracing::warn!(hash = %delivery.hash, "an envelope ahead of its session never caught up; refused");
                continue;
            }
            match self.lane.try_send(delivery) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(delivery)) => {
                    offered.push_front((since, delivery));
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        // Not offered now: in front of what the lane holds again.
        offered.append(&mut chat.ahead);
        chat.ahead = offered;
    }

    /// The kept plaintext behind `journal` can go: the message is handled.
    /// Within the lane, it goes with the others the lane handled, once it
    /// runs dry (one write for many).
    pub(super) fn handled(&mut self, journal: Journal, ctx: &mut Context<Self>) {
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let owed = &mut chat.owed;
        if let Some(left) = owed.parts.get_mut(&journal) {
            *left -= 1;
            if *left > 0 {
                return;
            }
            owed.parts.remove(&journal);
        }
        match journal {
            Journal::Crypto(hash) => owed.crypto.push(hash),
            Journal::Group(hash) => owed.group.push(hash),
        }
        if !owed.driving || owed.crypto.len() + owed.group.len() >= super::lane::OWED {
            self.let_go(ctx);
        }
    }

    /// Lets go of the kept plaintexts of what was handled.
    ///
    /// The receipts owed for them are sent first, and a pairwise message's
    /// plaintext goes only once every receipt sent before it is done: in
    /// the outbox, or failed (and logged). A process that dies sooner
    /// handles the message again at start (the durable inbox keeps it
    /// once) and sends its receipt then. The wait is the actor's own
    /// future beside the mailbox, not work in the bounded queue, whose
    /// slots the receipts' publishing may need.
    pub(super) fn let_go(&mut self, ctx: &mut Context<Self>) {
        self.send_receipts(None, ctx);
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let group = std::mem::take(&mut chat.owed.group);
        let groups = chat.groups.clone();
        if !chat.owed.crypto.is_empty() {
            let crypto = std::mem::take(&mut chat.owed.crypto);
            let sending = std::mem::take(&mut chat.owed.sending);
            let handled = chat.crypto.handled.clone();
            let let_go = async move {
                for receipt in sending {
                    if receipt.await.is_err() {
                        tracing::warn!(
                            "a receipt's sending stopped unfinished: its messages' plaintexts \
                             are kept, and handled again at the next start"
                        );
                        return;
                    }
                }
                match handled.send(crypto::Handled(crypto)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "handled plaintexts not let go"),
                    Err(e) => tracing::warn!(error = %e, "handled plaintexts not let go"),
                }
            };
            ctx.spawn(let_go.into_actor(self));
        }
        if let (false, Some(groups)) = (group.is_empty(), groups) {
            let let_go =
                async move { Ok::<_, Error>(groups.handled.send(groups::Handled(group)).await??) };
            self.background(ctx, "letting handled group plaintexts go", let_go);
        }
    }

    /// Through the chat hooks, into the durable inbox, then to every inbox
    /// and durable subscriber; the kept plaintext goes once the message is
    /// in the durable inbox (or was there already, or a hook dropped it).
    pub(super) fn deliver_chat(
        &mut self,
        message: ChatMessage,
        journal: Journal,
        ctx: &mut Context<Self>,
    ) -> Step {
        let Ok(message) = self.run_hooks(
            message,
            "chat inbound",
            |hook, m| hook.chat_inbound(m),
            |m, body| m.body = body,
        ) else {
            self.handled(journal, ctx);
            return done();
        };
        let Some(chat) = self.chat.as_mut() else {
            return done();
        };
        let Some(book) = chat.book.as_mut() else {
            chat.deliver_to_inboxes(&message, None);
            self.handled(journal, ctx);
            return done();
        };
        let Some((seq, records)) = book.admit(&message) else {
            // Delivered before: a sender's retry, or a plaintext handled
            // again after a crash.
            self.stats.duplicates += 1;
            self.handled(journal, ctx);
            return done();
        };
        // Written with what the lane handles meanwhile (the storage stage
        // commits them as a group); to the inboxes once written, in order
        // (`Pipeline::settle_deliveries`).
        let saved = Box::pin(book.shelf().save_now(records));
        chat.owed.delivering.push_back(super::lane::Delivering {
            message,
            seq,
            journal,
            saved,
        });
        done()
    }

    /// Hands on what reached the durable inbox, in order: to every inbox
    /// and durable subscriber, its kept plaintext let go. One that was not
    /// written is not handed on: the stage that opened it keeps it, and it
    /// comes again at the next start.
    pub(super) fn settle_deliveries(
        &mut self,
        ctx: &mut Context<Self>,
        task: &mut std::task::Context<'_>,
    ) {
        loop {
            let Some(chat) = self.chat.as_mut() else {
                return;
            };
            let Some(front) = chat.owed.delivering.front_mut() else {
                return;
            };
            let std::task::Poll::Ready(saved) = front.saved.as_mut().poll(task) else {
                return;
            };
            let Some(done) = chat.owed.delivering.pop_front() else {
                return;
            };
            // In admission order, whatever order the writes were answered
            // in. One that failed holds no reader: its message comes again
            // at the next start, under a new sequence.
            if let Some(book) = chat.book.as_ref() {
                book.settle(done.seq);
            }
            let kept = match saved {
                Ok(()) => Some(done.seq),
                Err(e) => {
                    tracing::warn!(error = %e, id = %done.message.id, "chat message not kept in the inbox");
                    None
                }
            };
            chat.deliver_to_inboxes(&done.message, kept);
            if kept.is_some() {
                self.handled(done.journal, ctx);
            }
        }
    }
}

/// Gives the pipeline the durable inbox, and handles what the stages kept
/// unhandled from a previous run (the mailbox waits); the builder sends it
/// once, after [`AttachGroups`].
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AttachInbox(pub(crate) Book<inbox::Chat>);

impl Handler<AttachInbox> for Pipeline {
    type Result = ();

    fn handle(&mut self, AttachInbox(book): AttachInbox, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, ctx| {
            let Some(chat) = this.chat.as_mut() else {
                return;
            };
            chat.book = Some(book);
            let crypto = chat.crypto.unhandled.clone();
            let asks = (chat.crypto.contacts.clone(), chat.crypto.requests.clone());
            let groups = chat.groups.as_ref().map(|g| g.unhandled.clone());
            let kept = async move {
                let mut pairwise = match crypto.send(crypto::Unhandled).await {
                    Ok(Ok(kept)) => kept,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "kept chat messages not read");
                        Vec::new()
                    }
                    Err(_) => Vec::new(),
                };
                let gone = super::requests::as_they_stand(asks, &mut pairwise).await;
                let group = match groups {
                    Some(groups) => match groups.send(groups::Unhandled).await {
                        Ok(Ok(kept)) => kept,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "kept group messages not read");
                            Vec::new()
                        }
                        Err(_) => Vec::new(),
                    },
                    None => Vec::new(),
                };
                (pairwise, group, gone)
            };
            ctx.wait(
                kept.into_actor(this)
                    .then(|(pairwise, group, gone), act, ctx| {
                        if !pairwise.is_empty() || !group.is_empty() {
                            tracing::info!(
                                pairwise = pairwise.len(),
                                group = group.len(),
                                "handling messages a previous run opened and did not finish"
                            );
                        }
                        let mut step = done();
                        for (hash, opened) in pairwise {
                            if act.forgotten_invite(&opened, &gone) {
                                act.handled(Journal::Crypto(hash), ctx);
                                continue;
                            }
                            step = Box::pin(step.then(move |(), act: &mut Self, ctx| {
                                act.opened(&opened, Journal::Crypto(hash), ctx)
                            }));
                        }
                        for (hash, opened) in group {
                            step = Box::pin(step.then(move |(), act: &mut Self, ctx| {
                                act.on_group_message(&opened, Journal::Group(hash), ctx)
                            }));
                        }
                        step
                    }),
            );
        });
    }
}

/// Adds a durable subscriber: answers its queue and its flag for missed
/// messages.
#[derive(Message)]
#[rtype(result = "Result<(mpsc::Receiver<(u64, ChatMessage)>, Arc<AtomicBool>), Error>")]
pub(crate) struct AddDurable {
    pub(crate) capacity: usize,
}

impl Handler<AddDurable> for Pipeline {
    type Result = Result<(mpsc::Receiver<(u64, ChatMessage)>, Arc<AtomicBool>), Error>;

    fn handle(&mut self, msg: AddDurable, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let chat = this.chat.as_mut().ok_or(Error::ChatDisabled)?;
            let (tap, rx, missed) = Tap::new(msg.capacity);
            chat.taps.push(tap);
            Ok((rx, missed))
        })?
    }
}

/// Asks for the newest sequence in a durable inbox a reader may see (0:
/// empty): written, with every one before it.
#[derive(Message)]
#[rtype(result = "Result<u64, Error>")]
pub(crate) struct Newest(pub(crate) Which);

impl Handler<Newest> for Pipeline {
    type Result = Result<u64, Error>;

    fn handle(&mut self, Newest(which): Newest, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| match which {
            Which::Chat => {
                let book = this.chat.as_ref().and_then(|c| c.book.as_ref());
                book.map(|b| b.shelf().settled()).ok_or(Error::ChatDisabled)
            }
            Which::Raw => {
                let book = this.raw.book.as_ref();
                book.map(|b| b.shelf().settled()).ok_or(Error::Stopped)
            }
        })?
    }
}

/// A durable subscriber saved its position (`Some`), or is forgotten
/// (`None`): the inbox keeps what it has not passed, no more.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Position(pub(crate) Which, pub(crate) String, pub(crate) Option<u64>);

impl Handler<Position> for Pipeline {
    type Result = ();

    fn handle(&mut self, Position(which, name, seq): Position, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, _| match which {
            Which::Chat => {
                if let Some(book) = this.chat.as_mut().and_then(|c| c.book.as_mut()) {
                    moved(book, name, seq);
                }
            }
            Which::Raw => {
                if let Some(book) = this.raw.book.as_mut() {
                    moved(book, name, seq);
                }
            }
        });
    }
}

/// Tells `book` where subscriber `name` is (`None`: it is forgotten).
fn moved<K: inbox::Kind>(book: &mut Book<K>, name: String, seq: Option<u64>) {
    match seq {
        Some(seq) => book.moved(name, seq),
        None => book.forget(&name),
    }
}
