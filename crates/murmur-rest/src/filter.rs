//! `/filter/v2/*` on a light client: subscriptions at its filter service
//! node, and the messages kept since the last read.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::Response,
    routing::{delete, get, post},
    Router,
};
use murmur_core::{ContentTopic, PubsubTopic};
use serde::Deserialize;
use serde_json::json;

use crate::{
    message::Shape,
    reply::{json, text},
    Api,
};

pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/filter/v2/subscriptions",
            post(subscribe).put(subscribe).delete(unsubscribe),
        )
        .route("/filter/v2/subscriptions/all", delete(unsubscribe_all))
        .route("/filter/v2/subscriptions/{id}", get(ping))
        .route("/filter/v2/messages/{*topic}", get(messages))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    request_id: String,
    pubsub_topic: Option<String>,
    #[serde(default)]
    content_filters: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct All {
    request_id: String,
}

fn answer(status: StatusCode, request_id: &str, desc: impl Into<String>) -> Response {
    json(
        status,
        &json!({ "requestId": request_id, "statusDesc": desc.into() }),
    )
}

/// The body, read as nwaku's filter handlers read it: `application/json`
/// exactly; an unreadable one answers with the request id `unknown`.
fn decode<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, Response> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if !json_type {
        return Err(answer(
            StatusCode::BAD_REQUEST,
            "unknown",
            "Wrong Content-Type, expected application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        answer(
            StatusCode::BAD_REQUEST,
            "unknown",
            format!("Invalid content body, could not decode: {e}"),
        )
    })
}

/// The content topics of a request by the shard they travel on.
fn by_shard(api: &Api, request: &Request) -> Result<Vec<(PubsubTopic, Vec<String>)>, Response> {
    let refuse = |why: String| answer(StatusCode::BAD_REQUEST, &request.request_id, why);
    if request.content_filters.is_empty() {
        return Err(refuse(
            "contentFilters must name at least one content topic".to_owned(),
        ));
    }
    let given = match request
        .pubsub_topic
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(t) => Some(
            t.parse::<PubsubTopic>()
                .map_err(|e| refuse(e.to_string()))?,
        ),
        None => None,
    };
    let mut shards: Vec<(PubsubTopic, Vec<String>)> = Vec::new();
    for topic in &request.content_filters {
        let shard = match &given {
            Some(t) => t.clone(),
            None => {
                let content: ContentTopic = topic
                    .parse()
                    .map_err(|e: murmur_core::TopicError| refuse(e.to_string()))?;
                api.node.pubsub_topic(&content)
            }
        };
        match shards.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, topics)) => topics.push(topic.clone()),
            None => shards.push((shard, vec![topic.clone()])),
        }
    }
    Ok(shards)
}

async fn subscribe(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Request = match decode(&headers, &body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let shards = match by_shard(&api, &request) {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    for (shard, topics) in shards {
        if let Err(e) = api.node.subscribe_pubsub(shard, topics.clone()).await {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &request.request_id,
                e.to_string(),
            );
        }
        for topic in &topics {
            api.caches.watch_content(topic);
        }
    }
    answer(StatusCode::OK, &request.request_id, "OK")
}

/// Stops keeping the topics. The subscription at the service stays: the
/// node's own conversations may share it, and it lapses when the node
/// stops renewing it (docs/rest-api.md).
async fn unsubscribe(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Request = match decode(&headers, &body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = by_shard(&api, &request) {
        return refusal;
    }
    for topic in &request.content_filters {
        api.caches.forget_content(topic);
    }
    answer(StatusCode::OK, &request.request_id, "OK")
}

async fn unsubscribe_all(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let request: All = match decode(&headers, &body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    api.caches.forget_all_content();
    answer(StatusCode::OK, &request.request_id, "OK")
}

/// Whether the filter service node is there: 200 while this light client
/// is connected to it, 503 otherwise.
async fn ping(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let Some(service) = api.node.config().network.peers.first() else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &id,
            "No suitable service peer",
        );
    };
    let service = service.to_string();
    let connected = match api.node.status().await {
        Ok(status) => status
            .peers
            .iter()
            .any(|p| service.ends_with(&format!("/p2p/{}", p.0))),
        Err(e) => return answer(StatusCode::SERVICE_UNAVAILABLE, &id, e.to_string()),
    };
    if connected {
        answer(StatusCode::OK, &id, "OK")
    } else {
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &id,
            "the filter service node is not connected",
        )
    }
}

async fn messages(State(api): State<Api>, Path(topic): Path<String>) -> Response {
    let topic = if topic.starts_with('/') {
        topic
    } else {
        format!("/{topic}")
    };
    match api.caches.take_content(&topic) {
        Some(messages) => json(
            StatusCode::OK,
            &crate::relay::shaped(&messages, Shape::Filter),
        ),
        None => text(
            StatusCode::BAD_REQUEST,
            format!("Not subscribed to topic: {topic}"),
        ),
    }
}
