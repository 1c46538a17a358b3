use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use actix::prelude::*;
use murmur_core::{
    now_nanos, supervise,
    transport::{
        self, Dial, Event, GetStatus, PeerId, Publish, QueryStore, Status, Subscribe, Unsubscribe,
    },
    Delivery, MessageHash, PubsubTopic,
};
use prost::Message as _;

/// How many message hashes a member remembers to drop republished duplicates,
/// as gossipsub's seen cache does.
const SEEN: usize = 4096;

/// An in-memory network: every transport started on it reaches every other
/// one, with Waku's validation rules and no sockets.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    members: HashMap<u64, Member>,
}

struct Member {
    events: Recipient<Event>,
    topics: BTreeSet<PubsubTopic>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a transport on this network, under a supervisor, sending its
    /// events to `events`.
    pub fn start(&self, events: Recipient<Event>) -> Addr<MemoryTransport> {
        let id = {
            let mut inner = self.lock();
            inner.next += 1;
            let id = inner.next;
            inner.members.insert(
                id,
                Member {
                    events,
                    topics: BTreeSet::new(),
                },
            );
            id
        };
        let net = self.clone();
        Supervisor::start(move |_| MemoryTransport {
            net,
            id,
            seen: HashSet::new(),
            order: VecDeque::new(),
            stopped: false,
            fuse: supervise::Fuse::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock must not hide the next failure.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The transport stage on a [`MemoryNetwork`].
pub struct MemoryTransport {
    net: MemoryNetwork,
    id: u64,
    seen: HashSet<MessageHash>,
    order: VecDeque<MessageHash>,
    stopped: bool,
    fuse: supervise::Fuse,
}

impl MemoryTransport {
    fn peer(id: u64) -> PeerId {
        PeerId(format!("memory-{id}"))
    }

    fn running(&self) -> Result<(), transport::Error> {
        if self.stopped {
            Err(transport::Error::Stopped)
        } else {
            Ok(())
        }
    }

    fn remember(&mut self, hash: MessageHash) -> bool {
        if !self.seen.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > SEEN {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

impl Actor for MemoryTransport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// A member leaves the network when the actor is gone for good, not when it
/// stops to be restarted.
impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.net.lock().members.remove(&self.id);
    }
}

impl Supervised for MemoryTransport {}

impl supervise::Restartable for MemoryTransport {
    const NAME: &'static str = "memory transport";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(MemoryTransport);

impl Handler<Publish> for MemoryTransport {
    type Result = Result<MessageHash, transport::Error>;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.running()?;
            let Publish {
                topic, mut message, ..
            } = msg;
            message.timestamp.get_or_insert_with(now_nanos);
            transport::validate(&message, message.encoded_len())?;
            let delivery = Delivery::new(topic.clone(), message);
            if !this.remember(delivery.hash) {
                return Err(transport::Error::Duplicate(delivery.hash));
            }
            let inner = this.net.lock();
            let receivers: Vec<&Member> = inner
                .members
                .iter()
                .filter(|(id, m)| **id != this.id && m.topics.contains(&topic))
                .map(|(_, m)| m)
                .collect();
            if receivers.is_empty() {
                return Err(transport::Error::NoPeers(topic));
            }
            for member in receivers {
                // A full mailbox loses the message, as a slow gossipsub peer would.
                let _ = member.events.try_send(Event::Message(delivery.clone()));
            }
            Ok(delivery.hash)
        })?
    }
}

impl Handler<Subscribe> for MemoryTransport {
    type Result = Result<(), transport::Error>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.running()?;
            let topic = msg.topic;
            if let Some(m) = this.net.lock().members.get_mut(&this.id) {
                m.topics.insert(topic);
            }
            Ok(())
        })?
    }
}

impl Handler<Unsubscribe> for MemoryTransport {
    type Result = Result<(), transport::Error>;

    fn handle(&mut self, Unsubscribe(topic): Unsubscribe, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            if let Some(m) = this.net.lock().members.get_mut(&this.id) {
                m.topics.remove(&topic);
            }
            Ok(())
        })?
    }
}

/// Every member is always connected; dialling checks that `memory-N` exists.
impl Handler<Dial> for MemoryTransport {
    type Result = Result<PeerId, transport::Error>;

    fn handle(&mut self, Dial(address): Dial, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.running()?;
            let id = address
                .strip_prefix("memory-")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| transport::Error::Address {
                    address: address.clone(),
                    reason: "expected memory-<n>".to_owned(),
                })?;
            if this.net.lock().members.contains_key(&id) {
                Ok(Self::peer(id))
            } else {
                Err(transport::Error::Dial {
                    address,
                    reason: "no such member".to_owned(),
                })
            }
        })?
    }
}

/// A memory network has no store nodes.
impl Handler<QueryStore> for MemoryTransport {
    type Result = Result<murmur_core::store::Page, transport::Error>;

    fn handle(&mut self, msg: QueryStore, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |_, _| {
            Err(transport::Error::Dial {
                address: msg.peer,
                reason: "a memory network has no store nodes".to_owned(),
            })
        })?
    }
}

/// A memory network has no peer exchange: its members know each other.
impl Handler<transport::PeerExchange> for MemoryTransport {
    type Result = Result<Vec<transport::Found>, transport::Error>;

    fn handle(&mut self, msg: transport::PeerExchange, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |_, _| {
            Err(transport::Error::Dial {
                address: msg.peer,
                reason: "a memory network has no peer exchange".to_owned(),
            })
        })?
    }
}

impl Handler<transport::Stop> for MemoryTransport {
    type Result = ();

    fn handle(&mut self, _: transport::Stop, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |this, _| {
            this.stopped = true;
            this.net.lock().members.remove(&this.id);
        });
    }
}

impl Handler<GetStatus> for MemoryTransport {
    type Result = supervise::Answer<<GetStatus as Message>::Result>;

    fn handle(&mut self, _: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            let inner = this.net.lock();
            let mut status = Status::default();
            status.peer_id = Some(Self::peer(this.id));
            status.listen_addrs = vec![Self::peer(this.id).0];
            status.peers = inner
                .members
                .keys()
                .filter(|id| **id != this.id)
                .map(|id| Self::peer(*id))
                .collect();
            // A memory peer's address is its id: there is nothing else to tell.
            status.connected = status
                .peers
                .iter()
                .map(|p| transport::Peer::new(p.clone(), p.0.clone()))
                .collect();
            if let Some(me) = inner.members.get(&this.id) {
                status.topics = me
                    .topics
                    .iter()
                    .map(|t| {
                        let n = inner
                            .members
                            .iter()
                            .filter(|(id, m)| **id != this.id && m.topics.contains(t))
                            .count();
                        (t.clone(), n)
                    })
                    .collect();
            }
            status
        })
        .into()
    }
}
