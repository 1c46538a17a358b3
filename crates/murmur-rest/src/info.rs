//! `/health`, `/debug/v1/info`, `/debug/v1/version`, `/metrics` and the
//! OpenAPI document.

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use murmur_core::transport::Status;
use murmur_proto::protocol;
use serde_json::{json, Map, Value};

use crate::{
    reply::{json, text},
    Api,
};

/// The OpenAPI document of every endpoint this crate serves.
pub(crate) const OPENAPI: &str = include_str!("../openapi.json");

/// A protocol's health, in nwaku's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Ready,
    NotReady(&'static str),
    NotMounted,
}

fn entry(name: &str, health: Health) -> Value {
    let mut entry = Map::new();
    let (state, desc) = match health {
        Health::Ready => ("READY", None),
        Health::NotReady(why) => ("NOT_READY", Some(why)),
        Health::NotMounted => ("NOT_MOUNTED", None),
    };
    entry.insert(name.to_owned(), Value::from(state));
    if let Some(desc) = desc {
        entry.insert("desc".to_owned(), Value::from(desc));
    }
    Value::Object(entry)
}

/// Whether a connected peer says it speaks `codec`.
fn served(status: &Status, codec: &str) -> bool {
    status
        .connected
        .iter()
        .any(|p| p.protocols.iter().any(|c| c == codec))
}

/// `GET /health`: the node's and each protocol's health, the fifteen
/// entries nwaku reports, in its order.
pub(crate) async fn health(State(api): State<Api>) -> Response {
    let Ok(status) = api.node.status().await else {
        return json(
            StatusCode::OK,
            &json!({"nodeHealth": "SHUTTING_DOWN", "protocolsHealth": []}),
        );
    };
    let network = &api.node.config().network;
    let store = &api.node.config().store;
    let light = network.light;
    let relay = if light {
        Health::NotMounted
    } else if status.topics.iter().any(|(_, peers)| *peers > 0) {
        Health::Ready
    } else {
        Health::NotReady("No connected peers")
    };
    let service = |on: bool| match (on && !light, relay) {
        (false, _) => Health::NotMounted,
        (true, Health::Ready) => Health::Ready,
        (true, _) => Health::NotReady("Relay is not ready"),
    };
    let client = |on: bool, codec: &str, why: &'static str| {
        if !on {
            Health::NotMounted
        } else if served(&status, codec) {
            Health::Ready
        } else {
            Health::NotReady(why)
        }
    };
    let entries = [
        ("Relay", relay),
        ("Rln Relay", Health::NotMounted),
        ("Lightpush", service(network.lightpush)),
        ("Legacy Lightpush", service(network.lightpush)),
        ("Filter", service(network.filter)),
        (
            "Store",
            if store.enabled && store.archive {
                Health::Ready
            } else {
                Health::NotMounted
            },
        ),
        ("Legacy Store", Health::NotMounted),
        (
            "Peer Exchange",
            if network.peer_exchange && !light {
                Health::Ready
            } else {
                Health::NotMounted
            },
        ),
        ("Rendezvous", Health::NotMounted),
        ("Mix", Health::NotMounted),
        (
            "Lightpush Client",
            client(
                light,
                protocol::LIGHTPUSH,
                "No Lightpush service peer available yet",
            ),
        ),
        ("Legacy Lightpush Client", Health::NotMounted),
        (
            "Store Client",
            client(true, protocol::STORE, "No Store service peer available yet"),
        ),
        (
            "Legacy Store Client",
            client(
                true,
                protocol::STORE_V2,
                "No Legacy Store service peer available yet",
            ),
        ),
        (
            "Filter Client",
            client(
                light,
                protocol::FILTER_SUBSCRIBE,
                "No Filter service peer available yet",
            ),
        ),
    ];
    let protocols: Vec<Value> = entries.iter().map(|(n, h)| entry(n, *h)).collect();
    json(
        StatusCode::OK,
        &json!({"nodeHealth": "READY", "protocolsHealth": protocols}),
    )
}

/// `GET /debug/v1/info` (and `/info`): where the node listens, its record.
pub(crate) async fn info(State(api): State<Api>) -> Response {
    let status = match api.node.status().await {
        Ok(status) => status,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut info = json!({"listenAddresses": status.listen_addrs});
    if let Some(enr) = status.enr.or_else(|| api.node.enr().map(str::to_owned)) {
        info["enrUri"] = Value::from(enr);
    }
    json(StatusCode::OK, &info)
}

/// `GET /debug/v1/version` (and `/version`): plain text, as nwaku's.
pub(crate) async fn version() -> Response {
    text(
        StatusCode::OK,
        concat!("murmur-v", env!("CARGO_PKG_VERSION")),
    )
}

/// `GET /metrics`: every stage's metrics, OpenMetrics text.
pub(crate) async fn metrics(State(api): State<Api>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        api.node.metrics_text(),
    )
        .into_response()
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}
