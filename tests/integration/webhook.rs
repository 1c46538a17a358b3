//! Webhook bots: the Python and JavaScript examples answer a person
//! through a real node; a webhook that fails is tried again, and a node
//! restarted while a message waited for it delivers from where its bot
//! stopped, once.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use libp2p::identity::Keypair;
use murmur::node::{chat::AccountId, config::Token, Builder, Node};

use crate::support::{addr, befriend, loopback_config, meshed_for, send_while_away, WAIT};

const SECRET: &str = "a-webhook-secret-for-tests";

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an example bot; answers it and the URL it listens on.
fn example_bot(program: &str, script: &str) -> (Killed, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new(program)
        .arg(format!("{root}/examples/{script}"))
        .env("MURMUR_WEBHOOK_SECRET", SECRET)
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (Killed(child), format!("http://127.0.0.1:{port}/"))
}

/// A node that answers everyone and hands its messages to `url`.
async fn bot_node(dir: &std::path::Path, key: &Keypair, url: &str, peer: Option<&Node>) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    if let Some(peer) = peer {
        config.network.peers = vec![addr(peer, false).parse().unwrap()];
    }
    config.chat.accept = murmur::node::config::Accept::Everyone;
    config.webhook.url = Some(url.to_owned());
    config.webhook.secret = Some(Token::new(SECRET));
    config.webhook.max_backoff_secs = 1;
    Builder::new(config)
        .with_keypair(key.clone())
        .start()
        .await
        .expect("the bot's node starts")
}

/// The next text in `person`'s inbox from `from`.
async fn reply_from(inbox: &mut murmur::node::chat::Inbox, from: AccountId) -> String {
    loop {
        let message = inbox.recv_timeout(WAIT).await.expect("a reply comes");
        if message.sender == from {
            return message.text().expect("a text").to_owned();
        }
    }
}

