use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::Arc,
};

use actix::prelude::*;
use murmur_core::{
    crypto::{self, AccountId},
    groups,
    hook::{BoxError, FailurePolicy, Hook, Outgoing, Verdict},
    storage, supervise,
    transport::{self, Publish},
    Delivery, MessageHash, Sharding, WakuMessage,
};
use tokio::sync::{mpsc, watch};

use crate::{
    chat::{self, Body, ChatMessage, Decoded, DeliveryState, MessageId, Sent},
    Error,
};

/// Sent messages whose receipts are still counted.
const TRACKED: usize = 10_000;

const MAILBOX: usize = 4096;

/// Counters of what the pipeline did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages that reached at least the subscriber stage.
    pub delivered: u64,
    /// Messages a hook dropped, inbound or outbound.
    pub dropped_by_hooks: u64,
    /// Hook errors and panics.
    pub hook_failures: u64,
    /// Hooks rebuilt from their configuration after a panic.
    pub hook_restarts: u64,
    /// Deliveries a slow subscriber missed because its queue was full.
    pub subscriber_overflows: u64,
    /// Connected peers, as the transport reported them.
    pub peers: u64,
    /// Messages that arrived again after they were archived, and were not
    /// delivered twice.
    pub duplicates: u64,
    /// Chat envelopes opened.
    pub chat_opened: u64,
    /// Chat envelopes on our partition that did not open (most are for
    /// other accounts of the partition).
    pub chat_refused: u64,
    /// Group messages opened.
    pub group_opened: u64,
    /// Group messages that did not open: from before this account joined,
    /// after it was removed, from non-members, altered, replayed.
    pub group_refused: u64,
}

/// Group messages kept that no chain this device holds opens yet: a chain
/// key can arrive after the first message sent on it.
const PARKED: usize = 256;

/// Moves each message through the stages.
///
/// In: transport -> inbound hooks -> subscribers. Out: outbound hooks ->
/// transport. The stages are held as recipients only; the [`Builder`](crate::Builder)
/// decides which actors they are.
pub struct Pipeline {
    transport: Option<transport::Handle>,
    storage: Option<storage::Handle>,
    hooks: Vec<Slot>,
    subscribers: Vec<Subscriber>,
    stats: Stats,
    chat: Option<Chat>,
    background: crate::background::Background,
    fuse: supervise::Fuse,
}

/// The chat side of the pipeline.
struct Chat {
    crypto: crypto::Handle,
    sharding: Sharding,
    /// Where our envelopes arrive.
    topics: BTreeSet<String>,
    me: AccountId,
    inboxes: Vec<mpsc::Sender<ChatMessage>>,
    /// Sent messages: their state, and how many receipts came.
    sent: HashMap<MessageId, (Arc<watch::Sender<DeliveryState>>, usize)>,
    sent_order: VecDeque<MessageId>,
    /// Where envelopes wait until they are published.
    outbox: Outbox,
    /// A retry of the outbox is running.
    retrying: bool,
    /// The membership stage.
    groups: Option<groups::Handle>,
    /// Where the messages of this account's groups arrive.
    group_topics: BTreeSet<String>,
    /// Group messages waiting for their chain key.
    parked: VecDeque<Delivery>,
    /// Pairwise group messages for accounts not met yet, until they write.
    deferred: HashMap<AccountId, Vec<bytes::Bytes>>,
    /// Where group notices go.
    notices: Vec<mpsc::Sender<groups::Notice>>,
}

/// The persistence stage's outbox, as the chat path uses it: every envelope
/// is in it before it is published and until it is.
#[derive(Clone)]
pub(crate) struct Outbox {
    enqueue: Recipient<storage::Enqueue>,
    mark_sent: Recipient<storage::MarkSent>,
    pending: Recipient<storage::Pending>,
}

impl From<&storage::Handle> for Outbox {
    fn from(s: &storage::Handle) -> Self {
        Self {
            enqueue: s.enqueue.clone(),
            mark_sent: s.mark_sent.clone(),
            pending: s.pending.clone(),
        }
    }
}

/// How a batch of envelopes went out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    /// Published now.
    pub(crate) published: usize,
    /// In the outbox, to be published when the network takes them.
    pub(crate) queued: usize,
}

