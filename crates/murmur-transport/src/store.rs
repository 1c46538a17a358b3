//! 13/WAKU2-STORE v3: the server answers from the persistence stage, the
//! client asks other store nodes (murmur, nwaku), and falls back to store v2
//! for a node that serves only that (go-waku).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::Recipient;
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::Control;
use murmur_core::{
    storage,
    store::{Criteria, Page, Query, Stored},
    transport, MessageHash, PubsubTopic,
};
use murmur_proto::{
    legacy_store as legacy_wire, protocol,
    store::{self as wire, status, KeyValue, Request, Response},
};
use prost::Message as _;

use crate::inbound::Incoming;

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new(protocol::STORE);
const PROTOCOL_V2: StreamProtocol = StreamProtocol::new(protocol::STORE_V2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const SERVICE: &str = "store";

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
    let bad = |reason: String| transport::Error::BadResponse {
        service: SERVICE,
        reason,
    };
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
            return legacy(control, peer, query, &cursors).await
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    let response = Response::decode(frame.as_slice()).map_err(|e| bad(e.to_string()))?;
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
                (Some(message), Some(topic)) => {
                    let topic = topic
                        .parse()
                        .map_err(|_| bad(format!("invalid pubsub topic {topic}")))?;
                    Stored::new(h, topic, message)
                }
                _ => Stored::hash_only(h),
            })
        })
        .collect::<Result<Vec<_>, transport::Error>>()?;
    let cursor = response.pagination_cursor.as_deref().and_then(hash);
    Ok(Page::new(messages, cursor))
}

/// Store v2 cursors this client was handed, each under the hash of the
/// message it points at: a [`Page`]'s cursor is a hash, and a v2 cursor
/// holds the server's own digest and arrival time, which no message shows.
/// The newest [`CURSORS`] are kept; an older one is an error, not a restart.
#[derive(Clone, Default)]
pub(crate) struct Cursors(Arc<Mutex<VecDeque<(PeerId, MessageHash, legacy_wire::Index)>>>);

/// Store v2 cursors kept.
const CURSORS: usize = 256;

impl Cursors {
    fn keep(&self, peer: PeerId, at: MessageHash, index: legacy_wire::Index) {
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.retain(|(p, h, _)| (*p, *h) != (peer, at));
        if kept.len() == CURSORS {
            kept.pop_front();
        }
        kept.push_back((peer, at, index));
    }

    fn get(&self, peer: PeerId, at: MessageHash) -> Option<legacy_wire::Index> {
        let kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.iter()
            .find(|(p, h, _)| (*p, *h) == (peer, at))
            .map(|(_, _, index)| index.clone())
    }
}

