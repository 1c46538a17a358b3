//! Sealing and opening with the key agreements on the pool ([`crate::pool`])
//! and the session steps on the stage, in the order the requests came.
//!
//! A seal takes its session step at once, in the mailbox's order, and
//! leaves the envelope's agreement to the pool; it answers once the
//! envelope is sealed, the step persisted and every seal before it
//! answered, so that envelopes leave in the order their steps were taken.
//! An open is the other way round: the agreement comes first, on the pool,
//! and comes back as a message ([`Unsealed`]); the envelopes wait in
//! [`Opening`] until every one that came before has had its step, so that
//! a session reads its messages in the order they arrived, as it did when
//! all of it ran on the stage's thread. Both the waiting envelopes and the
//! messages bringing them back outlive a restart of the stage: only the
//! request whose step failed hears [`Error::Restarted`], as before.

use std::{collections::BTreeMap, sync::Arc};

use actix::dev::MessageResponse;
use bytes::Bytes;
use futures::future::join_all;
use murmur_core::MessageHash;
use murmur_crypto::{EnvelopeError, PublicKey};
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
    /// Opens with the device's identity key as it was last asked for; made
    /// again once the device has another (a pairing replaces it).
    opener: Option<Arc<envelope::Opener>>,
    /// Done once the last answer carrying envelopes has gone.
    sealed_before: Option<oneshot::Receiver<()>>,
}

/// An envelope back from the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unsealed {
    number: u64,
    /// The hash the envelope travelled under: its plaintext is kept by it.
    hash: MessageHash,
    payload: Bytes,
    /// The identity key it was opened with.
    opened_with: PublicKey,
    /// `None` if opening it panicked (a defect).
    opened: Option<Result<envelope::Opened, EnvelopeError>>,
    answer: oneshot::Sender<Result<Opened, Error>>,
}

impl Handler<Seal> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, msg: Seal, ctx: &mut Context<Self>) -> Self::Result {
        let started = std::time::Instant::now();
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
        let turn = self.turn();
        let seconds = self.metrics.seal_seconds.clone();
        supervise::Reply::Detached(Box::pin(async move {
            let sealed = join_all(sealing).await;
            let written = match persisted {
                Some(persisted) => persisted.await,
                None => Ok(()),
            };
            // The session stepped on (and is saved): the next message on
            // it goes on, and this one's asker hears why it did not.
            let sealed = written.and_then(|()| {
                sealed
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| Error::State("an envelope was not sealed (a defect)".to_owned()))
            });
            let answer = turn.answer(sealed).await;
            seconds.observe(started.elapsed().as_secs_f64());
            answer
        }))
    }
}

/// A place in the order in which envelopes are answered: after every one
/// whose session step was taken before.
pub(crate) struct Turn {
    before: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
}

impl Turn {
    /// `result`, once every answer before it went; an error goes at once
    /// (nothing of it is published), and the answers after it still wait
    /// for those before it.
    async fn answer<T>(self, result: Result<T, Error>) -> Result<T, Error> {
        let Self { before, done } = self;
        let wait = async move {
            if let Some(before) = before {
                // Gone or done: either way what follows may answer.
                let _ = before.await;
            }
            let _ = done.send(());
        };
        if result.is_ok() {
            wait.await;
        } else {
            actix::spawn(wait);
        }
        result
    }
}

impl Handler<Open> for Crypto {
    type Result = supervise::Reply<Self, Result<Opened, Error>>;

    fn handle(&mut self, Open(delivery): Open, ctx: &mut Context<Self>) -> Self::Result {
        let started = std::time::Instant::now();
        let seconds = self.metrics.open_seconds.clone();
        let (answer, answered) = oneshot::channel();
        let number = self.opening.next;
        self.opening.next += 1;
        let opener = self.opener();
        let back = ctx.address();
        let (hash, payload) = (delivery.hash, delivery.message.payload);
        let panics = self.pool.panics();
        self.pool.spawn(move || {
            let opened = pool::guarded(&panics, || opener.open(&payload));
            back.do_send(Unsealed {
                number,
                hash,
                payload,
                opened_with: opener.identity_key(),
                opened,
                answer,
            });
        });
        supervise::Reply::Detached(Box::pin(async move {
            let opened = answered.await.unwrap_or_else(|_| Err(restarted()));
            seconds.observe(started.elapsed().as_secs_f64());
            opened
        }))
    }
}

