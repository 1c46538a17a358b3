//! The swarm driver: one task that owns the swarm, takes commands, and
//! runs the work they start beside the swarm.

use super::*;

pub(super) struct Driver {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) control: libp2p_stream::Control,
    pub(super) ours: Metadata,
    pub(super) cluster: u16,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) sink: Sink,
    /// Events the consumer had no room for yet, oldest first.
    pub(super) backlog: VecDeque<Event>,
    pub(super) backlog_limit: usize,
    pub(super) reports: mpsc::Receiver<metadata::Report>,
    pub(super) reports_tx: mpsc::Sender<metadata::Report>,
    pub(super) metrics: Metrics,
    pub(super) static_peers: HashMap<PeerId, StaticPeer>,
    pub(super) waiters: HashMap<PeerId, Vec<(String, Reply<transport::PeerId>)>>,
    pub(super) anonymous_dials: HashMap<ConnectionId, (String, Reply<transport::PeerId>)>,
    pub(super) addresses: HashMap<PeerId, Multiaddr>,
    pub(super) confirmed: BTreeSet<PeerId>,
    pub(super) filter: crate::filter::Subscriptions,
    pub(super) push_permits: std::sync::Arc<tokio::sync::Semaphore>,
    pub(super) light: Option<Light>,
    /// Where relay messages are archived before they are accepted.
    pub(super) archive: Option<actix::Recipient<murmur_core::storage::SaveAll>>,
    /// Records to hand out through peer exchange.
    pub(super) peer_cache: crate::peer_exchange::Cache,
    /// Our own record.
    pub(super) enr: String,
    /// The driver's own command channel, weakly, for tasks that report back.
    pub(super) myself: Relay,
    /// Where the mesh counts go, for the transport actor to tell, after a
    /// crash, which topics had peers.
    pub(super) meshed: watch::Sender<Meshed>,
    /// Requests and archiving in flight, bounded.
    pub(super) tasks: crate::tasks::Tasks,
    /// Relay messages of this wake-up of the swarm, to be archived together.
    pub(super) gathered: Vec<archive::Held>,
    /// Cursors store v2 servers handed this client.
    pub(super) store_cursors: crate::store::Cursors,
    /// What connected peers said of themselves (identify, metadata), for
    /// [`Status::connected`].
    pub(super) profiles: HashMap<PeerId, super::peers::Profile>,
}

