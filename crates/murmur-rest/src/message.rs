//! Waku messages in nwaku's REST JSON: base64 (standard alphabet, padded)
//! bytes, integer nanosecond timestamps, optional fields left out.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use murmur_core::WakuMessage;
use serde::{Deserialize, Serialize};

/// A message as a request carries it (`RelayWakuMessage`): `payload` and
/// `contentTopic` are required and not empty; a duplicated field is refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Incoming {
    payload: Option<String>,
    content_topic: Option<String>,
    version: Option<u32>,
    timestamp: Option<i64>,
    meta: Option<String>,
    ephemeral: Option<bool>,
    proof: Option<String>,
}

impl Incoming {
    /// The message it describes; the reason it is not one otherwise. A
    /// missing or zero timestamp is now, as nwaku stamps it.
    pub(crate) fn into_message(self) -> Result<WakuMessage, String> {
        let content_topic = self
            .content_topic
            .filter(|t| !t.trim().is_empty())
            .ok_or("contentTopic is required and must not be empty")?;
        let payload = decode("payload", self.payload.as_deref())?.unwrap_or_default();
        if payload.is_empty() {
            return Err("payload is required and must not be empty".to_owned());
        }
        let mut message = WakuMessage::new(content_topic, payload);
        message.version = Some(self.version.unwrap_or(0));
        message.timestamp = Some(match self.timestamp {
            Some(ts) if ts != 0 => ts,
            _ => murmur_core::now_nanos(),
        });
        message.meta = decode("meta", self.meta.as_deref())?
            .filter(|m| !m.is_empty())
            .map(Into::into);
        message.rate_limit_proof = decode("proof", self.proof.as_deref())?
            .filter(|p| !p.is_empty())
            .map(Into::into);
        message.ephemeral = self.ephemeral.filter(|e| *e);
        Ok(message)
    }
}

fn decode(field: &str, value: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    value
        .map(|v| {
            STANDARD
                .decode(v)
                .map_err(|e| format!("{field} is not base64 (standard alphabet, padded): {e}"))
        })
        .transpose()
}

/// Which of nwaku's answer shapes a message takes: they differ only in
/// `proof`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// Relay GET: `proof` always there, `""` when empty.
    Relay,
    /// Store: `proof` only when not empty.
    Store,
    /// Filter GET: no `proof`.
    Filter,
}

/// A message as an answer carries it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Outgoing {
    payload: String,
    content_topic: String,
    version: u32,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<String>,
    ephemeral: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
}

impl Outgoing {
    pub(crate) fn new(message: &WakuMessage, shape: Shape) -> Self {
        let proof = message
            .rate_limit_proof
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(|p| STANDARD.encode(p));
        Self {
            payload: STANDARD.encode(&message.payload),
            content_topic: message.content_topic.clone(),
            version: message.version.unwrap_or(0),
            timestamp: message.timestamp.unwrap_or(0),
            meta: message
                .meta
                .as_ref()
                .filter(|m| !m.is_empty())
                .map(|m| STANDARD.encode(m)),
            ephemeral: message.ephemeral.unwrap_or(false),
            proof: match shape {
                Shape::Relay => Some(proof.unwrap_or_default()),
                Shape::Store => proof,
                Shape::Filter => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(json: &str) -> Result<WakuMessage, String> {
        serde_json::from_str::<Incoming>(json)
            .map_err(|e| e.to_string())?
            .into_message()
    }

    #[test]
    fn a_message_reads_back_as_it_was_written() {
        let m = incoming(
            r#"{"payload":"aGVsbG8=","contentTopic":"/a/1/b/proto","version":1,"timestamp":5,"meta":"AQI=","ephemeral":true}"#,
        )
        .unwrap();
        assert_eq!(&m.payload[..], b"hello");
        assert_eq!(m.timestamp, Some(5));
        assert_eq!(m.meta.as_deref(), Some(&[1u8, 2][..]));
        let out = serde_json::to_value(Outgoing::new(&m, Shape::Relay)).unwrap();
        assert_eq!(out["payload"], "aGVsbG8=");
        assert_eq!(out["proof"], "");
        assert_eq!(out["ephemeral"], true);
        let store = serde_json::to_value(Outgoing::new(&m, Shape::Store)).unwrap();
        assert!(store.get("proof").is_none());
    }

    #[test]
    fn what_nwaku_refuses_is_refused_with_a_reason() {
        for (json, why) in [
            (r#"{"contentTopic":"/a/1/b/proto"}"#, "payload"),
            (r#"{"payload":"","contentTopic":"/a/1/b/proto"}"#, "payload"),
            (r#"{"payload":"aGk="}"#, "contentTopic"),
            (r#"{"payload":"aGk=","contentTopic":"  "}"#, "contentTopic"),
            (
                r#"{"payload":"not base64!","contentTopic":"/a/1/b/p"}"#,
                "base64",
            ),
            (r#"{"payload":"aGk","contentTopic":"/a/1/b/p"}"#, "base64"),
            (
                r#"{"payload":"aGk=","payload":"aGk=","contentTopic":"/a/1/b/p"}"#,
                "duplicate",
            ),
            (
                r#"{"payload":"aGk=","contentTopic":"/a/1/b/p","version":-1}"#,
                "invalid",
            ),
        ] {
            let e = incoming(json).unwrap_err();
            assert!(e.contains(why), "{json}: {e}");
        }
    }

    #[test]
    fn no_timestamp_or_zero_is_now() {
        let before = murmur_core::now_nanos();
        let m = incoming(r#"{"payload":"aGk=","contentTopic":"/a/1/b/p","timestamp":0}"#).unwrap();
        assert!(m.timestamp.unwrap() >= before);
    }
}
