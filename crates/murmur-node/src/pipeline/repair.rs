//! What does not open, repaired: a group message's missing chain key is
//! asked for; a broken 1:1 session is started over, and what a contact
//! that started over lost is sent again.

use super::*;
use murmur_core::ContentTopic;

use crate::chat::Unreadable;

/// Sent 1:1 messages kept, plaintext, until a receipt comes: what a
/// contact that resets its session gets again. The oldest go first.
const UNACKED: usize = 1_000;
/// How long a session that did not open a message is watched before it is
/// reset: a message that opens from that device in the meantime shows the
/// session works (what did not open was an old copy, from a chain too far
/// back for the session to recognise: a store round after a takeover).
const SUSPECT_FOR: std::time::Duration = std::time::Duration::from_secs(8);
/// Devices watched at most.
const SUSPECTS: usize = 1024;

/// 1:1 messages sent and not acknowledged yet, oldest first, with the
/// encoded content they were sealed from.
#[derive(Default)]
pub(super) struct Unacked(VecDeque<(MessageId, AccountId, bytes::Bytes)>);

impl Unacked {
    pub(super) fn keep(&mut self, id: MessageId, to: AccountId, content: bytes::Bytes) {
        if self.0.len() >= UNACKED {
            self.0.pop_front();
        }
        self.0.push_back((id, to, content));
    }

    /// `from` acknowledged `ids`.
    pub(super) fn acked(&mut self, from: AccountId, ids: &[MessageId]) {
        self.0
            .retain(|(id, to, _)| *to != from || !ids.contains(id));
    }

    /// What `to` has not acknowledged, oldest first.
    fn to(&self, to: AccountId) -> Vec<bytes::Bytes> {
        self.0
            .iter()
            .filter(|(_, t, _)| *t == to)
            .map(|(_, _, c)| c.clone())
            .collect()
    }
}

/// Devices whose message a session here did not open, since when.
#[derive(Default)]
pub(super) struct Suspects(HashMap<(AccountId, crypto::DeviceId), std::time::Instant>);

impl Suspects {
    /// A message from `device` opened: its session works.
    pub(super) fn cleared(&mut self, account: AccountId, device: crypto::DeviceId) {
        self.0.remove(&(account, device));
    }
}

/// Adds a subscriber of [`Unreadable`] events; answers its queue.
#[derive(Message)]
#[rtype(result = "Result<mpsc::Receiver<Unreadable>, Error>")]
pub(crate) struct AddUnreadable {
    pub(crate) capacity: usize,
}

impl Handler<AddUnreadable> for Pipeline {
    type Result = Result<mpsc::Receiver<Unreadable>, Error>;

    fn handle(&mut self, msg: AddUnreadable, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let chat = this.chat.as_mut().ok_or(Error::ChatDisabled)?;
            let (tx, rx) = mpsc::channel(msg.capacity.max(1));
            chat.unreadable.push(tx);
            Ok(rx)
        })?
    }
}

impl Pipeline {
    /// Tells every subscriber of [`Unreadable`] events; one whose queue is
    /// full misses it.
    fn tell_unreadable(&mut self, event: &Unreadable) {
        if let Some(chat) = self.chat.as_mut() {
            chat.unreadable.retain(|tx| {
                !matches!(
                    tx.try_send(event.clone()),
                    Err(mpsc::error::TrySendError::Closed(_))
                )
            });
        }
    }

    /// A group message no chain key of this device opens: its key is asked
    /// for (the membership stage limits how often), and what the stage
    /// answers is sealed and sent beside the lane.
    pub(super) fn ask_key(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Some(groups) = self.chat.as_ref().and_then(|c| c.groups.clone()) else {
            return;
        };
        // A topic of a group this device is in, which parses: only then was
        // it asked about, and only then is there something to tell.
        let Ok(topic) = ContentTopic::try_from(delivery.message.content_topic.clone()) else {
            return;
        };
        let ask = groups.request_key.send(groups::RequestKey(delivery));
        ctx.spawn(ask.into_actor(self).map(move |asked, act, ctx| match asked {
            Ok(Ok(effects)) if !effects.is_empty() => {
                act.tell_unreadable(&Unreadable::ChainKey { topic, asked: true });
                let apply = act.apply_effects(effects, act.mailbox(ctx));
                act.background(ctx, "a group key request", apply);
            }
            Ok(Ok(_)) => act.tell_unreadable(&Unreadable::ChainKey {
                topic,
                asked: false,
            }),
            Ok(Err(e)) => tracing::debug!(error = %e, "group key not asked for"),
            Err(e) => tracing::debug!(error = %e, "membership stage gone; group key not asked for"),
        }));
    }

    /// Asks again for the keys of the group messages still parked: the
    /// first request, or its answer, may have been lost.
    pub(super) fn ask_keys_again(&mut self, ctx: &mut Context<Self>) {
        let parked: Vec<Delivery> = self
            .chat
            .as_ref()
            .map(|c| c.parked.iter().cloned().collect())
            .unwrap_or_default();
        for delivery in parked {
            self.ask_key(delivery, ctx);
        }
    }

