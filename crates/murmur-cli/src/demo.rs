//! Three nodes in one process on loopback, in a line: alice - bob - carol.
//! Carol reaches alice only through bob's relay. Then alice and bob chat end
//! to end encrypted while carol, relaying, records what an observer sees.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use libp2p::identity::Keypair;
use murmur_core::{store::Query, ContentTopic, MessageHash};
use murmur_moderation::Moderation;
use murmur_node::{Builder, Config, Node, Subscription};

use crate::error::CliError;

const TOPIC: &str = "/murmur/1/demo/proto";
const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many times to play the conversation.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Where the nodes keep their data (default: a temporary folder, removed at exit).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

struct Member {
    name: &'static str,
    node: Node,
    inbox: Subscription,
}

#[allow(clippy::print_stdout)]
pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let temp = tempfile::tempdir()?;
    let root = args.data_dir.unwrap_or_else(|| temp.path().to_path_buf());
    let topic: ContentTopic = TOPIC.parse().map_err(murmur_node::Error::from)?;

    println!("murmur demo: three nodes on loopback, alice - bob - carol");
    println!("carol is connected to bob only, so her messages reach alice through bob's relay\n");
    let mut members: Vec<Member> = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let mut config = Config::new(root.join(name));
        config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
        config
            .plugins
            .insert("moderation".to_owned(), moderation_settings());
        if let Some(previous) = members.last() {
            let addr = previous.node.listen_addrs()[0]
                .parse()
                .expect("the transport reports valid addresses");
            config.network.peers = vec![addr];
        }
        let node = Builder::new(config)
            .with_keypair(Keypair::generate_secp256k1())
            .with_plugin::<Moderation>()
            .start()
            .await?;
        println!("{name:<6} listening on {}", node.listen_addrs()[0]);
        let inbox = node.subscribe([&topic]).await?;
        members.push(Member { name, node, inbox });
    }

    let pubsub = members[0].node.pubsub_topic(&topic);
    println!("\ncontent topic {topic} travels on {pubsub}; waiting for the relay mesh...");
    for (member, needed) in members.iter().zip([1, 2, 1]) {
        member.node.wait_for_peers(&pubsub, needed, WAIT).await?;
    }
    println!("mesh ready\n");

    let script = [
        (0, "hi bob, hi carol"),
        (1, "hello alice, hello carol"),
        (2, "hey both, this went through bob"),
    ];
    let mut sent: BTreeMap<MessageHash, (usize, String)> = BTreeMap::new();
    for round in 0..args.rounds {
        for (from, text) in script {
            let text = if args.rounds > 1 {
                format!("{text} (round {})", round + 1)
            } else {
                text.to_owned()
            };
            let hash = members[from]
                .node
                .send(&topic, text.clone().into_bytes())
                .await?
                .hash();
            println!(
                "{:<6} sent      {}  \"{text}\"",
                members[from].name,
                short(&hash)
            );
            sent.insert(hash, (from, text));
        }
    }
    println!();

    let mut deliveries = 0;
    for (index, member) in members.iter_mut().enumerate() {
        let expected = sent.values().filter(|(from, _)| *from != index).count();
        for _ in 0..expected {
            let Some(delivery) = member.inbox.recv_timeout(WAIT).await else {
                return Err(CliError::Failed(format!(
                    "{} is missing messages after {WAIT:?}",
                    member.name
                )));
            };
            let Some((from, text)) = sent.get(&delivery.hash) else {
                return Err(CliError::Failed(format!(
                    "{} received {} that nobody sent",
                    member.name, delivery.hash
                )));
            };
            if delivery.message.payload.as_ref() != text.as_bytes() {
                return Err(CliError::Failed(format!(
                    "{} received {} with a different payload",
                    member.name, delivery.hash
                )));
            }
            println!(
                "{:<6} received  {}  from {:<6} \"{text}\"",
                member.name,
                short(&delivery.hash),
                members_name(*from)
            );
            deliveries += 1;
        }
    }
    println!(
        "\n{} messages, {deliveries} deliveries, every one intact and with the hash its sender computed",
        sent.len()
    );

    // Every node archived what it relayed (SQLite, in the data folder): ask
    // bob's store for the conversation, as a node back from offline would.
    let bob = members[1].node.listen_addrs()[0].clone();
    let query = Query::content(Some(pubsub), vec![topic.to_string()]);
    let page = members[2].node.query_store(&bob, query).await?;
    let history: Vec<MessageHash> = page.messages.iter().map(|m| m.hash).collect();
    println!(
        "carol asked bob's store for the history: {} messages, oldest first",
        history.len()
    );
    for hash in &history {
        if let Some((from, text)) = sent.get(hash) {
            println!("  {}  {:<6} \"{text}\"", short(hash), members_name(*from));
        }
    }
    if history.len() != sent.len() || !history.iter().all(|h| sent.contains_key(h)) {
        return Err(CliError::Failed(
            "bob's store does not hold the whole conversation".to_owned(),
        ));
    }
    private_chat(&members, &root).await
}

