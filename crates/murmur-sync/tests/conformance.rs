//! The store-sync stage passes the conformance suite every replacement runs.

use actix::Recipient;
use murmur_core::{
    storage, sync,
    transport::{self, QueryStore},
};
use murmur_sync::StoreSync;

async fn start(
    query: Recipient<QueryStore>,
    inbound: Recipient<transport::Event>,
    stores: Vec<String>,
    positions: storage::Handle,
) -> sync::Handle {
    sync::Handle::from(StoreSync::start(query, inbound, stores, positions))
}

murmur_test_kit::sync_conformance_tests!(start);

/// The suite again on a replacement: the default stage behind counters on
/// every message of its contract, as an integrator's stage that observes catch-ups
/// would wrap it.
mod counted {
    use murmur_core::sync::Error;
    use murmur_test_kit::tally;

    use super::*;

    fn gone<T>() -> Result<T, Error> {
        Err(Error::Stopped)
    }

    async fn start(
        query: Recipient<QueryStore>,
        inbound: Recipient<transport::Event>,
        stores: Vec<String>,
        positions: storage::Handle,
    ) -> sync::Handle {
        let default = super::start(query, inbound, stores, positions).await;
        let (catch_up, _) = tally(default.catch_up.clone(), gone);
        let (fetch_missing, _) = tally(default.fetch_missing.clone(), gone);
        let (watch, _) = tally(default.watch.clone(), gone);
        let (round, _) = tally(default.round.clone(), gone);
        let (confirm, _) = tally(default.confirm.clone(), gone);
        let (stores, _) = tally(default.stores.clone(), || 0);
        sync::Handle {
            watch,
            round,
            catch_up,
            fetch_missing,
            confirm,
            stores,
            ..default
        }
    }

    murmur_test_kit::sync_conformance_tests!(start);
}
