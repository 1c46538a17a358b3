//! The outbox as the chat path uses it: every envelope in it before it is
//! published, and until a retry finds it taken by the network; the retries
//! every few seconds, across restarts.

use super::*;

/// Seals through the crypto stage, then publishes each envelope through the
/// outbound path; answers how many were published.
pub(crate) async fn publish_sealed(
    crypto: Recipient<crypto::Seal>,
    seal: crypto::Seal,
    sharding: Sharding,
    outbox: Outbox,
    pipeline: Option<Addr<Pipeline>>,
) -> Result<Outcome, Error> {
    let sealed = crypto.send(seal).await??;
    publish_all(sealed, sharding, outbox, pipeline).await
}

/// Puts each envelope in the outbox (durable), then publishes it through
/// the outbound path and marks it sent. One the network does not take now
/// (no peers yet, the node offline) stays queued and is retried every few
/// seconds, across restarts. A hook's drop is final. Without a `pipeline`
/// (work the pipeline's mailbox itself waits for, which must not wait for
/// that mailbox) every envelope stays queued for the retry.
pub(crate) async fn publish_all(
    sealed: Vec<crypto::Sealed>,
    sharding: Sharding,
    outbox: Outbox,
    pipeline: Option<Addr<Pipeline>>,
) -> Result<Outcome, Error> {
    let mut outcome = Outcome::default();
    let mut dropped = None;
    for envelope in sealed {
        let message = WakuMessage::new(envelope.content_topic.as_str(), envelope.payload)
            .with_timestamp(murmur_core::now_nanos());
        let topic = sharding.pubsub_topic(&envelope.content_topic);
        let hash = outbox
            .enqueue
            .send(storage::Enqueue::new(topic.clone(), message.clone()))
            .await??;
        let Some(pipeline) = pipeline.as_ref() else {
            outcome.queued += 1;
            continue;
        };
        match publish(pipeline, Outgoing::new(topic, message)).await {
            // Left in the outbox until the next retry finds it published
            // (gossipsub answers a duplicate) and marks it: a process
            // killed before the bytes left publishes it again at start.
            Ok(_) => outcome.published += 1,
            Err(e @ Error::Dropped { .. }) => {
                outbox.mark_sent.send(storage::MarkSent(hash)).await??;
                dropped = Some(e);
            }
            Err(e) => {
                tracing::debug!(%hash, error = %e, "envelope queued for a retry");
                outcome.queued += 1;
            }
        }
    }
    match dropped {
        Some(e) if outcome.published + outcome.queued == 0 => Err(e),
        _ => Ok(outcome),
    }
}

impl Pipeline {
    /// Offers what waits in the outbox to the transport again.
    pub(super) fn retry_outbox(&mut self, ctx: &mut Context<Self>) {
        let (Some(chat), Some(transport)) = (self.chat.as_mut(), self.transport.as_ref()) else {
            return;
        };
        if chat.retrying {
            return;
        }
        chat.retrying = true;
        let outbox = chat.outbox.clone();
        let publish = transport.publish.clone();
        let archive = self.storage.as_ref().map(|s| s.save_raw.clone());
        let retry = async move {
            let Ok(Ok(pending)) = outbox.pending.send(storage::Pending).await else {
                return 0;
            };
            let mut sent = 0;
            for d in pending {
                match publish
                    .send(Publish::new(d.pubsub_topic.clone(), d.message.clone()))
                    .await
                {
                    Ok(Ok(_)) => {
                        let _ = outbox.mark_sent.send(storage::MarkSent(d.hash)).await;
                        if let Some(archive) = &archive {
                            let _ = archive.send(storage::SaveRaw(d)).await;
                        }
                        sent += 1;
                    }
                    // Published before (in this run): now it is marked.
                    Ok(Err(transport::Error::Duplicate(_))) => {
                        let _ = outbox.mark_sent.send(storage::MarkSent(d.hash)).await;
                    }
                    // Still nobody to publish to: the next tick tries again.
                    _ => break,
                }
            }
            sent
        };
        ctx.spawn(retry.into_actor(self).map(|sent, act, _| {
            if let Some(chat) = act.chat.as_mut() {
                chat.retrying = false;
            }
            if sent > 0 {
                tracing::info!(sent, "queued chat envelopes published");
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
                Some(ctx.address()),
            ))
        }) {
            Ok(future) => future,
            Err(p) => Box::pin(std::future::ready(Err(p.into()))),
        }
    }
}
