//! The seam: the same pipeline, with the transport stage swapped for the
//! in-memory one; hooks run in order and a failing hook is isolated.

use murmur::{
    core::{
        hook::{BoxError, FailurePolicy, Hook, Outgoing, Verdict},
        storage, transport, ContentTopic, Delivery,
    },
    node::{Builder, Config, Error, Node},
};
use murmur_test_kit::{MemoryNetwork, MemoryStorage};

use crate::support::WAIT;

async fn memory_node(net: &MemoryNetwork, hooks: Vec<Box<dyn FnOnce(Builder) -> Builder>>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path());
    let net = net.clone();
    // Both stages in memory: no socket, no file.
    let mut builder = Builder::new(config)
        .with_keypair(libp2p::identity::Keypair::generate_secp256k1())
        .with_transport(move |cx| async move { Ok(transport::Handle::from(net.start(cx.events))) })
        .with_storage(|_| async { Ok(storage::Handle::from(MemoryStorage::start())) });
    for add in hooks {
        builder = add(builder);
    }
    builder.start().await.expect("node starts")
}

fn topic() -> ContentTopic {
    "/murmur/1/seam/proto".parse().unwrap()
}

#[actix_rt::test]
async fn the_pipeline_runs_unchanged_on_a_memory_transport() {
    let net = MemoryNetwork::new();
    let a = memory_node(&net, Vec::new()).await;
    let b = memory_node(&net, Vec::new()).await;
    let mut inbox = b.subscribe([&topic()]).await.unwrap();
    let hash = a
        .send(&topic(), b"over memory".to_vec())
        .await
        .unwrap()
        .hash();
    let got = inbox.recv_timeout(WAIT).await.expect("delivered");
    assert_eq!(got.hash, hash);
    assert_eq!(got.message.payload.as_ref(), b"over memory");
    assert_eq!(b.stats().await.unwrap().delivered, 1);
}

struct WordFilter;

impl Hook for WordFilter {
    fn name(&self) -> &str {
        "word-filter"
    }

    fn inbound(&mut self, d: &Delivery) -> Result<Verdict, BoxError> {
        Ok(if d.message.payload.windows(4).any(|w| w == b"spam") {
            Verdict::Drop {
                reason: "spam".to_owned(),
            }
        } else {
            Verdict::Deliver
        })
    }

    fn outbound(&mut self, o: &Outgoing) -> Result<Verdict, BoxError> {
        Ok(if o.message.payload.starts_with(b"secret") {
            Verdict::Drop {
                reason: "never leaves".to_owned(),
            }
        } else {
            Verdict::Deliver
        })
    }
}

struct Panics(FailurePolicy);

impl Hook for Panics {
    fn name(&self) -> &str {
        "panics"
    }

    fn inbound(&mut self, d: &Delivery) -> Result<Verdict, BoxError> {
        if d.message.payload.as_ref() == b"boom" {
            panic!("a plugin bug");
        }
        if d.message.payload.as_ref() == b"error" {
            return Err("a plugin error".into());
        }
        Ok(Verdict::Deliver)
    }

    fn failure_policy(&self) -> FailurePolicy {
        self.0
    }
}

struct Shout;

impl Hook for Shout {
    fn name(&self) -> &str {
        "shout"
    }

    fn inbound(&mut self, d: &Delivery) -> Result<Verdict, BoxError> {
        let mut m = d.message.clone();
        m.payload = m.payload.to_ascii_uppercase().into();
        Ok(Verdict::Rewrite(m))
    }
}

#[actix_rt::test]
async fn hooks_drop_rewrite_and_fail_in_isolation() {
    let net = MemoryNetwork::new();
    let a = memory_node(&net, vec![Box::new(|b: Builder| b.with_hook(WordFilter))]).await;
    let b = memory_node(
        &net,
        vec![Box::new(|b: Builder| {
            b.with_hook(WordFilter)
                .with_hook(Panics(FailurePolicy::Deliver))
                .with_hook(Shout)
        })],
    )
    .await;
    let mut inbox = b.subscribe([&topic()]).await.unwrap();

    let dropped = a.send(&topic(), b"secret plans".to_vec()).await;
    assert!(matches!(dropped, Err(Error::Dropped { ref hook, .. }) if hook == "word-filter"));

    // The last one passes every hook: once it is in, every one before it
    // has been judged.
    for payload in [
        &b"buy spam now"[..],
        b"boom",
        b"error",
        b"hello",
        b"that is all",
    ] {
        a.send(&topic(), payload.to_vec()).await.unwrap().hash();
    }
    let mut got = Vec::new();
    loop {
        let d = inbox
            .recv_timeout(WAIT)
            .await
            .expect("the last message arrives");
        let text = String::from_utf8(d.message.payload.to_vec()).unwrap();
        if text == "THAT IS ALL" {
            break;
        }
        got.push(text);
    }
    // spam dropped; the panicking and failing hook let the messages through
    // (its policy), and the rewrite hook after it still ran.
    assert_eq!(got, ["BOOM", "ERROR", "HELLO"]);
    let stats = b.stats().await.unwrap();
    assert_eq!(stats.hook_failures, 2);
    assert_eq!(stats.dropped_by_hooks, 1);
    // The node is still running.
    a.send(&topic(), b"still here".to_vec())
        .await
        .unwrap()
        .hash();
    assert!(inbox.recv_timeout(WAIT).await.is_some());
}

#[actix_rt::test]
async fn a_fail_closed_hook_drops_on_failure() {
    let net = MemoryNetwork::new();
    let a = memory_node(&net, Vec::new()).await;
    let b = memory_node(
        &net,
        vec![Box::new(|b: Builder| {
            b.with_hook(Panics(FailurePolicy::Drop))
        })],
    )
    .await;
    let mut inbox = b.subscribe([&topic()]).await.unwrap();
    a.send(&topic(), b"error".to_vec()).await.unwrap().hash();
    a.send(&topic(), b"fine".to_vec()).await.unwrap().hash();
    let got = inbox.recv_timeout(WAIT).await.unwrap();
    assert_eq!(got.message.payload.as_ref(), b"fine");
}
