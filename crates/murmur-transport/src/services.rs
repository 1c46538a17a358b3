//! What the protocol servers ask of the swarm driver, as a trait: the
//! servers depend on it, the driver implements it (`network::Relay`), so
//! that no protocol module depends on the driver that runs it.

use std::{future::Future, pin::Pin, sync::Arc};

use libp2p::PeerId;
use murmur_core::{transport, Delivery, PubsubTopic, WakuMessage};

/// A future a service call answers with.
pub(crate) type Call<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The swarm as the protocol servers reach it.
pub(crate) type Swarm = Arc<dyn Services>;

/// What the protocol servers ask of the swarm.
pub(crate) trait Services: Send + Sync {
    /// Publishes on the relay; answers the delivery and how many peers on
    /// the topic it went to.
    fn publish(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Call<Result<(Delivery, usize), transport::Error>>;

    /// Applies a filter request from `peer`; answers its status.
    fn filter(
        &self,
        peer: PeerId,
        request: murmur_proto::filter::SubscribeRequest,
    ) -> Call<(u32, &'static str)>;

    /// Up to `n` peer records for `asker`.
    fn sample_peers(&self, n: usize, asker: PeerId) -> Call<Vec<Vec<u8>>>;

    /// Hands a message a filter service pushed to us to the local pipeline.
    fn inbound(&self, delivery: Delivery) -> Call<()>;

    /// Hands a message a light client pushed to us to the local pipeline.
    fn deliver_locally(&self, delivery: Delivery) -> Call<()>;
}
