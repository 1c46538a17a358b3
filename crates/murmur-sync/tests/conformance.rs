//! The store-sync stage passes the conformance suite every replacement runs.

use actix::Recipient;
use murmur_core::{
    sync,
    transport::{self, QueryStore},
};
use murmur_sync::StoreSync;

async fn start(
    query: Recipient<QueryStore>,
    inbound: Recipient<transport::Event>,
    stores: Vec<String>,
) -> sync::Handle {
    sync::Handle::from(StoreSync::start(query, inbound, stores))
}

murmur_test_kit::sync_conformance_tests!(start);
