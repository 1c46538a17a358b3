//! The REST API over real HTTP on a real node: nwaku's endpoints as nwaku
//! answers them, bad input refused with a reason, light-client filter and
//! lightpush, the token and CORS.

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use libp2p::identity::Keypair;
use murmur::{
    core::ContentTopic,
    node::{Builder, Config, Node},
};
use serde_json::{json, Value};

use crate::support::{addr, loopback_config, WAIT};

/// An HTTP client of one server.
struct Http {
    base: String,
    client: reqwest::Client,
    token: Option<String>,
}

/// What a server answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Http {
    fn new(server: &murmur_rest::Server) -> Self {
        Self {
            base: format!("http://{}", server.addr()),
            client: reqwest::Client::new(),
            token: None,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some((kind, bytes)) = body {
            request = request.header("content-type", kind).body(bytes);
        }
        let response = request.send().await.expect("the server answers");
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(reqwest::Method::GET, path, &[], None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, body).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        let bytes = serde_json::to_vec(&body).unwrap();
        self.call(method, path, &[], Some(("application/json", bytes)))
            .await
    }

    /// GETs `path` until its JSON array holds something.
    async fn until_some(&self, path: &str) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let answer = self.get(path).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.body);
            let items = answer.json().as_array().cloned().unwrap_or_default();
            if !items.is_empty() {
                return items;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing came on {path}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn topic() -> ContentTopic {
    "/rest/1/test/proto".parse().unwrap()
}

fn encoded(topic: &str) -> String {
    topic.replace('/', "%2F")
}

async fn rest_node(config: Config) -> (Node, murmur_rest::Server, Http) {
    let node = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .expect("node starts");
    let server = murmur_rest::serve(&node).await.expect("REST starts");
    let http = Http::new(&server);
    (node, server, http)
}

fn rest_config(dir: &std::path::Path) -> Config {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.rest.enabled = true;
    config.rest.port = 0;
    config.rest.admin = true;
    config
}

/// A relay node beside `service`, its only static peer.
async fn relay_peer(dir: &std::path::Path, service: &Node) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(service, false).parse().unwrap()];
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap()
}

