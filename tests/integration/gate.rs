//! Nodes with a gate in front of one message of a stage
//! (`murmur_test_kit::gate`): every request waits until the test opens it,
//! and the test can wait until a number of them are held. The gate wraps
//! the default stage, as an integrator's replacement would
//! (`Builder::with_crypto`, `Builder::with_storage`).

use libp2p::identity::Keypair;
use murmur::node::{crypto::Crypto, Builder, Config, Node};
use murmur_core::{crypto, groups, storage};
use murmur_test_kit::{gate, gate_some, MemoryStorage, Valve};
use tokio::sync::oneshot;

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

/// A node on memory storage behind a gate on `SaveAll`: nothing it relays
/// is archived (and so accepted) until the gate opens.
pub(crate) async fn gated_archive(config: Config) -> (Node, Valve) {
    let (valve_tx, valve) = oneshot::channel();
    let node = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .with_storage(move |_| async move {
            let inner = storage::Handle::from(MemoryStorage::start());
            let (save_all, valve) = gate(inner.save_all.clone(), || {
                Err(storage::Error::Backend(
                    "the storage stage is gone".to_owned(),
                ))
            });
            let _ = valve_tx.send(valve);
            Ok(storage::Handle { save_all, ..inner })
        })
        .start()
        .await
        .expect("the node starts");
    (node, valve.await.expect("the storage stage was started"))
}

/// A node keyed `key` on `config` whose membership stage is the default
/// one behind a gate on `Control` (what another account's device sent
/// about a group: an invite, a chain key).
pub(crate) async fn gated_control(config: Config, key: &Keypair) -> (Node, Valve) {
    let (valve_tx, valve) = oneshot::channel();
    let node = Builder::new(config)
        .with_keypair(key.clone())
        .with_groups(move |cx| async move {
            let stage = murmur::node::groups::Membership::start(
                cx.storage,
                cx.crypto,
                &cx.node_secret,
                cx.settings.max_skip,
                cx.metrics,
            )
            .await?;
            let default = groups::Handle::from(stage);
            let (control, valve) = gate(default.control.clone(), || {
                Err(groups::Error::Malformed(
                    "the membership stage is gone".to_owned(),
                ))
            });
            let _ = valve_tx.send(valve);
            Ok(groups::Handle { control, ..default })
        })
        .start()
        .await
        .expect("the node starts");
    (node, valve.await.expect("the membership stage was started"))
}

/// A node keyed `key`, on its default SQLite storage, peered with `peer`,
/// whose stage-state writes that `picks` chooses wait at a closed gate
/// while every other write goes by; with the storage stage's own handle,
/// to look into the database behind the gate.
pub(crate) async fn gated_state(
    dir: &std::path::Path,
    key: &Keypair,
    peer: &Node,
    picks: impl Fn(&storage::SaveState) -> bool + Send + 'static,
) -> (Node, Valve, storage::Handle) {
    let mut config = crate::support::loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![crate::support::addr(peer, false).parse().unwrap()];
    let (stage_tx, stage) = oneshot::channel();
    let node = Builder::new(config)
        .with_keypair(key.clone())
        .with_storage(move |config| async move {
            let db = murmur_storage::Database::open(&config.store_url()).await?;
            let inner = storage::Handle::from(murmur_storage::Storage::start(db));
            let (save_state, valve) = gate_some(
                inner.save_state.clone(),
                || Err(storage::Error::Backend("refused by the test".to_owned())),
                picks,
            );
            let _ = stage_tx.send((valve, inner.clone()));
            Ok(storage::Handle {
                save_state,
                ..inner
            })
        })
        .start()
        .await
        .expect("the node starts");
    let (valve, inner) = stage.await.expect("the storage stage was started");
    (node, valve, inner)
}
