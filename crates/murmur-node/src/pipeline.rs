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

mod batch;
mod durable;
mod effects;
mod fetched;
mod gaps;
mod lane;
mod mailbox;
mod messages;
mod outbox;
mod outcome;
mod raw;
mod received;
mod recent;
mod repair;
mod requests;
mod sent;
mod starting;

pub(crate) use batch::SendGroup;
pub(crate) use durable::{AddDurable, AttachInbox, Newest, Position, Which};
use durable::{Journal, Tap};
pub(crate) use gaps::EARLIER;
pub(crate) use mailbox::{publish, publish_durably, Mailbox, Publisher};
pub(crate) use messages::*;
pub(crate) use outbox::*;
pub(crate) use outcome::Outcome;
use raw::RawInbox;
pub(crate) use raw::{AddRawDurable, AttachRaw};
use recent::Recent;
pub(crate) use repair::AddUnreadable;
pub(crate) use requests::{Accepted, Declined};
use sent::Tracked;
pub(crate) use starting::Started;

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
    /// Messages that arrived again after they were archived (or, on a node
    /// that does not archive them, after they were handed on in this run),
    /// and were not delivered twice; not those a durable raw subscription
    /// had never been given, which are kept for it then.
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
    /// Times a chat or group message found the chat queue (`chat.queue`)
    /// full, and the pipeline waited for room before taking anything else.
    pub chat_queue_full: u64,
    /// Chat messages and group invites from accounts not accepted
    /// (message requests): no receipt went back, no group was joined; both
    /// are held (in memory) until the user accepts the account.
    pub requests: u64,
    /// Envelopes further ahead of their session, and group messages further
    /// ahead of their chain, than `chat.max_skip` allows (a node back from
    /// an outage hears new messages before a store round brings the old):
    /// held and tried again every few seconds until the messages before
    /// them have opened, for ten minutes.
    pub chat_ahead: u64,
    /// 1:1 messages that no session opened (this device lost its session
    /// state, or went back to an older one): each asked for a new session
    /// with the sending device (at most one a minute per device).
    pub sessions_reset: u64,
    /// Messages sent again because a new session with their recipient
    /// started (either side reset) before they were acknowledged.
    pub resent: u64,
    /// Receipts for a sent message that did not count: a device's second
    /// for the same message, or one from an account the message did not go
    /// to.
    pub receipts_refused: u64,
    /// Chat messages a later message named that this device never got: its
    /// conversation's topic was read from store nodes for them.
    pub gaps: u64,
    /// Of those, the ones still missing after two reads, given up.
    pub gaps_unfilled: u64,
}

/// Group messages kept that no chain this device holds opens yet: a chain
/// key can arrive after the first message sent on it.
const PARKED: usize = 256;
/// Ticks between asking again for the keys of parked group messages.
const ASK_KEYS_EVERY: u64 = 4;

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
    /// Chat and group deliveries, opened in order beside the mailbox.
    lane: mpsc::Sender<Delivery>,
    lane_rx: mpsc::Receiver<Delivery>,
    /// What opening the lane's current delivery leads to, in flight.
    lane_step: Option<lane::Step>,
    /// Taken from the lane, next in line (envelopes handed to crypto).
    lane_ahead: VecDeque<(Delivery, Option<lane::Opening>)>,
    /// Told of every new connection: the node's store sync runs a round.
    connected: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// What went to the lane in this run. A delivery the archive holds
    /// already is opened again unless it is here: a node killed with
    /// deliveries still in its lane archived them and never opened them,
    /// and finds them again only at a store node; what it did open, the
    /// crypto and membership stages refuse as a replay (counted as
    /// refused, as an attacker's replay is: after a restart, those of the
    /// first store round).
    recent: Recent,
    /// What was handed on in this run with no archive's word that it was
    /// new (see [`Pipeline::deliver_unarchived`]).
    unarchived: Recent,
    /// Where a message waits until the network takes it.
    outbox: Option<Outbox>,
    /// Where every publish goes, once the stages are attached.
    route: Option<std::sync::Arc<outbox::Route>>,
    /// Asks store nodes which published messages they hold.
    confirm: Option<Recipient<murmur_core::sync::Confirm>>,
    /// Reads a conversation's topic from store nodes when a gap is noticed.
    catch_up: Option<Recipient<murmur_core::sync::CatchUp>>,
    /// The publishes under way.
    sends: outbox::Sends,
    /// The raw inbox of durable subscriptions.
    raw: RawInbox,
    /// What arrived before the builder attached every stage, until it has
    /// (see [`Started`]); `None` after.
    starting: Option<starting::Held>,
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
    /// Sent 1:1 messages followed to their receipts.
    sent: HashMap<MessageId, Tracked>,
    sent_order: VecDeque<MessageId>,
    /// Sent 1:1 messages not acknowledged yet, to send again after a reset.
    unacked: repair::Unacked,
    /// Devices whose message did not open, watched before a reset.
    suspects: repair::Suspects,
    /// Where what did not open is told.
    unreadable: Vec<mpsc::Sender<crate::chat::Unreadable>>,
    /// Where envelopes wait until they are published.
    outbox: Outbox,
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
    /// What message requests would have caused, until they are accepted.
    held: requests::Held,
    /// The durable inbox, once attached.
    book: Option<crate::inbox::Book<crate::inbox::Chat>>,
    /// Durable subscribers.
    taps: Vec<Tap<ChatMessage>>,
    /// Envelopes too far ahead of their session, with when they came.
    ahead: VecDeque<(std::time::Instant, Delivery)>,
    /// When each envelope held (and held again) was first held.
    ahead_since: HashMap<MessageHash, std::time::Instant>,
    /// What this device sent and saw in each conversation, to notice a gap
    /// from the next message.
    gaps: gaps::Gaps,
    /// What the lane settles once it runs dry.
    owed: lane::Owed,
    /// Chat messages waiting to be sealed together, by recipient.
    batches: batch::Batches,
}

