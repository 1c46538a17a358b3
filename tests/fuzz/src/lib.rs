//! One function per decoder of bytes that come from the network (or from a
//! file another process could have written): each decodes, and on success
//! exercises what a node does next with the value. None may panic.
//!
//! The libFuzzer binaries in `fuzz_targets/` call these (`cargo fuzz run
//! --fuzz-dir tests/fuzz --features libfuzzer waku_message`); the test
//! `tests/replay.rs` runs every file of `corpus/<target>/` through them on
//! every `cargo test`.

use std::{cell::RefCell, sync::OnceLock};

use murmur_crypto::{
    envelope, x3dh, Account, Ciphertext, Installation, Limits, PrekeyPolicy, Session,
};
use murmur_proto::{
    filter, lightpush, metadata::Metadata, peer_exchange, store, WakuMessage, MAX_WAKU_MESSAGE_LEN,
};
use prost::Message as _;

/// A fuzz target: any bytes in, no panic.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("waku_message", waku_message),
    ("store", store),
    ("filter", filter),
    ("lightpush", lightpush),
    ("metadata", metadata),
    ("peer_exchange", peer_exchange),
    ("lp_frame", lp_frame),
    ("enr", enr),
    ("bundle", bundle),
    ("ciphertext", ciphertext),
    ("envelope", envelope),
    ("state", state),
    ("group_event", group_event),
    ("group_message", group_message),
    ("group_state", group_state),
    ("invite", invite),
];

/// A relay, filter push or store message: decoded, validated, hashed.
pub fn waku_message(data: &[u8]) {
    if let Ok(m) = WakuMessage::decode(data) {
        let _ = murmur_core::transport::validate(&m, data.len());
        let _ = murmur_proto::message_hash("/waku/2/rs/1/0", &m);
        let again = m.encode_to_vec();
        assert_eq!(WakuMessage::decode(again.as_slice()).ok(), Some(m));
    }
}

/// Store v3 requests (a store node's input) and responses (a client's).
pub fn store(data: &[u8]) {
    if let Ok(r) = store::Request::decode(data) {
        let _ = r.encode_to_vec();
    }
    if let Ok(r) = store::Response::decode(data) {
        let _ = r.encode_to_vec();
    }
}

/// Filter v2 subscribe requests, responses and pushes.
pub fn filter(data: &[u8]) {
    let _ = filter::SubscribeRequest::decode(data);
    let _ = filter::SubscribeResponse::decode(data);
    if let Ok(push) = filter::MessagePush::decode(data) {
        if let Some(m) = push.waku_message {
            waku_message(&m.encode_to_vec());
        }
    }
}

/// Lightpush v3 and v2 requests and responses.
pub fn lightpush(data: &[u8]) {
    let _ = lightpush::Request::decode(data);
    let _ = lightpush::Response::decode(data);
    let _ = lightpush::PushRpc::decode(data);
}

/// Metadata requests and answers.
pub fn metadata(data: &[u8]) {
    if let Ok(m) = Metadata::decode_frame(data) {
        let _ = m.shards();
    }
}

/// Peer exchange queries and responses, with the ENRs inside.
pub fn peer_exchange(data: &[u8]) {
    if let Ok(rpc) = peer_exchange::Rpc::decode(data) {
        for peer in rpc.response.into_iter().flat_map(|r| r.peer_infos) {
            enr(&peer.enr);
        }
    }
}

/// A length-prefixed frame, as every request-response protocol reads it.
pub fn lp_frame(data: &[u8]) {
    let mut io = data;
    let _ = futures::executor::block_on(murmur_proto::lp::read(&mut io, MAX_WAKU_MESSAGE_LEN));
}

/// An ENR, as peer exchange and bootstrap lists carry it.
pub fn enr(data: &[u8]) {
    if let Some(record) = murmur_transport::enr::decode(data) {
        let _ = murmur_transport::enr::peer_id(&record);
        let _ = murmur_transport::enr::addresses(&record);
    }
}