async fn talk_to(program: &str, script: &str) {
    let (_bot, url) = example_bot(program, script);
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let person = crate::support::chat_node(dirs[0].path(), None).await;
    let bot = bot_node(
        dirs[1].path(),
        &Keypair::generate_secp256k1(),
        &url,
        Some(&person),
    )
    .await;
    let _webhook = murmur_rest::webhook::start(&bot)
        .await
        .unwrap()
        .expect("a URL is configured");
    let bot_id = befriend(&person, &bot).await;
    meshed_for(&person, bot_id).await;
    let mut inbox = person.inbox().await.unwrap();
    let chat = person.conversation(bot_id);
    chat.send_text("/echo hello from murmur").await.unwrap();
    assert_eq!(reply_from(&mut inbox, bot_id).await, "hello from murmur");
    chat.send_text("/ping").await.unwrap();
    assert_eq!(reply_from(&mut inbox, bot_id).await, "pong");

    // A request the node did not sign is refused by the example.
    let forged = reqwest::Client::new()
        .post(&url)
        .header(
            "x-murmur-timestamp",
            murmur::core::now_nanos() / 1_000_000_000,
        )
        .header("x-murmur-signature", "sha256=00")
        .body(r#"{"text":"/ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    // Signed with the secret, but stale: a replayed request is refused too.
    let body = r#"{"text":"/ping"}"#;
    let stale = (murmur::core::now_nanos() / 1_000_000_000 - 3600).to_string();
    let replayed = reqwest::Client::new()
        .post(&url)
        .header("x-murmur-timestamp", &stale)
        .header(
            "x-murmur-signature",
            format!(
                "sha256={}",
                murmur_rest::webhook::sign(SECRET.as_bytes(), &stale, body)
            ),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
    // The same, fresh, is taken: the refusals above were for the forgery
    // and the age, not for the form.
    let fresh = (murmur::core::now_nanos() / 1_000_000_000).to_string();
    let taken = reqwest::Client::new()
        .post(&url)
        .header("x-murmur-timestamp", &fresh)
        .header(
            "x-murmur-signature",
            format!(
                "sha256={}",
                murmur_rest::webhook::sign(SECRET.as_bytes(), &fresh, body)
            ),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 200);
    assert!(taken.text().await.unwrap().contains("pong"));
}

#[actix_rt::test]
async fn the_python_example_answers_through_a_real_node() {
    talk_to("python3", "webhook_bot.py").await;
}

#[actix_rt::test]
async fn the_javascript_example_answers_through_a_real_node() {
    talk_to("node", "webhook_bot.js").await;
}

/// A webhook target in the test: refuses the first `failing` requests,
/// checks every signature, records what it takes and answers with a reply.
#[derive(Clone, Default)]
struct Target {
    failing: Arc<AtomicUsize>,
    taken: Arc<Mutex<Vec<(u64, String)>>>,
    forged: Arc<AtomicUsize>,
}

impl Target {
    async fn serve(self) -> (String, tokio::task::JoinHandle<()>) {
        use axum::{http::HeaderMap, routing::post, Router};
        let target = self.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap, body: String| {
                let target = target.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let expected = format!(
                        "sha256={}",
                        murmur_rest::webhook::sign(
                            SECRET.as_bytes(),
                            &header("x-murmur-timestamp"),
                            &body
                        )
                    );
                    if header("x-murmur-signature") != expected {
                        target.forged.fetch_add(1, Ordering::SeqCst);
                        return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                    }
                    if target
                        .failing
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                    }
                    let message: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let seq: u64 = header("x-murmur-delivery").parse().unwrap();
                    assert_eq!(message["seq"], seq);
                    let text = message["text"].as_str().unwrap().to_owned();
                    target.taken.lock().unwrap().push((seq, text.clone()));
                    (
                        axum::http::StatusCode::OK,
                        serde_json::json!({"reply": format!("got {text}")}).to_string(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (url, task)
    }

    fn taken(&self) -> Vec<(u64, String)> {
        self.taken.lock().unwrap().clone()
    }
}

#[actix_rt::test]
async fn a_failing_webhook_is_tried_again_and_a_restarted_node_resumes_where_its_bot_stopped() {
    let target = Target::default();
    target.failing.store(2, Ordering::SeqCst);
    let (url, _server) = target.clone().serve().await;
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    // A store node both reach: it keeps what comes while the bot is away.
    let store = crate::support::start_node(dirs[2].path()).await;
    let person = crate::support::chat_node(dirs[0].path(), Some(&store)).await;
    let bot_key = Keypair::generate_secp256k1();
    let bot = bot_node(dirs[1].path(), &bot_key, &url, Some(&store)).await;
    let webhook = murmur_rest::webhook::start(&bot).await.unwrap().unwrap();
    let bot_id = befriend(&person, &bot).await;
    meshed_for(&person, bot_id).await;
    let mut inbox = person.inbox().await.unwrap();

    // Refused twice, taken the third time: once, with its reply.
    person.conversation(bot_id).send_text("one").await.unwrap();
    assert_eq!(reply_from(&mut inbox, bot_id).await, "got one");
    assert_eq!(target.taken().len(), 1);
    assert_eq!(target.forged.load(Ordering::SeqCst), 0);

    // The bot's node stops; a message waits for it at the person's store.
    drop(webhook);
    bot.close().await.unwrap();
    drop(bot);
    send_while_away(&person, bot_id, &store, 1).await;

    // Started again on its folder: the waiting message reaches the bot,
    // once, and the one it took before does not come again.
    let bot = bot_node(dirs[1].path(), &bot_key, &url, Some(&store)).await;
    let _webhook = murmur_rest::webhook::start(&bot).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while target.taken().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the waiting message never came: {:?}",
            target.taken()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = bot.sync_now().await;
    }
    assert_eq!(reply_from(&mut inbox, bot_id).await, "got while away 0");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let taken = target.taken();
    let texts: Vec<&str> = taken.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["one", "while away 0"], "each once, in order");
    assert!(
        taken[1].0 > taken[0].0,
        "sequences go on across the restart"
    );
}