/// Alice and Bob (on his phone, the node "bob", and a laptop he pairs), end
/// to end encrypted; Carol relays and watches the wire.
#[allow(clippy::print_stdout)]
async fn private_chat(members: &[Member], root: &std::path::Path) -> Result<(), CliError> {
    let (alice, bob, carol) = (&members[0].node, &members[1].node, &members[2].node);
    println!("\nend-to-end encrypted: alice and bob chat, bob on two devices; carol relays and records the wire");
    let mut wire = carol.subscribe_all().await?;
    let (alice_id, alice_device) = alice.chat_identity().await?;
    let (bob_id, bob_device) = bob.chat_identity().await?;

    // Bob's laptop: a fourth node, beside his phone, joins his account.
    let mut config = Config::new(root.join("bob-laptop"));
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
    config.network.peers = vec![bob.listen_addrs()[0]
        .parse()
        .expect("the transport reports valid addresses")];
    let laptop = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await?;
    let (throwaway, _) = laptop.chat_identity().await?;
    for node in [alice, bob, &laptop] {
        for id in [alice_id, bob_id, throwaway] {
            let topic = murmur_node::crypto::partition_topic(partition(id));
            node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
                .await?;
        }
    }
    let pairing = bob.pairing_code().await?;
    laptop.pair(&pairing).await?;
    until("the laptop did not join bob's account", || async {
        Ok(laptop.chat_identity().await?.0 == bob_id)
    })
    .await?;
    let (_, laptop_device) = laptop.chat_identity().await?;
    println!(
        "bob paired his laptop with a one-time code: device {}… joins account {}…",
        &laptop_device.to_string()[..8],
        &bob_id.to_string()[..8]
    );

    let code = bob.contact_code().await?;
    println!(
        "bob's contact code ({} characters): {}…",
        code.len(),
        &code[..40]
    );
    alice.add_contact(&code).await?;
    let mut inboxes = [
        alice.inbox().await?,
        bob.inbox().await?,
        laptop.inbox().await?,
    ];

    // Who reads each line: alice (0), bob's phone (1), bob's laptop (2).
    let script: [(usize, &str, &[usize]); 3] = [
        (0, "meet at noon?", &[1]),
        (1, "noon works. the usual place", &[0, 2]),
        (0, "see you there", &[1, 2]),
    ];
    let names = ["alice", "bob (phone)", "bob (laptop)"];
    for (from, text, readers) in script {
        let (node, to) = if from == 0 {
            (alice, bob_id)
        } else {
            (bob, alice_id)
        };
        let mut sent = node.conversation(to).send_text(text).await?;
        let mut read_by = Vec::new();
        for &reader in readers {
            let got = inboxes[reader].recv_timeout(WAIT).await.ok_or_else(|| {
                CliError::Failed(format!("\"{text}\" did not reach {}", names[reader]))
            })?;
            if got.text() != Some(text) || got.id != sent.id {
                return Err(CliError::Failed(format!("\"{text}\" arrived altered")));
            }
            if got.request {
                // Bob never added alice: her first message is a message
                // request. Until he accepts, she gets no receipt and learns
                // nothing of his devices.
                println!(
                    "             (a message request: {} accepts alice)",
                    names[reader]
                );
                bob.accept(got.sender).await?;
            }
            read_by.push(names[reader]);
        }
        let state = sent.acknowledged(WAIT).await;
        println!(
            "{:<12} \"{text}\"  read by {}; {state:?}",
            names[from],
            read_by.join(" and "),
        );
        if from == 0 && readers.len() == 1 {
            // Bob's phone answered alice, once accepted, with his device
            // list: from now on she writes to the laptop too.
            until("alice never learned bob's laptop", || async {
                Ok(alice.devices(bob_id).await?.contains(&laptop_device))
            })
            .await?;
            println!("             (bob's phone told alice about his laptop, inside the session)");
        }
    }

    // What carol saw: envelopes on partition topics, nothing more.
    let identity_key = |code: &str| -> Result<Vec<u8>, CliError> {
        Ok(murmur_node::crypto::parse_code(code)
            .map_err(murmur_node::Error::from)?
            .certificate
            .identity_key
            .0
            .to_vec())
    };
    let secrets: Vec<Vec<u8>> = vec![
        alice_id.0.to_vec(),
        bob_id.0.to_vec(),
        alice_device.0.to_vec(),
        bob_device.0.to_vec(),
        laptop_device.0.to_vec(),
        identity_key(&alice.contact_code().await?)?,
        identity_key(&code)?,
        b"noon".to_vec(),
        b"see you".to_vec(),
    ];
    let mut seen = 0;
    println!("\ncarol's view of the same exchange (messages and receipts):");
    while let Some(d) = wire.recv_timeout(Duration::from_millis(500)).await {
        if !d.message.content_topic.starts_with("/murmur/1/dm-") {
            continue;
        }
        seen += 1;
        let payload = d.message.payload.as_ref();
        if secrets
            .iter()
            .any(|s| payload.windows(s.len()).any(|w| w == s))
        {
            return Err(CliError::Failed(
                "an identity or plaintext is visible on the wire".to_owned(),
            ));
        }
        println!(
            "  {}  {:<22} {:>5} bytes  sender: unknown",
            short(&d.hash),
            d.message.content_topic,
            payload.len()
        );
    }
    println!(
        "{seen} envelopes: padded sizes, a partition topic each; no account, device, identity key or text in any of them"
    );
    if seen < 6 {
        return Err(CliError::Failed(format!(
            "carol saw {seen} envelopes; 3 messages and 3 receipts were sent"
        )));
    }
    private_group(members, &laptop, inboxes).await
}

