//! A gate in front of one message of a stage: every request waits until the
//! test opens it, and the test can wait until a number of them are held.
//! It wraps the default stage, as an integrator's replacement would
//! (`Builder::with_crypto`, `Builder::with_storage`).

use actix::prelude::*;
use libp2p::identity::Keypair;
use murmur::node::{crypto::Crypto, Builder, Config, Node};
use murmur_core::{crypto, storage};
use murmur_test_kit::MemoryStorage;
use tokio::sync::{oneshot, watch};

use crate::support::WAIT;

/// Holds every `M` until the gate opens, then hands it to the stage.
struct Gate<M>
where
    M: Message + Send,
    M::Result: Send,
{
    inner: Recipient<M>,
    open: watch::Receiver<bool>,
    held: watch::Sender<usize>,
    /// The answer when the stage behind is gone.
    gone: fn() -> M::Result,
}

impl<M> Actor for Gate<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    type Context = Context<Self>;
}

impl<M> Handler<M> for Gate<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    type Result = ResponseFuture<M::Result>;

    fn handle(&mut self, msg: M, _: &mut Context<Self>) -> Self::Result {
        let (inner, mut open, held, gone) = (
            self.inner.clone(),
            self.open.clone(),
            self.held.clone(),
            self.gone,
        );
        held.send_modify(|n| *n += 1);
        Box::pin(async move {
            let _ = open.wait_for(|o| *o).await;
            held.send_modify(|n| *n -= 1);
            inner.send(msg).await.unwrap_or_else(|_| gone())
        })
    }
}

/// The test's side of a gate.
pub(crate) struct Valve {
    open: watch::Sender<bool>,
    held: watch::Receiver<usize>,
}

/// A closed gate in front of `inner`: the recipient to hand the stage's
/// callers, and the valve that opens it.
pub(crate) fn gate<M>(inner: Recipient<M>, gone: fn() -> M::Result) -> (Recipient<M>, Valve)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    let (open_tx, open) = watch::channel(false);
    let (held_tx, held) = watch::channel(0);
    let gate = Gate {
        inner,
        open,
        held: held_tx,
        gone,
    }
    .start();
    (
        gate.recipient(),
        Valve {
            open: open_tx,
            held,
        },
    )
}

impl Valve {
    /// Waits until at least `n` requests are held.
    pub(crate) async fn holding(&mut self, n: usize) {
        tokio::time::timeout(WAIT, self.held.wait_for(|h| *h >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} requests never reached the gate"))
            .expect("the gate is there");
    }

    /// How many requests are held now.
    pub(crate) fn held(&self) -> usize {
        *self.held.borrow()
    }

    /// Lets every request held, and every later one, through.
    pub(crate) fn open(&self) {
        self.open.send_replace(true);
    }
}

/// A node whose crypto stage is the default one behind a gate on `Open`.
pub(crate) async fn gated_open(config: Config) -> (Node, Valve) {
    let (valve_tx, valve) = oneshot::channel();
    let node = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .with_crypto(move |cx| async move {
            let stage = Crypto::start(
                cx.storage,
                &cx.node_secret,
                &cx.settings.sessions(),
                cx.metrics,
            )
            .await?;
            let default = crypto::Handle::from(stage);
            let (open, valve) = gate(default.open.clone(), || {
                Err(crypto::Error::State("the crypto stage is gone".to_owned()))
            });
            let _ = valve_tx.send(valve);
            Ok(crypto::Handle { open, ..default })
        })
        .start()
        .await
        .expect("the node starts");
    (node, valve.await.expect("the crypto stage was started"))
}

/// A node on memory storage behind a gate on `SaveRaw`: nothing it relays
/// is archived (and so accepted) until the gate opens.
pub(crate) async fn gated_archive(config: Config) -> (Node, Valve) {
    let (valve_tx, valve) = oneshot::channel();
    let node = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .with_storage(move |_| async move {
            let inner = storage::Handle::from(MemoryStorage::start());
            let (save_raw, valve) = gate(inner.save_raw.clone(), || {
                Err(storage::Error::Backend(
                    "the storage stage is gone".to_owned(),
                ))
            });
            let _ = valve_tx.send(valve);
            Ok(storage::Handle { save_raw, ..inner })
        })
        .start()
        .await
        .expect("the node starts");
    (node, valve.await.expect("the storage stage was started"))
}