/// A prekey bundle from a contact code or the network.
pub fn bundle(data: &[u8]) {
    if let Ok(b) = murmur_crypto::Bundle::from_bytes(data) {
        let _ = b.verify();
        assert_eq!(
            murmur_crypto::Bundle::from_bytes(&b.to_bytes()).ok(),
            Some(b)
        );
    }
}

thread_local! {
    static SESSION: RefCell<Option<(Installation, Session)>> = const { RefCell::new(None) };
}

/// A ratchet message, opened by an established session and offered to X3DH.
pub fn ciphertext(data: &[u8]) {
    let Ok(c) = Ciphertext::from_bytes(data) else {
        return;
    };
    SESSION.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (bob, session) = cell.get_or_insert_with(|| {
            let now = 1_700_000_000;
            let alice = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
            let bob = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
            let session =
                x3dh::initiate(&alice, &bob.bundle(now), Limits::default()).expect("valid bundle");
            (bob, session)
        });
        let _ = session.decrypt(c.message());
        if let Ciphertext::Prekey(init, m) = &c {
            let _ = x3dh::respond(bob, init, m, Limits::default());
        }
    });
}

fn recipient() -> &'static Installation {
    static RECIPIENT: OnceLock<Installation> = OnceLock::new();
    RECIPIENT.get_or_init(|| {
        Installation::create(&Account::generate(), PrekeyPolicy::default(), 1_700_000_000)
    })
}

/// A sealed envelope from a WakuMessage payload.
pub fn envelope(data: &[u8]) {
    let _ = envelope::open(recipient(), data);
}

/// Session and installation state read back from storage.
pub fn state(data: &[u8]) {
    if let Ok(s) = Session::from_bytes(data) {
        let _ = s.to_bytes();
    }
    if let Ok(i) = Installation::from_bytes(data) {
        let _ = i.bundle(0);
    }
}

/// A group membership event, from a member's control message or a joiner's
/// copy of the log: decoded, encoded again, and offered to a log.
pub fn group_event(data: &[u8]) {
    if let Ok(e) = murmur_groups::Event::from_bytes(data) {
        assert_eq!(
            murmur_groups::Event::from_bytes(&e.to_bytes()).map(|again| again.id()),
            Ok(e.id())
        );
        let mut log = murmur_groups::Log::new(e.group);
        let _ = log.insert(e);
    }
}

thread_local! {
    static CHAIN: RefCell<Option<murmur_crypto::group::ReceiverChain>> = const { RefCell::new(None) };
}

/// A group message off the wire, read by a member's chain, and a chain key
/// handed over in a pairwise session.
pub fn group_message(data: &[u8]) {
    use murmur_crypto::group::{ChainKey, GroupMessage, ReceiverChain, SenderChain};
    if let Ok(m) = GroupMessage::from_bytes(data) {
        CHAIN.with(|cell| {
            let mut cell = cell.borrow_mut();
            let chain = cell.get_or_insert_with(|| {
                let sender = SenderChain::generate(b"fuzz");
                ReceiverChain::new(&sender.chain_key(), 1000).expect("a fresh key")
            });
            let _ = chain.decrypt(&m);
        });
    }
    if let Ok(k) = ChainKey::from_bytes(data) {
        let _ = ReceiverChain::new(&k, 1000);
    }
}

/// A group's stored log and keys, read back from storage.
pub fn group_state(data: &[u8]) {
    let _ = murmur_groups::Group::from_parts(data, None);
    let _ = murmur_groups::Group::from_parts(&[], Some(data));
}

/// An invite code a user pasted.
pub fn invite(data: &[u8]) {
    if let Ok(code) = std::str::from_utf8(data) {
        if let Ok(i) = murmur_groups::Invite::decode(code) {
            assert_eq!(murmur_groups::Invite::decode(&i.encode()).ok(), Some(i));
        }
    }
}
