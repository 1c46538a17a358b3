//! The bot examples against real nodes on loopback: commands, typed
//! arguments, state kept across a restart of the bot, and the backlog left
//! unanswered.

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::node::{
    chat::{AccountId, Inbox},
    Builder, Config, Node,
};

use crate::support::{addr, eventually, loopback_config, stored, WAIT};

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
    let topic = crate::support::partition_topic_of(account);
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
    let bot_topic = crate::support::partition_topic_of(bot_id);
    stored(&user, &addr(&store, false), &bot_topic, 1).await;

    let bot_node = node(config(dirs[2].path(), &store), bot_key.clone()).await;
    meshed(&bot_node, user_id).await;
    let mut user_inbox = user.inbox().await.unwrap();
    let bot = echo_bot::bot(bot_node.clone());
    let counters = bot.counters();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = actix::spawn(bot.run_until(async move {
        let _ = stopped.await;
    }));
    eventually("the bot listens", || async { counters.listening() }).await;
    bot_node.catch_up(&addr(&store, false), None).await.unwrap();
    eventually("the message from before the start is skipped", || async {
        counters.backlog() >= 1
    })
    .await;
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
    let listening = again.counters();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    actix::spawn(again.run_until(async move {
        let _ = stopped.await;
    }));
    eventually("the restarted bot listens", || async {
        listening.listening()
    })
    .await;
    chat.send_text("/count").await.unwrap();
    assert_eq!(answer(&mut user_inbox, "/count after a restart").await, "3");
}

#[path = "../../examples/moderation_bot.rs"]
#[allow(dead_code, unreachable_pub)]
mod moderation_bot;

