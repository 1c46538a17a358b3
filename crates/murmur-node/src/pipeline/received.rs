//! The chat side of the pipeline: opening envelopes and group messages in
//! arrival order, what they cause (receipts, group keys, the crypto
//! stage's answers), and delivering what opened to the inboxes.

use super::{
    lane::{done, Answer, Opening, Step, OWED},
    *,
};

impl Pipeline {
    /// Opens one delivery from the lane: a group message, or a pairwise
    /// envelope on this device's partition (handed to the crypto stage
    /// already if `opening`).
    pub(super) fn open(
        &mut self,
        delivery: Delivery,
        opening: Option<Opening>,
        _: &mut Context<Self>,
    ) -> Step {
        let Some(chat) = self.chat.as_ref() else {
            return done();
        };
        let hash = delivery.hash;
        let open = match opening.or_else(|| Self::opening(chat, delivery.clone())) {
            Some(Opening::Pairwise(open)) => open,
            Some(Opening::Group(open)) => return self.open_group(delivery, open),
            None => return done(),
        };
        Box::pin(
            open.into_actor(self)
                .then(move |opened, act, ctx| match opened {
                    Ok(Ok(opened)) => act.on_opened(&opened, Journal::Crypto(hash), ctx),
                    Ok(Err(crypto::Error::TooFarAhead(_))) => {
                        act.hold_ahead(delivery);
                        done()
                    }
                    Ok(Err(e @ crypto::Error::UnknownSession { account, device })) => {
                        act.stats.chat_refused += 1;
                        act.ask_reset(account, device, &e, ctx);
                        done()
                    }
                    Ok(Err(e @ crypto::Error::BrokenSession { account, device })) => {
                        act.stats.chat_refused += 1;
                        act.suspect(account, device, e, ctx);
                        done()
                    }
                    Ok(Err(e)) => {
                        act.stats.chat_refused += 1;
                        tracing::debug!(error = %e, "chat envelope refused");
                        done()
                    }
                    Err(_) => {
                        act.stats.chat_refused += 1;
                        done()
                    }
                }),
        )
    }