/// How often queued envelopes are offered to the network again.
const OUTBOX_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds a hook again, from its configuration.
pub(crate) type Factory = Box<dyn Fn() -> Result<Box<dyn Hook>, BoxError>>;

/// A hook in the pipeline, with what it takes to isolate it.
pub(crate) struct Slot {
    hook: Box<dyn Hook>,
    /// How to rebuild it after a panic; a hook given as an instance has none
    /// and runs on as it is.
    factory: Option<Factory>,
    /// The configured failure policy, over the hook's own.
    policy: Option<FailurePolicy>,
}

impl Slot {
    pub(crate) fn new(hook: Box<dyn Hook>) -> Self {
        Self {
            hook,
            factory: None,
            policy: None,
        }
    }

    pub(crate) fn with_factory(mut self, factory: Factory, policy: Option<FailurePolicy>) -> Self {
        self.factory = Some(factory);
        self.policy = policy;
        self
    }

    fn name(&self) -> &str {
        self.hook.name()
    }

    fn failed<R>(&self, direction: &'static str, error: &str) -> Verdict<R> {
        let policy = self.policy.unwrap_or_else(|| self.hook.failure_policy());
        tracing::warn!(hook = self.name(), direction, %error, ?policy, "hook failed");
        match policy {
            FailurePolicy::Deliver => Verdict::Deliver,
            FailurePolicy::Drop => Verdict::Drop {
                reason: format!("hook failed: {error}"),
            },
        }
    }

    /// Replaces a hook that panicked with a fresh one; false if it cannot
    /// be rebuilt (it then runs on as it is).
    fn restart(&mut self) -> bool {
        let Some(factory) = &self.factory else {
            return false;
        };
        match catch_unwind(AssertUnwindSafe(factory)) {
            Ok(Ok(hook)) => {
                tracing::info!(hook = hook.name(), "hook restarted after a panic");
                self.hook = hook;
                true
            }
            _ => {
                tracing::warn!(
                    hook = self.name(),
                    "hook could not be rebuilt; it runs on as it is"
                );
                false
            }
        }
    }
}

struct Subscriber {
    /// Content topics it wants; `None` for everything.
    topics: Option<BTreeSet<String>>,
    tx: mpsc::Sender<Delivery>,
}

impl Pipeline {
    pub(crate) fn new(hooks: Vec<Slot>) -> Self {
        Self {
            transport: None,
            storage: None,
            hooks,
            subscribers: Vec::new(),
            stats: Stats::default(),
            chat: None,
            background: crate::background::Background::idle(),
            fuse: supervise::Fuse::default(),
        }
    }

    /// Runs the hooks in order; the error names the hook that dropped the
    /// message, and why. A hook that fails takes its failure policy; one
    /// that panics is also rebuilt from its configuration, if it has one.
    fn run_hooks<T, R>(
        &mut self,
        mut item: T,
        direction: &'static str,
        call: impl Fn(&mut dyn Hook, &T) -> Result<Verdict<R>, BoxError>,
        rewrite: impl Fn(&mut T, R),
    ) -> Result<T, Error> {
        for slot in &mut self.hooks {
            let verdict = match catch_unwind(AssertUnwindSafe(|| call(slot.hook.as_mut(), &item))) {
                Ok(Ok(verdict)) => verdict,
                Ok(Err(e)) => {
                    self.stats.hook_failures += 1;
                    slot.failed(direction, &e.to_string())
                }
                Err(_) => {
                    self.stats.hook_failures += 1;
                    let verdict = slot.failed(direction, "panicked");
                    if slot.restart() {
                        self.stats.hook_restarts += 1;
                    }
                    verdict
                }
            };
            match verdict {
                Verdict::Rewrite(replacement) => rewrite(&mut item, replacement),
                Verdict::Drop { reason } => {
                    self.stats.dropped_by_hooks += 1;
                    tracing::debug!(hook = slot.name(), direction, %reason, "hook dropped a message");
                    return Err(Error::Dropped {
                        hook: slot.name().to_owned(),
                        reason,
                    });
                }
                // Deliver, and verdicts this version does not know.
                _ => {}
            }
        }
        Ok(item)
    }

