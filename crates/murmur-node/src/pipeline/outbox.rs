//! The outbox: a chat envelope is in it before its publish answers, and
//! until the network took it; a raw message only if the network did not
//! take it at once. What the network did not take is offered again every
//! few seconds, across restarts; what it took is confirmed with a store
//! node.

use std::collections::HashSet;

use murmur_core::sync;

use super::*;
use crate::publication::{Progress, PublishState};

mod retry;

/// Raw sends whose state is kept for whoever watches it, at most.
const WATCHED: usize = 10_000;

/// A queued message stamped longer ago than this is stamped again when it
/// goes out: store nodes keep nothing more than 20 s off their clock.
const RESTAMP_AFTER: i64 = 10_000_000_000;

/// How many ticks a published message is asked after at the store nodes.
const CONFIRM_TRIES: u8 = 12;

/// Outbox entries marked at once, at most: a storage stage's group commit
/// takes up to 1,000 writes.
const MARKS_AT_ONCE: usize = 1_000;

/// Queued messages offered again (and archived, and stamped again) as one
/// chunk, at most: their writes go to the storage stage together.
const RETRIED_AT_ONCE: usize = 256;

/// Hashes asked of a store node in one tick, at most.
const CONFIRM_BATCH: usize = 1_000;

/// What the pipeline keeps of the publishes under way.
#[derive(Default)]
pub(super) struct Sends {
    /// A retry of the outbox is running.
    retrying: bool,
    /// A confirmation is running.
    confirming: bool,
    /// The retry ticks so far.
    pub(super) tick: u64,
    /// Handed to the network in this run and not yet marked published in
    /// the outbox: `None` while the transport has not answered, else the
    /// tick it answered in. A retry leaves them alone.
    pub(super) unmarked: HashMap<MessageHash, Option<u64>>,
    /// The states someone may watch, by the hash the message travels under.
    watched: HashMap<MessageHash, Watched>,
    order: VecDeque<MessageHash>,
}

struct Watched {
    progress: watch::Sender<Progress>,
    /// The tick it was published in, once it was.
    published: Option<u64>,
    /// Times a store node was asked for it.
    asked: u8,
}

impl Sends {
    /// Forgets the work that went with a restarted context.
    pub(super) fn stopped(&mut self) {
        self.retrying = false;
        self.confirming = false;
    }

    pub(super) fn watch(&mut self, hash: MessageHash) -> watch::Receiver<Progress> {
        let (progress, rx) = watch::channel(Progress {
            hash,
            state: PublishState::Queued,
        });
        let watched = Watched {
            progress,
            published: None,
            asked: 0,
        };
        if self.watched.insert(hash, watched).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > WATCHED {
            if let Some(old) = self.order.pop_front() {
                self.watched.remove(&old);
            }
        }
        rx
    }

    /// Records what one attempt to publish `hash` came to; `entered`: the
    /// outbox holds an entry for it, which a tick takes out once published.
    fn attempted(&mut self, hash: MessageHash, outcome: &Attempt, entered: bool) {
        match outcome {
            Attempt::Published(now) if entered => {
                self.unmarked.insert(*now, Some(self.tick));
            }
            Attempt::Published(_) => {
                self.unmarked.remove(&hash);
            }
            Attempt::Queued(_) => {
                self.unmarked.remove(&hash);
            }
            // Marked by whoever met the refusal.
            Attempt::Refused(_) => {
                self.unmarked.remove(&hash);
            }
        }
        let Some(mut watched) = self.watched.remove(&hash) else {
            return;
        };
        let (now, state) = match outcome {
            Attempt::Published(now) => {
                watched.published = Some(self.tick);
                (*now, PublishState::Published)
            }
            Attempt::Queued(now) => (*now, PublishState::Queued),
            Attempt::Refused(reason) => (hash, PublishState::Failed(reason.clone())),
        };
        watched.progress.send_replace(Progress { hash: now, state });
        if now != hash {
            if let Some(slot) = self.order.iter_mut().find(|h| **h == hash) {
                *slot = now;
            }
        }
        self.watched.insert(now, watched);
    }