    /// After pairing: the account, and so the partition, changed. The lane
    /// waits until the new topic is subscribed.
    pub(super) fn refresh_identity(&mut self) -> Step {
        let (Some(chat), Some(transport)) = (self.chat.as_ref(), self.transport.as_ref()) else {
            return done();
        };
        let crypto = chat.crypto.clone();
        let subscribe = transport.subscribe.clone();
        let sharding = chat.sharding.clone();
        let refresh = async move {
            let me = crypto.identity.send(crypto::Identity).await??;
            let topics = crypto.topics.send(crypto::Topics).await??;
            for topic in &topics {
                let shard = sharding.pubsub_topic(topic);
                subscribe
                    .send(
                        transport::Subscribe::new(shard)
                            .with_content_topics(vec![topic.as_str().to_owned()]),
                    )
                    .await??;
            }
            Ok::<_, Error>((me, topics))
        };
        Box::pin(refresh.into_actor(self).map(|result, act, _| match result {
            Ok((me, topics)) => {
                if let Some(chat) = act.chat.as_mut() {
                    tracing::info!(account = %me.0, device = %me.1, "chat identity changed");
                    chat.me = me.0;
                    chat.topics = topics.iter().map(|t| t.as_str().to_owned()).collect();
                }
            }
            Err(e) => tracing::warn!(error = %e, "new chat topic not subscribed"),
        }))
    }
    pub(super) fn open_group(
        &mut self,
        delivery: Delivery,
        open: Answer<Result<groups::Opened, groups::Error>>,
    ) -> Step {
        Box::pin(
            open.into_actor(self)
                .then(move |opened, act, ctx| match opened {
                    Ok(Ok(opened)) => {
                        if !opened.effects.is_empty() {
                            // The sender's heads are ahead of this log: ask
                            // it for the events.
                            let apply = act.apply_effects(opened.effects.clone(), act.mailbox(ctx));
                            act.background(ctx, "a pull of a group's log", apply);
                        }
                        act.on_group_message(&opened, Journal::Group(delivery.hash), ctx)
                    }
                    Ok(Err(groups::Error::UnknownChain)) => {
                        act.stats.group_refused += 1;
                        act.ask_key(delivery.clone(), ctx);
                        if let Some(chat) = act.chat.as_mut() {
                            chat.park(delivery);
                        }
                        done()
                    }
                    Ok(Err(groups::Error::TooFarAhead(_))) => {
                        act.hold_ahead(delivery);
                        done()
                    }
                    // Handled when it was sent.
                    Ok(Err(groups::Error::Own)) => done(),
                    Ok(Err(e)) => {
                        act.stats.group_refused += 1;
                        tracing::debug!(error = %e, "group message refused");
                        done()
                    }
                    Err(_) => {
                        act.stats.group_refused += 1;
                        done()
                    }
                }),
        )
    }
    pub(super) fn on_group_message(
        &mut self,
        opened: &groups::Opened,
        journal: Journal,
        ctx: &mut Context<Self>,
    ) -> Step {
        let Some(chat) = self.chat.as_mut() else {
            return done();
        };
        match chat::decode(opened.sender, opened.device, chat.me, &opened.plaintext) {
            // The membership stage held each message of a batch to what it
            // would be alone (its conformance case
            // `a_batch_is_held_to_what_its_messages_alone_would_be`).
            Ok(Decoded::Messages(messages)) => {
                self.stats.group_opened += 1;
                chat.owed.expect(journal, messages.len());
                let mut step = done();
                for (mut message, earlier) in messages {
                    let Some(chat) = self.chat.as_mut() else {
                        break;
                    };
                    chat.gaps.received(
                        opened.sender,
                        opened.device,
                        super::gaps::Stream::Group(opened.group),
                        message.id,
                        &earlier,
                        std::time::Instant::now(),
                    );
                    message.group = Some(opened.group);
                    message.role = Some(opened.role);
                    message.to = chat.me;
                    let deliver = self.deliver_chat(message, journal, ctx);
                    step = Box::pin(step.then(move |(), _, _| deliver));
                }
                return step;
            }
            Ok(_) | Err(_) => {
                self.stats.group_refused += 1;
                tracing::debug!(group = %opened.group, "group content malformed");
            }
        }
        self.handled(journal, ctx);
        done()
    }
    /// A group's events or keys arrived in a pairwise session: the lane
    /// waits until the membership stage applied them, so that the group
    /// messages after them open. Its kept plaintext (`journal`) goes then,
    /// or, for a stranger's invite held as a request, once that is
    /// carried out or declined.
    pub(super) fn on_group_control(
        &mut self,
        opened: &crypto::Opened,
        plaintext: bytes::Bytes,
        journal: Journal,
    ) -> Step {
        let Some(groups) = self.chat.as_ref().and_then(|c| c.groups.clone()) else {
            return Box::pin(actix::fut::ready(()).map(move |(), act: &mut Self, ctx| {
                act.handled(journal, ctx);
            }));
        };
        let (from, device) = (opened.sender, opened.device);
        let request = opened.request
            && !self
                .chat
                .as_ref()
                .is_some_and(|c| c.held.accepted_since(from));
        let control = groups::Control {
            from,
            device,
            message: plaintext.clone(),
            request,
        };
        let control = ask_again_after_restart(groups.control, control, groups_restarted);
        Box::pin(
            control
                .into_actor(self)
                .then(move |applied, act, ctx| match applied {
                    Ok(Ok(effects)) => {
                        let apply = act.apply_effects(effects, act.mailbox(ctx));
                        act.background(ctx, "group keys or events", apply);
                        // Messages that came before their chain key, handed
                        // on together and handled in order.
                        let Some(chat) = act.chat.as_mut() else {
                            act.handled(journal, ctx);
                            return done();
                        };
                        let mut step = done();
                        for delivery in std::mem::take(&mut chat.parked) {
                            let Some(Opening::Group(open)) = Self::opening(chat, delivery.clone())
                            else {
                                continue;
                            };
                            step = Box::pin(
                                step.then(move |(), act, _| act.open_group(delivery, open)),
                            );
                        }
                        Box::pin(step.map(move |(), act, ctx| act.handled(journal, ctx)))
                    }
                    Ok(Err(groups::Error::NotAccepted(_))) => {
                        // An invite from a stranger: joined if the user
                        // accepts it, and kept until then.
                        act.stats.requests += 1;
                        let crowded = act
                            .chat
                            .as_mut()
                            .map(|chat| chat.held.control(from, device, plaintext, journal))
                            .unwrap_or_default();
                        act.let_go_held(crowded, ctx);
                        done()
                    }
                    Ok(Err(e)) => {
                        act.stats.chat_refused += 1;
                        tracing::debug!(error = %e, "group control refused");
                        act.handled(journal, ctx);
                        done()
                    }
                    Err(_) => {
                        act.stats.chat_refused += 1;
                        act.handled(journal, ctx);
                        done()
                    }
                }),
        )
    }
    pub(super) fn on_opened(
        &mut self,
        opened: &crypto::Opened,
        journal: Journal,
        ctx: &mut Context<Self>,
    ) -> Step {
        self.stats.chat_opened += 1;
        if let Some(chat) = self.chat.as_mut() {
            chat.suspects.cleared(opened.sender, opened.device);
        }
        if opened.revoked.is_empty() {
            return self.opened(opened, journal, ctx);
        }
        // Revoked devices lose their group chains before anything else of
        // this envelope is handled.
        let revoked = self.revocations(opened.revoked.clone());
        let opened = opened.clone();
        Box::pin(revoked.then(move |(), act, ctx| act.opened(&opened, journal, ctx)))
    }

