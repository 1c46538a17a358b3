use std::{
    collections::BTreeSet,
    panic::{catch_unwind, AssertUnwindSafe},
};

use actix::prelude::*;
use murmur_core::{
    hook::{BoxError, FailurePolicy, Hook, Outgoing, Verdict},
    storage,
    transport::{self, Publish},
    Delivery, MessageHash,
};
use tokio::sync::mpsc;

use crate::Error;

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
    /// Deliveries a slow subscriber missed because its queue was full.
    pub subscriber_overflows: u64,
    /// Connected peers, as the transport reported them.
    pub peers: u64,
    /// Messages that arrived again after they were archived, and were not
    /// delivered twice.
    pub duplicates: u64,
}

/// Moves each message through the stages.
///
/// In: transport -> inbound hooks -> subscribers. Out: outbound hooks ->
/// transport. The stages are held as recipients only; the [`Builder`](crate::Builder)
/// decides which actors they are.
pub struct Pipeline {
    transport: Option<transport::Handle>,
    storage: Option<storage::Handle>,
    hooks: Vec<Box<dyn Hook>>,
    subscribers: Vec<Subscriber>,
    stats: Stats,
}

struct Subscriber {
    /// Content topics it wants; `None` for everything.
    topics: Option<BTreeSet<String>>,
    tx: mpsc::Sender<Delivery>,
}

impl Pipeline {
    pub(crate) fn new(hooks: Vec<Box<dyn Hook>>) -> Self {
        Self {
            transport: None,
            storage: None,
            hooks,
            subscribers: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Runs the hooks in order; the error names the hook that dropped the
    /// message, and why.
    fn run_hooks<T>(
        &mut self,
        mut item: T,
        direction: &'static str,
        call: impl Fn(&mut dyn Hook, &T) -> Result<Verdict, BoxError>,
        rewrite: impl Fn(&mut T, murmur_core::WakuMessage),
    ) -> Result<T, Error> {
        for hook in &mut self.hooks {
            let verdict = match catch_unwind(AssertUnwindSafe(|| call(hook.as_mut(), &item))) {
                Ok(Ok(verdict)) => verdict,
                failure => {
                    self.stats.hook_failures += 1;
                    let error = match failure {
                        Ok(Err(e)) => e.to_string(),
                        _ => "panicked".to_owned(),
                    };
                    let policy = hook.failure_policy();
                    tracing::warn!(hook = hook.name(), direction, %error, ?policy, "hook failed");
                    match policy {
                        FailurePolicy::Deliver => Verdict::Deliver,
                        FailurePolicy::Drop => Verdict::Drop {
                            reason: format!("hook failed: {error}"),
                        },
                    }
                }
            };
            match verdict {
                Verdict::Rewrite(message) => rewrite(&mut item, message),
                Verdict::Drop { reason } => {
                    self.stats.dropped_by_hooks += 1;
                    tracing::debug!(hook = hook.name(), direction, %reason, "hook dropped a message");
                    return Err(Error::Dropped {
                        hook: hook.name().to_owned(),
                        reason,
                    });
                }
                // Deliver, and verdicts this version does not know.
                _ => {}
            }
        }
        Ok(item)
    }

    fn deliver(&mut self, delivery: Delivery) {
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
    }
}

impl Actor for Pipeline {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl Supervised for Pipeline {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("pipeline restarting");
    }
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

    fn handle(&mut self, attach: Attach, _: &mut Context<Self>) {
        self.transport = Some(attach.transport);
        self.storage = attach.archive.then_some(attach.storage);
    }
}

impl Handler<transport::Event> for Pipeline {
    type Result = ();

    fn handle(&mut self, event: transport::Event, ctx: &mut Context<Self>) {
        match event {
            transport::Event::Message(delivery) => {
                let Some(storage) = self
                    .storage
                    .as_ref()
                    .filter(|_| murmur_core::store::archivable(&delivery))
                else {
                    self.deliver(delivery);
                    return;
                };
                // Stored by hash before any subscriber sees it; the mailbox
                // waits, so deliveries keep their order.
                let save = storage.save_raw.send(storage::SaveRaw(delivery.clone()));
                ctx.wait(save.into_actor(self).map(move |saved, act, _| match saved {
                    Ok(Ok(true)) => act.deliver(delivery),
                    Ok(Ok(false)) => act.stats.duplicates += 1,
                    Ok(Err(e)) => {
                        tracing::warn!(hash = %delivery.hash, error = %e, "not archived; delivering anyway");
                        act.deliver(delivery);
                    }
                    Err(_) => act.deliver(delivery),
                }));
            }
            // Archived by the lightpush service before it answered.
            transport::Event::Pushed(delivery) | transport::Event::Archived(delivery) => {
                self.deliver(delivery);
            }
            transport::Event::PeerConnected { .. } => self.stats.peers += 1,
            transport::Event::PeerDisconnected { .. } => {
                self.stats.peers = self.stats.peers.saturating_sub(1);
            }
            _ => {}
        }
    }
}

/// Publishes a message through the outbound hooks and the transport.
#[derive(Message)]
#[rtype(result = "Result<MessageHash, Error>")]
pub(crate) struct Outbound(pub(crate) Outgoing);

impl Handler<Outbound> for Pipeline {
    type Result = ResponseFuture<Result<MessageHash, Error>>;

    fn handle(&mut self, Outbound(outgoing): Outbound, _: &mut Context<Self>) -> Self::Result {
        let transport = self.transport.as_ref().map(|t| t.publish.clone());
        let archive = self.storage.as_ref().map(|s| s.save_raw.clone());
        let outgoing = self.run_hooks(
            outgoing,
            "outbound",
            |hook, o| hook.outbound(o),
            |o, m| o.message = m,
        );
        Box::pin(async move {
            let mut outgoing = outgoing?;
            // Stamped here, so that what is archived is what was published.
            outgoing
                .message
                .timestamp
                .get_or_insert_with(murmur_core::now_nanos);
            let transport = transport.ok_or(Error::Stopped)?;
            let delivery = Delivery::new(outgoing.pubsub_topic, outgoing.message);
            let hash = transport
                .send(Publish::new(
                    delivery.pubsub_topic.clone(),
                    delivery.message.clone(),
                ))
                .await??;
            // Our own messages belong in our archive too: gossipsub never
            // hands them back to us.
            if let Some(archive) = archive.filter(|_| murmur_core::store::archivable(&delivery)) {
                archive.send(storage::SaveRaw(delivery)).await??;
            }
            Ok(hash)
        })
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
    type Result = MessageResult<AddSubscriber>;

    fn handle(&mut self, msg: AddSubscriber, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = mpsc::channel(msg.capacity.max(1));
        self.subscribers.push(Subscriber {
            topics: msg.topics,
            tx,
        });
        MessageResult(rx)
    }
}

/// Asks for the pipeline's counters.
#[derive(Message)]
#[rtype(result = "Stats")]
pub(crate) struct GetStats;

impl Handler<GetStats> for Pipeline {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats)
    }
}
