//! 13/WAKU2-STORE v3: the server answers from the persistence stage, the
//! client asks other store nodes (murmur, nwaku), and falls back to store v2
//! for a node that serves only that (go-waku).

use std::time::Duration;

use actix::Recipient;
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::Control;
use murmur_core::{
    storage,
    store::{Criteria, Page, Query, Stored},
    transport, MessageHash, PubsubTopic,
};
use murmur_proto::{
    protocol,
    store::{self as wire, status, KeyValue, Request, Response},
};
use prost::Message as _;

use crate::inbound::Incoming;

mod legacy;

pub(crate) use legacy::Cursors;

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new(protocol::STORE);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const SERVICE: &str = "store";

/// Whether a message a store node returned goes on: one no relay peer
/// would accept goes no further from a store node either (a filter push
/// is checked the same way). Both store clients, v3 and v2, ask this.
fn relayable(message: &murmur_core::WakuMessage) -> bool {
    transport::validate(message, message.encoded_len()).is_ok()
}

/// A store node's answer that breaks the protocol (either version).
fn bad(reason: String) -> transport::Error {
    transport::Error::BadResponse {
        service: SERVICE,
        reason,
    }
}

/// Answers store queries from `storage`.
pub(crate) async fn serve(incoming: Incoming, storage: Recipient<storage::Query>) {
    crate::rpc::serve(incoming, wire::MAX_REQUEST_LEN, Server(storage)).await;
}

struct Server(Recipient<storage::Query>);

impl crate::rpc::Answer for Server {
    async fn answer(
        &self,
        peer: PeerId,
        request: Result<Vec<u8>, murmur_proto::Error>,
    ) -> Option<Vec<u8>> {
        let response = match request {
            Ok(frame) => answer(&frame, &self.0).await,
            Err(_) => error(
                crate::rpc::echo_id(""),
                status::BAD_REQUEST,
                "unreadable request",
            ),
        };
        tracing::debug!(
            %peer,
            status = ?response.status_code,
            messages = response.messages.len(),
            "store query answered"
        );
        Some(response.encode_to_vec())
    }

    fn busy(&self, request: &[u8]) -> Option<Vec<u8>> {
        let id = Request::decode(request)
            .map(|r| r.request_id)
            .unwrap_or_default();
        let response = error(
            crate::rpc::echo_id(&id),
            status::TOO_MANY_REQUESTS,
            "too many requests",
        );
        Some(response.encode_to_vec())
    }
}

async fn answer(frame: &[u8], storage: &Recipient<storage::Query>) -> Response {
    let request = match Request::decode(frame) {
        Ok(r) => r,
        Err(_) => {
            return error(
                crate::rpc::echo_id(""),
                status::BAD_REQUEST,
                "malformed request",
            )
        }
    };
    let id = crate::rpc::echo_id(&request.request_id);
    let query = match to_query(&request) {
        Ok(q) => q,
        Err(reason) => return error(id, status::BAD_REQUEST, reason),
    };
    match storage.send(storage::Query(query)).await {
        Ok(Ok(page)) => Response {
            request_id: id,
            status_code: Some(status::OK),
            status_desc: Some("OK".to_owned()),
            messages: page
                .messages
                .into_iter()
                .map(|m| KeyValue {
                    message_hash: Some(m.hash.as_bytes().to_vec()),
                    message: m.message,
                    pubsub_topic: m.pubsub_topic.map(String::from),
                })
                .collect(),
            pagination_cursor: page.cursor.map(|c| c.as_bytes().to_vec()),
        },
        Ok(Err(storage::Error::BadQuery(reason))) => error(id, status::BAD_REQUEST, reason),
        Ok(Err(storage::Error::UnknownCursor(_))) => {
            error(id, status::BAD_REQUEST, "unknown pagination cursor")
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "store query failed");
            error(
                id,
                status::SERVICE_UNAVAILABLE,
                "the archive is unavailable",
            )
        }
        Err(_) => error(
            id,
            status::SERVICE_UNAVAILABLE,
            "the archive is unavailable",
        ),
    }
}

