//! The libp2p transport passes the transport conformance suite, over real
//! loopback sockets.

use actix::Recipient;
use libp2p::identity::Keypair;
use murmur_core::{
    transport::{self, Event},
    Sharding,
};
use murmur_transport::{Config, Transport};

async fn start(events: Vec<Recipient<Event>>) -> Vec<transport::Handle> {
    let mut handles = Vec::new();
    let mut first: Option<libp2p::Multiaddr> = None;
    for events in events {
        let mut config = Config::new(Keypair::generate_secp256k1(), Sharding::auto(1, 8));
        if let Some(addr) = &first {
            config = config.with_static_peer(addr.clone());
        }
        let (addr, node) = Transport::start(config, events).await.expect("starts");
        first.get_or_insert_with(|| node.listen_addrs()[0].clone());
        handles.push(transport::Handle::from(addr));
    }
    handles
}

murmur_test_kit::transport_conformance_tests!(start);
