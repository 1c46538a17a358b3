//! What the membership stage asks of the pipeline after a change: shards
//! to subscribe, bundles to learn, pairwise messages to seal and publish,
//! join requests to carry out.

use super::*;

impl Pipeline {
    /// Subscribes what the membership stage asks for now, and answers the
    /// rest (bundles to learn, then pairwise messages to seal and publish
    /// through `pipeline`, or without one to leave queued in the outbox) as
    /// a future.
    pub(super) fn apply_effects(
        &mut self,
        effects: groups::Effects,
        mailbox: Mailbox,
    ) -> impl std::future::Future<Output = Result<Outcome, Error>> + 'static {
        let transport = self.transport.as_ref().map(|t| t.subscribe.clone());
        let chat = self.chat.as_mut().map(|chat| {
            for topic in &effects.subscribe {
                chat.group_topics.insert(topic.as_str().to_owned());
            }
            for notice in &effects.notices {
                chat.notices.retain(|tx| match tx.try_send(notice.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(?notice, "notice queue full; notice missed");
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                });
            }
            (
                chat.crypto.clone(),
                chat.groups.clone(),
                chat.sharding.clone(),
                chat.outbox.clone(),
            )
        });
        async move {
            let (crypto, groups, sharding, outbox) = chat.ok_or(Error::ChatDisabled)?;
            if let Some(subscribe) = transport {
                for topic in &effects.subscribe {
                    subscribe
                        .send(
                            transport::Subscribe::new(sharding.pubsub_topic(topic))
                                .with_content_topics(vec![topic.as_str().to_owned()]),
                        )
                        .await??;
                }
            }
            for (account, bundles) in effects.learn {
                let learn = crypto::LearnBundles { account, bundles };
                match crypto.learn_bundles.send(learn).await? {
                    // Introduced by a group: accepted, so what its messages
                    // left waiting (a key sent before the invite) goes on.
                    // Also when no bundle was new: its first message, held
                    // as a request, may have taught this device its device
                    // before the group did.
                    Ok(_) => {
                        if let Err(e) = mailbox
                            .ask(super::Accepted {
                                account,
                                request: false,
                            })
                            .await
                        {
                            tracing::debug!(error = %e, "held requests not released");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "bundles of a group member not learned"),
                }
            }
            let mut outcome = Outcome::default();
            for (to, plaintext) in effects.pairwise {
                let seal = crypto::Seal::new(to, plaintext.clone());
                match publish_sealed(
                    crypto.seal.clone(),
                    seal,
                    sharding.clone(),
                    outbox.clone(),
                    mailbox.publisher(),
                )
                .await
                {
                    Ok(o) => {
                        outcome.published += o.published;
                        outcome.queued += o.queued;
                    }
                    // Someone this device has not met (added by an admin who
                    // knew it from a session only): it writes first, with
                    // the bundles its invite carried, and this goes then.
                    Err(Error::Crypto(crypto::Error::UnknownContact(_))) => {
                        if let Err(e) = mailbox.ask(Defer { to, plaintext }).await {
                            tracing::warn!(account = %to, error = %e, "group message not deferred");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(account = %to, error = %e, "group keys or events not sealed")
                    }
                }
            }
            // Join requests this admin's device accepted: added as any
            // change of this account's.
            for (group, account) in effects.admit {
                let Some(groups) = &groups else { break };
                let add = groups::Change {
                    group,
                    action: groups::Action::Add(account),
                };
                match groups.change.send(add).await? {
                    Ok(more) => {
                        if let Some(o) = mailbox.ask(ApplyEffects(more)).await? {
                            let o = o?;
                            outcome.published += o.published;
                            outcome.queued += o.queued;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%group, %account, error = %e, "join request not carried out")
                    }
                }
            }
            Ok(outcome)
        }
    }
}