fn error(request_id: String, code: u32, description: &str) -> Response {
    Response {
        request_id,
        status_code: Some(code),
        status_desc: Some(description.to_owned()),
        messages: Vec::new(),
        pagination_cursor: None,
    }
}

fn hash(bytes: &[u8]) -> Option<MessageHash> {
    <[u8; 32]>::try_from(bytes).ok().map(MessageHash)
}

/// The request as a query; the error is a 400's description.
fn to_query(request: &Request) -> Result<Query, &'static str> {
    let mut query = if request.message_hashes.is_empty() {
        let topic = match &request.pubsub_topic {
            Some(t) => Some(
                t.parse::<PubsubTopic>()
                    .map_err(|_| "invalid pubsub topic")?,
            ),
            None => None,
        };
        Query::content(topic, request.content_topics.clone())
            .with_time(request.time_start, request.time_end)
    } else {
        // js-waku also sends its decoder's pubsub topic with a hash lookup: ignored.
        let hashes = request
            .message_hashes
            .iter()
            .map(|h| hash(h).ok_or("message hashes must be 32 bytes"))
            .collect::<Result<Vec<_>, _>>()?;
        Query::hashes(hashes)
    };
    query.include_data = request.include_data;
    query = query.with_forward(request.pagination_forward).with_limit(
        request
            .pagination_limit
            .map_or(0, |l| usize::try_from(l).unwrap_or(usize::MAX)),
    );
    if let Some(cursor) = &request.pagination_cursor {
        let cursor = hash(cursor).ok_or("the cursor must be 32 bytes")?;
        if cursor.0 == [0; 32] {
            return Err("the cursor must not be all zeros");
        }
        query = query.with_cursor(Some(cursor));
    }
    query.check()?;
    Ok(query)
}