#[actix_rt::test]
async fn nwaku_endpoints_answer_as_a_nwaku_node_does() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let (a, _server, http) = rest_node(rest_config(dirs[0].path())).await;
    let b = relay_peer(dirs[1].path(), &a).await;
    let shard = a.pubsub_topic(&topic());
    a.wait_for_peers(&shard, 1, WAIT).await.unwrap();
    b.wait_for_peers(&shard, 1, WAIT).await.unwrap();
    let mut at_b = b.subscribe([&topic()]).await.unwrap();

    // Health: nwaku's fifteen entries, in its order.
    let health = http.get("/health").await;
    assert_eq!(health.status, 200);
    let health = health.json();
    assert_eq!(health["nodeHealth"], "READY");
    let names: Vec<String> = health["protocolsHealth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.as_object()
                .unwrap()
                .keys()
                .find(|k| *k != "desc")
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(
        names,
        [
            "Relay",
            "Rln Relay",
            "Lightpush",
            "Legacy Lightpush",
            "Filter",
            "Store",
            "Legacy Store",
            "Peer Exchange",
            "Rendezvous",
            "Mix",
            "Lightpush Client",
            "Legacy Lightpush Client",
            "Store Client",
            "Legacy Store Client",
            "Filter Client"
        ]
    );
    assert_eq!(health["protocolsHealth"][0]["Relay"], "READY");
    assert_eq!(health["protocolsHealth"][1]["Rln Relay"], "NOT_MOUNTED");
    // b serves store: a has a store service peer.
    assert_eq!(health["protocolsHealth"][12]["Store Client"], "READY");

    let info = http.get("/debug/v1/info").await.json();
    assert_eq!(info["listenAddresses"][0], a.listen_addrs()[0].as_str());
    assert!(info["enrUri"].as_str().unwrap().starts_with("enr:"));
    assert_eq!(http.get("/info").await.json(), info);
    let version = http.get("/debug/v1/version").await;
    assert_eq!(version.headers["content-type"], "text/plain; charset=utf-8");
    assert!(version.body.starts_with("murmur-v"), "{}", version.body);

    // Relay, static sharding: what b publishes is kept for one read.
    let shard_path = format!("/relay/v1/messages/{}", encoded(shard.as_str()));
    let answer = http
        .post("/relay/v1/subscriptions", json!([shard.as_str()]))
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "OK"));
    b.send(&topic(), &b"from b"[..]).await.unwrap();
    let kept = http.until_some(&shard_path).await;
    assert_eq!(kept[0]["payload"], STANDARD.encode(b"from b"));
    assert_eq!(kept[0]["contentTopic"], topic().as_str());
    assert_eq!(kept[0]["proof"], "");
    assert!(kept[0]["timestamp"].as_i64().unwrap() > 0);
    assert_eq!(
        http.get(&shard_path).await.json(),
        json!([]),
        "a read takes them"
    );

    // Publishing: static, auto, lightpush; b receives each intact.
    let message = |text: &str| json!({"payload": STANDARD.encode(text), "contentTopic": topic().as_str(), "meta": STANDARD.encode([1u8, 2])});
    let answer = http.post(&shard_path, message("static")).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "OK"));
    let got = at_b.recv_timeout(WAIT).await.expect("b receives it");
    assert_eq!(got.message.payload, "static");
    assert_eq!(got.message.meta.as_deref(), Some(&[1u8, 2][..]));
    let answer = http.post("/relay/v1/auto/messages", message("auto")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        at_b.recv_timeout(WAIT).await.unwrap().message.payload,
        "auto"
    );
    let answer = http
        .post(
            "/lightpush/v3/message",
            json!({"message": message("pushed")}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json()["relayPeerCount"].as_u64().unwrap() >= 1);
    assert_eq!(
        at_b.recv_timeout(WAIT).await.unwrap().message.payload,
        "pushed"
    );

    // Relay, autosharding: a content topic's messages kept for one read.
    let answer = http
        .post("/relay/v1/auto/subscriptions", json!([topic().as_str()]))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    b.send(&topic(), &b"auto kept"[..]).await.unwrap();
    let auto_path = format!("/relay/v1/auto/messages/{}", encoded(topic().as_str()));
    let kept = http.until_some(&auto_path).await;
    assert_eq!(kept[0]["payload"], STANDARD.encode(b"auto kept"));

    // Store v3, from this node's own archive: hashes as 0x-hex, the data
    // when asked for, pages followed by their cursor.
    let query = format!(
        "/store/v3/messages?includeData=true&contentTopics={}&pageSize=2",
        encoded(topic().as_str())
    );
    let first = http.get(&query).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(first["statusCode"], 200);
    assert_eq!(first["statusDesc"], "OK");
    let messages = first["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let hash = messages[0]["messageHash"].as_str().unwrap();
    assert!(hash.starts_with("0x") && hash.len() == 66, "{hash}");
    assert_eq!(messages[0]["pubsubTopic"], shard.as_str());
    assert_eq!(
        messages[0]["message"]["payload"],
        STANDARD.encode(b"from b")
    );
    let cursor = first["paginationCursor"].as_str().expect("more pages");
    let mut payloads: Vec<String> = messages
        .iter()
        .map(|m| m["message"]["payload"].as_str().unwrap().to_owned())
        .collect();
    let mut next = Some(cursor.to_owned());
    while let Some(cursor) = next {
        let page = http.get(&format!("{query}&cursor={cursor}")).await.json();
        for m in page["messages"].as_array().unwrap() {
            payloads.push(m["message"]["payload"].as_str().unwrap().to_owned());
        }
        next = page["paginationCursor"].as_str().map(str::to_owned);
    }
    for text in ["from b", "static", "auto", "pushed", "auto kept"] {
        assert!(
            payloads.contains(&STANDARD.encode(text)),
            "{text} in {payloads:?}"
        );
    }
    // Hashes only by default; a lookup by hash; b's archive by peerAddr.
    let only = http
        .get(&format!("/store/v3/messages?hashes={hash}"))
        .await
        .json();
    assert_eq!(only["messages"][0]["messageHash"], hash);
    assert!(only["messages"][0].get("message").is_none());
    let b_addr = addr(&b, false);
    let remote = http
        .get(&format!(
            "/store/v3/messages?peerAddr={}&includeData=true&hashes={hash}",
            encoded(&b_addr)
        ))
        .await;
    assert_eq!(remote.status, 200, "{}", remote.body);
    assert_eq!(
        remote.json()["messages"][0]["message"]["payload"],
        STANDARD.encode(b"from b")
    );

    // Admin: b among the peers, with what it said of itself.
    let peers = http.get("/admin/v1/peers").await.json();
    let b_id = b.peer_id();
    let peer = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["multiaddr"].as_str().unwrap().ends_with(&b_id))
        .expect("b is listed");
    assert_eq!(peer["connected"], "Connected");
    assert!(peer["protocols"]
        .as_array()
        .unwrap()
        .contains(&json!("/vac/waku/relay/2.0.0")));

    let metrics = http.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("murmur_transport"),
        "{}",
        metrics.body
    );
}

