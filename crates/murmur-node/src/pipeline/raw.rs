//! The raw inbox as the pipeline writes it: every delivery on a topic a
//! durable subscription asked for is kept (once per hash) before a durable
//! subscriber sees it, in arrival order, so that one resumes from its
//! position after a restart and reads on from the database when it falls
//! behind. One that a store round brings back, which the archive had and
//! the inbox does not (a run stopped between the two), is kept then.

use std::sync::atomic::AtomicBool;

use super::durable::Tap;
use super::*;
use crate::inbox::{Book, Raw};

/// The raw inbox and its durable subscribers.
#[derive(Default)]
pub(crate) struct RawInbox {
    /// Once attached at start.
    pub(super) book: Option<Book<Raw>>,
    /// What each subscriber asked for.
    taps: Vec<(BTreeSet<String>, Tap<Delivery>)>,
    /// Every topic kept: what subscribers asked for, in this run or before.
    topics: BTreeSet<String>,
    /// What was offered again in this run ([`Pipeline::keep_raw_again`]):
    /// once each, so that the inbound hooks do not see a message a hook
    /// dropped again with every store round.
    again: super::Recent,
}

impl Pipeline {
    /// Keeps `delivery` in the raw inbox if a durable subscription asked
    /// for its topic, then hands it to those subscribers; the mailbox waits
    /// for the write, so that the inbox keeps arrival order.
    pub(super) fn keep_raw(&mut self, delivery: &Delivery, ctx: &mut Context<Self>) {
        let raw = &mut self.raw;
        if !raw.topics.contains(&delivery.message.content_topic) {
            return;
        }
        let Some(book) = raw.book.as_mut() else {
            return;
        };
        let Some((seq, records)) = book.admit(delivery) else {
            return;
        };
        let shelf = book.shelf().clone();
        let delivery = delivery.clone();
        let save = async move { shelf.save(records).await };
        ctx.wait(save.into_actor(self).map(move |saved, act, _| {
            if let Some(book) = act.raw.book.as_mut() {
                book.settle(seq);
                if saved.is_err() {
                    // Not kept: the next store round brings it again.
                    book.failed(seq);
                    act.raw.again.remove(&delivery.hash);
                }
            }
            match saved {
                Ok(()) => act.raw.taps.retain(|(topics, tap)| {
                    !topics.contains(&delivery.message.content_topic) || tap.offer(seq, &delivery)
                }),
                Err(e) => {
                    tracing::warn!(hash = %delivery.hash, error = %e, "raw message not kept for durable subscribers; the next store round brings it again")
                }
            }
        }));
    }

    /// Keeps `delivery`, which the archive had already, in the raw inbox
    /// if a durable subscription asked for its topic and the inbox may take
    /// it ([`Book::may_take_again`]: not kept, and newer than what
    /// retention let go): a previous run archived it and stopped before it
    /// was kept, and a store round brought it back. Through the inbound
    /// hooks first, as it would have gone; once a run. Answers whether it
    /// was offered again.
    pub(super) fn keep_raw_again(&mut self, delivery: &Delivery, ctx: &mut Context<Self>) -> bool {
        let raw = &mut self.raw;
        let may = raw
            .book
            .as_ref()
            .is_some_and(|b| b.may_take_again(delivery));
        if !may
            || !raw.topics.contains(&delivery.message.content_topic)
            || !raw.again.insert(delivery.hash)
        {
            return false;
        }
        let Ok(delivery) = self.run_hooks(
            delivery.clone(),
            "inbound",
            |hook, d| hook.inbound(d),
            |d, m| d.message = m,
        ) else {
            return true;
        };
        self.keep_raw(&delivery, ctx);
        true
    }
}

/// Gives the pipeline the raw inbox and the topics it keeps (those
/// subscribers asked for before); the builder sends it once, at start.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AttachRaw(pub(crate) Book<Raw>, pub(crate) BTreeSet<String>);

impl Handler<AttachRaw> for Pipeline {
    type Result = ();

    fn handle(&mut self, AttachRaw(book, topics): AttachRaw, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, _| {
            this.raw.book = Some(book);
            this.raw.topics.extend(topics);
        });
    }
}

/// Adds a durable subscriber of raw topics: answers its queue and its flag
/// for missed messages.
#[derive(Message)]
#[rtype(result = "Result<(mpsc::Receiver<(u64, Delivery)>, Arc<AtomicBool>), Error>")]
pub(crate) struct AddRawDurable {
    pub(crate) topics: BTreeSet<String>,
    pub(crate) capacity: usize,
}

impl Handler<AddRawDurable> for Pipeline {
    type Result = Result<(mpsc::Receiver<(u64, Delivery)>, Arc<AtomicBool>), Error>;

    fn handle(&mut self, msg: AddRawDurable, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            if this.raw.book.is_none() {
                return Err(Error::Stopped);
            }
            let (tap, rx, missed) = Tap::new(msg.capacity);
            this.raw.topics.extend(msg.topics.iter().cloned());
            this.raw.taps.push((msg.topics, tap));
            Ok((rx, missed))
        })?
    }
}