/// Asks `peer` for one page: with store v3, or with store v2 if that is all
/// it serves.
pub(crate) async fn request(
    mut control: Control,
    peer: PeerId,
    query: Query,
    cursors: Cursors,
) -> Result<Page, transport::Error> {
    let id = murmur_core::RequestId::next().to_string();
    let mut request = Request {
        request_id: id.clone(),
        include_data: query.include_data,
        pagination_forward: query.forward,
        pagination_limit: Some(query.limit as u64),
        pagination_cursor: query.cursor.map(|c| c.as_bytes().to_vec()),
        ..Request::default()
    };
    match &query.criteria {
        Criteria::Content {
            pubsub_topic,
            content_topics,
            start,
            end,
        } => {
            request.pubsub_topic = pubsub_topic.as_ref().map(|t| t.as_str().to_owned());
            request.content_topics = content_topics.clone();
            request.time_start = *start;
            request.time_end = *end;
        }
        Criteria::Hashes(hashes) => {
            request.message_hashes = hashes.iter().map(|h| h.as_bytes().to_vec()).collect();
        }
        _ => {
            return Err(transport::Error::Invalid(
                "criteria this client cannot send",
            ))
        }
    }
    let frame = match crate::rpc::request(
        &mut control,
        peer,
        PROTOCOL,
        &request.encode_to_vec(),
        wire::MAX_RESPONSE_LEN,
        REQUEST_TIMEOUT,
    )
    .await
    {
        Ok(frame) => frame,
        Err(crate::rpc::Failure::Unsupported) => {
            return legacy::request(control, peer, query, &cursors).await
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    read_page(&frame)
}

/// A store v3 response as a page: entries relay would refuse are dropped
/// (`relayable`), the cursor stays as the server gave it.
fn read_page(frame: &[u8]) -> Result<Page, transport::Error> {
    let response = Response::decode(frame).map_err(|e| bad(e.to_string()))?;
    let code = response.status_code.unwrap_or(0);
    if code != status::OK {
        return Err(transport::Error::Remote {
            service: SERVICE,
            code,
            description: response.status_desc.unwrap_or_default(),
        });
    }
    let messages = response
        .messages
        .into_iter()
        .map(|kv| {
            let h = kv
                .message_hash
                .as_deref()
                .and_then(hash)
                .ok_or_else(|| bad("an entry without a 32-byte hash".to_owned()))?;
            Ok(match (kv.message, kv.pubsub_topic) {
                (Some(message), Some(_)) if !relayable(&message) => None,
                (Some(message), Some(topic)) => {
                    let topic = topic
                        .parse()
                        .map_err(|_| bad(format!("invalid pubsub topic {topic}")))?;
                    Some(Stored::new(h, topic, message))
                }
                _ => Some(Stored::hash_only(h)),
            })
        })
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>, transport::Error>>()?;
    let cursor = response.pagination_cursor.as_deref().and_then(hash);
    Ok(Page::new(messages, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            request_id: "r".into(),
            pubsub_topic: Some("/waku/2/rs/1/0".into()),
            content_topics: vec!["/a/1/b/c".into()],
            ..Request::default()
        }
    }

    #[test]
    fn requests_become_queries() {
        let q = to_query(&request()).unwrap();
        assert!(!q.forward, "absent pagination_forward means backward");
        assert_eq!(q.limit, 20);
        let mut r = request();
        r.pagination_limit = Some(1000);
        r.pagination_forward = true;
        let q = to_query(&r).unwrap();
        assert_eq!((q.limit, q.forward), (100, true));
    }

    #[test]
    fn bad_requests_get_a_reason() {
        let mut r = request();
        r.content_topics = (0..11).map(|i| format!("/a/{i}/b/c")).collect();
        assert!(to_query(&r).is_err());
        let mut r = request();
        r.message_hashes = vec![vec![1; 31]];
        assert_eq!(to_query(&r).unwrap_err(), "message hashes must be 32 bytes");
        let mut r = request();
        r.message_hashes = vec![vec![1; 32]; 101];
        assert!(to_query(&r).is_err());
        let mut r = request();
        r.pagination_cursor = Some(vec![0; 32]);
        assert!(to_query(&r).is_err());
        let mut r = request();
        r.pubsub_topic = Some("/waku/2/default-waku/proto".into());
        assert_eq!(to_query(&r).unwrap_err(), "invalid pubsub topic");
    }

    /// What no relay peer would take goes no further from a store node;
    /// the rest of the page, and its cursor, do.
    #[test]
    fn entries_relay_would_refuse_are_dropped_and_the_cursor_stays() {
        let topic: PubsubTopic = "/waku/2/rs/1/0".parse().unwrap();
        let good = murmur_core::WakuMessage::new("/test/1/x/proto", vec![1]).with_timestamp(1);
        let bad = murmur_core::WakuMessage::new("/test/1/x\u{1}/proto", vec![2]).with_timestamp(2);
        let entry = |message: &murmur_core::WakuMessage| KeyValue {
            message_hash: Some(MessageHash::of(&topic, message).as_bytes().to_vec()),
            message: Some(message.clone()),
            pubsub_topic: Some(topic.to_string()),
        };
        let response = Response {
            request_id: "r".into(),
            status_code: Some(status::OK),
            status_desc: Some("OK".into()),
            messages: vec![entry(&good), entry(&bad)],
            pagination_cursor: Some(vec![7; 32]),
        };
        let page = read_page(&response.encode_to_vec()).unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].hash, MessageHash::of(&topic, &good));
        assert_eq!(page.cursor, Some(MessageHash([7; 32])));
    }

    #[test]
    fn hash_lookups_with_a_pubsub_topic_are_accepted() {
        let mut r = request();
        r.message_hashes = vec![vec![1; 32]];
        let q = to_query(&r).unwrap();
        assert!(matches!(q.criteria, Criteria::Hashes(ref h) if h.len() == 1));
    }
}
