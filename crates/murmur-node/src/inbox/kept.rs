//! A chat message as the chat inbox keeps it, sealed.

use super::*;

/// A message as the inbox keeps it.
#[derive(Clone, PartialEq, prost::Message)]
struct Kept {
    #[prost(bytes = "vec", tag = "1")]
    id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    sender: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    device: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    to: Vec<u8>,
    #[prost(uint64, tag = "5")]
    sent_at: u64,
    #[prost(string, optional, tag = "6")]
    text: Option<String>,
    #[prost(string, optional, tag = "7")]
    kind: Option<String>,
    #[prost(bytes = "vec", optional, tag = "8")]
    data: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "9")]
    group: Option<Vec<u8>>,
    #[prost(string, optional, tag = "10")]
    channel: Option<String>,
    #[prost(uint32, optional, tag = "11")]
    role: Option<u32>,
    #[prost(bool, tag = "12")]
    request: bool,
}

pub(super) fn encode(m: &ChatMessage) -> Vec<u8> {
    let (text, kind, data) = match &m.body {
        Body::Text(t) => (Some(t.clone()), None, None),
        Body::Typed { kind, data } => (None, Some(kind.clone()), Some(data.to_vec())),
        // Bodies a later version adds are kept as the typed payload they
        // are built on; this version has none.
        _ => (None, None, None),
    };
    Kept {
        id: m.id.0.to_vec(),
        sender: m.sender.0.to_vec(),
        device: m.device.0.to_vec(),
        to: m.to.0.to_vec(),
        sent_at: m.sent_at,
        text,
        kind,
        data,
        group: m.group.map(|g| g.0.to_vec()),
        channel: m.channel.clone(),
        role: m.role.map(|r| match r {
            Role::Owner => 0,
            Role::Admin => 1,
            Role::Moderator => 2,
            _ => 3,
        }),
        request: m.request,
    }
    .encode_to_vec()
}

pub(super) fn decode(bytes: &[u8]) -> Result<ChatMessage, String> {
    fn array<const N: usize>(b: &[u8], what: &str) -> Result<[u8; N], String> {
        b.try_into().map_err(|_| format!("{what} is not {N} bytes"))
    }
    let k = Kept::decode(bytes).map_err(|e| e.to_string())?;
    let body = match (k.text, k.kind) {
        (Some(t), None) => Body::Text(t),
        (None, Some(kind)) => Body::Typed {
            kind,
            data: Bytes::from(k.data.unwrap_or_default()),
        },
        _ => return Err("neither text nor a typed payload".to_owned()),
    };
    let mut m = ChatMessage::new(
        MessageId(array(&k.id, "id")?),
        AccountId(array(&k.sender, "sender")?),
        DeviceId(array(&k.device, "device")?),
        AccountId(array(&k.to, "recipient")?),
        body,
    )
    .at(k.sent_at);
    m.group = k
        .group
        .map(|g| array(&g, "group").map(GroupId))
        .transpose()?;
    m.channel = k.channel;
    m.role = k.role.map(|r| match r {
        0 => Role::Owner,
        1 => Role::Admin,
        2 => Role::Moderator,
        _ => Role::Member,
    });
    m.request = k.request;
    Ok(m)
}
