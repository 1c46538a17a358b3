//! The pipeline's messages: attaching stages, publishing raw messages,
//! subscribers, inboxes and notices (the outbox's side: `outbox.rs`).

use super::*;

/// Whether the membership stage answered that it restarted on the request
/// (the `restarted` of [`ask_again_after_restart`] for its messages).
pub(crate) fn groups_restarted<T>(answer: &Result<T, groups::Error>) -> bool {
    matches!(answer, Err(groups::Error::Restarted(_)))
}

/// Asks `stage`, and once more if it failed on the request and restarted:
/// it restarted from its persisted state, where the request had not been
/// carried out, and an arriving message must not be lost to a defect.
pub(crate) async fn ask_again_after_restart<M>(
    stage: Recipient<M>,
    message: M,
    restarted: fn(&M::Result) -> bool,
) -> Result<M::Result, MailboxError>
where
    M: Message + Clone + Send + 'static,
    M::Result: Send,
{
    ask_now(stage, message, restarted).await
}

/// [`ask_again_after_restart`], with `message` in the stage's mailbox
/// before this returns (not when the answer is first awaited).
pub(crate) fn ask_now<M>(
    stage: Recipient<M>,
    message: M,
    restarted: fn(&M::Result) -> bool,
) -> impl Future<Output = Result<M::Result, MailboxError>>
where
    M: Message + Clone + Send + 'static,
    M::Result: Send,
{
    let first = stage.send(message.clone());
    async move {
        let answer = first.await?;
        if restarted(&answer) {
            tracing::warn!("a stage restarted on an arriving message; asking it again");
            return stage.send(message).await;
        }
        Ok(answer)
    }
}

/// Gives the pipeline its stages; the builder sends it once, at start.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Attach {
    pub(crate) transport: transport::Handle,
    pub(crate) storage: storage::Handle,
    pub(crate) connected: std::sync::Arc<tokio::sync::Notify>,
    /// Asks store nodes which published messages they hold.
    pub(crate) confirm: Recipient<murmur_core::sync::Confirm>,
    /// Reads a topic from store nodes (a gap in a conversation).
    pub(crate) catch_up: Recipient<murmur_core::sync::CatchUp>,
    /// Whether arriving messages are archived.
    pub(crate) archive: bool,
}

impl Handler<Attach> for Pipeline {
    type Result = ();

    fn handle(&mut self, attach: Attach, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, ctx| {
            let outbox = Outbox::from(&attach.storage);
            this.route = Some(std::sync::Arc::new(Route {
                outbox: outbox.clone(),
                publish: attach.transport.publish.clone(),
                archive: attach.archive.then(|| attach.storage.save_raw.clone()),
                pipeline: ctx.address(),
            }));
            this.transport = Some(attach.transport);
            this.connected = Some(attach.connected);
            this.outbox = Some(outbox);
            this.confirm = Some(attach.confirm);
            this.catch_up = Some(attach.catch_up);
            this.storage = attach.archive.then_some(attach.storage);
            // What a previous run left queued goes out once there are peers.
            ctx.run_interval(OUTBOX_RETRY, Pipeline::tick);
        });
    }
}

impl Handler<transport::Event> for Pipeline {
    type Result = ();

    fn handle(&mut self, event: transport::Event, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, ctx| {
            if let Some(event) = this.hold(event) {
                this.on_event(event, ctx);
            }
        });
    }
}

impl Pipeline {
    /// What the transport (or store sync) reported, handled.
    pub(super) fn on_event(&mut self, event: transport::Event, ctx: &mut Context<Self>) {
        match event {
            transport::Event::Message(delivery) => {
                let keep = murmur_core::store::archivable(&delivery.message);
                self.archive_and_deliver(delivery, keep, ctx);
            }
            transport::Event::Fetched(delivery) => {
                let keep = super::fetched::keeps_fetched(&delivery);
                self.archive_and_deliver(delivery, keep, ctx);
            }
            transport::Event::FetchedPage(page) => self.archive_and_deliver_page(page, ctx),
            // Archived by the lightpush service before it answered,
            // if this node archives.
            transport::Event::Pushed(delivery) if self.storage.is_none() => {
                self.deliver_unarchived(delivery, ctx);
            }
            transport::Event::Pushed(delivery) | transport::Event::Archived(delivery) => {
                self.deliver(delivery, ctx);
            }
            transport::Event::PeerConnected { .. } => {
                self.stats.peers += 1;
                if let Some(connected) = &self.connected {
                    connected.notify_one();
                }
            }
            transport::Event::PeerDisconnected { .. } => {
                self.stats.peers = self.stats.peers.saturating_sub(1);
            }
            _ => {}
        }
    }
}