/// One page from a store v2 server.
async fn legacy(
    mut control: Control,
    peer: PeerId,
    query: Query,
    cursors: &Cursors,
) -> Result<Page, transport::Error> {
    let (rpc, topic) = legacy_request(&query, peer, cursors)?;
    let frame = crate::rpc::request(
        &mut control,
        peer,
        PROTOCOL_V2,
        &rpc.encode_to_vec(),
        wire::MAX_RESPONSE_LEN,
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(|e| legacy_bad(e.to_string()))?;
    legacy_page(&frame, &rpc.request_id, &query, &topic, peer, cursors)
}

fn legacy_bad(reason: String) -> transport::Error {
    transport::Error::BadResponse {
        service: SERVICE,
        reason,
    }
}

/// The v2 request for `query`. v2 answers content queries only, and its
/// entries carry no hash or pubsub topic: the query's pubsub topic, answered
/// beside the request, is needed to tell their hashes.
fn legacy_request(
    query: &Query,
    peer: PeerId,
    cursors: &Cursors,
) -> Result<(legacy_wire::HistoryRpc, PubsubTopic), transport::Error> {
    use legacy_wire::{direction, ContentFilter, HistoryQuery, HistoryRpc, PagingInfo};

    let Criteria::Content {
        pubsub_topic,
        content_topics,
        start,
        end,
    } = &query.criteria
    else {
        return Err(transport::Error::Invalid(
            "this store node serves store v2 only, which cannot look messages up by hash",
        ));
    };
    let Some(topic) = pubsub_topic else {
        return Err(transport::Error::Invalid(
            "this store node serves store v2 only: ask it with a pubsub topic",
        ));
    };
    let cursor = match query.cursor {
        None => None,
        Some(at) => Some(cursors.get(peer, at).ok_or(transport::Error::Invalid(
            "a store v2 cursor this client no longer holds (or never had): start the query again",
        ))?),
    };
    let rpc = HistoryRpc {
        request_id: murmur_core::RequestId::next().to_string(),
        query: Some(HistoryQuery {
            pubsub_topic: topic.as_str().to_owned(),
            content_filters: content_topics
                .iter()
                .map(|t| ContentFilter {
                    content_topic: t.clone(),
                })
                .collect(),
            paging_info: Some(PagingInfo {
                page_size: query.limit as u64,
                cursor,
                direction: if query.forward {
                    direction::FORWARD
                } else {
                    direction::BACKWARD
                },
            }),
            start_time: *start,
            // v2's end is inclusive, v3's exclusive.
            end_time: end.map(|e| e.saturating_sub(1)),
        }),
        response: None,
    };
    Ok((rpc, topic.clone()))
}

/// The page in a v2 response `frame` to request `id`; a cursor in it is
/// kept for the next query.
fn legacy_page(
    frame: &[u8],
    id: &str,
    query: &Query,
    topic: &PubsubTopic,
    peer: PeerId,
    cursors: &Cursors,
) -> Result<Page, transport::Error> {
    let answer = legacy_wire::HistoryRpc::decode(frame).map_err(|e| legacy_bad(e.to_string()))?;
    if answer.request_id != id {
        return Err(legacy_bad("a response to another request".to_owned()));
    }
    let response = answer
        .response
        .ok_or_else(|| legacy_bad("a frame without a response".to_owned()))?;
    if response.error != legacy_wire::error::NONE {
        let code = response.error;
        return Err(transport::Error::Remote {
            service: SERVICE,
            code: u32::try_from(code).unwrap_or(0),
            description: match code {
                legacy_wire::error::INVALID_CURSOR => "invalid cursor",
                legacy_wire::error::TOO_MANY_REQUESTS => "too many requests",
                legacy_wire::error::SERVICE_UNAVAILABLE => "service unavailable",
                _ => "store v2 error",
            }
            .to_owned(),
        });
    }
    let messages: Vec<Stored> = response
        .messages
        .into_iter()
        .map(|m| Stored::new(MessageHash::of(topic, &m), topic.clone(), m))
        .collect();
    let next = response.paging_info.and_then(|p| p.cursor);
    // The server's cursor is the last entry it read, in the direction read.
    let at = if query.forward {
        messages.last()
    } else {
        messages.first()
    };
    let cursor = match (next, at) {
        (Some(index), Some(at)) => {
            cursors.keep(peer, at.hash, index);
            Some(at.hash)
        }
        (Some(_), None) => return Err(legacy_bad("a cursor after an empty page".to_owned())),
        (None, _) => None,
    };
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

    #[test]
    fn hash_lookups_with_a_pubsub_topic_are_accepted() {
        let mut r = request();
        r.message_hashes = vec![vec![1; 32]];
        let q = to_query(&r).unwrap();
        assert!(matches!(q.criteria, Criteria::Hashes(ref h) if h.len() == 1));
    }

    mod legacy {
        use super::super::*;
        use legacy_wire::{direction, HistoryResponse, HistoryRpc, Index, PagingInfo};

        fn topic() -> PubsubTopic {
            "/waku/2/rs/1/4".parse().unwrap()
        }

        fn content() -> Query {
            Query::content(Some(topic()), vec!["/test/1/x/proto".to_owned()]).with_limit(2)
        }

        fn message(i: u8) -> murmur_core::WakuMessage {
            murmur_core::WakuMessage::new("/test/1/x/proto", vec![i]).with_timestamp(i64::from(i))
        }

        fn index(i: u8) -> Index {
            Index {
                digest: vec![i; 32],
                receiver_time: i64::from(i),
                sender_time: i64::from(i),
                pubsub_topic: topic().to_string(),
            }
        }

        fn answer(
            id: &str,
            messages: Vec<murmur_core::WakuMessage>,
            next: Option<Index>,
        ) -> Vec<u8> {
            HistoryRpc {
                request_id: id.to_owned(),
                query: None,
                response: Some(HistoryResponse {
                    messages,
                    paging_info: Some(PagingInfo {
                        page_size: 2,
                        cursor: next,
                        direction: direction::FORWARD,
                    }),
                    error: 0,
                }),
            }
            .encode_to_vec()
        }

        #[test]
        fn pages_carry_hashes_of_the_queried_topic_and_cursors_go_back_as_they_came() {
            let (peer, cursors) = (PeerId::random(), Cursors::default());
            let (rpc, _) = legacy_request(&content(), peer, &cursors).unwrap();
            let sent = rpc.query.as_ref().unwrap();
            assert_eq!(sent.pubsub_topic, "/waku/2/rs/1/4");
            assert_eq!(
                sent.paging_info.as_ref().unwrap().direction,
                direction::FORWARD
            );
            let frame = answer(
                &rpc.request_id,
                vec![message(1), message(2)],
                Some(index(2)),
            );
            let page = legacy_page(
                &frame,
                &rpc.request_id,
                &content(),
                &topic(),
                peer,
                &cursors,
            )
            .unwrap();
            assert_eq!(
                page.messages[1].hash,
                MessageHash::of(&topic(), &message(2))
            );
            assert_eq!(page.cursor, Some(page.messages[1].hash));

            // The next query sends the server's own cursor back.
            let next = content().with_cursor(page.cursor);
            let (rpc, _) = legacy_request(&next, peer, &cursors).unwrap();
            let paging = rpc.query.unwrap().paging_info.unwrap();
            assert_eq!(paging.cursor, Some(index(2)));
            // Another peer's cursor is not this one's.
            assert!(legacy_request(&next, PeerId::random(), &cursors).is_err());

            // Backward, the cursor is the oldest message of the page.
            let back = content().with_forward(false);
            let (rpc, _) = legacy_request(&back, peer, &cursors).unwrap();
            let frame = answer(
                &rpc.request_id,
                vec![message(3), message(4)],
                Some(index(3)),
            );
            let page =
                legacy_page(&frame, &rpc.request_id, &back, &topic(), peer, &cursors).unwrap();
            assert_eq!(page.cursor, Some(page.messages[0].hash));
            // The last page has none.
            let frame = answer(&rpc.request_id, vec![message(5)], None);
            let page =
                legacy_page(&frame, &rpc.request_id, &back, &topic(), peer, &cursors).unwrap();
            assert_eq!(page.cursor, None);
        }

        #[test]
        fn what_v2_cannot_answer_and_bad_answers_are_errors() {
            let (peer, cursors) = (PeerId::random(), Cursors::default());
            for query in [
                Query::hashes(vec![MessageHash([0; 32])]),
                Query::content(None, vec!["/test/1/x/proto".to_owned()]),
                content().with_cursor(Some(MessageHash([1; 32]))),
            ] {
                assert!(matches!(
                    legacy_request(&query, peer, &cursors),
                    Err(transport::Error::Invalid(_))
                ));
            }
            let (rpc, _) = legacy_request(&content(), peer, &cursors).unwrap();
            let id = rpc.request_id.as_str();
            let page = |frame: &[u8]| legacy_page(frame, id, &content(), &topic(), peer, &cursors);
            assert!(page(&answer("another", vec![], None)).is_err());
            assert!(page(&answer(id, vec![], Some(index(1)))).is_err());
            assert!(page(b"\xff\xff garbage").is_err());
            let refused = HistoryRpc {
                request_id: id.to_owned(),
                query: None,
                response: Some(HistoryResponse {
                    error: legacy_wire::error::INVALID_CURSOR,
                    ..Default::default()
                }),
            };
            assert!(matches!(
                page(&refused.encode_to_vec()),
                Err(transport::Error::Remote { code: 1, .. })
            ));
        }

        #[test]
        fn only_the_newest_cursors_are_kept() {
            let (peer, cursors) = (PeerId::random(), Cursors::default());
            let at = |i: usize| {
                let mut h = [0; 32];
                h[..8].copy_from_slice(&(i as u64).to_be_bytes());
                MessageHash(h)
            };
            for i in 0..=CURSORS {
                cursors.keep(peer, at(i), index(1));
            }
            assert!(cursors.get(peer, at(0)).is_none(), "the oldest went");
            assert!(cursors.get(peer, at(1)).is_some());
            assert!(cursors.get(peer, at(CURSORS)).is_some());
        }
    }
}