impl Driver {
    pub(super) async fn run(&mut self) {
        let mut redial = tokio::time::interval(REDIAL_TICK);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(FLUSH_TICK);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = flush.tick(), if !self.backlog.is_empty() => self.flush(),
                event = self.swarm.select_next_some() => {
                    self.on_swarm_event(event);
                    // What else the swarm has ready comes in this turn, so
                    // that the relay messages among it are archived together.
                    for _ in 1..SWARM_BATCH {
                        match std::future::poll_fn(|cx| {
                            std::task::Poll::Ready(self.swarm.poll_next_unpin(cx))
                        })
                        .await
                        {
                            std::task::Poll::Ready(Some(event)) => self.on_swarm_event(event),
                            _ => break,
                        }
                    }
                    self.archive_gathered();
                }
                command = self.commands.recv() => match command {
                    Some(command) => {
                        self.on_command(command);
                        // Under load commands arrive faster than the swarm
                        // needs polling: take what is queued before the next
                        // (costly) poll of every connection and behaviour.
                        for _ in 1..COMMAND_BATCH {
                            match self.commands.try_recv() {
                                Ok(command) => self.on_command(command),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                Some(report) = self.reports.recv() => self.on_report(report),
                () = self.tasks.next(), if !self.tasks.is_empty() => {}
                _ = redial.tick() => {
                    self.count_mesh();
                    self.recycle_silent_static_peers();
                    self.fail_over();
                    self.dial_static_peers();
                    self.refresh_filters(false);
                    let expired = self.filter.expire(Instant::now());
                    if expired > 0 {
                        tracing::debug!(expired, "filter subscriptions expired");
                    }
                }
            }
        }
        tracing::debug!("transport task stopping");
    }

    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish {
                topic,
                message,
                reply,
            } => match &self.light {
                Some(light) => self.light_publish(light.service, topic, message, reply),
                None => {
                    let _ = reply.send(
                        self.publish_counted(&topic, message, false)
                            .map(|(d, _)| d.hash),
                    );
                }
            },
            Command::Subscribe {
                topic,
                content_topics,
                reply,
            } => {
                if self.light.is_some() {
                    self.light_subscribe(&topic, content_topics, reply);
                    return;
                }
                let relay = &mut self.swarm.behaviour_mut().relay;
                let ident = IdentTopic::new(topic.as_str());
                let result =
                    relay
                        .subscribe(&ident)
                        .map(|_| ())
                        .map_err(|e| transport::Error::Address {
                            address: topic.to_string(),
                            reason: e.to_string(),
                        });
                if result.is_ok() {
                    if let Err(e) = relay.set_topic_params(ident, topic_score_params()) {
                        tracing::warn!(%topic, error = e, "topic score parameters refused");
                    }
                    tracing::info!(%topic, "subscribed");
                }
                let _ = reply.send(result);
            }
            Command::Unsubscribe { topic, reply } => {
                if let Some(light) = &mut self.light {
                    // Light mode: tell the filter service we want none of it.
                    let content: Vec<String> = light
                        .filters
                        .remove(&topic)
                        .map(|c| c.into_iter().collect())
                        .unwrap_or_default();
                    if content.is_empty() {
                        let _ = reply.send(Ok(()));
                        return;
                    }
                    let request =
                        filter_request(murmur_proto::filter::kind::UNSUBSCRIBE, &topic, content);
                    let (control, service) = (self.control.clone(), light.service);
                    self.answer(reply, crate::filter::request(control, service, request));
                    return;
                }
                self.swarm
                    .behaviour_mut()
                    .relay
                    .unsubscribe(&IdentTopic::new(topic.as_str()));
                let _ = reply.send(Ok(()));
            }
            Command::Dial { address, reply } => self.dial(address, reply),
            Command::Status(reply) => {
                self.count_mesh();
                let _ = reply.send(self.status());
            }
            Command::Push {
                topic,
                message,
                reply,
            } => {
                let _ = reply.send(self.publish_counted(&topic, message, true));
            }
            Command::Local(delivery) => self.emit(Event::Pushed(delivery)),
            Command::Archived(done) => self.on_archived(done),
            Command::SamplePeers { n, asker, reply } => {
                let _ = reply.send(self.peer_cache.sample(n, asker));
            }
            Command::PeerExchange { peer, n, reply } => {
                let control = self.control.clone();
                let myself = self.myself.clone();
                self.answer(reply, async move {
                    let result = crate::peer_exchange::request(control, peer, n).await;
                    if let Ok(records) = &result {
                        myself.learn(records.clone()).await;
                    }
                    result
                });
            }
            Command::Learned(records) => {
                for record in &records {
                    self.peer_cache.learn(record);
                }
            }
            Command::Fallbacks(records) => self.keep_fallbacks(&records),
            Command::Inbound(delivery) => {
                self.metrics.inc_received();
                self.emit(Event::Message(delivery));
            }
            Command::Filter {
                peer,
                request,
                reply,
            } => {
                let _ = reply.send(self.filter.apply(peer, &request, Instant::now()));
            }
            Command::LightPush {
                peer,
                topic,
                message,
                version,
                reply,
            } => {
                let control = self.control.clone();
                self.answer(
                    reply,
                    crate::lightpush::request(control, peer, topic, message, version),
                );
            }
            Command::QueryStore { peer, query, reply } => {
                let control = self.control.clone();
                let cursors = self.store_cursors.clone();
                self.answer(reply, crate::store::request(control, peer, query, cursors));
            }
            #[cfg(feature = "fault-injection")]
            Command::Panic => panic!("fault injected into the transport task"),
        }
    }

