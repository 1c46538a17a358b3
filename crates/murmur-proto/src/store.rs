//! 13/WAKU2-STORE v3 (`/vac/waku/store-query/3.0.0`).

use crate::WakuMessage;

/// The largest request frame a store server reads.
pub const MAX_REQUEST_LEN: usize = 256 * 1024;
/// The largest response frame a store client reads: a full page of full-size
/// messages, with room for framing.
pub const MAX_RESPONSE_LEN: usize = 100 * (crate::MAX_WAKU_MESSAGE_LEN + 1024) + 64 * 1024;

/// One entry of a response: a message hash, and with data, the message and
/// its pubsub topic.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The 32-byte deterministic hash.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub message_hash: Option<Vec<u8>>,
    /// The message, when data was asked for.
    #[prost(message, optional, tag = "2")]
    pub message: Option<WakuMessage>,
    /// Its pubsub topic, with the message.
    #[prost(string, optional, tag = "3")]
    pub pubsub_topic: Option<String>,
}

/// A store query. `request_id` must be non-empty: nwaku refuses a request without it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// Echoed in the response.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Return messages, not only hashes.
    #[prost(bool, tag = "2")]
    pub include_data: bool,
    /// Content filter: the pubsub topic.
    #[prost(string, optional, tag = "10")]
    pub pubsub_topic: Option<String>,
    /// Content filter: the content topics.
    #[prost(string, repeated, tag = "11")]
    pub content_topics: Vec<String>,
    /// Inclusive, Unix nanoseconds.
    #[prost(sint64, optional, tag = "12")]
    pub time_start: Option<i64>,
    /// Exclusive, Unix nanoseconds.
    #[prost(sint64, optional, tag = "13")]
    pub time_end: Option<i64>,
    /// Lookup by hash.
    #[prost(bytes = "vec", repeated, tag = "20")]
    pub message_hashes: Vec<Vec<u8>>,
    /// Exclusive cursor: the hash to continue from.
    #[prost(bytes = "vec", optional, tag = "51")]
    pub pagination_cursor: Option<Vec<u8>>,
    /// Oldest first; absent means backward.
    #[prost(bool, tag = "52")]
    pub pagination_forward: bool,
    /// Page size.
    #[prost(uint64, optional, tag = "53")]
    pub pagination_limit: Option<u64>,
}

/// A store response. Status and description are always set: nwaku's client
/// refuses a response without them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// The request's id, or `N/A`.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// HTTP-like: 200, 400, 429, 503.
    #[prost(uint32, optional, tag = "10")]
    pub status_code: Option<u32>,
    /// `OK`, or what was wrong.
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
    /// The page, oldest first.
    #[prost(message, repeated, tag = "20")]
    pub messages: Vec<KeyValue>,
    /// Where the next page starts, if there is one.
    #[prost(bytes = "vec", optional, tag = "51")]
    pub pagination_cursor: Option<Vec<u8>>,
}

/// Status codes nwaku uses.
pub mod status {
    /// Success.
    pub const OK: u32 = 200;
    /// The request breaks the protocol.
    pub const BAD_REQUEST: u32 = 400;
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The store cannot answer now.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn round_trip() {
        let req = Request {
            request_id: "1".into(),
            include_data: true,
            pubsub_topic: Some("/waku/2/rs/1/0".into()),
            content_topics: vec!["/a/1/b/c".into()],
            time_start: Some(-1),
            time_end: Some(5),
            message_hashes: vec![],
            pagination_cursor: Some(vec![1; 32]),
            pagination_forward: true,
            pagination_limit: Some(20),
        };
        assert_eq!(
            Request::decode(req.encode_to_vec().as_slice()).unwrap(),
            req
        );
        let resp = Response {
            request_id: "1".into(),
            status_code: Some(200),
            status_desc: Some("OK".into()),
            messages: vec![KeyValue {
                message_hash: Some(vec![2; 32]),
                message: Some(WakuMessage::new("/a/1/b/c", vec![1]).with_timestamp(3)),
                pubsub_topic: Some("/waku/2/rs/1/0".into()),
            }],
            pagination_cursor: None,
        };
        assert_eq!(
            Response::decode(resp.encode_to_vec().as_slice()).unwrap(),
            resp
        );
    }
}
