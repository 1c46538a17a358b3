//! `GET /store/v3/messages`: a store query to a store node, or to this
//! node's own archive, with nwaku's parameters and answer.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use murmur_core::{
    store::{self, Page},
    transport::Error as Remote,
    ContentTopic, MessageHash, PubsubTopic,
};
use serde::Serialize;

use crate::{
    message::{Outgoing, Shape},
    reply::{json, text},
    Api,
};

/// The answer, as nwaku's `StoreQueryResponseHex`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    request_id: String,
    status_code: u32,
    status_desc: String,
    messages: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination_cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    message_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Outgoing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pubsub_topic: Option<String>,
}

fn bad(why: impl Into<String>) -> Response {
    text(StatusCode::BAD_REQUEST, why)
}

/// Nim's `parseBool`.
fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "no" | "n" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// A time bound: decimal nanoseconds; empty or not above zero is none.
fn time(value: Option<&String>) -> Result<Option<i64>, Response> {
    match value.map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(|t| (t > 0).then_some(t))
            .map_err(|e| bad(format!("time parsing error: {e}"))),
    }
}

fn hash(value: &str) -> Result<MessageHash, Response> {
    value.trim().parse().map_err(|e| {
        bad(format!(
            "invalid message hash `{value}` (32 bytes as hex): {e}"
        ))
    })
}

fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The query the parameters describe.
fn query(api: &Api, params: &HashMap<String, String>) -> Result<store::Query, Response> {
    let include_data = match params.get("includeData").map(String::as_str) {
        None | Some("") => false,
        Some(v) => {
            boolean(v).ok_or_else(|| bad(format!("invalid includeData `{v}`: not a boolean")))?
        }
    };
    let hashes = list(params.get("hashes"))
        .iter()
        .map(|h| hash(h))
        .collect::<Result<Vec<_>, _>>()?;
    let cursor = match params
        .get("cursor")
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
    {
        Some(c) => Some(hash(c)?),
        None => None,
    };
    let limit = match params
        .get("pageSize")
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
    {
        None => store::DEFAULT_PAGE,
        Some(p) => p
            .parse::<u64>()
            .map_err(|e| bad(format!("invalid pageSize `{p}`: {e}")))?
            .min(store::MAX_PAGE as u64) as usize,
    };
    let forward = match params.get("ascending").map(String::as_str) {
        None | Some("") | Some("true") => true,
        Some(_) => false,
    };
    let mut query = if hashes.is_empty() {
        let content_topics = list(params.get("contentTopics"));
        let pubsub_topic = match params
            .get("pubsubTopic")
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
        {
            Some(t) => Some(t.parse::<PubsubTopic>().map_err(|e| bad(e.to_string()))?),
            None => autoshard(api, &content_topics)?,
        };
        let start = time(params.get("startTime"))?;
        // nwaku's end is inclusive, the archive's exclusive.
        let end = time(params.get("endTime"))?.map(|e| e.saturating_add(1));
        store::Query::content(pubsub_topic, content_topics).with_time(start, end)
    } else {
        store::Query::hashes(hashes)
    };
    query.include_data = include_data;
    query = query
        .with_cursor(cursor)
        .with_forward(forward)
        .with_limit(limit);
    query.check().map_err(bad)?;
    Ok(query)
}

/// The shard content topics travel on, when no pubsub topic was given.
fn autoshard(api: &Api, topics: &[String]) -> Result<Option<PubsubTopic>, Response> {
    let mut shard = None;
    for topic in topics {
        let topic: ContentTopic = topic
            .parse()
            .map_err(|e: murmur_core::TopicError| bad(e.to_string()))?;
        let here = api.node.pubsub_topic(&topic);
        if shard.as_ref().is_some_and(|s| *s != here) {
            return Err(bad(
                "these content topics travel on different shards: give a pubsubTopic",
            ));
        }
        shard = Some(here);
    }
    Ok(shard)
}

/// `GET /store/v3/messages`.
pub(crate) async fn messages(
    State(api): State<Api>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = match query(&api, &params) {
        Ok(q) => q,
        Err(refusal) => return refusal,
    };
    let request_id = murmur_core::RequestId::next().to_string();
    let config = api.node.config();
    let peer = params
        .get("peerAddr")
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    let page = match peer {
        Some(peer) => {
            if !peer.contains("/p2p/") {
                return bad(format!(
                    "Failed parsing remote peer info: `{peer}` must end with /p2p/<peer id>"
                ));
            }
            api.node.query_store(&peer, query).await
        }
        None if config.store.enabled && config.store.archive => api.node.query_archive(query).await,
        None => match config.network.peers.first() {
            Some(peer) => api.node.query_store(&peer.to_string(), query).await,
            None => {
                return text(
                    StatusCode::PRECONDITION_FAILED,
                    "No suitable service peer & no discovery method",
                )
            }
        },
    };
    let page = match page {
        Ok(page) => page,
        Err(murmur_node::Error::Send(Remote::Remote { code: 429, .. })) => {
            return text(StatusCode::TOO_MANY_REQUESTS, "Request rate limit reached")
        }
        Err(murmur_node::Error::Send(Remote::Remote {
            code, description, ..
        })) => {
            return json(
                StatusCode::OK,
                &Answer {
                    request_id,
                    status_code: code,
                    status_desc: description,
                    messages: Vec::new(),
                    pagination_cursor: None,
                },
            )
        }
        Err(murmur_node::Error::Send(Remote::Address { address, reason })) => {
            return bad(format!(
                "Failed parsing remote peer info: `{address}`: {reason}"
            ))
        }
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("No history response received: {e}"),
            )
        }
    };
    json(StatusCode::OK, &answer(request_id, page))
}

fn answer(request_id: String, page: Page) -> Answer {
    Answer {
        request_id,
        status_code: 200,
        status_desc: "OK".to_owned(),
        messages: page
            .messages
            .into_iter()
            .map(|m| Entry {
                message_hash: m.hash.to_string(),
                message: m.message.as_ref().map(|w| Outgoing::new(w, Shape::Store)),
                pubsub_topic: m
                    .message
                    .as_ref()
                    .and(m.pubsub_topic.as_ref())
                    .map(ToString::to_string),
            })
            .collect(),
        pagination_cursor: page.cursor.map(|c| c.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nim_booleans() {
        for (v, b) in [
            ("true", true),
            ("YES", true),
            ("1", true),
            ("off", false),
            ("n", false),
        ] {
            assert_eq!(boolean(v), Some(b), "{v}");
        }
        assert_eq!(boolean("maybe"), None);
    }
}
