//! 34/WAKU2-PEER-EXCHANGE: hand out the records of peers we know, and ask
//! others for theirs.

use std::{collections::VecDeque, time::Duration};

use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::Control;

use crate::inbound::Incoming;
use murmur_core::transport;
use murmur_proto::{
    peer_exchange::{self as wire, PeerInfo, Query, Response, Rpc},
    protocol,
};
use prost::Message as _;

use crate::{enr::Record, services::Swarm};

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new(protocol::PEER_EXCHANGE);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Records kept to hand out (nwaku keeps 60).
const CACHE: usize = wire::MAX_PEERS as usize;

/// The records this node can hand out, newest last, one per peer.
#[derive(Default)]
pub(crate) struct Cache {
    records: VecDeque<(PeerId, Vec<u8>)>,
}

impl Cache {
    /// Keeps `record` (replacing an older one of the same peer).
    pub(crate) fn learn(&mut self, record: &Record) {
        let Some(peer) = crate::enr::peer_id(record) else {
            return;
        };
        self.records.retain(|(p, _)| *p != peer);
        self.records.push_back((peer, crate::enr::encode(record)));
        while self.records.len() > CACHE {
            self.records.pop_front();
        }
    }

    /// Up to `n` records, none of `asker`'s own.
    pub(crate) fn sample(&self, n: usize, asker: PeerId) -> Vec<Vec<u8>> {
        self.records
            .iter()
            .rev()
            .filter(|(p, _)| *p != asker)
            .take(n)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

/// Answers peer exchange queries from the swarm's cache.
pub(crate) async fn serve(incoming: Incoming, relay: Swarm) {
    crate::rpc::serve(incoming, wire::MAX_REQUEST_LEN, Server(relay)).await;
}

struct Server(Swarm);

impl crate::rpc::Answer for Server {
    async fn answer(
        &self,
        peer: PeerId,
        request: Result<Vec<u8>, murmur_proto::Error>,
    ) -> Option<Vec<u8>> {
        let wanted = request
            .ok()
            .and_then(|frame| Rpc::decode(frame.as_slice()).ok())
            .and_then(|rpc| rpc.query)
            .map(|q| q.num_peers);
        let response = match wanted {
            None => failure(400, "malformed request"),
            Some(n) => {
                let n = usize::try_from(n.clamp(1, wire::MAX_PEERS)).unwrap_or(CACHE);
                let records = self.0.sample_peers(n, peer).await;
                if records.is_empty() {
                    failure(503, "no peers to share")
                } else {
                    Response {
                        peer_infos: records.into_iter().map(|enr| PeerInfo { enr }).collect(),
                        status_code: Some(200),
                        status_desc: Some("OK".to_owned()),
                    }
                }
            }
        };
        Some(wrap(response))
    }

    fn busy(&self, _: &[u8]) -> Option<Vec<u8>> {
        Some(wrap(failure(429, "too many requests")))
    }
}

fn failure(code: u32, description: &str) -> Response {
    Response {
        status_code: Some(code),
        status_desc: Some(description.to_owned()),
        ..Response::default()
    }
}

/// nwaku's decoder wants `query` even in a response.
fn wrap(response: Response) -> Vec<u8> {
    Rpc {
        query: Some(Query::default()),
        response: Some(response),
    }
    .encode_to_vec()
}

/// Asks `peer` for up to `n` records; answers the valid ones.
pub(crate) async fn request(
    mut control: Control,
    peer: PeerId,
    n: u64,
) -> Result<Vec<Record>, transport::Error> {
    let bad = |reason: String| transport::Error::BadResponse {
        service: "peer exchange",
        reason,
    };
    let rpc = Rpc {
        query: Some(Query { num_peers: n }),
        response: None,
    };
    let frame = crate::rpc::request(
        &mut control,
        peer,
        PROTOCOL,
        &rpc.encode_to_vec(),
        wire::MAX_RESPONSE_LEN,
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(|e| bad(e.to_string()))?;
    let response = Rpc::decode(frame.as_slice())
        .map_err(|e| bad(e.to_string()))?
        .response
        .ok_or_else(|| bad("no response".to_owned()))?;
    let code = response
        .status_code
        .unwrap_or(if response.peer_infos.is_empty() {
            503
        } else {
            200
        });
    if code != 200 {
        return Err(transport::Error::Remote {
            service: "peer exchange",
            code,
            description: response.status_desc.unwrap_or_default(),
        });
    }
    // Records that do not decode or whose signature fails are dropped.
    Ok(response
        .peer_infos
        .iter()
        .filter_map(|info| crate::enr::decode(&info.enr))
        .collect())
}
