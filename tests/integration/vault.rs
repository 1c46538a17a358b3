//! The vault key from a passphrase or a command: the data folder alone
//! (node key and database) opens nothing, a wrong secret is a clear error
//! at start, and the right one restores the same account.

use murmur::node::{config::VaultSource, Builder, Config, Error, Node};

use crate::support::loopback_config;

fn config(dir: &std::path::Path, source: VaultSource, env: &str) -> Config {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.chat.vault.source = source;
    config.chat.vault.passphrase_env = env.to_owned();
    config
}

async fn start(config: Config) -> Result<Node, Error> {
    // The node key comes from the data folder: the same one each time.
    Builder::new(config).start().await
}

/// Starting must fail, and say the state does not open.
async fn refused(config: Config, what: &str) {
    match start(config).await {
        Err(e) => assert!(e.to_string().contains("does not open"), "{what}: {e}"),
        Ok(_) => panic!("{what}: the state opened"),
    }
}

#[actix_rt::test]
async fn a_passphrase_vault_opens_with_its_passphrase_only() {
    // A variable of this test's own: tests run in parallel in one process.
    const ENV: &str = "MURMUR_TEST_VAULT_PASSPHRASE";
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var(ENV, "correct horse battery staple");
    let node = start(config(dir.path(), VaultSource::Passphrase, ENV))
        .await
        .unwrap();
    let account = node.chat_identity().await.unwrap();
    drop(node);
    assert!(dir.path().join("vault.salt").exists());

    std::env::set_var(ENV, "incorrect horse");
    refused(
        config(dir.path(), VaultSource::Passphrase, ENV),
        "a wrong passphrase",
    )
    .await;
    refused(
        config(dir.path(), VaultSource::NodeKey, ENV),
        "the folder alone",
    )
    .await;
    std::env::remove_var(ENV);
    let missing = start(config(dir.path(), VaultSource::Passphrase, ENV)).await;
    assert!(
        matches!(&missing, Err(Error::Config(why)) if why.contains(ENV)),
        "{:?}",
        missing.err()
    );

    std::env::set_var(ENV, "correct horse battery staple");
    let node = start(config(dir.path(), VaultSource::Passphrase, ENV))
        .await
        .unwrap();
    assert_eq!(node.chat_identity().await.unwrap(), account);
}

#[actix_rt::test]
async fn a_command_vault_opens_with_what_the_command_prints() {
    let dir = tempfile::tempdir().unwrap();
    let with = |secret: &str| {
        let mut c = config(dir.path(), VaultSource::Command, "UNUSED");
        c.chat.vault.command = vec!["printf".to_owned(), secret.to_owned()];
        c
    };
    let node = start(with("from the keyring")).await.unwrap();
    let account = node.chat_identity().await.unwrap();
    drop(node);
    refused(with("something else"), "another secret").await;
    let mut failing = with("");
    failing.chat.vault.command = vec!["false".to_owned()];
    assert!(matches!(start(failing).await, Err(Error::Config(_))));
    let node = start(with("from the keyring")).await.unwrap();
    assert_eq!(node.chat_identity().await.unwrap(), account);
}

#[actix_rt::test]
async fn a_session_state_put_back_in_the_database_is_refused_at_start() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let bob = crate::support::chat_node(dirs[1].path(), None).await;
    let alice_config = || {
        let mut c = config(dirs[0].path(), VaultSource::NodeKey, "UNUSED");
        c.network.peers = vec![crate::support::addr(&bob, false).parse().unwrap()];
        c
    };
    let alice = start(alice_config()).await.unwrap();
    let b = crate::support::befriend(&alice, &bob).await;
    crate::support::meshed_for(&alice, b).await;
    let mut inbox = bob.inbox().await.unwrap();
    let db_url = format!("sqlite://{}", dirs[0].path().join("murmur.db").display());
    let session_of = |entries: Vec<(String, Vec<u8>)>| {
        entries
            .into_iter()
            .find(|(n, _)| n.starts_with("crypto/session/"))
            .expect("a session with Bob")
    };
    alice.conversation(b).send_text("one").await.unwrap();
    inbox.recv_timeout(crate::support::WAIT).await.expect("one");
    let db = murmur_storage::Database::open(&db_url).await.unwrap();
    let before = session_of(db.list_state("crypto/").await.unwrap());
    let mut two = alice.conversation(b).send_text("two").await.unwrap();
    inbox.recv_timeout(crate::support::WAIT).await.expect("two");
    // Bob's receipt opened (and its session step saved): Alice writes no
    // more state.
    assert!(matches!(
        two.acknowledged(crate::support::WAIT).await,
        murmur::node::chat::DeliveryState::Acknowledged { .. }
    ));
    alice.go_offline().await.unwrap();
    drop(alice);

    // Someone who can write the database puts the session back to its
    // state before "two": Alice would seal her next message with the key
    // and nonce "two" used. She refuses to start on it instead.
    db.save_state(&[(before.0.clone(), Some(before.1.clone()))])
        .await
        .unwrap();
    match start(alice_config()).await {
        Err(e) => assert!(e.to_string().contains("rolled back"), "{e}"),
        Ok(_) => panic!("started on a rolled-back session"),
    }
}
