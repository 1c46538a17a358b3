//! `murmur query`: reads history from any Waku store node (murmur, nwaku,
//! go-waku) and prints it as JSON lines, following pages.

use std::time::Duration;

use libp2p::{identity::Keypair, Multiaddr};
use murmur_core::{store::Query, ContentTopic, MessageHash, PubsubTopic, Sharding};
use murmur_transport::{Config, Network};

use crate::error::CliError;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The store node, ending in `/p2p/<peer id>`.
    #[arg(long, value_name = "MULTIADDR")]
    peer: Multiaddr,
    /// Content topic; repeat for several (at most 10).
    #[arg(long = "content-topic", value_name = "TOPIC")]
    content_topics: Vec<ContentTopic>,
    /// Pubsub topic (default: the content topics' autoshard).
    #[arg(long, value_name = "TOPIC")]
    pubsub_topic: Option<PubsubTopic>,
    /// From this time: Unix nanoseconds, or an age like 90s, 30m, 2h, 7d.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    since: Option<i64>,
    /// Until this time (exclusive), in the same forms.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    until: Option<i64>,
    /// Look up this message hash instead; repeat for several (at most 100).
    #[arg(long = "hash", value_name = "HASH")]
    hashes: Vec<MessageHash>,
    /// Messages per page (at most 100).
    #[arg(long, default_value_t = 20)]
    page_size: usize,
    /// Newest first.
    #[arg(long)]
    backward: bool,
    /// Only hashes, no messages.
    #[arg(long)]
    hashes_only: bool,
    /// The cluster the store node is on.
    #[arg(long, default_value_t = 1)]
    cluster: u16,
    /// How many shards the cluster autoshards over.
    #[arg(long, default_value_t = 8)]
    num_shards: u16,
}

fn parse_when(s: &str) -> Result<i64, String> {
    if let Ok(nanos) = s.parse::<i64>() {
        return Ok(nanos);
    }
    let (number, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is neither Unix nanoseconds nor an age like 30m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}`: the unit of an age is s, m, h or d")),
    };
    let age = i64::try_from(Duration::from_secs(secs).as_nanos()).unwrap_or(i64::MAX);
    Ok(murmur_core::now_nanos().saturating_sub(age))
}

#[allow(clippy::print_stdout)]
pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    if args.num_shards == 0 {
        return Err(CliError::Usage(
            "--num-shards must be at least 1".to_owned(),
        ));
    }
    let sharding = Sharding::auto(args.cluster, args.num_shards);
    let mut query = if args.hashes.is_empty() {
        if args.content_topics.is_empty() && args.pubsub_topic.is_some() {
            return Err(CliError::Usage(
                "a pubsub topic needs at least one --content-topic".to_owned(),
            ));
        }
        let pubsub = args.pubsub_topic.clone().or_else(|| {
            args.content_topics
                .first()
                .map(|t| sharding.pubsub_topic(t))
        });
        Query::content(
            pubsub,
            args.content_topics
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
        .with_time(args.since, args.until)
    } else {
        Query::hashes(args.hashes.clone())
    };
    query = query
        .with_forward(!args.backward)
        .with_limit(args.page_size);
    query.include_data = !args.hashes_only;
    query
        .check()
        .map_err(|reason| CliError::Usage(reason.to_owned()))?;

    let config = Config::new(Keypair::generate_secp256k1(), sharding)
        .with_listen(["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")]);
    let (node, _events) = Network::start(config)
        .await
        .map_err(|e| CliError::Node(e.into()))?;
    let peer = args.peer.to_string();
    let mut pages = 0;
    let mut messages = 0;
    let progress = crate::progress::Progress::new(format!("asking {peer}"));
    loop {
        let page = node
            .query_store(&peer, query.clone())
            .await
            .map_err(|e| CliError::Node(e.into()))?;
        pages += 1;
        messages += page.messages.len();
        progress.set(format!("{messages} messages in {pages} pages"));
        for stored in &page.messages {
            let line = match &stored.message {
                Some(m) => serde_json::json!({
                    "hash": stored.hash.to_string(),
                    "pubsub_topic": stored.pubsub_topic.as_ref().map(PubsubTopic::as_str),
                    "content_topic": m.content_topic,
                    "timestamp": m.timestamp,
                    "payload": hex::encode(&m.payload),
                    "meta": m.meta.as_ref().map(hex::encode),
                    "ephemeral": m.is_ephemeral(),
                }),
                None => serde_json::json!({ "hash": stored.hash.to_string() }),
            };
            println!("{line}");
        }
        match page.cursor {
            Some(cursor) => query = query.with_cursor(Some(cursor)),
            None => break,
        }
    }
    tracing::info!(pages, "done");
    Ok(())
}