/// Every path and method the OpenAPI document names is served: asked
/// with no body, none answers with the unknown-route reply or a 5xx.
#[actix_rt::test]
async fn every_documented_endpoint_is_served_and_none_fails_on_an_empty_request() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let (_relay, _server, relay_http) = rest_node(rest_config(dirs[0].path())).await;
    let mut light_config = rest_config(dirs[1].path());
    light_config.network.peers = vec![addr(&_relay, false).parse().unwrap()];
    light_config.network.light = true;
    let (_light, _light_server, light_http) = rest_node(light_config).await;
    let doc = relay_http.get("/openapi.json").await.json();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20);
    for (path, item) in paths {
        let concrete = path
            .replace("{pubsubTopic}", &encoded("/waku/2/rs/1/0"))
            .replace("{contentTopic}", &encoded(topic().as_str()))
            .replace("{requestId}", "r1")
            .replace("{account}", &"ab".repeat(32))
            .replace("{verb}", "accept")
            .replace("{id}", "00112233445566778899aabbccddeeff");
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = method.to_uppercase().parse::<reqwest::Method>() else {
                continue;
            };
            if method == reqwest::Method::from_bytes(b"PARAMETERS").unwrap() {
                continue;
            }
            // Filter lives on light clients, relay on relay nodes.
            let http = if path.starts_with("/filter") {
                &light_http
            } else {
                &relay_http
            };
            if path.ends_with("/stream") {
                // A stream does not end: its start is what is checked.
                let response = http
                    .client
                    .get(format!("{}{concrete}", http.base))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{path}");
                continue;
            }
            let answer = http.call(method.clone(), &concrete, &[], None).await;
            assert!(
                answer.status < 500,
                "{method} {path}: {} {}",
                answer.status,
                answer.body
            );
            assert!(
                !answer.body.contains("Invalid path or method"),
                "{method} {path} is documented but not served"
            );
        }
    }
}