    /// The messages published at least a tick ago, now to be marked so in
    /// the outbox (they left before this tick, even if the process dies now).
    fn take_marks(&mut self) -> Vec<MessageHash> {
        let before = self.tick.saturating_sub(1);
        let marks: Vec<MessageHash> = self
            .unmarked
            .iter()
            .filter(|(_, at)| at.is_some_and(|at| at < before))
            .map(|(hash, _)| *hash)
            .collect();
        for hash in &marks {
            self.unmarked.remove(hash);
        }
        marks
    }

    /// The published messages to ask a store node about now.
    fn take_unconfirmed(&mut self) -> Vec<MessageHash> {
        let before = self.tick.saturating_sub(1);
        let mut asked = Vec::new();
        for (hash, watched) in &mut self.watched {
            if asked.len() == CONFIRM_BATCH {
                break;
            }
            if watched.progress.borrow().state != PublishState::Published
                || watched.published.is_none_or(|at| at >= before)
                || watched.asked >= CONFIRM_TRIES
            {
                continue;
            }
            watched.asked += 1;
            asked.push(*hash);
        }
        asked
    }

    fn confirmed(&mut self, held: &[MessageHash]) {
        for hash in held {
            if let Some(watched) = self.watched.remove(hash) {
                watched
                    .progress
                    .send_modify(|p| p.state = PublishState::Acknowledged);
            }
        }
        // What no store node holds after every try stays published; and
        // with no store node to ask, nothing is asked again.
        self.watched.retain(|_, w| {
            !(w.asked >= CONFIRM_TRIES && w.progress.borrow().state == PublishState::Published)
        });
        let watched = &self.watched;
        self.order.retain(|h| watched.contains_key(h));
    }

    fn stop_confirming(&mut self, asked: &[MessageHash]) {
        for hash in asked {
            if let Some(w) = self.watched.get_mut(hash) {
                w.asked = CONFIRM_TRIES;
            }
        }
        self.confirmed(&[]);
    }
}

/// What one attempt to publish came to.
#[derive(Debug, Clone)]
pub(crate) enum Attempt {
    /// The network took it, under this hash.
    Published(MessageHash),
    /// Nobody took it now: it waits in the outbox, under this hash.
    Queued(MessageHash),
    /// Refused for good: it left the outbox.
    Refused(String),
}

impl Attempt {
    /// What the transport's answer means for a message in the outbox.
    fn of(
        answer: Result<Result<MessageHash, transport::Error>, MailboxError>,
        hash: MessageHash,
    ) -> Result<Self, transport::Error> {
        match answer {
            Ok(Ok(hash)) => Ok(Self::Published(hash)),
            // The same bytes went out a moment ago.
            Ok(Err(transport::Error::Duplicate(_))) => Ok(Self::Published(hash)),
            Ok(Err(e)) if lasting(&e) => Err(e),
            Ok(Err(e)) => {
                tracing::debug!(%hash, error = %e, "message queued for a retry");
                Ok(Self::Queued(hash))
            }
            Err(_) => Ok(Self::Queued(hash)),
        }
    }
}

/// A refusal that asking again would not change: the message is malformed
/// for the network, or a service node refused it as a bad request.
fn lasting(e: &transport::Error) -> bool {
    match e {
        transport::Error::TooLarge { .. } | transport::Error::Invalid(_) => true,
        transport::Error::Remote { code, .. } => (400..500).contains(code) && *code != 429,
        _ => false,
    }
}

/// Tells the pipeline what an attempt came to.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Attempted {
    hash: MessageHash,
    outcome: Attempt,
    /// The outbox holds an entry for it.
    entered: bool,
}

impl Handler<Attempted> for Pipeline {
    type Result = ();

    fn handle(&mut self, msg: Attempted, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, _| {
            this.sends.attempted(msg.hash, &msg.outcome, msg.entered);
        });
    }
}

/// Where every publish goes: made once when the stages attach, and shared
/// by every publish (a reference count each, where a clone of each
/// recipient was an allocation and an atomic count, and its drop another).
pub(crate) struct Route {
    pub(super) outbox: Outbox,
    pub(super) publish: Recipient<Publish>,
    /// The archive, on an archiving node.
    pub(super) archive: Option<Recipient<storage::SaveRaw>>,
    pub(super) pipeline: Addr<Pipeline>,
}