/// Waits until `node`'s copy of `group` satisfies `ok`.
async fn until_info(
    node: &Node,
    group: murmur::core::groups::GroupId,
    ok: impl Fn(&murmur::node::chat::Summary) -> bool,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if node.group(group).info().await.is_ok_and(|i| ok(&i)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn the_moderation_bot_drops_a_flood_and_carries_out_kicks_and_deletions() {
    use murmur::node::chat::{Notice, Role};
    use murmur_moderation::Moderation;

    let dirs = [(); 4].map(|_| tempfile::tempdir().unwrap());
    let mut bot_config = loopback_config(dirs[0].path(), &["/ip4/127.0.0.1/tcp/0"]);
    bot_config.plugins.insert(
        "moderation".into(),
        figment::value::Value::serialize(serde_json::json!({
            "flood": { "messages": 3, "seconds": 30 },
        }))
        .unwrap(),
    );
    let (builder, shared) = moderation_bot::builder(bot_config.clone()).unwrap();
    let bot_node = builder
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap();
    // Members: Alice (to be a moderator), Bob (runs the plugin too),
    // Mallory (floods).
    let member = |dir: &std::path::Path, with_plugin: bool| {
        let mut config = config(dir, &bot_node);
        config.plugins = bot_config.plugins.clone();
        let builder = Builder::new(config).with_keypair(Keypair::generate_secp256k1());
        if with_plugin {
            builder.with_plugin::<Moderation>()
        } else {
            builder
        }
    };
    let alice = member(dirs[1].path(), false).start().await.unwrap();
    let bob = member(dirs[2].path(), true).start().await.unwrap();
    let mallory = member(dirs[3].path(), false).start().await.unwrap();
    let group = moderation_bot::community(&bot_node).await.unwrap();
    let bot = moderation_bot::bot(bot_node.clone(), group.clone(), shared.clone());
    let counters = bot.counters();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    actix::spawn(bot.run_until(async move {
        let _ = stopped.await;
    }));
    eventually("the bot listens", || async { counters.listening() }).await;
    let (bot_id, _) = bot_node.chat_identity().await.unwrap();
    let mut ids = Vec::new();
    for m in [&alice, &bob, &mallory] {
        let id = m.chat_identity().await.unwrap().0;
        ids.push(id);
        m.add_contact(&bot_node.contact_code().await.unwrap())
            .await
            .unwrap();
        meshed(m, bot_id).await;
        let mut inbox = m.inbox().await.unwrap();
        m.conversation(bot_id).send_text("/join").await.unwrap();
        let welcome = answer(&mut inbox, "/join").await;
        assert_eq!(welcome, "welcome to community");
    }
    let (alice_id, bob_id, mallory_id) = (ids[0], ids[1], ids[2]);
    group.promote(alice_id).await.unwrap();
    for m in [&alice, &bob, &mallory] {
        until_info(
            m,
            group.id(),
            |i| i.members.len() == 4 && i.members.contains(&(alice_id, Role::Admin)),
            "every member sees four members and Alice a moderator",
        )
        .await;
    }
    let topic = murmur::node::groups::group_topic(group.id());
    for n in [&alice, &bob, &mallory] {
        n.wait_for_peers(&n.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
    }
    let mut bob_inbox = bob.inbox().await.unwrap();
    let mut alice_inbox = alice.inbox().await.unwrap();

    // Mallory floods: Bob's plugin lets three through, then mutes her.
    let opened_before = bob.stats().await.unwrap().group_opened;
    let mallorys = mallory.group(group.id());
    for i in 0..10 {
        mallorys.send_text(format!("BUY NOW {i}")).await.unwrap();
    }
    // Once Bob's node opened all ten, its hooks have judged each, and what
    // they let through is in his inbox.
    eventually("the flood reaches Bob", || async {
        bob.stats().await.unwrap().group_opened >= opened_before + 10
    })
    .await;
    let mut seen = 0;
    while let Some(m) = bob_inbox.recv_timeout(Duration::ZERO).await {
        assert_eq!(m.sender, mallory_id);
        seen += 1;
    }
    assert_eq!(seen, 3, "the flood beyond three is dropped");
    assert!(
        shared
            .lock()
            .is_muted(&mallory_id, std::time::Instant::now()),
        "the bot's plugin muted her too"
    );

    // Bob cannot kick (he is no moderator); Alice can.
    bob.group(group.id())
        .send_text(format!("/kick {mallory_id}"))
        .await
        .unwrap();
    alice
        .group(group.id())
        .send_text(format!("/kick {mallory_id}"))
        .await
        .unwrap();
    until_info(
        &bob,
        group.id(),
        |i| i.members.len() == 3 && !i.members.iter().any(|(a, _)| *a == mallory_id),
        "Mallory removed",
    )
    .await;
    assert!(
        shared
            .lock()
            .counts()
            .get("not_allowed")
            .copied()
            .unwrap_or(0)
            >= 1,
        "Bob's /kick refused"
    );
    until_info(&mallory, group.id(), |i| !i.member, "Mallory's node knows").await;
    let err = mallorys.send_text("let me back").await.unwrap_err();
    assert!(err.to_string().contains("not a member"), "{err}");

    // Bob writes something; Alice deletes it; the bot deletes it through
    // the community's log, and every member's node is told.
    let mut bob_notices = bob.notices().await.unwrap();
    let sent = bob
        .group(group.id())
        .send_text("oops, wrong chat")
        .await
        .unwrap();
    let got = loop {
        let m = alice_inbox
            .recv_timeout(WAIT)
            .await
            .expect("Alice reads Bob");
        if m.sender == bob_id && m.text() == Some("oops, wrong chat") {
            break m;
        }
    };
    assert_eq!(got.id, sent.id);
    alice
        .group(group.id())
        .send_text(format!("/delete {}", sent.id))
        .await
        .unwrap();
    let deleted = loop {
        let notice = bob_notices
            .recv_timeout(WAIT)
            .await
            .expect("a deletion notice");
        if let Notice::Deleted { message, .. } = notice {
            break message;
        }
    };
    assert_eq!(deleted, sent.id);
    assert_eq!(
        bot_node
            .group(group.id())
            .info()
            .await
            .unwrap()
            .role(&bot_id),
        Some(Role::Owner),
        "the bot owns the community"
    );
}
