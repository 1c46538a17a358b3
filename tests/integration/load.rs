//! A service node holds load: fifty js-waku light clients
//! (tests/interop/load.mjs) page through its store, push through lightpush
//! and subscribe with filter all at once, and every request is answered.
//! Before inbound streams had queues of their own, a second stream that
//! arrived before the server's task ran was reset, and most of these
//! requests failed with "stream reset".

use std::{collections::BTreeSet, process::Stdio, time::Duration};

use murmur::core::{store::Query, ContentTopic};
use serde_json::Value;
use tokio::process::Command;

use crate::{
    jswaku::hash_hex,
    support::{addr, interop_dir, peer_of, start_node, WAIT},
};

const CLIENTS: usize = 50;
const STORED: usize = 20;
/// Starting fifty libp2p nodes in one Node.js process and running their
/// requests takes a while on two cores.
const LOAD_WAIT: Duration = Duration::from_secs(240);

fn topic(name: &str) -> ContentTopic {
    format!("/murmur/1/{name}/proto").parse().unwrap()
}

#[actix_rt::test]
async fn fifty_js_waku_light_clients_at_once_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_node(&dir.path().join("service")).await;
    // Lightpush needs somebody to relay to.
    let relay = peer_of(&dir.path().join("relay"), &service, false).await;
    let (stored, pushed, filtered) = (topic("load"), topic("load-push"), topic("load-filter"));
    let mut at_relay = relay.subscribe([&pushed]).await.unwrap();
    service
        .wait_for_peers(&service.pubsub_topic(&pushed), 1, WAIT)
        .await
        .unwrap();
    for i in 0..STORED {
        service
            .send(&stored, format!("stored {i}").into_bytes())
            .await
            .unwrap();
    }
    let archived = relay
        .query_store(
            &addr(&service, false),
            Query::content(
                Some(service.pubsub_topic(&stored)),
                vec![stored.as_str().to_owned()],
            )
            .with_limit(100),
        )
        .await
        .unwrap();
    assert_eq!(archived.messages.len(), STORED);

    let run = Command::new("node")
        .arg("load.mjs")
        .args(["--addr", &addr(&service, true)])
        .args(["--clients", &CLIENTS.to_string()])
        .args(["--store-topic", stored.as_str()])
        .args(["--push-topic", pushed.as_str()])
        .args(["--filter-topic", filtered.as_str()])
        .current_dir(interop_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(LOAD_WAIT, run)
        .await
        .expect("the clients finish in time")
        .expect("node (Node.js) runs");
    assert!(
        output.status.success(),
        "load.mjs failed: {:?}",
        output.status
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{stdout}: {e}"));

    assert_eq!(report["ready"], CLIENTS, "{report}");
    for what in ["store", "lightpush", "filter"] {
        assert_eq!(report[what]["ok"], CLIENTS, "{what}: {report}");
        assert_eq!(report[what]["failed"], 0, "{what}: {report}");
    }
    let counts = report["store"]["counts"].as_array().unwrap();
    assert!(
        counts.iter().all(|n| *n == STORED),
        "every client read every stored message: {counts:?}"
    );

    // Every pushed message reached the mesh.
    let mut expected: BTreeSet<String> = report["lightpush"]["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), CLIENTS);
    while !expected.is_empty() {
        let got = at_relay
            .recv_timeout(WAIT)
            .await
            .unwrap_or_else(|| panic!("{} pushed messages never relayed", expected.len()));
        expected.remove(&hash_hex(&got.hash));
    }
}
