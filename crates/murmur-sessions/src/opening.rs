//! Sealing and opening with the key agreements on the pool ([`crate::pool`])
//! and the session steps on the stage, in the order the requests came.
//!
//! A seal takes its session step at once, in the mailbox's order, and
//! leaves the envelope's agreement to the pool; it answers once both the
//! envelope is sealed and the step is persisted. An open is the other way
//! round: the agreement comes first, on the pool, and the envelopes wait
//! in [`Opening`] until every one that came before has had its step, so
//! that a session reads its messages in the order they arrived, as it did
//! when all of it ran on the stage's thread.

use std::collections::BTreeMap;

use actix::dev::MessageResponse;
use futures::future::join_all;
use murmur_core::MessageHash;
use murmur_crypto::EnvelopeError;
use tokio::sync::oneshot;

use super::*;
use crate::state::restarted;

/// Envelopes whose agreement is under way or done, in the order they came.
#[derive(Default)]
pub(crate) struct Opening {
    /// The number the next envelope gets.
    next: u64,
    /// The number of the envelope whose session step is due.
    due: u64,
    /// Opened on the pool, waiting for the envelopes before them.
    ready: BTreeMap<u64, Unsealed>,
    /// Counts restarts: an agreement begun before one is not stepped after.
    epoch: u64,
}

struct Unsealed {
    /// The hash the envelope travelled under: its plaintext is kept by it.
    hash: MessageHash,
    opened: Result<envelope::Opened, EnvelopeError>,
    answer: oneshot::Sender<Result<Opened, Error>>,
}

impl Opening {
    /// After a restart: the envelopes waiting go unanswered (their askers
    /// hear [`Error::Restarted`] and ask again), and those still on the
    /// pool are dropped when they come back.
    pub(crate) fn restarted(&mut self) {
        self.ready.clear();
        self.due = self.next;
        self.epoch += 1;
    }
}

impl Handler<Seal> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, msg: Seal, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let to = murmur_crypto::AccountId(msg.to.0);
            let (pending, saves) =
                act.on_device(|d, now| d.seal_pending(to, &msg.plaintext, now))?;
            act.metrics.sealed.inc_by(pending.len() as u64);
            Ok((pending, saves))
        });
        let (pending, saves) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return supervise::Reply::Now(Err(e)),
            Err(p) => return supervise::Reply::Now(Err(p.into())),
        };
        let sealing: Vec<_> = pending
            .into_iter()
            .map(|p| {
                let topic = self.topic_of(account_id(p.to));
                self.pool
                    .run(move || Sealed::new(topic, Bytes::from(p.seal().envelope)))
            })
            .collect();
        let persisted = self.persisted(saves, None, ctx);
        supervise::Reply::Detached(Box::pin(async move {
            let sealed = join_all(sealing).await;
            if let Some(persisted) = persisted {
                persisted.await?;
            }
            // The session stepped on (and is saved): the next message on
            // it goes on, and this one's asker hears why it did not.
            sealed
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::State("an envelope was not sealed (a defect)".to_owned()))
        }))
    }
}

impl Handler<Open> for Crypto {
    type Result = supervise::Reply<Self, Result<Opened, Error>>;

    fn handle(&mut self, Open(delivery): Open, ctx: &mut Context<Self>) -> Self::Result {
        let (answer, answered) = oneshot::channel();
        let number = self.opening.next;
        self.opening.next += 1;
        let epoch = self.opening.epoch;
        let opener = self.device.opener();
        let hash = delivery.hash;
        let payload = delivery.message.payload;
        let unsealing = self.pool.run(move || opener.open(&payload));
        ctx.spawn(unsealing.into_actor(self).map(move |opened, act, ctx| {
            if act.opening.epoch != epoch {
                return;
            }
            let opened = opened.unwrap_or_else(|| {
                Err(EnvelopeError::Malformed(
                    "opening it panicked (a defect)".to_owned(),
                ))
            });
            let unsealed = Unsealed {
                hash,
                opened,
                answer,
            };
            act.opening.ready.insert(number, unsealed);
            act.step_due(ctx);
        }));
        supervise::Reply::Detached(Box::pin(async move {
            answered.await.unwrap_or_else(|_| Err(restarted()))
        }))
    }
}

impl Crypto {
    /// Takes the session step of every envelope that is due and opened.
    fn step_due(&mut self, ctx: &mut Context<Self>) {
        while let Some(unsealed) = self.opening.ready.remove(&self.opening.due) {
            self.opening.due += 1;
            let Unsealed {
                hash,
                opened,
                answer,
            } = unsealed;
            let reply = self.step(&hash, opened, ctx);
            MessageResponse::<Self, Open>::handle(reply, ctx, Some(answer));
            // A step that panicked stopped the stage: the rest wait for
            // its restart, which answers them.
            if ctx.state() != ActorState::Running {
                break;
            }
        }
    }

    /// The session step of one opened envelope, answered once persisted.
    fn step(
        &mut self,
        hash: &MessageHash,
        opened: Result<envelope::Opened, EnvelopeError>,
        ctx: &mut Context<Self>,
    ) -> supervise::Reply<Self, Result<Opened, Error>> {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let (received, saves) = act.on_device(|d, now| d.open_unsealed(opened, now))?;
            act.metrics.opened.inc();
            let (account, device) = received.sender;
            let publish = act.sealed(received.reply);
            let opened = Opened::new(
                account_id(account),
                device_id(device),
                received.app.map(Bytes::from),
            )
            .with_publish(publish)
            .with_identity_changed(received.identity_changed)
            .with_request(received.request)
            .with_reset(received.reset)
            .with_accepted(received.accepted.into_iter().map(account_id).collect())
            .with_revoked(
                received
                    .revoked
                    .iter()
                    .map(|(a, d)| (account_id(*a), device_id(*d)))
                    .collect(),
            );
            let kept = journal::record(&act.journal, hash, &opened);
            Ok((opened, saves, kept))
        });
        match outcome {
            Ok(Ok((opened, saves, kept))) => self.persist_with(saves, kept, opened, ctx),
            Ok(Err(e)) => supervise::Reply::Now(Err(e)),
            Err(p) => supervise::Reply::Now(Err(p.into())),
        }
    }
}
