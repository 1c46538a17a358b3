//! The outbox: a chat envelope is in it before its publish answers, and
//! until the network took it; a raw message only if the network did not
//! take it at once. What the network did not take is offered again every
//! few seconds, across restarts; what it took is confirmed with a store
//! node.

use std::collections::HashSet;

use murmur_core::sync;

use super::*;
use crate::publication::{Progress, PublishState};

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

    fn retry_outbox(&mut self, ctx: &mut Context<Self>) {
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
                let Some(chunk) = restamp(chunk, &outbox).await else {
                    break;
                };
                let mut offered = Vec::with_capacity(chunk.len());
                let mut chunk = chunk.into_iter();
                for (queued_as, d) in chunk.by_ref() {
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
                let still = matches!(offered.last(), Some((_, _, Attempt::Queued(_))));
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

/// Stamps again what waited in the outbox too long to go out as it is:
/// the new entries go in, then the old ones go (a process killed in
/// between offers both at its next start), each step queued at once so
/// that the storage stage commits it in a few group writes, and both
/// before any is offered. Each gets a stamp of its own (a nanosecond
/// apart), so that two alike in all else stay two messages. Answers each
/// message with the hash it was queued under, or `None` if the outbox
/// could not be written.
async fn restamp(chunk: &[Delivery], outbox: &Outbox) -> Option<Vec<(MessageHash, Delivery)>> {
    let now = murmur_core::now_nanos();
    let mut old = Vec::new();
    let mut restamped = Vec::with_capacity(chunk.len());
    for d in chunk {
        let late = (d.message.timestamp).is_some_and(|t| now.saturating_sub(t) > RESTAMP_AFTER);
        if late {
            let stamp = now.saturating_add(i64::try_from(old.len()).unwrap_or(i64::MAX));
            let message = d.message.clone().with_timestamp(stamp);
            old.push(d.hash);
            restamped.push((d.hash, Delivery::new(d.pubsub_topic.clone(), message)));
        } else {
            restamped.push((d.hash, d.clone()));
        }
    }
    if old.is_empty() {
        return Some(restamped);
    }
    let entering = restamped
        .iter()
        .filter(|(queued_as, d)| *queued_as != d.hash)
        .map(|(_, d)| {
            let enqueue = storage::Enqueue::new(d.pubsub_topic.clone(), d.message.clone());
            outbox.enqueue.send(enqueue)
        });
    let entered = futures::future::join_all(entering).await;
    if !entered.iter().all(|e| matches!(e, Ok(Ok(_)))) {
        return None;
    }
    let leaving = old
        .iter()
        .map(|hash| outbox.mark_sent.send(storage::MarkSent(*hash)));
    let left = futures::future::join_all(leaving).await;
    left.iter()
        .all(|l| matches!(l, Ok(Ok(()))))
        .then_some(restamped)
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
