//! Chat messages to one account, or to one group, sealed together: those
//! that wait while the envelope before them is with the crypto (or
//! membership) stage go in one plaintext (`chat::encode_batch`), so that
//! the batch costs one envelope per device (one key agreement, one ratchet
//! step, one outbox entry, one relay message; in a group one chain step,
//! one signature, one relay message) where each message alone would cost
//! all of that.
//!
//! A conversation's sends go through one queue task while any wait. It hands
//! the stage what waits at once, at most `chat.batch` messages and
//! [`BYTES`] of content, publishes each batch beside the next seal, and
//! ends when nothing waits; the next send starts another. A message that
//! finds no queue starts one and is sealed as soon as that runs, with what
//! came in the meantime (in practice, alone): a batch forms only under
//! load, and costs no wait. A message that must go alone (a community
//! channel's, whose channel the membership stage checks on the plaintext)
//! waits its turn in the same queue, so that sends keep their order.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use actix::{AsyncContext as _, Context, Handler, Message, ResponseFuture};

use super::{outcome::Outcome, publish_all, Outbox, Pipeline, Publisher};
use crate::{chat, Error};
use murmur_core::{crypto, groups, supervise, Sharding};

/// The most content one batch carries: with the envelope's own bytes, at
/// most three of the 16 KiB that an envelope past 16 KiB is padded to a
/// multiple of.
pub(crate) const BYTES: usize = 32 * 1024;

/// Messages to one conversation waiting to be sealed, at most; a send that
/// finds them full waits for room, in turn.
const WAITING: usize = 1024;

/// Accounts whose queues are kept before the ended ones are pruned.
const PRUNE_PAST: usize = 64;

/// One message waiting, and where its batch's outcome goes.
struct Part {
    content: Bytes,
    /// Sealed alone, in its turn.
    alone: bool,
    answer: oneshot::Sender<Result<Outcome, Error>>,
}

/// Whom a batch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// An account's devices (and this account's other devices), sealed by
    /// the crypto stage.
    Account(crypto::AccountId),
    /// A group's members, sealed by the membership stage.
    Group(groups::GroupId),
}

/// The stage that seals for a [`Target`].
#[derive(Clone)]
pub(crate) enum Sealer {
    Crypto(actix::Recipient<crypto::Seal>),
    Membership(actix::Recipient<groups::Post>),
}

/// Where a batch is sealed, and where it goes once sealed.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) sealer: Sealer,
    pub(crate) sharding: Sharding,
    pub(crate) outbox: Outbox,
    pub(crate) publisher: Publisher,
}

/// The envelopes a stage answers for one plaintext.
type Sealing =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<crypto::Sealed>, Error>>>>;

impl Route {
    /// Hands `plaintext` for `to` to its stage now (queued before this
    /// returns); the future answers the envelopes to publish.
    fn seal(&self, to: Target, plaintext: Bytes) -> Sealing {
        match (&self.sealer, to) {
            (Sealer::Crypto(seal), Target::Account(account)) => {
                let sealed = seal.send(crypto::Seal::new(account, plaintext));
                Box::pin(async move { Ok(sealed.await??) })
            }
            (Sealer::Membership(post), Target::Group(group)) => {
                let sealed = post.send(groups::Post { group, plaintext });
                Box::pin(async move { Ok(vec![sealed.await??]) })
            }
            // The pipeline builds each route for its target.
            _ => Box::pin(async { Err(Error::ChatDisabled) }),
        }
    }

    /// Seals `plaintext` for `to` and publishes it.
    fn send(
        self,
        to: Target,
        plaintext: Bytes,
    ) -> impl std::future::Future<Output = Result<Outcome, Error>> {
        let sealed = self.seal(to, plaintext);
        async move { self.publish(sealed.await?).await }
    }

    /// Publishes what a stage sealed.
    async fn publish(self, envelopes: Vec<crypto::Sealed>) -> Result<Outcome, Error> {
        publish_all(envelopes, self.sharding, self.outbox, Some(self.publisher)).await
    }
}

impl super::Chat {
    /// Where a send through `sealer` goes, published through `publisher`.
    pub(super) fn route(&self, sealer: Sealer, publisher: Publisher) -> Route {
        Route {
            sealer,
            sharding: self.sharding.clone(),
            outbox: self.outbox.clone(),
            publisher,
        }
    }
}

/// The pipeline's queues of chat messages waiting to be sealed, one per
/// conversation with messages waiting.
pub(crate) struct Batches {
    queues: HashMap<Target, mpsc::Sender<Part>>,
    most: usize,
}

impl Batches {
    /// Up to `most` messages in one envelope; 1 seals each alone.
    pub(crate) fn new(most: usize) -> Self {
        Self {
            queues: HashMap::new(),
            most: most.max(1),
        }
    }

    /// Seals `content` for `to`, with what waits beside it, and publishes
    /// it; answers how its envelopes went out.
    /// `alone`, it goes in an envelope of its own, in its turn.
    pub(crate) fn send(
        &mut self,
        to: Target,
        content: Bytes,
        alone: bool,
        route: Route,
    ) -> impl std::future::Future<Output = Result<Outcome, Error>> + 'static {
        if self.most == 1 {
            return Answer::Own(Box::pin(route.send(to, content))).wait();
        }
        let (answer, outcome) = oneshot::channel();
        let mut part = Part {
            content,
            alone,
            answer,
        };
        if let Some(queue) = self.queues.get(&to) {
            match queue.try_send(part) {
                Ok(()) => return Answer::Batched(outcome).wait(),
                // Its turn comes after those waiting (the channel hands out
                // room in the order it was asked for); the queue cannot end
                // while they wait.
                Err(mpsc::error::TrySendError::Full(p)) => {
                    let queue = queue.clone();
                    return Answer::Own(Box::pin(async move {
                        match queue.send(p).await {
                            Ok(()) => outcome.await.unwrap_or(Err(Error::Stopped)),
                            Err(mpsc::error::SendError(p)) => route.send(to, p.content).await,
                        }
                    }))
                    .wait();
                }
                // It ended: a new one takes this message.
                Err(mpsc::error::TrySendError::Closed(p)) => part = p,
            }
        }
        if self.queues.len() >= PRUNE_PAST {
            self.queues.retain(|_, queue| !queue.is_closed());
        }
        let (queue, waiting) = mpsc::channel(WAITING);
        // A new channel has room.
        let _ = queue.try_send(part);
        self.queues.insert(to, queue);
        actix::spawn(run(to, waiting, route, self.most));
        Answer::Batched(outcome).wait()
    }
}