/// Alice's group with Bob (both his devices) and Carol; then Alice removes
/// Carol, and Carol's node, still relaying the group's topic, cannot read
/// what follows.
#[allow(clippy::print_stdout)]
async fn private_group(
    members: &[Member],
    laptop: &Node,
    mut inboxes: [murmur_node::chat::Inbox; 3],
) -> Result<(), CliError> {
    let (alice, bob, carol) = (&members[0].node, &members[1].node, &members[2].node);
    println!(
        "
private group: alice creates \"weekend\" with bob and carol (bob and carol have never met)"
    );
    // Alice and carol exchange contact codes: each accepts the other, so
    // carol joins the group alice adds her to (a stranger's invite would
    // wait as a message request).
    let carol_id = alice.add_contact(&carol.contact_code().await?).await?;
    carol.add_contact(&alice.contact_code().await?).await?;
    let (bob_id, _) = bob.chat_identity().await?;
    let mut carol_inbox = carol.inbox().await?;
    let group = alice.create_group("weekend").await?;
    group.add(bob_id).await?;
    group.add(carol_id).await?;
    let topic = murmur_node::groups::group_topic(group.id());
    for node in [alice, bob, carol, laptop] {
        node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
            .await?;
        until("a member never learned the group", || async {
            Ok(node
                .group(group.id())
                .info()
                .await
                .is_ok_and(|i| i.members.len() == 3))
        })
        .await?;
    }
    println!("group {}…: 3 members, its name and members only inside pairwise sessions; messages on {topic}", &group.id().to_string()[..8]);
    let expect = |got: Option<murmur_node::chat::ChatMessage>, text: &str, who: &str| match got {
        Some(m) if m.text() == Some(text) && m.group == Some(group.id()) => Ok(()),
        _ => Err(CliError::Failed(format!("\"{text}\" did not reach {who}"))),
    };
    let text = "who is in for saturday?";
    group.send_text(text).await?;
    expect(inboxes[1].recv_timeout(WAIT).await, text, "bob's phone")?;
    expect(inboxes[2].recv_timeout(WAIT).await, text, "bob's laptop")?;
    expect(carol_inbox.recv_timeout(WAIT).await, text, "carol")?;
    println!("alice        \"{text}\"  one message on the wire, read by bob (phone), bob (laptop) and carol");
    let text = "count me in";
    carol.group(group.id()).send_text(text).await?;
    expect(inboxes[0].recv_timeout(WAIT).await, text, "alice")?;
    expect(inboxes[1].recv_timeout(WAIT).await, text, "bob's phone")?;
    println!("carol        \"{text}\"  read by alice and bob");

    group.remove(carol_id).await?;
    println!("alice removes carol: every remaining device starts a new sending chain that carol never gets");
    let refused = carol.stats().await?.group_refused;
    let text = "plan b: just the two of us";
    group.send_text(text).await?;
    expect(inboxes[1].recv_timeout(WAIT).await, text, "bob's phone")?;
    // Carol's node gets it and cannot open it: wait for that refusal, then
    // her inbox must be empty.
    until("the message never reached carol's node", || async {
        Ok(carol.stats().await?.group_refused != refused)
    })
    .await?;
    if carol_inbox.recv_timeout(Duration::ZERO).await.is_some() {
        return Err(CliError::Failed(
            "carol read a message sent after her removal".to_owned(),
        ));
    }
    println!(
        "alice        \"{text}\"  read by bob; carol's node received it and could not open it"
    );
    community(members).await
}

