//! Relay validation: what a relay message must be before this node
//! accepts it, as every Waku peer checks it.

use super::*;

/// Relay validation: the checks every Waku implementation applies.
pub(super) fn check(message: gossipsub::Message) -> Result<Delivery, RejectReason> {
    let topic: PubsubTopic = message
        .topic
        .as_str()
        .parse()
        .map_err(|_| RejectReason::BadTopic)?;
    let len = message.data.len();
    if len > MAX_WAKU_MESSAGE_LEN {
        return Err(RejectReason::TooLarge);
    }
    // Decoding from `Bytes` lets the payload share the received buffer.
    let waku = WakuMessage::decode(bytes::Bytes::from(message.data))
        .map_err(|_| RejectReason::Malformed)?;
    if let Some(rule) = transport::broken(&waku, len) {
        return Err(match rule {
            transport::Rule::TooLarge => RejectReason::TooLarge,
            transport::Rule::EmptyPayload => RejectReason::EmptyPayload,
            transport::Rule::EmptyContentTopic => RejectReason::EmptyContentTopic,
            transport::Rule::ControlInContentTopic => RejectReason::BadContentTopic,
            transport::Rule::MetaTooLong => RejectReason::MetaTooLong,
        });
    }
    Ok(Delivery::new(topic, waku))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gossip(topic: &str, data: Vec<u8>) -> gossipsub::Message {
        gossipsub::Message {
            source: None,
            data,
            sequence_number: None,
            topic: gossipsub::TopicHash::from_raw(topic),
        }
    }

    #[test]
    fn validation_rejects_what_waku_peers_reject() {
        let topic = "/waku/2/rs/1/0";
        let ok = WakuMessage::new("/a/1/b/c", vec![1]).encode_to_vec();
        assert!(check(gossip(topic, ok.clone())).is_ok());
        let cases = [
            (
                gossip("/waku/2/default-waku/proto", ok),
                RejectReason::BadTopic,
            ),
            (gossip(topic, vec![0xff, 0xff]), RejectReason::Malformed),
            (
                gossip(topic, WakuMessage::new("/a/1/b/c", vec![]).encode_to_vec()),
                RejectReason::EmptyPayload,
            ),
            (
                gossip(topic, WakuMessage::new("", vec![1]).encode_to_vec()),
                RejectReason::EmptyContentTopic,
            ),
            (
                gossip(
                    topic,
                    WakuMessage::new("/a/1/b\0/c", vec![1]).encode_to_vec(),
                ),
                RejectReason::BadContentTopic,
            ),
            (
                gossip(
                    topic,
                    WakuMessage::new("/a/1/b/c", vec![1])
                        .with_meta(vec![0u8; 65])
                        .encode_to_vec(),
                ),
                RejectReason::MetaTooLong,
            ),
            (
                gossip(
                    topic,
                    WakuMessage::new("/a/1/b/c", vec![1u8; MAX_WAKU_MESSAGE_LEN]).encode_to_vec(),
                ),
                RejectReason::TooLarge,
            ),
        ];
        for (message, reason) in cases {
            assert_eq!(check(message).unwrap_err(), reason);
        }
    }
}