/// Publishes a message through the outbound hooks, the outbox and the
/// transport.
///
/// The handler runs the hooks and hands the message to the transport's
/// mailbox at once, in arrival order (and to the outbox: see
/// [`Publishing::run`](super::outbox::Publishing)); it answers with what is
/// left to wait for, which the caller awaits (see [`publish`]), so its
/// mailbox never waits on the network or the disk. What the network took
/// is archived by that future, on its own when there is room beside the
/// mailbox, so that a caller who stops waiting cannot leave it out.
#[derive(Message)]
#[rtype(result = "Result<Published, Error>")]
pub(crate) struct Outbound {
    pub(crate) outgoing: Outgoing,
    /// Answer only once the message is in the outbox, even if the network
    /// took it sooner (see [`publish_durably`]).
    pub(crate) durably: bool,
    /// The caller drives the publish itself ([`Publisher`]).
    pub(crate) beside: bool,
}

/// The rest of a publish the pipeline has handed on: the outbox's and the
/// transport's answers, and, on an archiving node, the message's archiving.
pub(crate) type Published = Pin<Box<dyn Future<Output = Result<crate::Publication, Error>> + Send>>;

impl Handler<Outbound> for Pipeline {
    type Result = MessageResult<Outbound>;

    fn handle(&mut self, msg: Outbound, ctx: &mut Context<Self>) -> Self::Result {
        let published = supervise::guard(self, ctx, |this, _| {
            this.publish(msg.outgoing, msg.durably, msg.beside)
        });
        MessageResult(published.unwrap_or_else(|p| Err(p.into())))
    }
}

impl Pipeline {
    pub(super) fn publish(
        &mut self,
        outgoing: Outgoing,
        durably: bool,
        beside: bool,
    ) -> Result<Published, Error> {
        let mut outgoing = self.run_hooks(
            outgoing,
            "outbound",
            |hook, o| hook.outbound(o),
            |o, m| o.message = m,
        )?;
        let route = self.route.clone().ok_or(Error::Stopped)?;
        // Stamped here, so that what is archived is what was published.
        outgoing
            .message
            .timestamp
            .get_or_insert_with(murmur_core::now_nanos);
        // What no peer would take never enters the outbox.
        let len = prost::Message::encoded_len(&outgoing.message);
        transport::validate(&outgoing.message, len)?;
        let archive = route.archive.is_some() && murmur_core::store::archivable(&outgoing.message);
        let delivery = Delivery::new(outgoing.pubsub_topic, outgoing.message);
        let progress = self.sends.watch(delivery.hash);
        // Under way: a retry must not offer it again meanwhile, should it
        // be in the outbox (a chat envelope at once; a raw message the
        // network did not take, before its outcome is recorded).
        self.sends.unmarked.insert(delivery.hash, None);
        let publishing = Publishing {
            delivery,
            route,
            archive,
            progress,
            durably,
        }
        .run();
        if beside || !self.background.has_room() {
            // Work beside the mailbox drives it itself; and with too much
            // beside the mailbox, the caller's wait does it.
            return Ok(Box::pin(publishing));
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let work: crate::background::Work = Box::pin(async move {
            if let Err(Err(e)) = answer.send(publishing.await) {
                tracing::warn!(error = %e, "a message no one waited for was not published");
            }
        });
        // Room was just checked, on this thread.
        let _ = self.background.offer(work);
        Ok(Box::pin(async move {
            answered.await.map_err(|_| Error::Stopped)?
        }))
    }
}

/// Adds a subscriber; answers with its queue.
#[derive(Message)]
#[rtype(result = "mpsc::Receiver<Delivery>")]
pub(crate) struct AddSubscriber {
    pub(crate) topics: Option<BTreeSet<String>>,
    pub(crate) capacity: usize,
}

impl Handler<AddSubscriber> for Pipeline {
    type Result = supervise::Answer<<AddSubscriber as Message>::Result>;

    fn handle(&mut self, msg: AddSubscriber, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let (tx, rx) = mpsc::channel(msg.capacity.max(1));
            this.subscribers.push(Subscriber {
                topics: msg.topics,
                tx,
            });
            rx
        })
        .into()
    }
}

/// Asks for the pipeline's counters.
#[derive(Message)]
#[rtype(result = "Stats")]
pub(crate) struct GetStats;

impl Handler<GetStats> for Pipeline {
    type Result = supervise::Answer<<GetStats as Message>::Result>;

    fn handle(&mut self, _: GetStats, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let mut stats = this.stats;
            if let Some(chat) = &this.chat {
                stats.gaps = chat.gaps.noticed;
                stats.gaps_unfilled = chat.gaps.given_up;
            }
            stats
        })
        .into()
    }
}