    fn deliver(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Ok(delivery) = self.run_hooks(
            delivery,
            "inbound",
            |hook, d| hook.inbound(d),
            |d, m| d.message = m,
        ) else {
            return;
        };
        self.stats.delivered += 1;
        let mut overflows = 0;
        self.subscribers.retain(|s| {
            if s.topics
                .as_ref()
                .is_some_and(|t| !t.contains(&delivery.message.content_topic))
            {
                return true;
            }
            match s.tx.try_send(delivery.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    overflows += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if overflows > 0 {
            self.stats.subscriber_overflows += overflows;
            tracing::warn!(hash = %delivery.hash, overflows, "subscriber queue full; delivery missed");
        }
        if let Some(chat) = self.chat.as_mut() {
            let topic = &delivery.message.content_topic;
            if chat.group_topics.contains(topic) {
                self.open_group(delivery, ctx);
                return;
            }
            if topic.starts_with(murmur_core::groups::TOPIC_PREFIX) {
                // Perhaps a group this account is being invited into, its
                // first message ahead of the invite.
                chat.park(delivery);
                return;
            }
        }
        let Some(chat) = self
            .chat
            .as_ref()
            .filter(|c| c.topics.contains(&delivery.message.content_topic))
        else {
            return;
        };
        // Opened in arrival order: the mailbox waits.
        let open = ask_again_after_restart(chat.crypto.open.clone(), crypto::Open(delivery), |r| {
            matches!(r, Err(crypto::Error::Restarted(_)))
        });
        ctx.wait(open.into_actor(self).map(|opened, act, ctx| match opened {
            Ok(Ok(opened)) => act.on_opened(&opened, ctx),
            Ok(Err(e)) => {
                act.stats.chat_refused += 1;
                tracing::debug!(error = %e, "chat envelope refused");
            }
            Err(_) => act.stats.chat_refused += 1,
        }));
    }

    /// Runs `work` beside the mailbox; when too much is queued already, the
    /// mailbox waits for it instead.
    fn background<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        what: &'static str,
        work: impl std::future::Future<Output = Result<T, Error>> + 'static,
    ) {
        let work: crate::background::Work = Box::pin(async move {
            if let Err(e) = work.await {
                tracing::warn!(what, error = %e, "not done");
            }
        });
        if let Err(work) = self.background.offer(work) {
            ctx.wait(work.into_actor(self));
        }
    }

    /// After pairing: the account, and so the partition, changed. The mailbox
    /// waits until the new topic is subscribed.
    fn refresh_identity(&mut self, ctx: &mut Context<Self>) {
        let (Some(chat), Some(transport)) = (self.chat.as_ref(), self.transport.as_ref()) else {
            return;
        };
        let crypto = chat.crypto.clone();
        let subscribe = transport.subscribe.clone();
        let sharding = chat.sharding;
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
        ctx.wait(refresh.into_actor(self).map(|result, act, _| match result {
            Ok((me, topics)) => {
                if let Some(chat) = act.chat.as_mut() {
                    tracing::info!(account = %me.0, device = %me.1, "chat identity changed");
                    chat.me = me.0;
                    chat.topics = topics.iter().map(|t| t.as_str().to_owned()).collect();
                }
            }
            Err(e) => tracing::warn!(error = %e, "new chat topic not subscribed"),
        }));
    }

    fn open_group(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Some(groups) = self.chat.as_ref().and_then(|c| c.groups.clone()) else {
            return;
        };
        let open = ask_again_after_restart(groups.open, groups::Open(delivery.clone()), |r| {
            matches!(r, Err(groups::Error::Restarted(_)))
        });
        ctx.wait(
            open.into_actor(self)
                .map(move |opened, act, _| match opened {
                    Ok(Ok(opened)) => act.on_group_message(&opened),
                    Ok(Err(groups::Error::UnknownChain)) => {
                        act.stats.group_refused += 1;
                        if let Some(chat) = act.chat.as_mut() {
                            if chat.parked.len() >= PARKED {
                                chat.parked.pop_front();
                            }
                            chat.parked.push_back(delivery);
                        }
                    }
                    Ok(Err(e)) => {
                        act.stats.group_refused += 1;
                        tracing::debug!(error = %e, "group message refused");
                    }
                    Err(_) => act.stats.group_refused += 1,
                }),
        );
    }

    fn on_group_message(&mut self, opened: &groups::Opened) {
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        match chat::decode(opened.sender, opened.device, chat.me, &opened.plaintext) {
            Ok(Decoded::Message(mut message)) => {
                self.stats.group_opened += 1;
                message.group = Some(opened.group);
                message.role = Some(opened.role);
                message.to = chat.me;
                self.deliver_chat(message);
            }
            Ok(_) | Err(_) => {
                self.stats.group_refused += 1;
                tracing::debug!(group = %opened.group, "group content malformed");
            }
        }
    }

    /// A group's events or keys arrived in a pairwise session: the mailbox
    /// waits until the membership stage applied them, so that the group
    /// messages after them open.
    fn on_group_control(
        &mut self,
        opened: &crypto::Opened,
        plaintext: bytes::Bytes,
        ctx: &mut Context<Self>,
    ) {
        let Some(groups) = self.chat.as_ref().and_then(|c| c.groups.clone()) else {
            return;
        };
        let control = groups::Control {
            from: opened.sender,
            device: opened.device,
            message: plaintext,
        };
        let control = ask_again_after_restart(groups.control, control, |r| {
            matches!(r, Err(groups::Error::Restarted(_)))
        });
        ctx.wait(
            control
                .into_actor(self)
                .map(|applied, act, ctx| match applied {
                    Ok(Ok(effects)) => {
                        let apply = act.apply_effects(effects, ctx);
                        act.background(ctx, "group keys or events", apply);
                        // Messages that came before their chain key.
                        let parked = act.chat.as_mut().map(|c| std::mem::take(&mut c.parked));
                        for delivery in parked.into_iter().flatten() {
                            act.open_group(delivery, ctx);
                        }
                    }
                    Ok(Err(e)) => {
                        act.stats.chat_refused += 1;
                        tracing::debug!(error = %e, "group control refused");
                    }
                    Err(_) => act.stats.chat_refused += 1,
                }),
        );
    }

    /// Subscribes what the membership stage asks for now, and answers the
    /// rest (bundles to learn, then pairwise messages to seal and publish)
    /// as a future.
    fn apply_effects(
        &mut self,
        effects: groups::Effects,
        ctx: &mut Context<Self>,
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
                chat.sharding,
                chat.outbox.clone(),
            )
        });
        let pipeline = ctx.address();
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
                if let Err(e) = crypto.learn_bundles.send(learn).await? {
                    tracing::debug!(error = %e, "bundles of a group member not learned");
                }
            }
            let mut outcome = Outcome::default();
            for (to, plaintext) in effects.pairwise {
                let seal = crypto::Seal::new(to, plaintext.clone());
                match publish_sealed(
                    crypto.seal.clone(),
                    seal,
                    sharding,
                    outbox.clone(),
                    pipeline.clone(),
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
                        // Waits for room in the pipeline's mailbox.
                        if pipeline.send(Defer { to, plaintext }).await.is_err() {
                            tracing::debug!(account = %to, "pipeline gone; group message not deferred");
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
                        let o = pipeline.send(ApplyEffects(more)).await??;
                        outcome.published += o.published;
                        outcome.queued += o.queued;
                    }
                    Err(e) => {
                        tracing::warn!(%group, %account, error = %e, "join request not carried out")
                    }
                }
            }
            Ok(outcome)
        }
    }

    fn on_opened(&mut self, opened: &crypto::Opened, ctx: &mut Context<Self>) {
        self.stats.chat_opened += 1;
        if let Some(waiting) = self
            .chat
            .as_mut()
            .and_then(|c| c.deferred.remove(&opened.sender))
        {
            let mut effects = groups::Effects::default();
            effects.pairwise = waiting.into_iter().map(|p| (opened.sender, p)).collect();
            let apply = self.apply_effects(effects, ctx);
            self.background(ctx, "deferred group keys", apply);
        }
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        if !opened.publish.is_empty() {
            let publish = publish_all(
                opened.publish.clone(),
                chat.sharding,
                chat.outbox.clone(),
                ctx.address(),
            );
            self.background(ctx, "the crypto stage's answer", publish);
        }
        if opened.identity_changed {
            self.refresh_identity(ctx);
        }
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let Some(plaintext) = &opened.plaintext else {
            return;
        };
        match chat::decode(opened.sender, opened.device, chat.me, plaintext) {
            Ok(Decoded::Receipts(ids)) => {
                for id in ids {
                    if let Some((state, acks)) = chat.sent.get_mut(&id) {
                        *acks += 1;
                        state.send_replace(DeliveryState::Acknowledged { devices: *acks });
                    }
                }
            }
            Ok(Decoded::Group) => {
                let plaintext = plaintext.clone();
                self.on_group_control(opened, plaintext, ctx);
            }
            Ok(Decoded::Message(message)) => {
                // Our own other devices get copies; only the other side
                // acknowledges.
                if message.sender != chat.me {
                    let receipt = chat::encode_receipt(&[message.id]);
                    let publish = publish_sealed(
                        chat.crypto.seal.clone(),
                        crypto::Seal::new(message.sender, receipt),
                        chat.sharding,
                        chat.outbox.clone(),
                        ctx.address(),
                    );
                    self.background(ctx, "a receipt", publish);
                }
                self.deliver_chat(message);
            }
            Err(reason) => {
                self.stats.chat_refused += 1;
                tracing::debug!(%reason, "chat content malformed");
            }
        }
    }

    /// Through the chat hooks, then to every inbox.
    fn deliver_chat(&mut self, message: ChatMessage) {
        let Ok(message) = self.run_hooks(
            message,
            "chat inbound",
            |hook, m| hook.chat_inbound(m),
            |m, body| m.body = body,
        ) else {
            return;
        };
        if let Some(chat) = self.chat.as_mut() {
            chat.deliver_to_inboxes(&message);
        }
    }
}

