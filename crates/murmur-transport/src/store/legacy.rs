//! The store v2 client (13/WAKU2-STORE v2beta4,
//! `/vac/waku/store/2.0.0-beta4`), for store nodes that serve only that:
//! go-waku v0.10.0 has no store v3 server. A sans-I/O request and page
//! reader around one exchange.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::Control;
use murmur_core::{
    store::{Criteria, Page, Query, Stored},
    transport, MessageHash, PubsubTopic,
};
use murmur_proto::{legacy_store as legacy_wire, protocol, store as wire};
use prost::Message as _;

use super::{bad, REQUEST_TIMEOUT, SERVICE};

const PROTOCOL_V2: StreamProtocol = StreamProtocol::new(protocol::STORE_V2);

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
pub(super) async fn request(
    mut control: Control,
    peer: PeerId,
    query: Query,
    cursors: &Cursors,
) -> Result<Page, transport::Error> {
    let (rpc, topic) = to_request(&query, peer, cursors)?;
    let frame = crate::rpc::request(
        &mut control,
        peer,
        PROTOCOL_V2,
        &rpc.encode_to_vec(),
        wire::MAX_RESPONSE_LEN,
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(|e| bad(e.to_string()))?;
    read_page(&frame, &rpc.request_id, &query, &topic, peer, cursors)
}

/// The v2 request for `query`. v2 answers content queries only, and its
/// entries carry no hash or pubsub topic: the query's pubsub topic, answered
/// beside the request, is needed to tell their hashes.
fn to_request(
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
fn read_page(
    frame: &[u8],
    id: &str,
    query: &Query,
    topic: &PubsubTopic,
    peer: PeerId,
    cursors: &Cursors,
) -> Result<Page, transport::Error> {
    let answer = legacy_wire::HistoryRpc::decode(frame).map_err(|e| bad(e.to_string()))?;
    if answer.request_id != id {
        return Err(bad("a response to another request".to_owned()));
    }
    let response = answer
        .response
        .ok_or_else(|| bad("a frame without a response".to_owned()))?;
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
        (Some(_), None) => return Err(bad("a cursor after an empty page".to_owned())),
        (None, _) => None,
    };
    // The cursor, the server's position, stays where the server put it.
    let messages = messages
        .into_iter()
        .filter(|s| s.message.as_ref().is_none_or(super::relayable))
        .collect();
    Ok(Page::new(messages, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn answer(id: &str, messages: Vec<murmur_core::WakuMessage>, next: Option<Index>) -> Vec<u8> {
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
        let (rpc, _) = to_request(&content(), peer, &cursors).unwrap();
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
        let page = read_page(
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
        let (rpc, _) = to_request(&next, peer, &cursors).unwrap();
        let paging = rpc.query.unwrap().paging_info.unwrap();
        assert_eq!(paging.cursor, Some(index(2)));
        // Another peer's cursor is not this one's.
        assert!(to_request(&next, PeerId::random(), &cursors).is_err());

        // Backward, the cursor is the oldest message of the page.
        let back = content().with_forward(false);
        let (rpc, _) = to_request(&back, peer, &cursors).unwrap();
        let frame = answer(
            &rpc.request_id,
            vec![message(3), message(4)],
            Some(index(3)),
        );
        let page = read_page(&frame, &rpc.request_id, &back, &topic(), peer, &cursors).unwrap();
        assert_eq!(page.cursor, Some(page.messages[0].hash));
        // The last page has none.
        let frame = answer(&rpc.request_id, vec![message(5)], None);
        let page = read_page(&frame, &rpc.request_id, &back, &topic(), peer, &cursors).unwrap();
        assert_eq!(page.cursor, None);
    }

    /// What relay would refuse (here a control character in the content
    /// topic) is dropped, as store v3 drops it; the page still goes on.
    #[test]
    fn entries_relay_would_refuse_are_dropped_and_paging_goes_on() {
        let (peer, cursors) = (PeerId::random(), Cursors::default());
        let (rpc, _) = to_request(&content(), peer, &cursors).unwrap();
        let bad = murmur_core::WakuMessage::new("/test/1/x\u{1}/proto", vec![2]).with_timestamp(2);
        let frame = answer(&rpc.request_id, vec![message(1), bad], Some(index(2)));
        let page = read_page(
            &frame,
            &rpc.request_id,
            &content(),
            &topic(),
            peer,
            &cursors,
        )
        .unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(
            page.messages[0].hash,
            MessageHash::of(&topic(), &message(1))
        );
        let next = content().with_cursor(page.cursor);
        let (rpc, _) = to_request(&next, peer, &cursors).unwrap();
        assert_eq!(
            rpc.query.unwrap().paging_info.unwrap().cursor,
            Some(index(2))
        );
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
                to_request(&query, peer, &cursors),
                Err(transport::Error::Invalid(_))
            ));
        }
        let (rpc, _) = to_request(&content(), peer, &cursors).unwrap();
        let id = rpc.request_id.as_str();
        let page = |frame: &[u8]| read_page(frame, id, &content(), &topic(), peer, &cursors);
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