    /// A message of `device` of `account` did not open on the session
    /// with it ([`crypto::Error::BrokenSession`]). Unless one of its
    /// messages opens within [`SUSPECT_FOR`], the session is reset.
    pub(super) fn suspect(
        &mut self,
        account: AccountId,
        device: crypto::DeviceId,
        reason: crypto::Error,
        ctx: &mut Context<Self>,
    ) {
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let suspects = &mut chat.suspects.0;
        // Watched already; an entry whose timer went with a restarted
        // context (the pipeline keeps its state across one) is stale.
        if suspects
            .get(&(account, device))
            .is_some_and(|since| since.elapsed() < 2 * SUSPECT_FOR)
        {
            return;
        }
        if suspects.len() >= SUSPECTS {
            suspects.retain(|_, since| since.elapsed() < SUSPECT_FOR);
            if suspects.len() >= SUSPECTS {
                return;
            }
        }
        let since = std::time::Instant::now();
        suspects.insert((account, device), since);
        self.tell_unreadable(&Unreadable::Session {
            account,
            device,
            broken: true,
            reset: false,
        });
        ctx.run_later(SUSPECT_FOR, move |act, ctx| {
            let still = act.chat.as_mut().is_some_and(|c| {
                let due = c.suspects.0.get(&(account, device)) == Some(&since);
                if due {
                    c.suspects.0.remove(&(account, device));
                }
                due
            });
            if still {
                act.ask_reset(account, device, &reason, ctx);
            }
        });
    }

    /// `device` of `account` sent a message no session here opens: a new
    /// session goes to it (the crypto stage limits how often), asking it to
    /// send again what this device did not acknowledge. The message itself
    /// is gone (its keys are); its sender sends it again.
    pub(super) fn ask_reset(
        &mut self,
        account: AccountId,
        device: crypto::DeviceId,
        reason: &crypto::Error,
        ctx: &mut Context<Self>,
    ) {
        tracing::info!(%account, %device, %reason, "a message did not open; session reset asked");
        let broken = matches!(reason, crypto::Error::BrokenSession { .. });
        self.tell_unreadable(&Unreadable::Session {
            account,
            device,
            broken,
            reset: true,
        });
        let Some(chat) = self.chat.as_ref() else {
            return;
        };
        let reset = chat.crypto.reset.send(crypto::Reset { account, device });
        self.stats.sessions_reset += 1;
        ctx.spawn(reset.into_actor(self).map(move |sealed, act, ctx| {
            let sealed = match sealed {
                Ok(Ok(sealed)) if !sealed.is_empty() => sealed,
                // Reset a moment ago: that one's answer is on its way.
                Ok(Ok(_)) => return,
                Ok(Err(e)) => return tracing::warn!(error = %e, "session not reset"),
                Err(e) => return tracing::warn!(error = %e, "crypto stage gone; session not reset"),
            };
            let Some(chat) = act.chat.as_ref() else {
                return;
            };
            let publish = publish_all(
                sealed,
                chat.sharding.clone(),
                chat.outbox.clone(),
                act.mailbox(ctx).publisher(),
            );
            act.background(ctx, "a session reset", publish);
            // The other side may not read this device either (both went
            // on from different states): what it did not acknowledge goes
            // again too, in the new session, as the other side's does when
            // the reset reaches it.
            act.resend(account, ctx);
        }));
    }

    /// A new session with `to` (either side started it): what `to` did not
    /// acknowledge goes again, in the new session (the receiver keeps a
    /// message once per id).
    pub(super) fn resend(&mut self, to: AccountId, ctx: &mut Context<Self>) {
        let publisher = self.mailbox(ctx).publisher();
        let Some(chat) = self.chat.as_ref() else {
            return;
        };
        let again = chat.unacked.to(to);
        if again.is_empty() {
            return;
        }
        self.stats.resent += again.len() as u64;
        tracing::info!(account = %to, messages = again.len(), "sending again what a reset session lost");
        let (seal, sharding, outbox) = (
            chat.crypto.seal.clone(),
            chat.sharding.clone(),
            chat.outbox.clone(),
        );
        let work = async move {
            let mut outcome = Outcome::default();
            for content in again {
                let o = publish_sealed(
                    seal.clone(),
                    crypto::Seal::new(to, content),
                    sharding.clone(),
                    outbox.clone(),
                    publisher.clone(),
                )
                .await?;
                outcome.published += o.published;
                outcome.queued += o.queued;
            }
            Ok(outcome)
        };
        self.background(ctx, "messages sent again after a reset", work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_lets_go_of_its_messages_and_only_for_their_recipient() {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        let id = |n: u8| MessageId([n; 16]);
        let mut u = Unacked::default();
        for n in 0..4 {
            u.keep(
                id(n),
                if n % 2 == 0 { a } else { b },
                bytes::Bytes::from(vec![n]),
            );
        }
        // B acknowledging A's message changes nothing.
        u.acked(b, &[id(0)]);
        u.acked(a, &[id(2)]);
        assert_eq!(u.to(a), vec![bytes::Bytes::from(vec![0])]);
        assert_eq!(u.to(b).len(), 2);
        for n in 0..UNACKED as u32 {
            u.keep(id(9), b, bytes::Bytes::from(n.to_be_bytes().to_vec()));
        }
        assert_eq!(u.0.len(), UNACKED, "bounded");
        assert!(u.to(a).is_empty(), "the oldest went first");
    }
}