impl Chat {
    fn park(&mut self, delivery: Delivery) {
        if self.parked.len() >= PARKED {
            self.parked.pop_front();
        }
        self.parked.push_back(delivery);
    }

    fn deliver_to_inboxes(&mut self, message: &ChatMessage) {
        self.inboxes
            .retain(|inbox| match inbox.try_send(message.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(id = %message.id, "chat inbox full; message missed");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
}

impl Actor for Pipeline {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        self.background = crate::background::Background::start(self, ctx);
        // After a restart: the outbox's timer went with the old context.
        if let Some(chat) = self.chat.as_mut() {
            chat.retrying = false;
            ctx.run_interval(OUTBOX_RETRY, |act, ctx| act.retry_outbox(ctx));
        }
    }
}

/// The pipeline keeps what it holds across a restart: its subscribers'
/// queues, inboxes and delivery watches belong to the application, and what
/// must survive a crash (the outbox, the archive) is in storage already.
impl Supervised for Pipeline {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("pipeline restarting");
    }
}

impl supervise::Restartable for Pipeline {
    const NAME: &'static str = "pipeline";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Pipeline);

/// Asks `stage`, and once more if it failed on the request and restarted:
/// it restarted from its persisted state, where the request had not been
/// carried out, and an arriving message must not be lost to a defect.
async fn ask_again_after_restart<M>(
    stage: Recipient<M>,
    message: M,
    restarted: fn(&M::Result) -> bool,
) -> Result<M::Result, MailboxError>
where
    M: Message + Clone + Send + 'static,
    M::Result: Send,
{
    let answer = stage.send(message.clone()).await?;
    if restarted(&answer) {
        tracing::warn!("a stage restarted on an arriving message; asking it again");
        return stage.send(message).await;
    }
    Ok(answer)
}

/// Gives the pipeline its stages; the builder sends it once, at start.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Attach {
    pub(crate) transport: transport::Handle,
    pub(crate) storage: storage::Handle,
    /// Whether arriving messages are archived.
    pub(crate) archive: bool,
}

impl Handler<Attach> for Pipeline {
    type Result = ();

