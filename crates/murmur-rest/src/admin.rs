//! `/admin/v1/peers` (with `[rest] admin = true`, nwaku's `--rest-admin`):
//! the connected peers, and dialling more.

use axum::{extract::State, http::StatusCode, response::Response, routing::get, Router};
use serde::Serialize;

use crate::{
    reply::{json, ok, text, Body},
    Api,
};

pub(crate) fn routes() -> Router<Api> {
    Router::new().route("/admin/v1/peers", get(peers).post(connect))
}

/// A peer as nwaku's `WakuPeer` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Peer {
    multiaddr: String,
    protocols: Vec<String>,
    shards: Vec<u16>,
    connected: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    origin: &'static str,
}

async fn peers(State(api): State<Api>) -> Response {
    let status = match api.node.status().await {
        Ok(status) => status,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let peers: Vec<Peer> = status
        .connected
        .into_iter()
        .map(|p| Peer {
            multiaddr: p.address,
            protocols: p.protocols,
            shards: p.shards,
            connected: "Connected",
            agent: p.agent,
            origin: if p.static_peer {
                "Static"
            } else {
                "UnknownOrigin"
            },
        })
        .collect();
    json(StatusCode::OK, &peers)
}

/// Dials every address, in order; answers once all are connected, or with
/// the first that could not be.
async fn connect(State(api): State<Api>, Body(addresses): Body<Vec<String>>) -> Response {
    for (i, address) in addresses.iter().enumerate() {
        if !address.contains("/p2p/") {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "Couldn't parse remote peer info: `{address}` must end with /p2p/<peer id>"
                ),
            );
        }
        if let Err(e) = api.node.dial(address).await {
            let status = match e {
                murmur_node::Error::Send(murmur_core::transport::Error::Address { .. }) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("Couldn't parse remote peer info: {e}"),
                    )
                }
                _ => StatusCode::BAD_REQUEST,
            };
            return text(
                status,
                format!("Failed to connect to peer at index: {i} - {address}: {e}"),
            );
        }
    }
    ok()
}
