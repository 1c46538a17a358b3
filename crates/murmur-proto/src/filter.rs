//! 12/WAKU2-FILTER v2: `/vac/waku/filter-subscribe/2.0.0-beta1` (client to
//! service) and `/vac/waku/filter-push/2.0.0-beta1` (service to client).

use crate::WakuMessage;

/// The largest subscribe request a service reads (nwaku: 10 x 150 KiB + 64 KiB).
pub const MAX_REQUEST_LEN: usize = 10 * crate::MAX_WAKU_MESSAGE_LEN + 64 * 1024;
/// The largest push a client reads.
pub const MAX_PUSH_LEN: usize = crate::MAX_WAKU_MESSAGE_LEN + 16 * 1024;

/// `filter_subscribe_type`.
pub mod kind {
    /// Keep-alive; succeeds only if the peer has a subscription.
    pub const PING: i32 = 0;
    /// Add criteria.
    pub const SUBSCRIBE: i32 = 1;
    /// Remove criteria.
    pub const UNSUBSCRIBE: i32 = 2;
    /// Remove every subscription of the peer.
    pub const UNSUBSCRIBE_ALL: i32 = 3;
}

/// Status codes, as nwaku uses them.
pub mod status {
    /// Done.
    pub const OK: u32 = 200;
    /// Missing criteria, too many content topics.
    pub const BAD_REQUEST: u32 = 400;
    /// Ping or unsubscribe without a subscription.
    pub const NOT_FOUND: u32 = 404;
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// Too many subscribers, or too many criteria for this one.
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

/// A subscribe, unsubscribe or ping request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeRequest {
    /// Echoed in the response.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// One of [`kind`]; absent means ping.
    #[prost(int32, tag = "2")]
    pub filter_subscribe_type: i32,
    /// The criteria's pubsub topic.
    #[prost(string, optional, tag = "10")]
    pub pubsub_topic: Option<String>,
    /// The criteria's content topics.
    #[prost(string, repeated, tag = "11")]
    pub content_topics: Vec<String>,
}

/// The answer to a [`SubscribeRequest`]. The status code is always written.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeResponse {
    /// The request's id, or `N/A`.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// See [`status`].
    #[prost(uint32, optional, tag = "10")]
    pub status_code: Option<u32>,
    /// `OK`, or what was wrong.
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
}

/// One message pushed to a subscriber. The pubsub topic is always set:
/// js-waku drops pushes without it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessagePush {
    /// The message.
    #[prost(message, optional, tag = "1")]
    pub waku_message: Option<WakuMessage>,
    /// Where it was published.
    #[prost(string, optional, tag = "2")]
    pub pubsub_topic: Option<String>,
}
