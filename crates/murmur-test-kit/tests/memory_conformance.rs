//! The memory transport passes the transport conformance suite.

use actix::Recipient;
use murmur_core::transport::{self, Event};
use murmur_test_kit::MemoryNetwork;

async fn start(events: Vec<Recipient<Event>>) -> Vec<transport::Handle> {
    let net = MemoryNetwork::new();
    events
        .into_iter()
        .map(|e| transport::Handle::from(net.start(e)))
        .collect()
}

murmur_test_kit::transport_conformance_tests!(start);
