//! `/relay/v1/*`: subscriptions, the messages kept since the last read,
//! and publishing, on pubsub topics (static sharding) and on content
//! topics (autosharding).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};
use murmur_core::{ContentTopic, PubsubTopic, WakuMessage};

use crate::{
    message::{Incoming, Outgoing, Shape},
    reply::{json, ok, text, Body},
    Api,
};

pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/relay/v1/subscriptions",
            post(subscribe).delete(unsubscribe),
        )
        .route("/relay/v1/messages/{*topic}", get(messages).post(publish))
        .route(
            "/relay/v1/auto/subscriptions",
            post(auto_subscribe).delete(auto_unsubscribe),
        )
        .route("/relay/v1/auto/messages/{*topic}", get(auto_messages))
        .route("/relay/v1/auto/messages", post(auto_publish))
}

/// A catch-all path parameter: a topic sent unencoded keeps its first `/`.
fn path_topic(raw: &str) -> String {
    if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("/{raw}")
    }
}

/// nwaku lists refused topics as a Nim sequence: `@["a", "b"]`.
fn nim_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("@[{}]", quoted.join(", "))
}

fn parse_pubsub(topics: Vec<String>) -> Result<Vec<PubsubTopic>, Response> {
    let (good, bad): (Vec<_>, Vec<_>) = topics
        .into_iter()
        .map(|t| t.parse::<PubsubTopic>().map_err(|_| t))
        .partition(Result::is_ok);
    if !bad.is_empty() {
        let bad: Vec<String> = bad.into_iter().filter_map(Result::err).collect();
        return Err(text(
            StatusCode::BAD_REQUEST,
            format!("Invalid pubsub topic(s): {}", nim_list(&bad)),
        ));
    }
    Ok(good.into_iter().filter_map(Result::ok).collect())
}

async fn subscribe(State(api): State<Api>, Body(topics): Body<Vec<String>>) -> Response {
    let topics = match parse_pubsub(topics) {
        Ok(t) => t,
        Err(refusal) => return refusal,
    };
    let relayed = match api.node.status().await {
        Ok(status) => status.topics,
        Err(e) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Subscribe failed:{e}"),
            )
        }
    };
    for topic in topics {
        if api.caches.watches_pubsub(&topic) {
            continue;
        }
        let already = relayed.iter().any(|(t, _)| *t == topic);
        if !already {
            if let Err(e) = api.node.subscribe_pubsub(topic.clone(), Vec::new()).await {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Subscribe failed:{e}"),
                );
            }
        }
        api.caches.watch_pubsub(topic, !already);
    }
    ok()
}

async fn unsubscribe(State(api): State<Api>, Body(topics): Body<Vec<String>>) -> Response {
    let topics = match parse_pubsub(topics) {
        Ok(t) => t,
        Err(refusal) => return refusal,
    };
    for topic in topics {
        // A shard the node relayed before the API asked stays relayed: the
        // node's own conversations may travel on it.
        if api.caches.forget_pubsub(&topic) {
            if let Err(e) = api.node.unsubscribe_pubsub(topic).await {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Unsubscribe failed:{e}"),
                );
            }
        }
    }
    ok()
}

async fn messages(State(api): State<Api>, Path(topic): Path<String>) -> Response {
    let Ok(topic) = path_topic(&topic).parse::<PubsubTopic>() else {
        return text(StatusCode::NOT_FOUND, "");
    };
    match api.caches.take_pubsub(&topic) {
        Some(messages) => json(StatusCode::OK, &shaped(&messages, Shape::Relay)),
        None => text(StatusCode::NOT_FOUND, ""),
    }
}

pub(crate) fn shaped(messages: &[WakuMessage], shape: Shape) -> Vec<Outgoing> {
    messages.iter().map(|m| Outgoing::new(m, shape)).collect()
}

