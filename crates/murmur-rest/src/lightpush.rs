//! `POST /lightpush/v3/message` (and the legacy `/lightpush/v1/message`):
//! a light client publishes through its service node; a relay node that
//! serves lightpush publishes itself, as nwaku does when it runs the
//! service.

use std::time::Duration;

use axum::{
    body::Bytes, extract::State, http::StatusCode, response::Response, routing::post, Router,
};
use murmur_core::{ContentTopic, PubsubTopic};
use murmur_node::PublishState;
use serde::Deserialize;
use serde_json::json;

use crate::{message::Incoming, reply, Api};

/// How long a light client waits for its service node (nwaku: 5 s).
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route("/lightpush/v3/message", post(push_v3))
        .route("/lightpush/v1/message", post(push_legacy))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    pubsub_topic: Option<String>,
    message: Option<Incoming>,
}

/// Why a push was not carried out: an HTTP status and nwaku's words.
struct Refusal(StatusCode, String);

/// A v3 answer: JSON always.
fn v3(status: StatusCode, desc: impl Into<String>) -> Response {
    reply::json(status, &json!({ "statusDesc": desc.into() }))
}

async fn push_v3(State(api): State<Api>, body: Bytes) -> Response {
    match push(&api, &body).await {
        Ok(Some(peers)) => reply::json(StatusCode::OK, &json!({ "relayPeerCount": peers })),
        // A light client's service does not tell how many relay peers
        // took the message through the node's outbox; nwaku leaves out
        // what it does not have.
        Ok(None) => reply::json(StatusCode::OK, &json!({})),
        Err(Refusal(status, desc)) => v3(status, desc),
    }
}

async fn push_legacy(State(api): State<Api>, body: Bytes) -> Response {
    match push(&api, &body).await {
        Ok(_) => reply::ok(),
        Err(Refusal(status, desc)) => reply::text(status, desc),
    }
}

/// Publishes what `body` asks; on a relay node answers how many peers
/// receive it on its topic.
async fn push(api: &Api, body: &[u8]) -> Result<Option<usize>, Refusal> {
    let invalid = |why: String| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("Invalid push request! {why}"),
        )
    };
    let request: Request = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    let message = request
        .message
        .ok_or_else(|| invalid("message is required".to_owned()))?
        .into_message()
        .map_err(invalid)?;
    let topic = match request.pubsub_topic.filter(|t| !t.trim().is_empty()) {
        Some(t) => t
            .parse::<PubsubTopic>()
            .map_err(|e| invalid(e.to_string()))?,
        None => {
            let content: ContentTopic = message
                .content_topic
                .parse()
                .map_err(|e: murmur_core::TopicError| invalid(e.to_string()))?;
            api.node.pubsub_topic(&content)
        }
    };
    if let Err(why) = crate::relay::check(&message) {
        let status = if why.starts_with("Message size") {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        return Err(Refusal(status, why));
    }
    if api.node.config().network.light {
        let mut publication = api
            .node
            .publish(topic, message)
            .await
            .map_err(|e| Refusal(crate::relay::refusal_status(&e), e.to_string()))?;
        return match publication.published(PUSH_TIMEOUT).await {
            PublishState::Published | PublishState::Acknowledged => Ok(None),
            PublishState::Failed(why) => Err(Refusal(StatusCode::SERVICE_UNAVAILABLE, why)),
            _ => Err(Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "Push request timed out (the message waits in the node's outbox and is offered to the service node again)".to_owned(),
            )),
        };
    }
    let status = api
        .node
        .status()
        .await
        .map_err(|e| Refusal(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let peers = status
        .topics
        .iter()
        .find(|(t, _)| *t == topic)
        .map_or(0, |(_, n)| *n);
    if peers == 0 {
        return Err(Refusal(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "No peers for topic, skipping publish".to_owned(),
        ));
    }
    api.node
        .publish(topic, message)
        .await
        .map_err(|e| Refusal(crate::relay::refusal_status(&e), e.to_string()))?;
    Ok(Some(peers))
}
