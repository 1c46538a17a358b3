//! Building the swarm, binding its listeners, registering the served
//! protocols and starting their servers beside the driver.

use super::*;

/// What the network thread reports once it listens.
pub(super) struct Started {
    pub(super) peer_id: PeerId,
    pub(super) listen_addrs: Vec<Multiaddr>,
    pub(super) bound: Vec<Multiaddr>,
    pub(super) enr: String,
}

/// Builds the swarm, binds, reports, then drives it until every `Network` clone
/// is gone or it panics.
pub(super) async fn run_network(
    config: Config,
    sink: Sink,
    (commands, relay): (mpsc::Receiver<Command>, Relay),
    ready: oneshot::Sender<Result<Started, Error>>,
    (died, meshed): (watch::Sender<Option<String>>, watch::Sender<Meshed>),
) {
    let (mut driver, services, ours, started) =
        match prepare(&config, sink, commands, (relay.clone(), meshed)).await {
            Ok(parts) => parts,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
    if ready.send(Ok(started)).is_err() {
        return;
    }
    let mut served = vec![tokio::spawn(metadata::serve(
        services.metadata,
        ours,
        driver.reports_tx.clone(),
    ))];
    if let Some((incoming, archive)) = services.store {
        served.push(tokio::spawn(crate::store::serve(incoming, archive)));
    }
    let swarm: crate::services::Swarm = std::sync::Arc::new(relay.clone());
    if let Some(incoming) = services.peer_exchange {
        served.push(tokio::spawn(crate::peer_exchange::serve(
            incoming,
            swarm.clone(),
        )));
    }
    if let Some(incoming) = services.filter_push {
        served.push(tokio::spawn(crate::filter::receive(
            incoming,
            swarm.clone(),
        )));
    }
    if let Some(incoming) = services.filter {
        served.push(tokio::spawn(crate::filter::serve(incoming, swarm.clone())));
    }
    if let Some((v3, v2)) = services.lightpush {
        let service = crate::lightpush::Service {
            relay: swarm,
            archive: config.archive.clone(),
            sharding: config.sharding().clone(),
        };
        served.push(tokio::spawn(crate::lightpush::serve(
            v3,
            service.clone(),
            false,
        )));
        served.push(tokio::spawn(crate::lightpush::serve(v2, service, true)));
    }
    driver.dial_static_peers();
    let outcome = AssertUnwindSafe(driver.run()).catch_unwind().await;
    for task in served {
        task.abort();
    }
    // Free the ports before anyone hears of the crash and rebinds them.
    drop(driver);
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        tracing::error!(panic = %message, "transport task panicked");
        let _ = died.send(Some(message));
    }
}