/// How a send is answered: by a future of its own, or by its batch's outcome.
enum Answer {
    Own(std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, Error>>>>),
    Batched(oneshot::Receiver<Result<Outcome, Error>>),
}

impl Answer {
    async fn wait(self) -> Result<Outcome, Error> {
        match self {
            Self::Own(publish) => publish.await,
            // The queue task answers every part it took; one dropped
            // unanswered went with the runtime.
            Self::Batched(outcome) => outcome.await.unwrap_or(Err(Error::Stopped)),
        }
    }
}

/// One account's queue: seals what waits, a batch at a time, each once the
/// seal before it is answered; ends when nothing waits.
async fn run(to: Target, mut waiting: mpsc::Receiver<Part>, route: Route, most: usize) {
    let mut next = None;
    loop {
        let batch = take(&mut waiting, &mut next, most);
        if batch.is_empty() {
            break;
        }
        let sealed = seal(to, batch, &route);
        // Only the seal is waited for: the batch is published beside the
        // next one's sealing.
        let _ = sealed.await;
    }
    // Nothing waits: no send reaches this queue from now on. One that was
    // given room before the close may still put its message in (`recv`
    // waits for it), and what comes so is sealed in order.
    waiting.close();
    loop {
        let batch = take(&mut waiting, &mut next, most);
        if !batch.is_empty() {
            // Its answer is not waited for: nothing comes after it here.
            drop(seal(to, batch, &route));
            continue;
        }
        match waiting.recv().await {
            Some(part) => next = Some(part),
            None => return,
        }
    }
}

/// What waits now, up to `most` messages and [`BYTES`] (a message larger
/// than that goes alone, as does one marked so); one that did not fit is
/// kept in `next`.
fn take(waiting: &mut mpsc::Receiver<Part>, next: &mut Option<Part>, most: usize) -> Vec<Part> {
    let mut batch: Vec<Part> = Vec::new();
    let mut bytes = 0;
    while batch.len() < most && !batch.last().is_some_and(|p| p.alone) {
        let Some(part) = next.take().or_else(|| waiting.try_recv().ok()) else {
            break;
        };
        if !batch.is_empty() && (part.alone || bytes + part.content.len() > BYTES) {
            *next = Some(part);
            break;
        }
        bytes += part.content.len();
        batch.push(part);
    }
    batch
}

/// Hands the crypto stage `batch` now (the request is queued before this
/// returns, so batches are sealed in the order taken), and publishes it
/// beside; the future answers once the seal is.
fn seal(to: Target, batch: Vec<Part>, route: &Route) -> impl std::future::Future<Output = ()> {
    let plaintext = match batch.as_slice() {
        [one] => one.content.clone(),
        parts => chat::encode_batch(parts.iter().map(|p| &p.content)),
    };
    let request = route.seal(to, plaintext);
    let (sealed, answered) = oneshot::channel();
    let route = route.clone();
    actix::spawn(async move {
        let envelopes = request.await;
        let _ = sealed.send(());
        let outcome = match envelopes {
            Ok(envelopes) => route.publish(envelopes).await,
            Err(e) => Err(e),
        };
        for part in batch {
            let _ = part.answer.send(match &outcome {
                Ok(outcome) => Ok(outcome.clone()),
                Err(e) => Err(e.again()),
            });
        }
    });
    async move {
        let _ = answered.await;
    }
}

/// Seals a group message's plaintext (`chat::encode_group`) with the
/// membership stage, together with those to the same group that wait
/// while the one before them is being sealed, and publishes it.
#[derive(Message)]
#[rtype(result = "Result<Outcome, Error>")]
pub(crate) struct SendGroup {
    pub(crate) group: groups::GroupId,
    pub(crate) plaintext: bytes::Bytes,
    /// Sealed alone, in its turn (a community channel's message).
    pub(crate) alone: bool,
}

impl Handler<SendGroup> for Pipeline {
    type Result = ResponseFuture<Result<Outcome, Error>>;

    fn handle(&mut self, msg: SendGroup, ctx: &mut Context<Self>) -> Self::Result {
        match supervise::guard(self, ctx, |this, ctx| -> Self::Result {
            let Some(chat) = this.chat.as_mut() else {
                return Box::pin(async { Err(Error::ChatDisabled) });
            };
            let Some(groups) = chat.groups.as_ref() else {
                return Box::pin(async { Err(Error::ChatDisabled) });
            };
            let route = chat.route(
                Sealer::Membership(groups.post.clone()),
                Publisher::caller(ctx.address()),
            );
            let target = Target::Group(msg.group);
            Box::pin(chat.batches.send(target, msg.plaintext, msg.alone, route))
        }) {
            Ok(future) => future,
            Err(p) => Box::pin(std::future::ready(Err(p.into()))),
        }
    }
}
