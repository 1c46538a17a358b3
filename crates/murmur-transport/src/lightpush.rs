//! Lightpush v3 and v2: light clients hand us messages to relay.

use std::time::Duration;

use actix::Recipient;
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::Control;

use crate::inbound::Incoming;
use murmur_core::{storage, transport, ContentTopic, PubsubTopic, Sharding, WakuMessage};
use murmur_proto::{
    lightpush::{self as wire, status, PushRequest, PushResponse, PushRpc, Request, Response},
    protocol, MAX_WAKU_MESSAGE_LEN,
};
use prost::Message as _;

use crate::services::Swarm;

pub(crate) const V3: StreamProtocol = StreamProtocol::new(protocol::LIGHTPUSH);
pub(crate) const V2: StreamProtocol = StreamProtocol::new(protocol::LIGHTPUSH_V2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a push came to, whichever version asked.
struct Outcome {
    code: u32,
    description: String,
    relay_peers: u32,
}

impl Outcome {
    fn fail(code: u32, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            relay_peers: 0,
        }
    }
}

/// Everything a push needs from the node.
#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) relay: Swarm,
    pub(crate) archive: Option<Recipient<storage::SaveAll>>,
    pub(crate) sharding: Sharding,
}

impl Service {
    /// Validates, relays, archives, then hands the message to the local pipeline.
    async fn push(&self, pubsub_topic: Option<&str>, message: Option<WakuMessage>) -> Outcome {
        let Some(mut message) = message else {
            return Outcome::fail(status::BAD_REQUEST, "no message");
        };
        let topic = match pubsub_topic.filter(|t| !t.is_empty()) {
            Some(t) => match t.parse::<PubsubTopic>() {
                Ok(t) if t.shard().cluster == self.sharding.cluster => t,
                Ok(_) => return Outcome::fail(status::UNSUPPORTED_PUBSUB_TOPIC, "another cluster"),
                Err(_) => return Outcome::fail(status::BAD_REQUEST, "invalid pubsub topic"),
            },
            None => match message.content_topic.parse::<ContentTopic>() {
                Ok(ct) => self.sharding.pubsub_topic(&ct),
                Err(_) => return Outcome::fail(status::INVALID_MESSAGE, "invalid content topic"),
            },
        };
        message.timestamp.get_or_insert_with(murmur_core::now_nanos);
        let len = message.encoded_len();
        if len > MAX_WAKU_MESSAGE_LEN {
            return Outcome::fail(status::PAYLOAD_TOO_LARGE, "message over 150 KiB");
        }
        if let Err(e) = transport::validate(&message, len) {
            return Outcome::fail(status::INVALID_MESSAGE, e.to_string());
        }
        let (delivery, peers) = match self.relay.publish(topic, message).await {
            Ok(published) => published,
            Err(transport::Error::NoPeers(_)) => {
                return Outcome::fail(status::NO_PEERS_TO_RELAY, "no peers to relay to")
            }
            Err(transport::Error::Duplicate(_)) => {
                return Outcome::fail(status::INVALID_MESSAGE, "duplicate message")
            }
            // Every relay peer's send queue is full, or the swarm is: the
            // client's to slow down, as lightpush says it.
            Err(transport::Error::Busy) => {
                return Outcome::fail(status::TOO_MANY_REQUESTS, "too many requests")
            }
            Err(e) => return Outcome::fail(status::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        if let Some(archive) = &self.archive {
            if murmur_core::store::archivable(&delivery.message) {
                match archive.send(storage::SaveAll(vec![delivery.clone()])).await {
                    Ok(Ok(_)) => {}
                    _ => {
                        return Outcome::fail(
                            status::INTERNAL_SERVER_ERROR,
                            "relayed, but the archive failed",
                        )
                    }
                }
            }
        }
        self.relay.deliver_locally(delivery).await;
        Outcome {
            code: status::OK,
            description: "OK".to_owned(),
            relay_peers: u32::try_from(peers.max(1)).unwrap_or(u32::MAX),
        }
    }
}

/// Serves one lightpush version on `incoming`.
pub(crate) async fn serve(incoming: Incoming, service: Service, v2: bool) {
    crate::rpc::serve(incoming, wire::MAX_REQUEST_LEN, Server { service, v2 }).await;
}

struct Server {
    service: Service,
    v2: bool,
}

impl Server {
    fn respond(&self, id: String, outcome: &Outcome) -> Vec<u8> {
        if self.v2 {
            v2_response(id, outcome)
        } else {
            v3_response(id, outcome)
        }
    }

    fn request_id(&self, frame: &[u8]) -> String {
        let id = if self.v2 {
            PushRpc::decode(frame).map(|r| r.request_id)
        } else {
            Request::decode(frame).map(|r| r.request_id)
        };
        crate::rpc::echo_id(&id.unwrap_or_default())
    }
}

impl crate::rpc::Answer for Server {
    async fn answer(
        &self,
        peer: PeerId,
        request: Result<Vec<u8>, murmur_proto::Error>,
    ) -> Option<Vec<u8>> {
        let frame = match request {
            Ok(frame) => frame,
            Err(murmur_proto::Error::TooLarge { .. }) => {
                let outcome = Outcome::fail(status::PAYLOAD_TOO_LARGE, "request too large");
                return Some(self.respond(crate::rpc::echo_id(""), &outcome));
            }
            Err(_) => return None,
        };
        let malformed = Outcome::fail(status::BAD_REQUEST, "malformed request");
        let response = if self.v2 {
            match PushRpc::decode(frame.as_slice()) {
                Ok(rpc) => {
                    let (topic, message) = rpc
                        .request
                        .map(|r| (Some(r.pubsub_topic), r.message))
                        .unwrap_or((None, None));
                    let outcome = self.service.push(topic.as_deref(), message).await;
                    self.respond(crate::rpc::echo_id(&rpc.request_id), &outcome)
                }
                Err(_) => self.respond(crate::rpc::echo_id(""), &malformed),
            }
        } else {
            match Request::decode(frame.as_slice()) {
                Ok(req) => {
                    let outcome = self
                        .service
                        .push(req.pubsub_topic.as_deref(), req.message)
                        .await;
                    self.respond(crate::rpc::echo_id(&req.request_id), &outcome)
                }
                Err(_) => self.respond(crate::rpc::echo_id(""), &malformed),
            }
        };
        tracing::debug!(%peer, v2 = self.v2, "lightpush answered");
        Some(response)
    }

    fn busy(&self, request: &[u8]) -> Option<Vec<u8>> {
        let outcome = Outcome::fail(status::TOO_MANY_REQUESTS, "too many requests");
        Some(self.respond(self.request_id(request), &outcome))
    }
}

fn v3_response(request_id: String, outcome: &Outcome) -> Vec<u8> {
    Response {
        request_id,
        status_code: Some(outcome.code),
        status_desc: Some(outcome.description.clone()),
        relay_peer_count: (outcome.code == status::OK).then_some(outcome.relay_peers),
    }
    .encode_to_vec()
}

fn v2_response(request_id: String, outcome: &Outcome) -> Vec<u8> {
    PushRpc {
        request_id,
        request: None,
        response: Some(PushResponse {
            is_success: Some(outcome.code == status::OK),
            info: Some(outcome.description.clone()),
        }),
    }
    .encode_to_vec()
}

/// Pushes `message` through `peer`: v3, or v2 if the peer speaks only that
/// (go-waku). Answers how many relay peers it reached (v2 does not say: 1).
pub(crate) async fn request(
    mut control: Control,
    peer: PeerId,
    topic: PubsubTopic,
    message: WakuMessage,
    version: Version,
) -> Result<u32, transport::Error> {
    let bad = |reason: String| transport::Error::BadResponse {
        service: "lightpush",
        reason,
    };
    if version == Version::V3 {
        let request = Request {
            request_id: murmur_core::RequestId::next().to_string(),
            pubsub_topic: Some(topic.as_str().to_owned()),
            message: Some(message.clone()),
        };
        match crate::rpc::request(
            &mut control,
            peer,
            V3,
            &request.encode_to_vec(),
            wire::MAX_RESPONSE_LEN,
            REQUEST_TIMEOUT,
        )
        .await
        {
            Ok(frame) => {
                let response =
                    Response::decode(frame.as_slice()).map_err(|e| bad(e.to_string()))?;
                return match response.status_code {
                    Some(status::OK) => Ok(response.relay_peer_count.unwrap_or(0)),
                    code => Err(transport::Error::Remote {
                        service: "lightpush",
                        code: code.unwrap_or(0),
                        description: response.status_desc.unwrap_or_default(),
                    }),
                };
            }
            Err(crate::rpc::Failure::Unsupported) => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    let request = PushRpc {
        request_id: murmur_core::RequestId::next().to_string(),
        request: Some(PushRequest {
            pubsub_topic: topic.as_str().to_owned(),
            message: Some(message),
        }),
        response: None,
    };
    let frame = crate::rpc::request(
        &mut control,
        peer,
        V2,
        &request.encode_to_vec(),
        wire::MAX_RESPONSE_LEN,
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(|e| bad(e.to_string()))?;
    let response = PushRpc::decode(frame.as_slice())
        .map_err(|e| bad(e.to_string()))?
        .response
        .ok_or_else(|| bad("no response in the reply".to_owned()))?;
    if response.is_success == Some(true) {
        Ok(1)
    } else {
        Err(transport::Error::Remote {
            service: "lightpush",
            code: 0,
            description: response.info.unwrap_or_default(),
        })
    }
}

/// Which lightpush a client speaks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `/vac/waku/lightpush/3.0.0`, falling back to v2 if the peer lacks it.
    V3,
    /// `/vac/waku/lightpush/2.0.0-beta1` only (go-waku).
    V2,
}
