//! README's "Run a node": `murmur node --rest` in a child process, a
//! message published with the REST API and read back from the store, as
//! the curl commands there do.

mod support;

use support::spawn;

async fn get_json(client: &reqwest::Client, url: String) -> serde_json::Value {
    let body = client.get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn a_message_published_over_rest_is_read_back_from_the_store() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let (_a, printed, mut output) = spawn(
        dirs[0].path(),
        &["--rest", "--rest-port", "0", "--status-interval", "1"],
        true,
    );
    let address = printed[0]
        .strip_prefix("listening on ")
        .expect("the first line is a listen address")
        .to_owned();
    let base = printed
        .last()
        .and_then(|l| l.strip_prefix("rest "))
        .expect("the node prints where the REST API is")
        .to_owned();
    let (_b, _, _) = spawn(dirs[1].path(), &["--peer", &address], false);

    // curl $REST/health, until Relay says READY: a peer is there.
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let health = get_json(&client, format!("{base}/health")).await;
        assert_eq!(health["nodeHealth"], "READY");
        if health["protocolsHealth"][0]["Relay"] == "READY" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no peer: {health}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // curl -X POST $REST/relay/v1/auto/messages -H 'content-type: application/json' \
    //   -d '{"payload":"aGVsbG8gd2FrdQ==","contentTopic":"/my-app/1/chat/proto"}'
    let published = client
        .post(format!("{base}/relay/v1/auto/messages"))
        .header("content-type", "application/json")
        .body(r#"{"payload":"aGVsbG8gd2FrdQ==","contentTopic":"/my-app/1/chat/proto"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    assert_eq!(published.text().await.unwrap(), "OK");

    // curl "$REST/store/v3/messages?includeData=true&contentTopics=%2Fmy-app%2F1%2Fchat%2Fproto"
    // The node archives what it publishes as the outbox hands it to the
    // network, a moment after the answer: ask until it is there.
    loop {
        let page = get_json(
            &client,
            format!("{base}/store/v3/messages?includeData=true&contentTopics=%2Fmy-app%2F1%2Fchat%2Fproto"),
        )
        .await;
        if let Some(message) = page["messages"].get(0) {
            assert_eq!(message["message"]["payload"], "aGVsbG8gd2FrdQ==");
            assert!(message["messageHash"].as_str().unwrap().starts_with("0x"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never archived: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The node tells how it is going, once a second here: the peer, the
    // message it published, the archive.
    let status = output
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("status: ") && l.contains(" out"))
        .expect("a status line");
    assert!(status.contains("1 peers"), "{status}");
    assert!(status.contains("archive"), "{status}");
}