/// The outbox's side of a publish, once the hooks let the message through.
pub(super) struct Publishing {
    pub(super) delivery: Delivery,
    pub(super) route: std::sync::Arc<Route>,
    /// Archive it once the network took it.
    pub(super) archive: bool,
    pub(super) progress: watch::Receiver<Progress>,
    /// Wait for the outbox even when the network took the message.
    pub(super) durably: bool,
}

impl Publishing {
    /// Publishes the message and answers once it is durable: taken by the
    /// network (and archived, on an archiving node), or else in the outbox.
    ///
    /// A message `durably` published (a chat envelope) enters the outbox
    /// while the transport publishes it, and is answered only once it is
    /// in: a process that dies before the bytes left publishes it again at
    /// start. Any other enters the outbox only if the network did not take
    /// it: its guarantee is the network's acknowledgement, and an entry for
    /// a message already on its way would be two writes (in, and out a tick
    /// later) that guard nothing the caller waits for. Either way the
    /// transport has it first, so that messages reach it in the order they
    /// were published.
    pub(super) async fn run(self) -> Result<crate::Publication, Error> {
        let Self {
            delivery,
            route,
            archive,
            progress,
            durably,
        } = self;
        let Route {
            outbox,
            publish,
            pipeline,
            ..
        } = &*route;
        let archive = route.archive.as_ref().filter(|_| archive);
        let hash = delivery.hash;
        let sent = publish.send(Publish::new(
            delivery.pubsub_topic.clone(),
            delivery.message.clone(),
        ));
        let enqueue = || {
            outbox.enqueue.send(storage::Enqueue::new(
                delivery.pubsub_topic.clone(),
                delivery.message.clone(),
            ))
        };
        let queued = durably.then(enqueue);
        let refused = |reason: String| {
            pipeline.do_send(Attempted {
                hash,
                outcome: Attempt::Refused(reason),
                entered: false,
            });
        };
        let attempt = match Attempt::of(busy_then_again(sent, publish, &delivery).await, hash) {
            Err(e) => {
                if let Some(queued) = queued {
                    // Never goes out: it leaves the outbox (the writes are
                    // in order, so this comes after it entered).
                    let _ = queued.await;
                    let _ = outbox.mark_sent.send(storage::MarkSent(hash)).await;
                }
                refused(e.to_string());
                return Err(Error::Send(e));
            }
            Ok(attempt @ Attempt::Published(_)) if !durably => attempt,
            Ok(attempt) => match queued.unwrap_or_else(enqueue).await {
                Ok(Ok(_)) => attempt,
                Ok(Err(e)) => {
                    refused(e.to_string());
                    return Err(Error::Archive(e));
                }
                Err(_) => return Err(Error::Stopped),
            },
        };
        if let (Attempt::Published(_), Some(archive)) = (&attempt, archive) {
            // Our own messages belong in our archive too (gossipsub never
            // hands them back to us).
            archive.send(storage::SaveRaw(delivery)).await??;
        }
        let entered = durably || !matches!(attempt, Attempt::Published(_));
        pipeline.do_send(Attempted {
            hash,
            outcome: attempt,
            entered,
        });
        let publication = crate::Publication::new(progress);
        Ok(publication)
    }
}

/// How long a publish the transport found too busy is tried again before
/// it is left to the outbox's tick, at most.
const BUSY_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// The transport's answer to a publish: asked again while it answers that
/// it is too busy (back-pressure, not an outage), for up to [`BUSY_FOR`].
/// So a sender that awaits each publish keeps its order; a message left to
/// the outbox's tick would come seconds after the ones sent behind it.
async fn busy_then_again(
    first: impl std::future::Future<
        Output = Result<Result<MessageHash, transport::Error>, MailboxError>,
    >,
    publish: &Recipient<Publish>,
    delivery: &Delivery,
) -> Result<Result<MessageHash, transport::Error>, MailboxError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    let mut answer = first.await;
    while matches!(answer, Ok(Err(transport::Error::Busy))) && started.elapsed() < BUSY_FOR {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
        let again = Publish::new(delivery.pubsub_topic.clone(), delivery.message.clone());
        answer = publish.send(again).await;
    }
    answer
}