async fn publish(
    State(api): State<Api>,
    Path(topic): Path<String>,
    Body(message): Body<Incoming>,
) -> Response {
    let topic = path_topic(&topic);
    let subscribed = match topic.parse::<PubsubTopic>() {
        Ok(parsed) => match api.node.status().await {
            Ok(status) => status.topics.into_iter().find(|(t, _)| *t == parsed),
            Err(e) => return failed(StatusCode::SERVICE_UNAVAILABLE, e),
        },
        Err(_) => None,
    };
    let Some((topic, _)) = subscribed else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("Failed to publish: Node not subscribed to topic: {topic}"),
        );
    };
    let message = match message.into_message() {
        Ok(m) => m,
        Err(why) => return failed(StatusCode::BAD_REQUEST, why),
    };
    send(&api, topic, message).await
}

fn failed(status: StatusCode, why: impl std::fmt::Display) -> Response {
    text(status, format!("Failed to publish: {why}"))
}

/// Publishes through the node's outbox; the message is durable when this
/// answers. A message the network would refuse is refused here.
async fn send(api: &Api, topic: PubsubTopic, message: WakuMessage) -> Response {
    if let Err(why) = check(&message) {
        return failed(StatusCode::BAD_REQUEST, why);
    }
    match api.node.publish(topic, message).await {
        Ok(_) => ok(),
        Err(e) => failed(refusal_status(&e), e),
    }
}

/// The network's rules for a message, in nwaku's words where it has them.
pub(crate) fn check(message: &WakuMessage) -> Result<(), String> {
    let len = prost::Message::encoded_len(message);
    murmur_core::transport::validate(message, len).map_err(|e| match e {
        murmur_core::transport::Error::TooLarge { max, .. } => {
            format!("Message size exceeded maximum of {max} bytes")
        }
        other => other.to_string(),
    })
}

/// What a publish error says of the request: refused for what it is (4xx)
/// or not carried out by the node (5xx).
pub(crate) fn refusal_status(e: &murmur_node::Error) -> StatusCode {
    use murmur_node::Error as E;
    match e {
        E::Dropped { .. } | E::Topic(_) => StatusCode::BAD_REQUEST,
        E::Send(murmur_core::transport::Error::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        E::Send(murmur_core::transport::Error::Invalid(_)) => StatusCode::BAD_REQUEST,
        E::Busy(_) | E::Send(murmur_core::transport::Error::Busy) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn parse_content(topics: &[String]) -> Result<Vec<ContentTopic>, Response> {
    topics
        .iter()
        .map(|t| t.parse::<ContentTopic>())
        .collect::<Result<_, _>>()
        .map_err(|e| text(StatusCode::BAD_REQUEST, format!("Subscribe failed: {e}")))
}

async fn auto_subscribe(State(api): State<Api>, Body(topics): Body<Vec<String>>) -> Response {
    let topics = match parse_content(&topics) {
        Ok(t) => t,
        Err(refusal) => return refusal,
    };
    // The subscriber itself is not needed: deliveries reach the caches
    // through the server's own; this subscribes the shards.
    if let Err(e) = api.node.subscribe(&topics).await {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Subscribe failed:{e}"),
        );
    }
    for topic in &topics {
        api.caches.watch_content(topic.as_str());
    }
    ok()
}

async fn auto_unsubscribe(State(api): State<Api>, Body(topics): Body<Vec<String>>) -> Response {
    // The shard stays relayed: other content topics travel on it.
    for topic in topics {
        api.caches.forget_content(&topic);
    }
    ok()
}

async fn auto_messages(State(api): State<Api>, Path(topic): Path<String>) -> Response {
    let topic = path_topic(&topic);
    match api.caches.take_content(&topic) {
        Some(messages) => json(StatusCode::OK, &shaped(&messages, Shape::Relay)),
        None => text(StatusCode::NOT_FOUND, topic),
    }
}

async fn auto_publish(State(api): State<Api>, Body(message): Body<Incoming>) -> Response {
    let message = match message.into_message() {
        Ok(m) => m,
        Err(why) => return failed(StatusCode::BAD_REQUEST, why),
    };
    let topic = match message.content_topic.parse::<ContentTopic>() {
        Ok(t) => api.node.pubsub_topic(&t),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to publish. Autosharding error: {e}"),
            )
        }
    };
    send(&api, topic, message).await
}
