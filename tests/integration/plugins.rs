//! Plugins built from `[plugins.NAME]`: chat hooks that see decrypted
//! messages, a plugin that panics rebuilt from its configuration while the
//! node runs on, and configuration mistakes reported in one line.

use std::sync::atomic::{AtomicUsize, Ordering};

use figment::{
    providers::{Format, Serialized, Toml},
    Figment,
};
use libp2p::identity::Keypair;
use murmur::{
    core::{
        chat::{Body, ChatMessage, Outgoing},
        hook::{BoxError, Hook, Verdict},
    },
    node::{plugin::Plugin, Builder, Config, Error, Node},
};

use crate::support::{addr, WAIT};

/// Drops chat messages with any of its words.
struct Words(Vec<String>);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
struct WordsConfig {
    words: Vec<String>,
}

impl Hook for Words {
    fn name(&self) -> &str {
        "words"
    }

    fn chat_inbound(&mut self, m: &ChatMessage) -> Result<Verdict<Body>, BoxError> {
        let text = m.text().unwrap_or_default();
        Ok(match self.0.iter().find(|w| text.contains(w.as_str())) {
            Some(w) => Verdict::Drop {
                reason: format!("contains {w:?}"),
            },
            None => Verdict::Deliver,
        })
    }

    fn chat_outbound(&mut self, o: &Outgoing) -> Result<Verdict<Body>, BoxError> {
        Ok(match &o.body {
            Body::Text(t) => Verdict::Rewrite(Body::Text(t.replace("darn", "d**n"))),
            _ => Verdict::Deliver,
        })
    }
}

impl Plugin for Words {
    const NAME: &'static str = "words";
    type Config = WordsConfig;

    fn new(c: WordsConfig) -> Result<Self, BoxError> {
        Ok(Self(c.words))
    }
}

/// How many times `Flaky` was built.
static BUILT: AtomicUsize = AtomicUsize::new(0);

/// Panics on "boom", and counts what it saw since it was (re)built.
struct Flaky {
    seen: usize,
}

impl Hook for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    fn chat_inbound(&mut self, m: &ChatMessage) -> Result<Verdict<Body>, BoxError> {
        self.seen += 1;
        assert!(m.text() != Some("boom"), "a plugin bug");
        Ok(Verdict::Deliver)
    }
}

impl Plugin for Flaky {
    const NAME: &'static str = "flaky";
    type Config = std::collections::BTreeMap<String, String>;

    fn new(_: Self::Config) -> Result<Self, BoxError> {
        BUILT.fetch_add(1, Ordering::SeqCst);
        Ok(Self { seen: 0 })
    }
}

fn config(dir: &std::path::Path, toml: &str) -> Result<Config, Error> {
    let mut base = Config::new(dir);
    base.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    Config::from_figment(&Figment::from(Serialized::defaults(base)).merge(Toml::string(toml)))
}

async fn start(config: Config, peer: Option<&Node>) -> Result<Node, Error> {
    let mut config = config;
    if let Some(peer) = peer {
        config.network.peers = vec![addr(peer, false).parse().unwrap()];
    }
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .with_plugin::<Words>()
        .with_plugin::<Flaky>()
        .start()
        .await
}

#[actix_rt::test]
async fn chat_plugins_filter_rewrite_and_survive_a_panic() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = start(
        config(dirs[0].path(), "[plugins.flaky]\nenabled = false\n").unwrap(),
        None,
    )
    .await
    .unwrap();
    let bob = start(
        config(
            dirs[1].path(),
            "[plugins.words]\nwords = [\"spam\"]\n[plugins.flaky]\non_failure = \"drop\"\n",
        )
        .unwrap(),
        Some(&alice),
    )
    .await
    .unwrap();
    let bob_id = alice
        .add_contact(&bob.contact_code().await.unwrap())
        .await
        .unwrap();
    let mut inbox = bob.inbox().await.unwrap();
    let topic = crate::support::partition_topic_of(bob_id);
    alice
        .wait_for_peers(&alice.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();
    let built = BUILT.load(Ordering::SeqCst);
    let chat = alice.conversation(bob_id);
    // The last one passes every hook: once it is in, every one before it
    // has been judged (one sender's messages open in order).
    for text in [
        "hello",
        "buy spam now",
        "boom",
        "oh darn, still here",
        "that is all",
    ] {
        chat.send_text(text).await.unwrap();
    }
    let mut got = Vec::new();
    loop {
        let m = inbox
            .recv_timeout(WAIT)
            .await
            .expect("the last message arrives");
        let text = m.text().unwrap().to_owned();
        if text == "that is all" {
            break;
        }
        got.push(text);
    }
    // "spam" dropped by Bob's word filter; "boom" panicked Bob's flaky
    // plugin, whose policy here is to drop; Alice's outbound hook rewrote
    // the last one before sealing it.
    assert_eq!(got, ["hello", "oh d**n, still here"]);
    let stats = bob.stats().await.unwrap();
    assert_eq!(stats.hook_failures, 1);
    assert_eq!(stats.hook_restarts, 1);
    assert_eq!(
        BUILT.load(Ordering::SeqCst),
        built + 1,
        "rebuilt once, from its configuration"
    );
}

#[actix_rt::test]
async fn plugin_configuration_mistakes_stop_the_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, expected) in [
        (
            "[plugins.words]\nwrods = [\"x\"]\n",
            "plugins.words: unknown field: found `wrods`",
        ),
        ("[plugins.words]\nwords = \"x\"\n", "plugins.words:"),
        (
            "[plugins.words]\nwords = []\non_failure = \"maybe\"\n",
            "plugins.words: `on_failure` is",
        ),
        (
            "[plugins.words]\nwords = []\nenabled = \"yes\"\n",
            "plugins.words: `enabled` is",
        ),
    ] {
        let err = match start(config(dir.path(), toml).unwrap(), None).await {
            Ok(_) => panic!("{toml} started"),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with(expected), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}
