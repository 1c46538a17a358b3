//! Lightpush: v3 (`/vac/waku/lightpush/3.0.0`) and v2
//! (`/vac/waku/lightpush/2.0.0-beta1`, for go-waku).

use crate::WakuMessage;

/// The largest request frame a lightpush server reads: one full-size message
/// and its envelope.
pub const MAX_REQUEST_LEN: usize = crate::MAX_WAKU_MESSAGE_LEN + 16 * 1024;
/// The largest response frame a client reads.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;

/// A v3 request. `request_id` is always non-empty on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// Echoed in the response.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Where to publish; absent means the message's autoshard.
    #[prost(string, optional, tag = "20")]
    pub pubsub_topic: Option<String>,
    /// What to publish.
    #[prost(message, optional, tag = "21")]
    pub message: Option<WakuMessage>,
}

/// A v3 response. The status code is always written, even on success.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// The request's id, or `N/A`.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// 200 on success; see [`status`].
    #[prost(uint32, optional, tag = "10")]
    pub status_code: Option<u32>,
    /// `OK`, or what went wrong.
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
    /// How many relay peers the message went to (at least 1 on success:
    /// nwaku's client counts 0 as a failure).
    #[prost(uint32, optional, tag = "12")]
    pub relay_peer_count: Option<u32>,
}

/// v3 status codes, as nwaku and js-waku use them.
pub mod status {
    /// Relayed.
    pub const OK: u32 = 200;
    /// The request breaks the protocol.
    pub const BAD_REQUEST: u32 = 400;
    /// The message is over 150 KiB.
    pub const PAYLOAD_TOO_LARGE: u32 = 413;
    /// The message is not valid (empty payload or content topic, long meta, duplicate).
    pub const INVALID_MESSAGE: u32 = 420;
    /// This node does not serve that pubsub topic.
    pub const UNSUPPORTED_PUBSUB_TOPIC: u32 = 421;
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// Something failed on this node.
    pub const INTERNAL_SERVER_ERROR: u32 = 500;
    /// Nobody to relay to (nwaku and js-waku use 505; the spec says 503).
    pub const NO_PEERS_TO_RELAY: u32 = 505;
}

/// v2 request body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// Where to publish.
    #[prost(string, tag = "1")]
    pub pubsub_topic: String,
    /// What to publish.
    #[prost(message, optional, tag = "2")]
    pub message: Option<WakuMessage>,
}

/// v2 response body. `is_success` is optional here so that `false` is still
/// written: nwaku's decoder requires the field.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushResponse {
    /// Whether the message was relayed.
    #[prost(bool, optional, tag = "1")]
    pub is_success: Option<bool>,
    /// `OK`, or the error.
    #[prost(string, optional, tag = "2")]
    pub info: Option<String>,
}

/// The v2 envelope, for both directions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRpc {
    /// Echoed in the response.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Set by the client.
    #[prost(message, optional, tag = "2")]
    pub request: Option<PushRequest>,
    /// Set by the server.
    #[prost(message, optional, tag = "3")]
    pub response: Option<PushResponse>,
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn v2_failure_keeps_is_success_on_the_wire() {
        let rpc = PushRpc {
            request_id: "1".into(),
            request: None,
            response: Some(PushResponse {
                is_success: Some(false),
                info: Some("no peers".into()),
            }),
        };
        let bytes = rpc.encode_to_vec();
        // field 3 (response) containing field 1 = 0
        assert!(bytes.windows(2).any(|w| w == [0x08, 0x00]));
        assert_eq!(PushRpc::decode(bytes.as_slice()).unwrap(), rpc);
    }
}