pub(super) async fn prepare(
    config: &Config,
    sink: Sink,
    commands: mpsc::Receiver<Command>,
    (myself, meshed): (Relay, watch::Sender<Meshed>),
) -> Result<(Driver, Services, Metadata, Started), Error> {
    // Protocols must be registered before any connection exists: js-waku
    // does not support identify push and would never learn of them.
    let mut served = crate::inbound::Registry::default();
    let incoming = served.accept(metadata::PROTOCOL);
    let lightpush = config.lightpush.then(|| {
        (
            served.accept(crate::lightpush::V3),
            served.accept(crate::lightpush::V2),
        )
    });
    let filter = config
        .filter
        .then(|| served.accept(crate::filter::SUBSCRIBE));
    let peer_exchange = config
        .peer_exchange
        .then(|| served.accept(crate::peer_exchange::PROTOCOL));
    let filter_push = config
        .light
        .is_some()
        .then(|| served.accept(crate::filter::PUSH));
    let store = config
        .store
        .as_ref()
        .map(|archive| (served.accept(crate::store::PROTOCOL), archive.clone()));
    let mut swarm = build_swarm(config, served).await?;
    let control = swarm.behaviour().streams.new_control();

    let mut pending = HashMap::new();
    for addr in &config.listen {
        let id = swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
            address: addr.clone(),
            reason: root_cause(&e),
        })?;
        pending.insert(id, addr.clone());
    }
    let peer_id = *swarm.local_peer_id();
    let mut listen_addrs = Vec::new();
    let mut bound = Vec::new();
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| Error::Build("listeners did not come up in time".to_owned()))?;
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                if let Some(requested) = pending.remove(&listener_id) {
                    bound.push(with_port_of(&requested, &address));
                }
                listen_addrs.push(address.with(Protocol::P2p(peer_id)));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } if pending.contains_key(&listener_id) => {
                let address = pending
                    .remove(&listener_id)
                    .unwrap_or_else(Multiaddr::empty);
                let reason = match reason {
                    Ok(()) => "closed".to_owned(),
                    Err(e) => root_cause(&e),
                };
                return Err(Error::Listen { address, reason });
            }
            _ => {}
        }
    }

    let ours = Metadata::new(
        u32::from(config.cluster()),
        config.shards.iter().map(|&s| u32::from(s)),
    );
    let (reports_tx, reports) = mpsc::channel(REPORT_BUFFER);
    let driver = Driver {
        swarm,
        control,
        ours: ours.clone(),
        cluster: config.cluster(),
        commands,
        sink,
        backlog: VecDeque::new(),
        backlog_limit: config.event_buffer,
        reports,
        reports_tx,
        metrics: config.metrics.clone(),
        static_peers: config
            .static_peers
            .iter()
            .filter_map(|a| Some((peer_of(a)?, StaticPeer::new(a.clone()))))
            .collect(),
        waiters: HashMap::new(),
        anonymous_dials: HashMap::new(),
        addresses: HashMap::new(),
        confirmed: BTreeSet::new(),
        filter: crate::filter::Subscriptions::default(),
        push_permits: std::sync::Arc::new(tokio::sync::Semaphore::new(crate::filter::MAX_PUSHES)),
        light: config
            .light
            .as_ref()
            .and_then(peer_of)
            .map(|service| Light {
                service,
                filters: Default::default(),
                pinged: Instant::now(),
                fallbacks: Vec::new(),
                lost: Some(Instant::now()),
                asked: false,
            }),
        archive: config.archive.clone(),
        peer_cache: {
            let mut cache = crate::peer_exchange::Cache::default();
            for record in &config.bootstrap {
                cache.learn(record);
            }
            cache
        },
        enr: String::new(),
        myself,
        meshed,
        tasks: crate::tasks::Tasks::new(config.max_tasks),
        gathered: Vec::new(),
        store_cursors: crate::store::Cursors::default(),
        profiles: HashMap::new(),
    };
    let enr = {
        use crate::enr::capability;
        let mut capabilities = 0;
        if config.light.is_none() {
            capabilities |= capability::RELAY;
        }
        if config.store.is_some() {
            capabilities |= capability::STORE;
        }
        if config.filter {
            capabilities |= capability::FILTER;
        }
        if config.lightpush {
            capabilities |= capability::LIGHTPUSH;
        }
        crate::enr::build(
            &config.keypair,
            &listen_addrs,
            capabilities,
            config.cluster(),
            &config.shards,
            config.discv5_port,
        )
        .map_err(Error::Build)?
        .to_base64()
    };
    let mut driver = driver;
    driver.enr = enr.clone();
    let started = Started {
        peer_id,
        listen_addrs,
        bound,
        enr,
    };
    Ok((
        driver,
        Services {
            metadata: incoming,
            store,
            lightpush,
            filter,
            filter_push,
            peer_exchange,
        },
        ours,
        started,
    ))
}

/// The inbound protocol handlers to run beside the swarm.
pub(super) struct Services {
    pub(super) metadata: Incoming,
    pub(super) store: Option<(Incoming, actix::Recipient<murmur_core::storage::Query>)>,
    pub(super) lightpush: Option<(Incoming, Incoming)>,
    pub(super) filter: Option<Incoming>,
    pub(super) filter_push: Option<Incoming>,
    pub(super) peer_exchange: Option<Incoming>,
}

pub(super) async fn build_swarm(
    config: &Config,
    served: crate::inbound::Registry,
) -> Result<Swarm<Behaviour>, Error> {
    let build = |e: &dyn std::error::Error| Error::Build(e.to_string());
    let swarm = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            // js-waku speaks only mplex; nwaku both; go-waku only yamux.
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .map_err(|e| build(&e))?
        .with_dns()
        .map_err(|e| build(&e))?
        .with_websocket(
            noise::Config::new,
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .await
        .map_err(|e| build(&e))?
        .with_behaviour(|key| Behaviour::new(key, served).map_err(Box::from))
        .map_err(|e| Error::Build(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}