impl Handler<Unsealed> for Crypto {
    type Result = ();

    fn handle(&mut self, unsealed: Unsealed, ctx: &mut Context<Self>) {
        self.opening.ready.insert(unsealed.number, unsealed);
        self.step_due(ctx);
    }
}

impl Crypto {
    /// What opens this device's envelopes now.
    fn opener(&mut self) -> Arc<envelope::Opener> {
        let current = self.device.identity_key();
        match &self.opening.opener {
            Some(opener) if opener.identity_key() == current => opener.clone(),
            _ => {
                let opener = Arc::new(self.device.opener());
                self.opening.opener = Some(opener.clone());
                opener
            }
        }
    }

    /// Takes the session step of every envelope that is due and opened.
    /// After a restart, once the state is read back, it goes on where it
    /// stopped.
    pub(crate) fn step_due(&mut self, ctx: &mut Context<Self>) {
        // A step that panicked stopped the stage: the rest wait for its
        // restart.
        while ctx.state() == ActorState::Running {
            let Some(unsealed) = self.opening.ready.remove(&self.opening.due) else {
                break;
            };
            self.opening.due += 1;
            let Some(opened) = unsealed.opened else {
                // Opening it panicked on the pool (logged there): the stage
                // is as it was, and the asker tries once more, as after a
                // restart.
                let _ = unsealed.answer.send(Err(restarted()));
                continue;
            };
            let answer = unsealed.answer;
            let envelope = (unsealed.payload, unsealed.opened_with);
            let reply = self.step(&unsealed.hash, opened, envelope, ctx);
            MessageResponse::<Self, Open>::handle(reply, ctx, Some(answer));
        }
    }

    /// The session step of one opened envelope (its payload, and the key
    /// it was opened with), answered once persisted.
    fn step(
        &mut self,
        hash: &MessageHash,
        opened: Result<envelope::Opened, EnvelopeError>,
        (payload, opened_with): (Bytes, PublicKey),
        ctx: &mut Context<Self>,
    ) -> supervise::Reply<Self, Result<Opened, Error>> {
        let outcome = supervise::guard(self, ctx, |act, _| {
            // Opened with a key the device no longer has (a pairing in an
            // earlier step replaced it): opened again with today's.
            let opened = if opened_with == act.device.identity_key() {
                opened
            } else {
                act.opener().open(&payload)
            };
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
            Ok(Ok((opened, saves, kept))) => {
                let answers = !opened.publish.is_empty();
                let reply = self.persist_with(saves, kept, opened, ctx);
                if answers {
                    self.in_turn(reply)
                } else {
                    reply
                }
            }
            Ok(Err(e)) => supervise::Reply::Now(Err(e)),
            Err(p) => supervise::Reply::Now(Err(p.into())),
        }
    }

    /// The next place in the order in which envelopes are answered.
    fn turn(&mut self) -> Turn {
        let (done, answered) = oneshot::channel();
        let before = self.opening.sealed_before.replace(answered);
        Turn { before, done }
    }

    /// `reply`, which carries envelopes sealed on the stage, answered in
    /// its turn: after the seals still on the pool whose steps came first.
    pub(crate) fn in_turn<T: 'static>(
        &mut self,
        reply: supervise::Reply<Self, Result<T, Error>>,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        match reply {
            supervise::Reply::Now(Err(e)) => supervise::Reply::Now(Err(e)),
            supervise::Reply::Now(Ok(value)) => {
                let turn = self.turn();
                supervise::Reply::Detached(Box::pin(turn.answer(Ok(value))))
            }
            supervise::Reply::Detached(later) => {
                let turn = self.turn();
                supervise::Reply::Detached(Box::pin(async move { turn.answer(later.await).await }))
            }
            // Persisting answers in no other way.
            other => other,
        }
    }
}
