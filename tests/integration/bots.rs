//! The bot examples against real nodes on loopback: commands, typed
//! arguments, state kept across a restart of the bot, and the backlog left
//! unanswered.

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::node::{
    chat::{AccountId, Inbox},
    Builder, Config, Node,
};

use crate::support::{addr, loopback_config, WAIT};

#[path = "../../examples/echo_bot.rs"]
#[allow(dead_code, unreachable_pub)]
mod echo_bot;

async fn node(config: Config, key: Keypair) -> Node {
    Builder::new(config)
        .with_keypair(key)
        .start()
        .await
        .expect("node starts")
}

fn config(dir: &std::path::Path, peer: &Node) -> Config {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(peer, false).parse().unwrap()];
    config
}

async fn answer(inbox: &mut Inbox, what: &str) -> String {
    let m = inbox
        .recv_timeout(WAIT)
        .await
        .unwrap_or_else(|| panic!("no answer within {WAIT:?}: {what}"));
    m.text().unwrap_or_default().to_owned()
}

async fn meshed(node: &Node, account: AccountId) {
    let topic = murmur::node::crypto::partition_topic(murmur::crypto::envelope::partition(
        &murmur::crypto::AccountId(account.0),
        64,
    ));
    node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();
}

#[actix_rt::test]
async fn the_echo_bot_answers_commands_keeps_state_and_skips_the_backlog() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    // A store node between the user and the bot.
    let store = node(
        loopback_config(dirs[0].path(), &["/ip4/127.0.0.1/tcp/0"]),
        Keypair::generate_secp256k1(),
    )
    .await;
    let user = node(
        config(dirs[1].path(), &store),
        Keypair::generate_secp256k1(),
    )
    .await;
    let bot_key = Keypair::generate_secp256k1();
    let bot_node = node(config(dirs[2].path(), &store), bot_key.clone()).await;
    let (user_id, _) = user.chat_identity().await.unwrap();
    let bot_id = user
        .add_contact(&bot_node.contact_code().await.unwrap())
        .await
        .unwrap();
    meshed(&user, bot_id).await;
    meshed(&store, bot_id).await;

    // Written while the bot was away: the store keeps it.
    bot_node.go_offline().await.unwrap();
    drop(bot_node);
    let chat = user.conversation(bot_id);
    chat.send_text("are you there?").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let bot_node = node(config(dirs[2].path(), &store), bot_key.clone()).await;
    meshed(&bot_node, user_id).await;
    let mut user_inbox = user.inbox().await.unwrap();
    let bot = echo_bot::bot(bot_node.clone());
    let counters = bot.counters();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = actix::spawn(bot.run_until(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    bot_node.catch_up(&addr(&store, false), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counters.backlog(), 1, "the message from before the start");

    chat.send_text("/echo hello, bot").await.unwrap();
    assert_eq!(answer(&mut user_inbox, "/echo").await, "hello, bot");
    chat.send_text("/echo").await.unwrap();
    assert_eq!(
        answer(&mut user_inbox, "/echo without text").await,
        "/echo: nothing to echo. Usage: /echo TEXT"
    );
    chat.send_text("/count").await.unwrap();
    assert_eq!(answer(&mut user_inbox, "/count").await, "1");
    chat.send_text("/count").await.unwrap();
    assert_eq!(answer(&mut user_inbox, "/count").await, "2");
    chat.send_text("just words").await.unwrap();
    assert_eq!(
        answer(&mut user_inbox, "plain").await,
        "you said: just words"
    );
    assert_eq!(counters.handled(), 4);
    assert_eq!(counters.bad_commands(), 1);

    // The bot stops and starts again: its counter is in the database.
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let again = echo_bot::bot(bot_node.clone());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    actix::spawn(again.run_until(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    chat.send_text("/count").await.unwrap();
    assert_eq!(answer(&mut user_inbox, "/count after a restart").await, "3");
}
