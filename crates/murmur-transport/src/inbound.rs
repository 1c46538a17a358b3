//! Inbound streams of the server protocols, taken straight from each
//! connection and queued per protocol.
//!
//! libp2p-stream's `Control::accept` hands inbound streams over a channel
//! that holds one: a second stream that arrives before the server's task ran
//! again is reset, and a client sees "stream reset" for a request that was
//! never read. Here every connection's handler puts its streams into a
//! bounded queue per protocol (sized for bursts from many clients at once),
//! and the protocol's server (`rpc::serve`) answers or refuses each one with the protocol's
//! own "too many requests". Only a flood past the queue is reset, and it is
//! counted and logged.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll},
};

use libp2p::{
    core::{transport::PortUse, upgrade::InboundUpgrade, Endpoint, UpgradeInfo},
    swarm::{
        handler::{ConnectionEvent, FullyNegotiatedInbound},
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId, Stream, StreamProtocol,
};
use tokio::sync::mpsc;

/// Streams waiting for their server, per protocol: room for a burst from
/// hundreds of light clients while the server's task is busy.
pub(crate) const QUEUE: usize = 512;

/// The streams of one protocol, as its server receives them.
pub(crate) type Incoming = mpsc::Receiver<(PeerId, Stream)>;

/// The server protocols this node answers, and the queue of each.
#[derive(Default)]
pub(crate) struct Registry {
    queues: HashMap<StreamProtocol, mpsc::Sender<(PeerId, Stream)>>,
}

impl Registry {
    /// Registers `protocol` and returns the streams that will arrive on it.
    pub(crate) fn accept(&mut self, protocol: StreamProtocol) -> Incoming {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.queues.insert(protocol, tx);
        rx
    }

    fn offer(&self, peer: PeerId, protocol: &StreamProtocol, stream: Stream) {
        let Some(queue) = self.queues.get(protocol) else {
            return;
        };
        match queue.try_send((peer, stream)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(%peer, %protocol, "inbound queue full, stream reset");
            }
            // The server is gone: the node is shutting down.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The behaviour that takes inbound streams for the registered protocols.
pub(crate) struct Behaviour {
    registry: Arc<Registry>,
}

impl Behaviour {
    /// Serves the protocols of `registry`. Build it before any connection
    /// exists: js-waku learns protocols from the first identify only.
    pub(crate) fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
        }
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            registry: self.registry.clone(),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// One connection's side: every negotiated inbound stream goes to its queue.
pub(crate) struct Handler {
    peer: PeerId,
    registry: Arc<Registry>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = libp2p::core::upgrade::DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(Upgrade(self.registry.queues.keys().cloned().collect()), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Infallible, Self::ToBehaviour>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, Self::OutboundProtocol, (), Infallible>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            self.registry.offer(self.peer, &protocol, stream);
        }
    }
}

/// Negotiates any registered protocol and hands over the bare stream.
pub(crate) struct Upgrade(Vec<StreamProtocol>);

impl UpgradeInfo for Upgrade {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, stream: Stream, protocol: Self::Info) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}