/// `[plugins.moderation]` of every demo node: more than five messages from
/// one sender in one conversation within ten seconds is a flood.
fn moderation_settings() -> figment::value::Value {
    let mut flood = figment::value::Dict::new();
    flood.insert("messages".into(), 5u32.into());
    flood.insert("seconds".into(), 10u64.into());
    let mut settings = figment::value::Dict::new();
    settings.insert("flood".into(), flood.into());
    settings.into()
}

/// Carol's community: she owns it, Alice moderates, Bob asks to join with a
/// link and Carol approves; every node runs the moderation plugin.
#[allow(clippy::print_stdout)]
async fn community(members: &[Member]) -> Result<(), CliError> {
    use murmur_node::chat::{ChatMessage, JoinMode, Notice, Role};

    let (alice, bob, carol) = (&members[0].node, &members[1].node, &members[2].node);
    println!("\ncommunity: carol owns \"town square\" (#general, join by approval); alice moderates; every node runs the moderation plugin");
    let alice_id = carol.add_contact(&alice.contact_code().await?).await?;
    let square = carol
        .create_community("town square", &["general"], JoinMode::Approval)
        .await?;
    square.add(alice_id).await?;
    square.set_role(alice_id, Role::Moderator).await?;
    let mut carol_notices = carol.notices().await?;
    bob.join(&square.link().await?).await?;
    let bob_id = bob.chat_identity().await?.0;
    let asked = next_notice(&mut carol_notices, |n| {
        matches!(n, Notice::Requested { .. })
    })
    .await?;
    if asked
        != (Notice::Requested {
            group: square.id(),
            account: bob_id,
        })
    {
        return Err(CliError::Failed(
            "bob's request did not reach carol".to_owned(),
        ));
    }
    square.approve(bob_id).await?;
    println!("bob asks to join with carol's link; carol's device gets the request and approves it");
    let topic = murmur_node::groups::group_topic(square.id());
    for node in [alice, bob, carol] {
        node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
            .await?;
        until("the community never formed", || async {
            Ok(node
                .group(square.id())
                .info()
                .await
                .is_ok_and(|i| i.members.len() == 3 && i.role(&alice_id) == Some(Role::Moderator)))
        })
        .await?;
    }
    let mut alice_inbox = alice.inbox().await?;
    let mut bob_inbox = bob.inbox().await?;
    let mut bob_notices = bob.notices().await?;
    let in_square = |m: &ChatMessage| m.group == Some(square.id());
    let general = |node: &Node| node.group(square.id()).channel("general");

    // A message a moderator deletes, through the community's log.
    let oops = general(carol).send_text("the door code is 4711").await?;
    let got = next_in(&mut bob_inbox, &in_square).await?;
    if got.id != oops.id || got.channel.as_deref() != Some("general") {
        return Err(CliError::Failed(
            "bob did not read carol's message in #general".to_owned(),
        ));
    }
    alice.group(square.id()).delete(oops.id).await?;
    let deleted = next_notice(&mut bob_notices, |n| matches!(n, Notice::Deleted { .. })).await?;
    if deleted
        != (Notice::Deleted {
            group: square.id(),
            message: oops.id,
        })
    {
        return Err(CliError::Failed(
            "the deletion did not reach bob".to_owned(),
        ));
    }
    println!("carol        \"the door code is 4711\" in #general; alice, a moderator, deletes it: every member's node is told, and refuses any later copy");

    // A flood. Once alice's node opened all eight, her plugin has judged
    // each, and what it let through is in her inbox.
    let opened = alice.stats().await?.group_opened;
    for i in 0..8 {
        general(bob)
            .send_text(format!("FREE TOKENS, click now ({i})"))
            .await?;
    }
    until("the flood never reached alice", || async {
        Ok(alice.stats().await?.group_opened >= opened + 8)
    })
    .await?;
    let mut through = 0;
    while let Some(m) = alice_inbox.recv_timeout(Duration::ZERO).await {
        if in_square(&m) && m.sender == bob_id {
            through += 1;
        }
    }
    if through != 5 {
        return Err(CliError::Failed(format!(
            "alice's plugin let {through} flood messages through, not 5"
        )));
    }
    println!("bob floods #general with 8 messages: alice's moderation plugin lets 5 through, drops 3 and mutes bob on her node");
    Ok(())
}