    fn handle(&mut self, attach: Attach, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, _| {
            this.transport = Some(attach.transport);
            this.storage = attach.archive.then_some(attach.storage);
        });
    }
}

impl Handler<transport::Event> for Pipeline {
    type Result = ();

    fn handle(&mut self, event: transport::Event, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, ctx| {
            match event {
                transport::Event::Message(delivery) => {
                    let Some(storage) = this
                        .storage
                        .as_ref()
                        .filter(|_| murmur_core::store::archivable(&delivery.message))
                    else {
                        this.deliver(delivery, ctx);
                        return;
                    };
                    // Stored by hash before any subscriber sees it; the mailbox
                    // waits, so deliveries keep their order.
                    let save = storage.save_raw.send(storage::SaveRaw(delivery.clone()));
                    ctx.wait(save.into_actor(this).map(move |saved, act, ctx| match saved {
                        Ok(Ok(true)) => act.deliver(delivery, ctx),
                        Ok(Ok(false)) => act.stats.duplicates += 1,
                        Ok(Err(e)) => {
                            tracing::warn!(hash = %delivery.hash, error = %e, "not archived; delivering anyway");
                            act.deliver(delivery, ctx);
                        }
                        Err(_) => act.deliver(delivery, ctx),
                    }));
                }
                // Archived by the lightpush service before it answered.
                transport::Event::Pushed(delivery) | transport::Event::Archived(delivery) => {
                    this.deliver(delivery, ctx);
                }
                transport::Event::PeerConnected { .. } => this.stats.peers += 1,
                transport::Event::PeerDisconnected { .. } => {
                    this.stats.peers = this.stats.peers.saturating_sub(1);
                }
                _ => {}
            }
        });
    }
}