/// Seals through the crypto stage, then publishes each envelope through the
/// outbound path; answers how many were published.
pub(crate) async fn publish_sealed(
    crypto: Recipient<crypto::Seal>,
    seal: crypto::Seal,
    sharding: Sharding,
    outbox: Outbox,
    pipeline: Option<Publisher>,
) -> Result<Outcome, Error> {
    let sealed = crypto.send(seal).await??;
    publish_all(sealed, sharding, outbox, pipeline).await
}

/// Publishes each envelope through the outbound path, which puts it in the
/// outbox as it publishes it. One the network does not take now (no peers yet, the node
/// offline) stays queued and is retried every few seconds, across
/// restarts. A hook's drop is final. Without a `pipeline` (work the
/// pipeline's mailbox itself waits for, which must not wait for that
/// mailbox) every envelope is only put in the outbox, for the retry.
pub(crate) async fn publish_all(
    sealed: Vec<crypto::Sealed>,
    sharding: Sharding,
    outbox: Outbox,
    pipeline: Option<Publisher>,
) -> Result<Outcome, Error> {
    let mut outcome = Outcome::default();
    let mut dropped = None;
    for envelope in sealed {
        let message = WakuMessage::new(envelope.content_topic.as_str(), envelope.payload)
            .with_timestamp(murmur_core::now_nanos());
        let topic = sharding.pubsub_topic(&envelope.content_topic);
        let Some(pipeline) = pipeline.as_ref() else {
            outbox
                .enqueue
                .send(storage::Enqueue::new(topic, message))
                .await??;
            outcome.queued += 1;
            continue;
        };
        match publish_durably(pipeline, Outgoing::new(topic, message)).await {
            Ok(p) if p.state() == PublishState::Queued => {
                outcome.queued += 1;
                outcome.waiting.push(p);
            }
            Ok(_) => outcome.published += 1,
            Err(e @ Error::Dropped { .. }) => dropped = Some(e),
            Err(e) => return Err(e),
        }
    }
    match dropped {
        Some(e) if outcome.published + outcome.queued == 0 => Err(e),
        _ => Ok(outcome),
    }
}

impl Pipeline {
    /// Marks what went out before the last tick, then offers what waits in
    /// the outbox to the transport again; and asks a store node about what
    /// was published.
    pub(super) fn tick_outbox(&mut self, ctx: &mut Context<Self>) {
        self.sends.tick += 1;
        self.retry_outbox(ctx);
        self.confirm_published(ctx);
    }

    fn confirm_published(&mut self, ctx: &mut Context<Self>) {
        let Some(confirm) = self.confirm.clone() else {
            return;
        };
        if self.sends.confirming {
            return;
        }
        let asked = self.sends.take_unconfirmed();
        if asked.is_empty() {
            return;
        }
        self.sends.confirming = true;
        let ask = confirm.send(sync::Confirm(asked.clone()));
        ctx.spawn(ask.into_actor(self).map(move |held, act, _| {
            act.sends.confirming = false;
            match held {
                Ok(Ok(held)) => act.sends.confirmed(&held),
                Ok(Err(sync::Error::NoStoreNode)) => act.sends.stop_confirming(&asked),
                Ok(Err(e)) => tracing::debug!(error = %e, "published messages not confirmed"),
                Err(_) => {}
            }
        }));
    }
}

/// Publishes envelopes the crypto stage made outside a message's path
/// (pairing, revocation), through the outbox.
#[derive(Message)]
#[rtype(result = "Result<Outcome, Error>")]
pub(crate) struct PublishEnvelopes(pub(crate) Vec<crypto::Sealed>);

impl Handler<PublishEnvelopes> for Pipeline {
    type Result = ResponseFuture<Result<Outcome, Error>>;

    fn handle(&mut self, msg: PublishEnvelopes, ctx: &mut Context<Self>) -> Self::Result {
        match supervise::guard(self, ctx, |this, ctx| -> Self::Result {
            let Some(chat) = this.chat.as_ref() else {
                return Box::pin(async { Err(Error::ChatDisabled) });
            };
            Box::pin(publish_all(
                msg.0,
                chat.sharding.clone(),
                chat.outbox.clone(),
                Some(Publisher::caller(ctx.address())),
            ))
        }) {
            Ok(future) => future,
            Err(p) => Box::pin(std::future::ready(Err(p.into()))),
        }
    }
}