    /// Publishes, answering the delivery as published and, if `count`, how
    /// many peers on the topic it was sent to (0 otherwise).
    pub(super) fn publish_counted(
        &mut self,
        topic: &PubsubTopic,
        mut message: WakuMessage,
        count: bool,
    ) -> Result<(Delivery, usize), transport::Error> {
        if message.timestamp.is_none() {
            message.timestamp = Some(murmur_core::now_nanos());
        }
        let bytes = message.encode_to_vec();
        transport::validate(&message, bytes.len())?;
        let topic_hash = gossipsub::TopicHash::from_raw(topic.as_str());
        let relay = &mut self.swarm.behaviour_mut().relay;
        // Only a lightpush answer needs the count; it costs a walk over every peer.
        let peers = if count {
            relay
                .all_peers()
                .filter(|(_, topics)| topics.contains(&&topic_hash))
                .count()
        } else {
            0
        };
        let delivery = Delivery::new(topic.clone(), message);
        let hash = delivery.hash;
        match relay.publish(topic_hash, bytes) {
            Ok(_) => {
                self.metrics.inc_published();
                tracing::debug!(%topic, %hash, "published");
                self.push_to_filter_subscribers(&delivery);
                Ok((delivery, peers))
            }
            Err(PublishError::NoPeersSubscribedToTopic) | Err(PublishError::AllQueuesFull(0)) => {
                Err(transport::Error::NoPeers(topic.clone()))
            }
            Err(PublishError::Duplicate) => Err(transport::Error::Duplicate(hash)),
            Err(PublishError::MessageTooLarge) => Err(transport::Error::TooLarge {
                len: delivery.message.encoded_len(),
                max: MAX_WAKU_MESSAGE_LEN,
            }),
            // Every peer's send queue (5,000 messages) is full: the
            // network's own back-pressure. The message stays in gossip's
            // cache; the caller slows down and sends anew.
            Err(PublishError::AllQueuesFull(_)) => Err(transport::Error::Busy),
            Err(e) => Err(transport::Error::Dial {
                address: topic.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    pub(super) fn dial(&mut self, address: String, reply: Reply<transport::PeerId>) {
        let addr: Multiaddr = match address.parse() {
            Ok(a) => a,
            Err(e) => {
                let _ = reply.send(Err(transport::Error::Address {
                    address,
                    reason: e.to_string(),
                }));
                return;
            }
        };
        let Some(peer) = peer_of(&addr) else {
            let opts = DialOpts::unknown_peer_id().address(addr).build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.anonymous_dials.insert(id, (address, reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(dial_error(address, &e)));
                }
            }
            return;
        };
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(transport::PeerId(peer.to_string())));
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            // Already dialling: the waiter rides on that attempt.
            Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {
                self.waiters.entry(peer).or_default().push((address, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(dial_error(address, &e)));
            }
        }
    }

    /// Answers `reply` with what `work` comes to, run beside the swarm; with
    /// [`transport::Error::Busy`] at once when too much is in flight.
    pub(super) fn answer<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        work: impl Future<Output = Result<T, transport::Error>> + Send + 'static,
    ) {
        if self.tasks.is_full() {
            tracing::warn!("too many requests in flight; one refused");
            let _ = reply.send(Err(transport::Error::Busy));
            return;
        }
        let _ = self.tasks.start(async move {
            let _ = reply.send(work.await);
        });
    }

    /// Runs `work` beside the swarm, or lets it go (logged) when too much is
    /// in flight: for work nobody waits on.
    pub(super) fn run_beside(
        &mut self,
        what: &'static str,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        if self.tasks.start(work).is_err() {
            tracing::warn!(what, "too much in flight; not done");
        }
    }