/// Publishes a message through the outbound hooks and the transport.
///
/// The handler runs the hooks and hands the message to the transport's
/// mailbox at once, in arrival order; it answers with what is left to wait
/// for, which the caller awaits (see [`publish`]). So its mailbox never waits
/// on the network, and only an archiving node spawns a task per message (to
/// archive it once published, whether or not the caller still waits).
#[derive(Message)]
#[rtype(result = "Result<Published, Error>")]
pub(crate) struct Outbound(pub(crate) Outgoing);

/// The rest of a publish the pipeline has handed on: the transport's answer,
/// and, on an archiving node, the message's archiving.
pub(crate) type Published = Pin<Box<dyn Future<Output = Result<MessageHash, Error>> + Send>>;

/// Publishes through `pipeline` and waits for the transport's answer.
pub(crate) async fn publish(
    pipeline: &Addr<Pipeline>,
    outgoing: Outgoing,
) -> Result<MessageHash, Error> {
    pipeline.send(Outbound(outgoing)).await??.await
}

impl Handler<Outbound> for Pipeline {
    type Result = MessageResult<Outbound>;

    fn handle(&mut self, Outbound(outgoing): Outbound, ctx: &mut Context<Self>) -> Self::Result {
        let published = supervise::guard(self, ctx, |this, _| this.publish(outgoing));
        MessageResult(published.unwrap_or_else(|p| Err(p.into())))
    }
}