/// Gives the pipeline the crypto stage; the builder sends it once, at start.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AttachChat {
    pub(crate) crypto: crypto::Handle,
    pub(crate) outbox: storage::Handle,
    pub(crate) sharding: Sharding,
    pub(crate) topics: Vec<murmur_core::ContentTopic>,
    pub(crate) me: AccountId,
    /// `chat.batch`: the most messages to one account sealed together.
    pub(crate) batch: usize,
}

impl Handler<AttachChat> for Pipeline {
    type Result = ();

    fn handle(&mut self, a: AttachChat, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, _| {
            this.chat = Some(Chat {
                outbox: Outbox::from(&a.outbox),
                crypto: a.crypto,
                sharding: a.sharding,
                topics: a.topics.iter().map(|t| t.as_str().to_owned()).collect(),
                me: a.me,
                inboxes: Vec::new(),
                sent: HashMap::new(),
                sent_order: VecDeque::new(),
                unacked: Default::default(),
                suspects: Default::default(),
                unreadable: Vec::new(),
                groups: None,
                group_topics: BTreeSet::new(),
                parked: VecDeque::new(),
                deferred: HashMap::new(),
                notices: Vec::new(),
                held: Default::default(),
                book: None,
                taps: Vec::new(),
                ahead: VecDeque::new(),
                ahead_since: HashMap::new(),
                gaps: super::gaps::Gaps::default(),
                owed: Default::default(),
                batches: super::batch::Batches::new(a.batch),
            });
        });
    }
}

/// Gives the pipeline the membership stage and the topics of the groups
/// this account is in; the builder sends it once, after [`AttachChat`].
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AttachGroups {
    pub(crate) groups: groups::Handle,
    pub(crate) topics: Vec<murmur_core::ContentTopic>,
}

impl Handler<AttachGroups> for Pipeline {
    type Result = ();

    fn handle(&mut self, a: AttachGroups, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, _| {
            if let Some(chat) = this.chat.as_mut() {
                chat.groups = Some(a.groups);
                chat.group_topics = a.topics.iter().map(|t| t.as_str().to_owned()).collect();
            }
        });
    }
}

/// Keeps a pairwise group message for an account this device has not met,
/// until it writes.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Defer {
    pub(crate) to: AccountId,
    pub(crate) plaintext: bytes::Bytes,
}

/// Accounts with deferred messages, and messages per account, kept at most.
pub(crate) const DEFERRED: usize = 1024;

impl Handler<Defer> for Pipeline {
    type Result = ();

    fn handle(&mut self, msg: Defer, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, _| {
            let Some(chat) = this.chat.as_mut() else {
                return;
            };
            if chat.deferred.len() >= DEFERRED && !chat.deferred.contains_key(&msg.to) {
                tracing::warn!(account = %msg.to, "too many accounts waited for; group message dropped");
                return;
            }
            let waiting = chat.deferred.entry(msg.to).or_default();
            if waiting.len() < DEFERRED {
                waiting.push(msg.plaintext);
            }
        });
    }
}

/// Carries out what the membership stage answered a request of this node's
/// user: subscriptions, bundles, then pairwise messages, published through
/// the outbox before the request returns.
#[derive(Message)]
#[rtype(result = "Result<Outcome, Error>")]
pub(crate) struct ApplyEffects(pub(crate) groups::Effects);

impl Handler<ApplyEffects> for Pipeline {
    type Result = ResponseFuture<Result<Outcome, Error>>;

    fn handle(
        &mut self,
        ApplyEffects(effects): ApplyEffects,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        match supervise::guard(self, ctx, |this, ctx| -> Self::Result {
            let mailbox = Mailbox::waiting(ctx.address());
            Box::pin(this.apply_effects(effects, mailbox))
        }) {
            Ok(future) => future,
            Err(p) => Box::pin(std::future::ready(Err(p.into()))),
        }
    }
}

/// Sends a chat message: sealed for every device, published, then tracked
/// until the recipient's devices acknowledge it.
#[derive(Message)]
#[rtype(result = "Result<Sent, Error>")]
pub(crate) struct SendChat {
    pub(crate) to: AccountId,
    pub(crate) body: Body,
    /// The id to send it under; a new one if `None`.
    pub(crate) id: Option<MessageId>,
}

impl Handler<SendChat> for Pipeline {
    type Result = ResponseFuture<Result<Sent, Error>>;