/// The persistence stage's outbox: chat envelopes before their publish
/// answers, raw messages the network did not take at once; each until the
/// network took it.
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

/// How often queued messages are offered to the network again (and what
/// was published is confirmed with a store node).
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
    /// A pipeline with these hooks, and room for `lane` chat deliveries
    /// waiting to be opened.
    pub(crate) fn new(hooks: Vec<Slot>, lane: usize) -> Self {
        let (lane, lane_rx) = mpsc::channel(lane.max(1));
        Self {
            lane,
            lane_rx,
            lane_step: None,
            lane_ahead: VecDeque::new(),
            recent: Recent::default(),
            unarchived: Recent::default(),
            outbox: None,
            route: None,
            confirm: None,
            catch_up: None,
            sends: outbox::Sends::default(),
            raw: RawInbox::default(),
            starting: Some(starting::Held::default()),
            transport: None,
            storage: None,
            hooks,
            subscribers: Vec::new(),
            stats: Stats::default(),
            chat: None,
            background: crate::background::Background::idle(),
            connected: None,
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
        self.keep_raw(&delivery, ctx);
        self.queue_for_lane(delivery, ctx);
    }

    /// Delivers what no archive said was new (it is off, or does not keep
    /// this message), once per hash in this run, the newest
    /// [`Recent::CAPACITY`]: every store round asks again for what came in
    /// the two minutes before where it left off, and a light node hears a
    /// message pushed and fetched both.
    fn deliver_unarchived(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        if !self.unarchived.insert(delivery.hash) {
            // Handed on before; the raw inbox may still lack it (its write
            // failed).
            if !self.keep_raw_again(&delivery, ctx) {
                self.stats.duplicates += 1;
            }
            return;
        }
        self.deliver(delivery, ctx);
    }

    /// Whether `delivery` is for the lane and not in it this run: one the
    /// archive held already, which a previous run may have archived and
    /// never opened.
    fn for_lane_again(&self, delivery: &Delivery) -> bool {
        let Some(chat) = self.chat.as_ref() else {
            return false;
        };
        let topic = &delivery.message.content_topic;
        (chat.group_topics.contains(topic) || chat.topics.contains(topic))
            && !self.recent.contains(&delivery.hash)
    }

    /// Hands a chat or group delivery to the lane, in arrival order; parks
    /// a message for a group this account has not joined yet.
    fn queue_for_lane(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let topic = &delivery.message.content_topic;
        if !chat.group_topics.contains(topic)
            && topic.starts_with(murmur_core::groups::TOPIC_PREFIX)
        {
            // Perhaps a group this account is being invited into, its first
            // message ahead of the invite.
            chat.park(delivery);
            return;
        }
        if !chat.group_topics.contains(topic) && !chat.topics.contains(topic) {
            return;
        }
        if !self.recent.insert(delivery.hash) {
            self.stats.duplicates += 1;
            return;
        }
        // Opened in arrival order, in the lane; when the lane is full the
        // mailbox waits for room (arrival order is kept either way).
        match self.lane.try_send(delivery) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(delivery)) => {
                self.stats.chat_queue_full += 1;
                ctx.wait(lane::Room(Some(delivery)));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// How work for [`Pipeline::background`] reaches this pipeline's
    /// mailbox: waiting for its answers while the background queue has
    /// room. When the queue is full the mailbox waits for the work itself,
    /// and a work that waited for the mailbox would never end: it then only
    /// offers its messages to the mailbox, and its envelopes stay in the
    /// outbox, which the retry timer publishes.
    fn mailbox(&self, ctx: &mut Context<Self>) -> Mailbox {
        Mailbox {
            addr: ctx.address(),
            wait: self.background.has_room(),
        }
    }

    /// The timer's work: the outbox, chat envelopes held too far ahead,
    /// and the keys of parked group messages.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.tick_outbox(ctx);
        self.retry_ahead();
        self.read_gaps(ctx);
        if self.sends.tick.is_multiple_of(ASK_KEYS_EVERY) {
            self.ask_keys_again(ctx);
        }
    }

    /// Runs `work` beside the mailbox; when too much is queued already, the
    /// mailbox waits for it instead (so `work` must not wait for the
    /// mailbox: see [`Pipeline::mailbox`]).
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
}

impl Actor for Pipeline {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        self.background = crate::background::Background::start(self, ctx);
        // The lane's reader: one delivery at a time, each opened and
        // handled before the next; it reads the actor's own receiver, so a
        // restart loses nothing queued.
        ctx.spawn(lane::Lane);
        // After a restart: the outbox's timer and the work it ran went
        // with the old context.
        if self.outbox.is_some() {
            self.sends.stopped();
            ctx.run_interval(OUTBOX_RETRY, Pipeline::tick);
        }
    }
}

/// The pipeline keeps what it holds across a restart: its subscribers'
/// queues, inboxes and delivery watches belong to the application, and what
/// must survive a crash (the outbox, the archive) is in storage already.
impl Supervised for Pipeline {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("pipeline restarting");
        // The step in flight belonged to the context that failed.
        self.lane_step = None;
    }
}

impl supervise::Restartable for Pipeline {
    const NAME: &'static str = "pipeline";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Pipeline);