impl Pipeline {
    fn publish(&mut self, outgoing: Outgoing) -> Result<Published, Error> {
        let mut outgoing = self.run_hooks(
            outgoing,
            "outbound",
            |hook, o| hook.outbound(o),
            |o, m| o.message = m,
        )?;
        let transport = self.transport.as_ref().ok_or(Error::Stopped)?;
        // Stamped here, so that what is archived is what was published.
        outgoing
            .message
            .timestamp
            .get_or_insert_with(murmur_core::now_nanos);
        let forward = |topic, message| {
            let sent = transport.publish.send(Publish::new(topic, message));
            async move { Ok(sent.await??) }
        };
        let archive = (self.storage.as_ref())
            .filter(|_| murmur_core::store::archivable(&outgoing.message))
            .map(|s| s.save_raw.clone());
        let Some(archive) = archive else {
            return Ok(Box::pin(forward(outgoing.pubsub_topic, outgoing.message)));
        };
        // Hashed only here: the archive keys by hash.
        let delivery = Delivery::new(outgoing.pubsub_topic, outgoing.message);
        let sent = forward(delivery.pubsub_topic.clone(), delivery.message.clone());
        // Our own messages belong in our archive too (gossipsub never hands
        // them back to us), once the network took them. That runs on its
        // own, so that a caller who stops waiting cannot leave a published
        // message out of the archive; the caller's answer waits for both.
        let archived = async move {
            let hash = sent.await?;
            archive.send(storage::SaveRaw(delivery)).await??;
            Ok(hash)
        };
        if !self.background.has_room() {
            // Too much beside the mailbox: the caller's wait does it.
            return Ok(Box::pin(archived));
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let work: crate::background::Work = Box::pin(async move {
            if let Err(Err(e)) = answer.send(archived.await) {
                tracing::warn!(error = %e, "own message not archived");
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
        supervise::guard(self, ctx, |this, _| this.stats).into()
    }
}

/// Seals through the crypto stage, then publishes each envelope through the
/// outbound path; answers how many were published.
async fn publish_sealed(
    crypto: Recipient<crypto::Seal>,
    seal: crypto::Seal,
    sharding: Sharding,
    outbox: Outbox,
    pipeline: Addr<Pipeline>,
) -> Result<Outcome, Error> {
    let sealed = crypto.send(seal).await??;
    publish_all(sealed, sharding, outbox, pipeline).await
}

/// Puts each envelope in the outbox (durable), then publishes it through
/// the outbound path and marks it sent. One the network does not take now
/// (no peers yet, the node offline) stays queued and is retried every few
/// seconds, across restarts. A hook's drop is final.
pub(crate) async fn publish_all(
    sealed: Vec<crypto::Sealed>,
    sharding: Sharding,
    outbox: Outbox,
    pipeline: Addr<Pipeline>,
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
        match publish(&pipeline, Outgoing::new(topic, message)).await {
            Ok(_) => {
                outbox.mark_sent.send(storage::MarkSent(hash)).await??;
                outcome.published += 1;
            }
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
    fn retry_outbox(&mut self, ctx: &mut Context<Self>) {
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
                    Ok(Ok(_)) | Ok(Err(transport::Error::Duplicate(_))) => {
                        let _ = outbox.mark_sent.send(storage::MarkSent(d.hash)).await;
                        if let Some(archive) = &archive {
                            let _ = archive.send(storage::SaveRaw(d)).await;
                        }
                        sent += 1;
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
                chat.sharding,
                chat.outbox.clone(),
                ctx.address(),
            ))
        }) {
            Ok(future) => future,
            Err(p) => Box::pin(std::future::ready(Err(p.into()))),
        }
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
}

impl Handler<AttachChat> for Pipeline {
    type Result = ();

    fn handle(&mut self, a: AttachChat, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, ctx| {
            // What a previous run left queued goes out once there are peers.
            ctx.run_interval(OUTBOX_RETRY, |act, ctx| act.retry_outbox(ctx));
            this.chat = Some(Chat {
                outbox: Outbox::from(&a.outbox),
                retrying: false,
                crypto: a.crypto,
                sharding: a.sharding,
                topics: a.topics.iter().map(|t| t.as_str().to_owned()).collect(),
                me: a.me,
                inboxes: Vec::new(),
                sent: HashMap::new(),
                sent_order: VecDeque::new(),
                groups: None,
                group_topics: BTreeSet::new(),
                parked: VecDeque::new(),
                deferred: HashMap::new(),
                notices: Vec::new(),
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
struct Defer {
    to: AccountId,
    plaintext: bytes::Bytes,
}

/// Accounts with deferred messages, and messages per account, kept at most.
const DEFERRED: usize = 1024;

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
            Box::pin(this.apply_effects(effects, ctx))
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
            let id = chat::random_id();
            let (tx, rx) = watch::channel(DeliveryState::Queued);
            let tx = Arc::new(tx);
            chat.sent.insert(id, (tx.clone(), 0));
            chat.sent_order.push_back(id);
            if chat.sent_order.len() > TRACKED {
                if let Some(old) = chat.sent_order.pop_front() {
                    chat.sent.remove(&old);
                }
            }
            let seal = crypto::Seal::new(msg.to, chat::encode(id, msg.to, &body));
            let publish = publish_sealed(
                chat.crypto.seal.clone(),
                seal,
                chat.sharding,
                chat.outbox.clone(),
                ctx.address(),
            );
            Box::pin(async move {
                match publish.await {
                    Ok(outcome) => {
                        // A receipt may have come first; envelopes still queued
                        // leave the state at Queued until a receipt arrives.
                        tx.send_if_modified(|s| {
                            let queued = *s == DeliveryState::Queued && outcome.published > 0;
                            if queued {
                                *s = DeliveryState::Published {
                                    envelopes: outcome.published,
                                };
                            }
                            queued
                        });
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