    fn handle(&mut self, msg: SendChat, ctx: &mut Context<Self>) -> Self::Result {
        match supervise::guard(self, ctx, |this, ctx| -> Self::Result {
            if this.chat.is_none() {
                return Box::pin(async { Err(Error::ChatDisabled) });
            }
            let body = match this.run_hooks(
                chat::Outgoing::new(chat::Target::Account(msg.to), msg.body),
                "chat outbound",
                |hook, o| hook.chat_outbound(o),
                |o, body| o.body = body,
            ) {
                Ok(outgoing) => outgoing.body,
                Err(e) => return Box::pin(async { Err(e) }),
            };
            let Some(chat) = this.chat.as_mut() else {
                return Box::pin(async { Err(Error::ChatDisabled) });
            };
            let id = msg.id.unwrap_or_else(chat::random_id);
            let (tx, rx) = watch::channel(DeliveryState::Queued);
            let tx = Arc::new(tx);
            chat.sent.insert(id, Tracked::new(tx.clone(), msg.to));
            chat.sent_order.push_back(id);
            if chat.sent_order.len() > TRACKED {
                if let Some(old) = chat.sent_order.pop_front() {
                    chat.sent.remove(&old);
                }
            }
            let earlier =
                chat.gaps
                    .sending(super::gaps::Stream::Account(msg.to), id, chat::now_millis());
            let content = chat::encode(id, msg.to, &body, &earlier);
            if msg.to != chat.me {
                chat.unacked.keep(id, msg.to, content.clone());
            }
            let route = chat.route(
                super::batch::Sealer::Crypto(chat.crypto.seal.clone()),
                Publisher::caller(ctx.address()),
            );
            let publish =
                chat.batches
                    .send(super::batch::Target::Account(msg.to), content, false, route);
            // Writing to an account accepts it (the crypto stage marks it
            // so as it seals): what its requests left held goes now, as
            // when the user accepts it.
            if chat.held.holds(msg.to) {
                this.release(msg.to, false, ctx);
            }
            Box::pin(async move {
                match publish.await {
                    Ok(outcome) => {
                        // A receipt may have come first: only a queued
                        // state moves on.
                        outcome.follow(tx);
                        Ok(Sent::new(id, rx))
                    }
                    Err(e) => {
                        tx.send_replace(DeliveryState::Failed(e.to_string()));
                        Err(e)
                    }
                }
            })
        }) {
            Ok(future) => future,
            Err(p) => Box::pin(std::future::ready(Err(p.into()))),
        }
    }
}

/// Runs the outbound chat hooks on a message for a group; answers the body
/// to seal.
#[derive(Message)]
#[rtype(result = "Result<Body, Error>")]
pub(crate) struct ChatOutbound(pub(crate) chat::Outgoing);

impl Handler<ChatOutbound> for Pipeline {
    type Result = Result<Body, Error>;

    fn handle(
        &mut self,
        ChatOutbound(outgoing): ChatOutbound,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.run_hooks(
                outgoing,
                "chat outbound",
                |hook, o| hook.chat_outbound(o),
                |o, body| o.body = body,
            )
            .map(|o| o.body)
        })?
    }
}

/// A group message with this id is about to be sent: answers the earlier
/// ones it names (see `gaps.rs`).
#[derive(Message)]
#[rtype(result = "Vec<chat::Earlier>")]
pub(crate) struct GroupEarlier {
    pub(crate) group: groups::GroupId,
    pub(crate) id: MessageId,
}

impl Handler<GroupEarlier> for Pipeline {
    type Result = Vec<chat::Earlier>;

    fn handle(&mut self, msg: GroupEarlier, _: &mut Context<Self>) -> Self::Result {
        self.chat.as_mut().map_or_else(Vec::new, |chat| {
            chat.gaps.sending(
                super::gaps::Stream::Group(msg.group),
                msg.id,
                chat::now_millis(),
            )
        })
    }
}

/// Adds a queue of group notices; answers it.
#[derive(Message)]
#[rtype(result = "Result<mpsc::Receiver<groups::Notice>, Error>")]
pub(crate) struct AddNotices {
    pub(crate) capacity: usize,
}

impl Handler<AddNotices> for Pipeline {
    type Result = Result<mpsc::Receiver<groups::Notice>, Error>;

    fn handle(&mut self, msg: AddNotices, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let chat = this.chat.as_mut().ok_or(Error::ChatDisabled)?;
            let (tx, rx) = mpsc::channel(msg.capacity.max(1));
            chat.notices.push(tx);
            Ok(rx)
        })?
    }
}

/// Adds a chat inbox; answers with its queue.
#[derive(Message)]
#[rtype(result = "Result<mpsc::Receiver<ChatMessage>, Error>")]
pub(crate) struct AddInbox {
    pub(crate) capacity: usize,
}

impl Handler<AddInbox> for Pipeline {
    type Result = Result<mpsc::Receiver<ChatMessage>, Error>;

    fn handle(&mut self, msg: AddInbox, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let chat = this.chat.as_mut().ok_or(Error::ChatDisabled)?;
            let (tx, rx) = mpsc::channel(msg.capacity.max(1));
            chat.inboxes.push(tx);
            Ok(rx)
        })?
    }
}