async fn next_notice(
    notices: &mut murmur_node::chat::Notices,
    wanted: impl Fn(&murmur_node::chat::Notice) -> bool,
) -> Result<murmur_node::chat::Notice, CliError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match notices.recv_timeout(left).await {
            Some(n) if wanted(&n) => return Ok(n),
            Some(_) => {}
            None => {
                return Err(CliError::Failed(
                    "a community notice did not arrive".to_owned(),
                ))
            }
        }
    }
}

async fn next_in(
    inbox: &mut murmur_node::chat::Inbox,
    wanted: &dyn Fn(&murmur_node::chat::ChatMessage) -> bool,
) -> Result<murmur_node::chat::ChatMessage, CliError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match inbox.recv_timeout(left).await {
            Some(m) if wanted(&m) => return Ok(m),
            Some(_) => {}
            None => {
                return Err(CliError::Failed(
                    "a community message did not arrive".to_owned(),
                ))
            }
        }
    }
}

/// Polls `check` until it holds, at most [`WAIT`], failing with `what`:
/// for state that has no event to wait on (a count, a member list).
async fn until<F, Fut>(what: &str, mut check: F) -> Result<(), CliError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, CliError>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await? {
        if tokio::time::Instant::now() > deadline {
            return Err(CliError::Failed(what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn partition(id: murmur_node::chat::AccountId) -> u32 {
    murmur_crypto::envelope::partition(
        &murmur_crypto::AccountId(id.0),
        murmur_node::Config::default().chat.partitions,
    )
}

fn members_name(index: usize) -> &'static str {
    ["alice", "bob", "carol"][index]
}

fn short(hash: &MessageHash) -> String {
    let s = hash.to_string();
    format!("{}…{}", &s[..10], &s[s.len() - 4..])
}