#[actix_rt::test]
async fn bad_input_gets_a_4xx_with_a_reason_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _server, http) = rest_node(rest_config(dir.path())).await;
    let shard = node.pubsub_topic(&topic());
    let shard_path = format!("/relay/v1/messages/{}", encoded(shard.as_str()));
    let big = STANDARD.encode(vec![7u8; 200 * 1024]);
    let raw = |body: &str| Some(("application/json", body.as_bytes().to_vec()));
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    // Method, path, body (content type and bytes), status, what it says.
    type Case<'a> = (
        reqwest::Method,
        String,
        Option<(&'a str, Vec<u8>)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            post.clone(),
            shard_path.clone(),
            raw("{not json"),
            400,
            "could not decode",
        ),
        (
            post.clone(),
            shard_path.clone(),
            None,
            400,
            "Missing content body",
        ),
        (
            post.clone(),
            shard_path.clone(),
            Some(("application/xml", b"{}".to_vec())),
            400,
            "Wrong Content-Type",
        ),
        (
            post.clone(),
            shard_path.clone(),
            raw(r#"{"payload":"%%%","contentTopic":"/a/1/b/proto"}"#),
            400,
            "base64",
        ),
        (
            post.clone(),
            shard_path.clone(),
            raw(r#"{"payload":"aGk="}"#),
            400,
            "contentTopic",
        ),
        (
            post.clone(),
            shard_path.clone(),
            raw(&format!(
                r#"{{"payload":"{big}","contentTopic":"/a/1/b/proto"}}"#
            )),
            400,
            "Message size exceeded",
        ),
        (
            post.clone(),
            shard_path.clone(),
            Some(("application/json", vec![b' '; murmur_rest::MAX_BODY + 1])),
            413,
            "length limit",
        ),
        (
            post.clone(),
            format!("/relay/v1/messages/{}", encoded("/waku/2/rs/9/9")),
            raw(r#"{"payload":"aGk=","contentTopic":"/a/1/b/proto"}"#),
            400,
            "Node not subscribed to topic",
        ),
        (
            get.clone(),
            format!("/relay/v1/messages/{}", encoded("/waku/2/rs/9/9")),
            None,
            404,
            "",
        ),
        (
            post.clone(),
            "/relay/v1/subscriptions".to_owned(),
            raw(r#"["/waku/2/rs/1/0", "/my/named/topic"]"#),
            400,
            "Invalid pubsub topic(s): @[\"/my/named/topic\"]",
        ),
        (
            post.clone(),
            "/relay/v1/auto/subscriptions".to_owned(),
            raw(r#"["not-a-topic"]"#),
            400,
            "invalid content topic",
        ),
        (
            post.clone(),
            "/relay/v1/auto/messages".to_owned(),
            raw(r#"{"payload":"aGk=","contentTopic":"no-slashes"}"#),
            400,
            "Autosharding error",
        ),
        (
            post.clone(),
            "/lightpush/v3/message".to_owned(),
            raw(r#"{"message":{"payload":"aGk="}}"#),
            400,
            "Invalid push request",
        ),
        (
            post.clone(),
            "/lightpush/v3/message".to_owned(),
            raw(&format!(
                r#"{{"message":{{"payload":"{big}","contentTopic":"/a/1/b/proto"}}}}"#
            )),
            413,
            "Message size exceeded",
        ),
        (
            get.clone(),
            "/store/v3/messages?hashes=0x1234".to_owned(),
            None,
            400,
            "invalid message hash",
        ),
        (
            get.clone(),
            "/store/v3/messages?startTime=yesterday".to_owned(),
            None,
            400,
            "time parsing error",
        ),
        (
            get.clone(),
            "/store/v3/messages?includeData=perhaps".to_owned(),
            None,
            400,
            "includeData",
        ),
        (
            get.clone(),
            "/store/v3/messages?pageSize=-1".to_owned(),
            None,
            400,
            "pageSize",
        ),
        (
            get.clone(),
            "/store/v3/messages?peerAddr=/ip4/127.0.0.1/tcp/1".to_owned(),
            None,
            400,
            "Failed parsing remote peer info",
        ),
        (
            post.clone(),
            "/admin/v1/peers".to_owned(),
            raw(r#"["/ip4/127.0.0.1/tcp/1"]"#),
            400,
            "Couldn't parse remote peer info",
        ),
        (
            get.clone(),
            "/no/such/path".to_owned(),
            None,
            400,
            "Invalid path or method",
        ),
        (
            get.clone(),
            "/filter/v2/messages/x".to_owned(),
            None,
            404,
            "/filter endpoints are not available",
        ),
    ];
    for (method, path, body, status, reason) in cases {
        let answer = http.call(method.clone(), &path, &[], body).await;
        assert_eq!(
            answer.status, status,
            "{method} {path}: {} {}",
            answer.status, answer.body
        );
        assert!(
            answer.body.contains(reason),
            "{method} {path}: {:?} does not say {reason:?}",
            answer.body
        );
    }
    // Nothing that was refused reached the archive.
    let stored = http
        .get("/store/v3/messages?contentTopics=%2Fa%2F1%2Fb%2Fproto")
        .await;
    assert_eq!(stored.json()["messages"], json!([]));
    // No peer on the topic: lightpush refuses as nwaku does (505).
    let lonely = http
        .post(
            "/lightpush/v3/message",
            json!({"message": {"payload": "aGk=", "contentTopic": topic().as_str()}}),
        )
        .await;
    assert_eq!(lonely.status, 505, "{}", lonely.body);
    assert_eq!(
        lonely.json()["statusDesc"],
        "No peers for topic, skipping publish"
    );
}

#[actix_rt::test]
async fn a_light_client_filters_and_pushes_through_its_service_node() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let service = {
        let config = loopback_config(dirs[0].path(), &["/ip4/127.0.0.1/tcp/0"]);
        Builder::new(config)
            .with_keypair(Keypair::generate_secp256k1())
            .start()
            .await
            .unwrap()
    };
    let mut config = rest_config(dirs[1].path());
    config.network.peers = vec![addr(&service, false).parse().unwrap()];
    config.network.light = true;
    let (light, _server, http) = rest_node(config).await;
    let mut at_service = service.subscribe([&topic()]).await.unwrap();
    // What the mesh carries reaches filter subscribers.
    let mesh = relay_peer(dirs[2].path(), &service).await;
    mesh.wait_for_peers(&mesh.pubsub_topic(&topic()), 1, WAIT)
        .await
        .unwrap();

    let relay = http
        .get(&format!("/relay/v1/messages/{}", encoded("/waku/2/rs/1/0")))
        .await;
    assert_eq!(relay.status, 404);
    assert!(relay.body.contains("--relay"), "{}", relay.body);

    let subscribe = json!({"requestId": "r1", "contentFilters": [topic().as_str()]});
    let answer = http
        .post("/filter/v2/subscriptions", subscribe.clone())
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json(),
        json!({"requestId": "r1", "statusDesc": "OK"})
    );
    let ping = http.get("/filter/v2/subscriptions/r2").await;
    assert_eq!(ping.status, 200, "{}", ping.body);
    // A topic not subscribed: 400, as nwaku's handler answers.
    let other = http
        .get("/filter/v2/messages/%2Fother%2F1%2Fx%2Fproto")
        .await;
    assert_eq!(other.status, 400);
    assert!(other.body.contains("Not subscribed to topic"));

    let filter_path = format!("/filter/v2/messages/{}", encoded(topic().as_str()));
    // The filter subscription reaches the service a moment after the
    // answer (the service's side of it): send until one comes through.
    let deadline = tokio::time::Instant::now() + WAIT;
    let kept = loop {
        mesh.send(&topic(), &b"to the light client"[..])
            .await
            .unwrap();
        let answer = http.get(&filter_path).await;
        let items = answer.json().as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            break items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no filter push came"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(kept[0]["payload"], STANDARD.encode(b"to the light client"));
    assert!(
        kept[0].get("proof").is_none(),
        "filter messages carry no proof"
    );

    let pushed = http
        .post(
            "/lightpush/v3/message",
            json!({"message": {"payload": STANDARD.encode("from the light client"), "contentTopic": topic().as_str()}}),
        )
        .await;
    assert_eq!(pushed.status, 200, "{}", pushed.body);
    loop {
        let got = at_service
            .recv_timeout(WAIT)
            .await
            .expect("the service relays it");
        if got.message.payload == "from the light client" {
            break;
        }
    }

    // No peerAddr and no archive of its own: the service node answers.
    let history = http
        .get(&format!(
            "/store/v3/messages?includeData=true&contentTopics={}",
            encoded(topic().as_str())
        ))
        .await;
    assert_eq!(history.status, 200, "{}", history.body);
    assert!(!history.json()["messages"].as_array().unwrap().is_empty());
    drop(light);
}

#[actix_rt::test]
async fn a_token_and_allowed_origins_guard_every_endpoint_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rest_config(dir.path());
    config.rest.token = Some(murmur::node::config::Token::new("s3cret-token-of-16+"));
    config.rest.allow_origin = vec!["localhost:*".to_owned()];
    let (_node, _server, mut http) = rest_node(config).await;

    let refused = http.get("/debug/v1/info").await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.headers["www-authenticate"], "Bearer");
    assert_eq!(
        http.get("/health").await.status,
        200,
        "health needs no token"
    );
    http.token = Some("wrong-token-of-16-chars".to_owned());
    assert_eq!(http.get("/debug/v1/info").await.status, 401);
    http.token = Some("s3cret-token-of-16+".to_owned());
    assert_eq!(http.get("/debug/v1/info").await.status, 200);

    let from = |origin: &'static str| [("origin", origin)];
    let allowed = http
        .call(
            reqwest::Method::GET,
            "/debug/v1/info",
            &from("http://localhost:3000"),
            None,
        )
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(allowed.headers["vary"], "Origin");
    let foreign = http
        .call(
            reqwest::Method::GET,
            "/debug/v1/info",
            &from("http://evil.example"),
            None,
        )
        .await;
    assert_eq!(
        (foreign.status, foreign.body.as_str()),
        (403, "Origin not allowed")
    );
    // A preflight carries no token and is answered.
    http.token = None;
    let preflight = http
        .call(
            reqwest::Method::OPTIONS,
            "/relay/v1/auto/messages",
            &from("https://localhost:8080"),
            None,
        )
        .await;
    assert_eq!(preflight.status, 200);
    assert!(preflight.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Authorization"));
}
