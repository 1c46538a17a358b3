//! Public entry points flooded past their bounds wait for room and lose
//! nothing: 6,000 sends at once into one node (past the pipeline's mailbox
//! of 4,096, its background queue of 1,024, the transport's mailbox and
//! command channel of 1,024 each) are all published and all archived.

use futures::{stream::FuturesUnordered, StreamExt};
use murmur::core::{store::Query, ContentTopic};

use crate::support::{addr, peer_of, start_node, WAIT};

const FLOOD: usize = 6_000;

#[actix_rt::test]
async fn a_flood_of_sends_is_published_and_archived_whole() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node")).await;
    let peer = peer_of(&dir.path().join("peer"), &node, false).await;
    let topic: ContentTopic = "/murmur/1/flood/proto".parse().unwrap();
    let _at_peer = peer.subscribe([&topic]).await.unwrap();
    node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();

    let mut sends: FuturesUnordered<_> = (0..FLOOD)
        .map(|i| node.send(&topic, format!("flood {i}").into_bytes()))
        .collect();
    let mut published = 0;
    while let Some(sent) = sends.next().await {
        sent.expect("published, after waiting for room");
        published += 1;
    }
    assert_eq!(published, FLOOD);

    // The sender's own archive holds every one (it archives what it
    // publishes, whether beside its mailbox or in the caller's wait).
    let mut archived = 0;
    let mut query = Query::content(
        Some(node.pubsub_topic(&topic)),
        vec![topic.as_str().to_owned()],
    )
    .with_limit(100);
    loop {
        let page = peer
            .query_store(&addr(&node, false), query.clone())
            .await
            .unwrap();
        archived += page.messages.len();
        match page.cursor {
            Some(c) => query = query.with_cursor(Some(c)),
            None => break,
        }
    }
    assert_eq!(archived, FLOOD, "every published message is in the archive");
}