    /// Tells the membership stage of revoked devices, and hands the new
    /// group chains it starts to the members that remain.
    fn revocations(&mut self, revoked: Vec<(crypto::AccountId, crypto::DeviceId)>) -> Step {
        let Some(groups) = self.chat.as_ref().and_then(|c| c.groups.clone()) else {
            return done();
        };
        let ask = async move {
            let mut all = groups::Effects::default();
            for (account, device) in revoked {
                match groups
                    .revoked
                    .send(groups::Revoked { account, device })
                    .await
                {
                    Ok(Ok(effects)) => all.pairwise.extend(effects.pairwise),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "group chains not renewed after a revocation")
                    }
                    Err(_) => tracing::warn!("membership stage gone; group chains not renewed"),
                }
            }
            all
        };
        Box::pin(ask.into_actor(self).map(|effects, act, ctx| {
            let apply = act.apply_effects(effects, act.mailbox(ctx));
            act.background(ctx, "new group chains after a revocation", apply);
        }))
    }

    /// What an opened envelope says, handled; `journal` names the kept
    /// plaintext to let go once it is (see [`Journal`]).
    pub(super) fn opened(
        &mut self,
        opened: &crypto::Opened,
        journal: Journal,
        ctx: &mut Context<Self>,
    ) -> Step {
        // Requests here until now: whatever of theirs the durable inbox
        // holds came as requests, and a restart since forgot their receipts.
        for account in &opened.accepted {
            self.release(*account, true, ctx);
        }
        if let Some(waiting) = self
            .chat
            .as_mut()
            .and_then(|c| c.deferred.remove(&opened.sender))
        {
            let mut effects = groups::Effects::default();
            effects.pairwise = waiting.into_iter().map(|p| (opened.sender, p)).collect();
            let apply = self.apply_effects(effects, self.mailbox(ctx));
            self.background(ctx, "deferred group keys", apply);
        }
        if opened.reset {
            self.resend(opened.sender, ctx);
        }
        let publisher = self.mailbox(ctx).publisher();
        let Some(chat) = self.chat.as_mut() else {
            return done();
        };
        if !opened.publish.is_empty() {
            let publish = publish_all(
                opened.publish.clone(),
                chat.sharding.clone(),
                chat.outbox.clone(),
                publisher,
            );
            self.background(ctx, "the crypto stage's answer", publish);
        }
        let first = if opened.identity_changed {
            self.refresh_identity()
        } else {
            done()
        };
        let Some(chat) = self.chat.as_mut() else {
            return first;
        };
        let Some(plaintext) = &opened.plaintext else {
            return first;
        };
        match chat::decode(opened.sender, opened.device, chat.me, plaintext) {
            Ok(Decoded::Receipts(ids)) => {
                chat.unacked.acked(opened.sender, &ids);
                for id in ids {
                    // One for a message no longer followed (before a
                    // restart, or long ago) has nothing to change.
                    if let Some(sent) = chat.sent.get_mut(&id) {
                        if !sent.acknowledged(opened.sender, opened.device) {
                            self.stats.receipts_refused += 1;
                        }
                    }
                }
            }
            Ok(Decoded::Group) => {
                let plaintext = plaintext.clone();
                let control = self.on_group_control(opened, plaintext, journal);
                return Box::pin(first.then(move |(), _, _| control));
            }
            Ok(Decoded::Messages(messages)) => {
                chat.owed.expect(journal, messages.len());
                let mut step = first;
                let last = messages.len() - 1;
                for (i, (message, earlier)) in messages.into_iter().enumerate() {
                    let deliver = self.received(opened, message, &earlier, journal, i == last, ctx);
                    step = Box::pin(step.then(move |(), _, _| deliver));
                }
                return step;
            }
            Err(reason) => {
                self.stats.chat_refused += 1;
                tracing::debug!(%reason, "chat content malformed");
            }
        }
        self.handled(journal, ctx);
        first
    }

    /// One chat message of an opened envelope: its place in the
    /// conversation, the receipt owed for it (outside the lane, sent with
    /// the `last` of the envelope's messages), and on into the inboxes.
    fn received(
        &mut self,
        opened: &crypto::Opened,
        mut message: ChatMessage,
        earlier: &[chat::Earlier],
        journal: Journal,
        last: bool,
        ctx: &mut Context<Self>,
    ) -> Step {
        let Some(chat) = self.chat.as_mut() else {
            return done();
        };
        message.request = opened.request && !chat.held.accepted_since(message.sender);
        // A stranger's message names nothing this node reads for.
        let earlier = if message.request { &[][..] } else { earlier };
        chat.gaps.received(
            message.sender,
            message.device,
            super::gaps::Stream::Account(message.to),
            message.id,
            earlier,
            std::time::Instant::now(),
        );
        // Our own other devices get copies; only the other side
        // acknowledges, and a stranger learns nothing (not even that this
        // device is online) until the user accepts it.
        if message.request {
            self.stats.requests += 1;
            let crowded = chat.held.receipt(message.sender, message.id);
            self.let_go_held(crowded, ctx);
        } else if message.sender != chat.me {
            let owed = chat.owed.receipts.entry(message.sender).or_default();
            owed.push(message.id);
            if owed.len() >= OWED || (last && !chat.owed.driving) {
                self.send_receipts(Some(message.sender), ctx);
            }
        }
        self.deliver_chat(message, journal, ctx)
    }
}

impl Chat {
    pub(super) fn park(&mut self, delivery: Delivery) {
        if self.parked.len() >= PARKED {
            self.parked.pop_front();
        }
        self.parked.push_back(delivery);
    }

    /// To every inbox, and with its sequence in the durable inbox (if
    /// kept there) to every durable subscriber.
    pub(super) fn deliver_to_inboxes(&mut self, message: &ChatMessage, seq: Option<u64>) {
        self.inboxes
            .retain(|inbox| match inbox.try_send(message.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(id = %message.id, "chat inbox full; message missed");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        if let Some(seq) = seq {
            self.taps.retain(|tap| tap.offer(seq, message));
        }
    }
}
