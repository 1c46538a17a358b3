//! 13/WAKU2-STORE v2beta4 (`/vac/waku/store/2.0.0-beta4`), the store that
//! go-waku v0.10.0 still serves (it has no store v3 server). Client side
//! only: murmur serves v3.

use crate::WakuMessage;

/// Where a page ends: opaque to a client, which sends it back as it came.
/// The server's own digest and arrival time are in it, so it cannot be
/// made from a message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Index {
    /// The server's digest of the message.
    #[prost(bytes = "vec", tag = "1")]
    pub digest: Vec<u8>,
    /// When the server received it, Unix nanoseconds.
    #[prost(sint64, tag = "2")]
    pub receiver_time: i64,
    /// The message's own timestamp.
    #[prost(sint64, tag = "3")]
    pub sender_time: i64,
    /// Its pubsub topic.
    #[prost(string, tag = "4")]
    pub pubsub_topic: String,
}

/// Page size, cursor and direction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PagingInfo {
    /// Messages per page (go-waku caps it at 100).
    #[prost(uint64, tag = "1")]
    pub page_size: u64,
    /// Continue after this entry.
    #[prost(message, optional, tag = "2")]
    pub cursor: Option<Index>,
    /// [`direction::BACKWARD`] or [`direction::FORWARD`].
    #[prost(int32, tag = "3")]
    pub direction: i32,
}

/// Values of [`PagingInfo::direction`].
pub mod direction {
    /// Newest first (the default).
    pub const BACKWARD: i32 = 0;
    /// Oldest first.
    pub const FORWARD: i32 = 1;
}

/// One content topic to match.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContentFilter {
    /// The content topic.
    #[prost(string, tag = "1")]
    pub content_topic: String,
}

/// A query. Field 1 is reserved.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryQuery {
    /// Only this pubsub topic, if set.
    #[prost(string, tag = "2")]
    pub pubsub_topic: String,
    /// At most 10 (go-waku).
    #[prost(message, repeated, tag = "3")]
    pub content_filters: Vec<ContentFilter>,
    /// Paging.
    #[prost(message, optional, tag = "4")]
    pub paging_info: Option<PagingInfo>,
    /// Unix nanoseconds, inclusive.
    #[prost(sint64, optional, tag = "5")]
    pub start_time: Option<i64>,
    /// Unix nanoseconds, inclusive.
    #[prost(sint64, optional, tag = "6")]
    pub end_time: Option<i64>,
}

/// A page of messages, oldest first whatever the direction. Field 1 is
/// reserved.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryResponse {
    /// The messages.
    #[prost(message, repeated, tag = "2")]
    pub messages: Vec<WakuMessage>,
    /// The cursor of the next page, if there is one.
    #[prost(message, optional, tag = "3")]
    pub paging_info: Option<PagingInfo>,
    /// [`error::NONE`] or why not.
    #[prost(int32, tag = "4")]
    pub error: i32,
}

/// Values of [`HistoryResponse::error`].
pub mod error {
    /// Answered.
    pub const NONE: i32 = 0;
    /// The cursor is not one the server knows.
    pub const INVALID_CURSOR: i32 = 1;
    /// Rate-limited.
    pub const TOO_MANY_REQUESTS: i32 = 429;
    /// The server cannot answer now.
    pub const SERVICE_UNAVAILABLE: i32 = 503;
}

/// The frame both ways: a query out, a response back with the same id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryRpc {
    /// Echoed in the response; must not be empty.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// The query, on the way out.
    #[prost(message, optional, tag = "2")]
    pub query: Option<HistoryQuery>,
    /// The response, on the way back.
    #[prost(message, optional, tag = "3")]
    pub response: Option<HistoryResponse>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn a_query_has_the_field_numbers_and_zigzag_times_of_v2beta4() {
        let rpc = HistoryRpc {
            request_id: "r".into(),
            query: Some(HistoryQuery {
                pubsub_topic: "t".into(),
                content_filters: vec![ContentFilter {
                    content_topic: "c".into(),
                }],
                paging_info: Some(PagingInfo {
                    page_size: 2,
                    cursor: None,
                    direction: direction::FORWARD,
                }),
                start_time: Some(-1),
                end_time: Some(1),
            }),
            response: None,
        };
        let query = [
            0x12, 0x01, b't', // pubsub_topic = 2
            0x1a, 0x03, 0x0a, 0x01, b'c', // content_filters = 3
            0x22, 0x04, 0x08, 0x02, 0x18, 0x01, // paging_info = 4
            0x28, 0x01, // start_time = 5, zigzag(-1) = 1
            0x30, 0x02, // end_time = 6, zigzag(1) = 2
        ];
        let mut expected = vec![0x0a, 0x01, b'r', 0x12, query.len() as u8];
        expected.extend(query);
        assert_eq!(rpc.encode_to_vec(), expected);
        assert_eq!(HistoryRpc::decode(expected.as_slice()).unwrap(), rpc);
    }
}
