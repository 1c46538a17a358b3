//! Writes the seed corpus of every fuzz target: one valid encoding of each
//! format. Run it after a format changes: `cargo run -p murmur-fuzz
//! --example write_seeds`.

use std::{fs, path::PathBuf};

use murmur_crypto::{envelope, x3dh, Account, Installation, Limits, PrekeyPolicy};
use murmur_proto::{metadata::Metadata, store, WakuMessage};
use prost::Message as _;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn main() {
    let now = 1_700_000_000;
    let message = WakuMessage::new("/murmur/1/seed/proto", b"seed payload".to_vec())
        .with_timestamp(1_700_000_000_000_000_000)
        .with_meta(b"meta".to_vec());
    let alice = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
    let bob = Installation::create(
        &Account::generate(),
        PrekeyPolicy {
            one_time: 2,
            ..PrekeyPolicy::default()
        },
        now,
    );
    let mut session = x3dh::initiate(&alice, &bob.bundle(now), Limits::default()).expect("ok");
    let first = session.seal(b"seed").expect("seal");
    let enr = murmur_transport::enr::encode(
        &murmur_transport::enr::build(
            &libp2p::identity::Keypair::generate_secp256k1(),
            &["/ip4/127.0.0.1/tcp/60000".parse().expect("multiaddr")],
            1,
            1,
            &[0],
            None,
        )
        .expect("record"),
    );
    let owner = murmur_groups::SigningKey::from_bytes(&[1; 32]);
    let (mut log, create) = murmur_groups::Log::create(&owner, "seed");
    let add = log
        .author(
            &owner,
            murmur_groups::Action::Add(murmur_groups::MemberId([2; 32])),
        )
        .expect("the owner adds");
    let group_events = [create.clone(), add];
    let (mut group, _) =
        murmur_groups::Group::create((owner.verifying_key().into(), [1; 16]), create, 1000)
            .expect("a group");
    let group_message = murmur_groups::Group::seal(&mut group, b"seed").expect("a member");
    let group_message = murmur_crypto::group::GroupMessage::from_bytes(&group_message)
        .expect("its own message decodes");
    let chain_key = group.chain_key().expect("a chain").to_bytes();
    let invite = murmur_groups::Invite {
        group: log.group(),
        admin: owner.verifying_key().into(),
        secret: Some([7; 32]),
        bundles: vec![bob.bundle(now).to_bytes()],
    }
    .encode();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("waku_message", message.encode_to_vec()),
        (
            "store",
            store::Request {
                request_id: "seed".to_owned(),
                include_data: true,
                pubsub_topic: Some("/waku/2/rs/1/0".to_owned()),
                content_topics: vec!["/murmur/1/seed/proto".to_owned()],
                pagination_limit: Some(20),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "filter",
            murmur_proto::filter::MessagePush {
                waku_message: Some(message.clone()),
                pubsub_topic: Some("/waku/2/rs/1/0".to_owned()),
            }
            .encode_to_vec(),
        ),
        (
            "lightpush",
            murmur_proto::lightpush::Request {
                request_id: "seed".to_owned(),
                pubsub_topic: Some("/waku/2/rs/1/0".to_owned()),
                message: Some(message.clone()),
            }
            .encode_to_vec(),
        ),
        ("metadata", Metadata::new(1, [0, 1, 2]).encode_to_vec()),
        (
            "peer_exchange",
            murmur_proto::peer_exchange::Rpc {
                query: None,
                response: Some(murmur_proto::peer_exchange::Response {
                    peer_infos: vec![murmur_proto::peer_exchange::PeerInfo { enr: enr.clone() }],
                    status_code: Some(200),
                    status_desc: None,
                }),
            }
            .encode_to_vec(),
        ),
        ("lp_frame", {
            let body = message.encode_to_vec();
            let mut v = vec![body.len() as u8];
            v.extend_from_slice(&body);
            v
        }),
        ("enr", enr.clone()),
        ("bundle", bob.bundle(now).to_bytes()),
        ("ciphertext", first.to_bytes()),
        (
            "envelope",
            envelope::seal(
                &bob.identity_key(),
                (alice.account(), alice.device()),
                &first,
            ),
        ),
        ("state", session.to_bytes().to_vec()),
        ("group_event", group_events[1].to_bytes()),
        ("group_message", group_message.to_bytes()),
        ("group_state", group.log_bytes()),
        ("invite", invite.into_bytes()),
    ];
    // The chain key and stored keys of the same group go in as well.
    for (name, file, bytes) in [
        ("group_message", "chain_key", chain_key.to_vec()),
        ("group_state", "keys", group.keys_bytes().to_vec()),
        ("group_event", "create", group_events[0].to_bytes()),
    ] {
        let dir = corpus(name);
        fs::create_dir_all(&dir).expect("corpus folder");
        fs::write(dir.join(file), bytes).expect("seed written");
    }
    for (name, bytes) in seeds {
        let dir = corpus(name);
        fs::create_dir_all(&dir).expect("corpus folder");
        fs::write(dir.join("seed"), bytes).expect("seed written");
    }
}
