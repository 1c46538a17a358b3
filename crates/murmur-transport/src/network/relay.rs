//! The handle protocol services hold to reach the swarm driver.

use super::*;

/// What protocol services hold to reach the swarm: a weak sender, so that
/// they never keep a dropped node alive.
#[derive(Clone)]
pub(crate) struct Relay(pub(super) mpsc::WeakSender<Command>);

impl Relay {
    /// Sends a command that expects no answer; nothing if the node is gone.
    async fn tell(&self, command: Command) {
        if let Some(commands) = self.0.upgrade() {
            let _ = commands.send(command).await;
        }
    }

    /// Sends a command and waits for its answer; `None` if the node is gone.
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let commands = self.0.upgrade()?;
        let (reply, rx) = oneshot::channel();
        commands.send(command(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Publishes on relay; answers the delivery and how many peers got it.
    pub(crate) async fn publish(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<(Delivery, usize), transport::Error> {
        self.ask(|reply| Command::Push {
            topic,
            message,
            reply,
        })
        .await
        .unwrap_or(Err(transport::Error::Stopped))
    }

    /// Applies a filter request from `peer`.
    pub(crate) async fn filter(
        &self,
        peer: PeerId,
        request: murmur_proto::filter::SubscribeRequest,
    ) -> (u32, &'static str) {
        self.ask(|reply| Command::Filter {
            peer,
            request,
            reply,
        })
        .await
        .unwrap_or((
            murmur_proto::filter::status::SERVICE_UNAVAILABLE,
            "the node is stopping",
        ))
    }

    /// Reports that relay messages were archived (or not).
    pub(super) async fn archived(&self, done: Vec<(super::archive::Held, super::archive::Saved)>) {
        self.tell(Command::Archived(done)).await;
    }

    /// Up to `n` known peer records for `asker`.
    pub(crate) async fn sample_peers(&self, n: usize, asker: PeerId) -> Vec<Vec<u8>> {
        self.ask(|reply| Command::SamplePeers { n, asker, reply })
            .await
            .unwrap_or_default()
    }

    /// Keeps records learned from a peer exchange, to hand out in turn.
    pub(crate) async fn learn(&self, records: Vec<crate::enr::Record>) {
        self.tell(Command::Learned(records)).await;
    }

    /// Keeps service nodes a light client's service told of.
    pub(crate) async fn fallbacks(&self, records: Vec<crate::enr::Record>) {
        self.tell(Command::Fallbacks(records)).await;
    }

    /// Hands a message our filter service pushed to the local pipeline.
    pub(crate) async fn inbound(&self, delivery: Delivery) {
        self.tell(Command::Inbound(delivery)).await;
    }

    /// Hands a pushed message to the local pipeline.
    pub(crate) async fn deliver_locally(&self, delivery: Delivery) {
        self.tell(Command::Local(delivery)).await;
    }
}

impl crate::services::Services for Relay {
    fn publish(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> crate::services::Call<Result<(Delivery, usize), transport::Error>> {
        let relay = self.clone();
        Box::pin(async move { relay.publish(topic, message).await })
    }

    fn filter(
        &self,
        peer: PeerId,
        request: murmur_proto::filter::SubscribeRequest,
    ) -> crate::services::Call<(u32, &'static str)> {
        let relay = self.clone();
        Box::pin(async move { relay.filter(peer, request).await })
    }

    fn sample_peers(&self, n: usize, asker: PeerId) -> crate::services::Call<Vec<Vec<u8>>> {
        let relay = self.clone();
        Box::pin(async move { relay.sample_peers(n, asker).await })
    }

    fn inbound(&self, delivery: Delivery) -> crate::services::Call<()> {
        let relay = self.clone();
        Box::pin(async move { relay.inbound(delivery).await })
    }

    fn deliver_locally(&self, delivery: Delivery) -> crate::services::Call<()> {
        let relay = self.clone();
        Box::pin(async move { relay.deliver_locally(delivery).await })
    }
}
