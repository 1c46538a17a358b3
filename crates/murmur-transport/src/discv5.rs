//! Finding peers on a real network with discv5, as Waku nodes run it
//! (33/WAKU2-DISCV5): the node's record (with its `udp` port) in a
//! Kademlia table of records, random lookups, bootstrap records to start
//! from. Waku's protocol id is `d5waku`: a node with discv5's default id
//! (`discv5`) ignores Waku's packets, and they ignore its. The records it
//! finds are handed out as they are; which to dial (cluster, shards) is the
//! caller's choice.

use std::sync::Arc;

use ::discv5::{ConfigBuilder, Discv5, ListenConfig, ProtocolIdentity};
use libp2p::identity::Keypair;
use thiserror::Error;

use crate::enr::Record;

/// Waku's discv5 protocol id.
pub const PROTOCOL_ID: [u8; 6] = *b"d5waku";
/// Its version, 1.
pub const PROTOCOL_VERSION: [u8; 2] = [0, 1];

/// Why discovery did not start or a lookup failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The node key is not secp256k1, or the record is not signed by it.
    #[error("discv5 needs the node's secp256k1 key and its record: {0}")]
    Key(String),
    /// A bootstrap record that is not a usable ENR.
    #[error("bootstrap record `{record}`: {reason}")]
    Bootstrap {
        /// The record as given.
        record: String,
        /// Why it is refused.
        reason: String,
    },
    /// The service did not start (its UDP socket).
    #[error("discv5 did not start: {0}")]
    Start(String),
    /// A lookup failed.
    #[error("discv5 lookup failed: {0}")]
    Query(String),
}

/// A running discv5 service on a UDP socket.
pub struct Discovery {
    service: Discv5,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("node_id", &self.service.local_enr().node_id())
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Starts discv5 on `socket` with the node's key and `record` (its
    /// `enr:…`, which must name the socket's port as `udp`), knowing
    /// `bootstrap` records to begin with. Needs a tokio runtime.
    pub async fn start(
        keypair: &Keypair,
        record: &str,
        socket: std::net::UdpSocket,
        bootstrap: &[String],
    ) -> Result<Self, Error> {
        let mut secret = keypair
            .clone()
            .try_into_secp256k1()
            .map_err(|_| Error::Key("the node key is not secp256k1".to_owned()))?
            .secret()
            .to_bytes();
        let key = ::enr::CombinedKey::secp256k1_from_bytes(&mut secret)
            .map_err(|e| Error::Key(e.to_string()))?;
        zeroize::Zeroize::zeroize(&mut secret);
        let local: ::discv5::Enr = record.parse().map_err(Error::Key)?;
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::Start(e.to_string()))?;
        let socket =
            tokio::net::UdpSocket::from_std(socket).map_err(|e| Error::Start(e.to_string()))?;
        let config = ConfigBuilder::new(ListenConfig::FromSockets {
            ipv4: Some(Arc::new(socket)),
            ipv6: None,
        })
        .protocol_identity(ProtocolIdentity {
            protocol_id: PROTOCOL_ID,
            protocol_version: PROTOCOL_VERSION,
        })
        .build();
        let mut service = Discv5::new(local, key, config).map_err(|e| Error::Key(e.to_owned()))?;
        for record in bootstrap {
            let refuse = |reason: String| Error::Bootstrap {
                record: record.clone(),
                reason,
            };
            let enr: ::discv5::Enr = record.trim().parse().map_err(refuse)?;
            service.add_enr(enr).map_err(|e| refuse(e.to_owned()))?;
        }
        service
            .start()
            .await
            .map_err(|e| Error::Start(e.to_string()))?;
        Ok(Self { service })
    }

    /// One random lookup: the records of the nodes closest to a random id
    /// that answered.
    pub async fn find(&self) -> Result<Vec<Record>, Error> {
        let found = self
            .service
            .find_node(::enr::NodeId::random())
            .await
            .map_err(|e| Error::Query(e.to_string()))?;
        Ok(found.iter().filter_map(record).collect())
    }

    /// The records in the table now.
    pub fn known(&self) -> Vec<Record> {
        self.service
            .table_entries_enr()
            .iter()
            .filter_map(record)
            .collect()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.service.shutdown();
    }
}

/// The same record, with the key type the rest of the crate reads.
fn record(enr: &::discv5::Enr) -> Option<Record> {
    enr.to_base64().parse().ok()
}