    pub(super) fn count_mesh(&self) {
        let relay = &self.swarm.behaviour().relay;
        let now: Meshed = relay
            .topics()
            .filter_map(|hash| Some((hash.as_str().parse().ok()?, relay.mesh_peers(hash).count())))
            .collect();
        self.meshed.send_if_modified(|meshed| {
            let changed = *meshed != now;
            *meshed = now;
            changed
        });
    }

    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Relay(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_relay_message(propagation_source, &message_id, message),
            // A peer that stopped answering (frozen, or cut off without a
            // word) would keep its connection, and the place of whoever
            // connects next with its key, until the idle timeout.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                connection,
                result: Err(libp2p::ping::Failure::Timeout),
            })) => {
                tracing::debug!(%peer, "ping timed out; closing the connection");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) => self.on_identified(peer_id, &info),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                let id = transport::PeerId(peer_id.to_string());
                if let Some((_, reply)) = self.anonymous_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(id.clone()));
                }
                for (_, reply) in self.waiters.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(id.clone()));
                }
                if let Some(p) = self.static_peers.get_mut(&peer_id) {
                    p.connected = true;
                    p.backoff = REDIAL_MIN;
                    p.due = None;
                    if num_established.get() == 1 {
                        p.awaiting_topics = Some(Instant::now());
                    }
                }
                if num_established.get() == 1
                    && self.light.as_ref().is_some_and(|l| l.service == peer_id)
                {
                    // A new connection to our service: it may have forgotten us.
                    self.refresh_filters(true);
                    self.service_reached();
                }
                if num_established.get() == 1 {
                    self.addresses.insert(peer_id, remote);
                    let request = metadata::request(
                        self.control.clone(),
                        peer_id,
                        self.ours.clone(),
                        self.reports_tx.clone(),
                    );
                    self.run_beside("metadata request", request);
                }
                self.metrics.set_peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                self.addresses.remove(&peer_id);
                self.profiles.remove(&peer_id);
                if let Some(light) = self.light.as_mut().filter(|l| l.service == peer_id) {
                    light.lost.get_or_insert_with(Instant::now);
                }
                if self.confirmed.remove(&peer_id) {
                    tracing::info!(peer = %peer_id, "peer left");
                    self.emit(Event::PeerDisconnected {
                        peer: transport::PeerId(peer_id.to_string()),
                    });
                }
                if let Some(p) = self.static_peers.get_mut(&peer_id) {
                    if !p.refused {
                        tracing::info!(
                            peer = %peer_id,
                            cause = ?cause.map(|c| c.to_string()),
                            retry_in = ?p.backoff,
                            "static peer dropped; redialling"
                        );
                        p.schedule_redial();
                    }
                }
                self.metrics.set_peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let reason = root_cause(&error);
                if let Some((address, reply)) = self.anonymous_dials.remove(&connection_id) {
                    let _ = reply.send(Err(transport::Error::Dial {
                        address,
                        reason: reason.clone(),
                    }));
                }
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        for (address, reply) in self.waiters.remove(&peer).unwrap_or_default() {
                            let _ = reply.send(Err(transport::Error::Dial {
                                address,
                                reason: reason.clone(),
                            }));
                        }
                    }
                    if let Some(p) = self.static_peers.get_mut(&peer) {
                        if !p.connected && !p.refused {
                            tracing::debug!(%peer, %reason, retry_in = ?p.backoff, "static peer unreachable");
                            p.schedule_redial();
                        }
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(error = %error, "listener error");
            }
            _ => {}
        }
    }

    pub(super) fn on_relay_message(
        &mut self,
        source: PeerId,
        id: &gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        let relay = &mut self.swarm.behaviour_mut().relay;
        match check(message) {
            Ok(delivery)
                if self.archive.is_some() && murmur_core::store::archivable(&delivery.message) =>
            {
                self.hold(id, source, delivery);
            }
            Ok(delivery) => {
                relay.report_message_validation_result(id, &source, MessageAcceptance::Accept);
                self.metrics.inc_received();
                self.push_to_filter_subscribers(&delivery);
                tracing::trace!(topic = %delivery.pubsub_topic, hash = %delivery.hash, "relay message");
                self.emit(Event::Message(delivery));
            }
            Err(reason) => {
                // Reject, not Ignore: the sender's score pays for it. But not
                // for a rule of murmur's own that other Waku peers do not
                // apply: they forward such messages, and an honest
                // neighbour would pay for what it passed on.
                let verdict = match reason {
                    RejectReason::BadContentTopic => MessageAcceptance::Ignore,
                    _ => MessageAcceptance::Reject,
                };
                relay.report_message_validation_result(id, &source, verdict);
                self.metrics.inc_rejected(reason);
                tracing::debug!(peer = %source, ?reason, "relay message rejected");
            }
        }
    }
}
