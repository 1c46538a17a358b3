use std::time::Duration;

use actix::prelude::*;
use murmur_core::{transport::Event, Delivery};
use tokio::sync::mpsc;

/// How long [`Events`] waits for something before failing the test.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// An actor that receives a stage's events and hands them to the test.
pub struct Probe {
    tx: mpsc::Sender<Event>,
}

impl Probe {
    /// Starts a probe; give its address to the stage, read from the [`Events`].
    pub fn start() -> (Addr<Self>, Events) {
        let (tx, rx) = mpsc::channel(4096);
        (Self { tx }.start(), Events { rx })
    }
}

impl Actor for Probe {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

/// A page of fetched messages ([`Event::FetchedPage`]) reaches the test
/// as its messages, each an [`Event::Fetched`], in the page's order.
impl Handler<Event> for Probe {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, event: Event, _: &mut Context<Self>) -> Self::Result {
        let tx = self.tx.clone();
        let events = match event {
            Event::FetchedPage(page) => page.into_iter().map(Event::Fetched).collect(),
            other => vec![other],
        };
        Box::pin(async move {
            for event in events {
                let _ = tx.send(event).await;
            }
        })
    }
}

/// The events a [`Probe`] collected.
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event of any kind, or `None` after `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message, skipping other events.
    ///
    /// # Panics
    ///
    /// If none arrives within `WAIT`: this is for tests.
    pub async fn next_message(&mut self) -> Delivery {
        self.message_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no message arrived within {WAIT:?}"))
    }

    /// The next message within `timeout`, skipping other events.
    pub async fn message_within(&mut self, timeout: Duration) -> Option<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()
                .flatten()?;
            if let Event::Message(delivery) | Event::Fetched(delivery) = event {
                return Some(delivery);
            }
        }
    }
}
