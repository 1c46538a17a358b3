//! murmur's own chat API over real HTTP: two people who only use REST
//! exchange contact codes, write 1:1 and in a group, follow delivery
//! state, and read their inbox by cursor and as a stream, at least once.

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::node::{Builder, Node};
use serde_json::{json, Value};

use crate::support::{addr, loopback_config, meshed_for, WAIT};

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, text) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn person(dir: &std::path::Path, peer: Option<&Node>) -> (Node, murmur_rest::Server, Http) {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    if let Some(peer) = peer {
        config.network.peers = vec![addr(peer, false).parse().unwrap()];
    }
    config.rest.enabled = true;
    config.rest.port = 0;
    let node = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap();
    let server = murmur_rest::serve(&node).await.unwrap();
    let http = Http {
        base: format!("http://{}", server.addr()),
        client: reqwest::Client::new(),
    };
    (node, server, http)
}

/// Long-polls `consumer` until a message with `text` comes; answers it.
async fn until_text(http: &Http, consumer: &str, text: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = http
            .get(&format!("/murmur/v1/inbox?consumer={consumer}&wait=2"))
            .await;
        if let Some(m) = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["text"] == text)
        {
            return m.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{text:?} never came: {page}"
        );
    }
}

#[actix_rt::test]
async fn two_people_chat_over_rest_alone() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let (alice, _a, a) = person(dirs[0].path(), None).await;
    let (bob, _b, b) = person(dirs[1].path(), Some(&alice)).await;

    let alice_me = a.get("/murmur/v1/account").await;
    let bob_me = b.get("/murmur/v1/account").await;
    let bob_id = bob_me["account"].as_str().unwrap().to_owned();
    let alice_id = alice_me["account"].as_str().unwrap().to_owned();
    assert!(bob_me["contactCode"]
        .as_str()
        .unwrap()
        .starts_with("murmur:"));
    let (status, added) = a
        .post(
            "/murmur/v1/contacts",
            json!({"code": bob_me["contactCode"]}),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["account"], bob_id.as_str());
    b.post(
        "/murmur/v1/contacts",
        json!({"code": alice_me["contactCode"]}),
    )
    .await;
    assert_eq!(
        a.get("/murmur/v1/contacts").await,
        json!([{"account": bob_id}])
    );
    meshed_for(&alice, bob.chat_identity().await.unwrap().0).await;

    // 1:1, under an id of the client's own, followed to acknowledged.
    let id = "00112233445566778899aabbccddeeff";
    let path = format!("/murmur/v1/chats/{bob_id}/messages");
    let (status, sent) = a.post(&path, json!({"text": "hi bob", "id": id})).await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["id"], id);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = a.get(&format!("/murmur/v1/messages/{id}")).await;
        if state["state"] == "acknowledged" {
            assert_eq!(state["devices"], 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never acknowledged: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = until_text(&b, "app", "hi bob").await;
    assert_eq!(got["sender"], alice_id.as_str());
    assert_eq!(got["id"], id);
    // Not acknowledged: it comes again; acknowledged by the cursor: never.
    let again = b.get("/murmur/v1/inbox?consumer=app").await;
    assert_eq!(again["messages"][0]["id"], id);
    let cursor = again["cursor"].as_u64().unwrap();
    // The same id sent again (a client retrying after a lost answer) is
    // kept once.
    a.post(&path, json!({"text": "hi bob", "id": id})).await;
    a.post(&path, json!({"text": "and again"})).await;
    until_text(&b, "app", "and again").await;
    let after = b
        .get(&format!("/murmur/v1/inbox?consumer=app&after={cursor}"))
        .await;
    let texts: Vec<&str> = after["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["and again"], "hi bob once, acknowledged");

    // A group: created, bob added, a message read from a stream.
    let (status, group) = a.post("/murmur/v1/groups", json!({"name": "team"})).await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (status, _) = a
        .post(
            &format!("/murmur/v1/groups/{group_id}/members"),
            json!({"account": bob_id}),
        )
        .await;
    assert_eq!(status, 200);
    let info = a.get(&format!("/murmur/v1/groups/{group_id}")).await;
    assert_eq!(info["members"].as_array().unwrap().len(), 2);
    let mut stream = b
        .client
        .get(format!("{}/murmur/v1/inbox/stream?consumer=sse", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // The members' chain keys reach bob a moment after the add: send until
    // the stream shows one.
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let mut sent = 0;
    while !seen.contains("hello team") {
        if sent < 5 {
            a.post(
                &format!("/murmur/v1/groups/{group_id}/messages"),
                json!({"text": "hello team"}),
            )
            .await;
            sent += 1;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !remaining.is_zero(),
            "the stream showed no group message: {seen}"
        );
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(2).min(remaining), stream.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let event = seen
        .split("\n\n")
        .find(|e| e.contains("hello team"))
        .unwrap();
    assert!(event.contains("event: message"), "{event}");
    let data: Value = serde_json::from_str(
        event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["group"], group_id.as_str());
    assert_eq!(data["sender"], alice_id.as_str());
    let groups = b.get("/murmur/v1/groups").await;
    assert!(groups
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["id"] == group_id.as_str() && g["name"] == "team"));
}

#[actix_rt::test]
async fn bad_chat_requests_get_a_4xx_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, _server, http) = person(dir.path(), None).await;
    let someone = "ab".repeat(32);
    for (method, path, body, status, reason) in [
        (
            "POST",
            "/murmur/v1/chats/nothex/messages".to_owned(),
            Some(json!({"text": "hi"})),
            400,
            "not an account",
        ),
        (
            "POST",
            format!("/murmur/v1/chats/{someone}/messages"),
            Some(json!({"text": "hi", "kind": "x", "data": "AA=="})),
            400,
            "give a non-empty",
        ),
        (
            "POST",
            format!("/murmur/v1/chats/{someone}/messages"),
            Some(json!({"text": ""})),
            400,
            "give a non-empty",
        ),
        (
            "POST",
            format!("/murmur/v1/chats/{someone}/messages"),
            Some(json!({"text": "hi", "id": "short"})),
            400,
            "16 bytes",
        ),
        (
            "POST",
            format!("/murmur/v1/chats/{someone}/messages"),
            Some(json!({"txet": "hi"})),
            400,
            "unknown field",
        ),
        (
            "POST",
            "/murmur/v1/contacts".to_owned(),
            Some(json!({"code": "garbage"})),
            400,
            "contact code",
        ),
        (
            "POST",
            format!("/murmur/v1/requests/{someone}/ignore"),
            None,
            400,
            "accept, decline or block",
        ),
        (
            "GET",
            "/murmur/v1/messages/00112233445566778899aabbccddeeff".to_owned(),
            None,
            404,
            "no send of this id",
        ),
        (
            "GET",
            "/murmur/v1/inbox?consumer=bad%20name".to_owned(),
            None,
            400,
            "consumer",
        ),
        (
            "GET",
            "/murmur/v1/inbox?after=minus".to_owned(),
            None,
            400,
            "after",
        ),
        (
            "POST",
            "/murmur/v1/groups".to_owned(),
            Some(json!({"name": " "})),
            400,
            "needs a name",
        ),
        (
            "POST",
            "/murmur/v1/communities".to_owned(),
            Some(json!({"name": "c", "joinMode": "anyone"})),
            400,
            "invite, open or approval",
        ),
        (
            "GET",
            "/murmur/v1/groups/zz".to_owned(),
            None,
            400,
            "not a group id",
        ),
    ] {
        let (got, text) = http.call(method.parse().unwrap(), &path, body).await;
        assert_eq!(got, status, "{method} {path}: {text}");
        assert!(
            text.contains(reason),
            "{method} {path}: {text:?} does not say {reason:?}"
        );
    }
}
