//! The device's own messages inside sessions: the payload around
//! the application's bytes, pairing requests and answers.

/// What a device seals: the application's bytes, or one of its own
/// messages.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Payload {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) app: Option<Vec<u8>>,
    #[prost(message, optional, tag = "2")]
    pub(super) pair_request: Option<PairRequest>,
    #[prost(message, optional, tag = "3")]
    pub(super) pair_response: Option<PairResponse>,
    /// Bundles of the sender's account's devices.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub(super) devices: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub(super) revocation: Option<Vec<u8>>,
    /// Revocations of the sender's account's devices, with its device list.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub(super) revocations: Vec<Vec<u8>>,
    /// Accounts the sending device accepted (32 bytes each): only from a
    /// device of this account, which answers them as the sender does.
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub(super) accepted: Vec<Vec<u8>>,
    /// Accounts the sending device blocked; only from this account.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub(super) blocked: Vec<Vec<u8>>,
    /// A renewed certificate for the recipient device, from the device
    /// that holds the account key.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub(super) renewal: Option<Vec<u8>>,
    /// The first message of a session the sender started over because it
    /// could not read the recipient's: what the recipient sent it since its
    /// last receipt should come again.
    #[prost(bool, tag = "10")]
    pub(super) reset: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PairRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(super) secret: Vec<u8>,
    /// The new device's bundle, its certificate to be filled in.
    #[prost(bytes = "vec", tag = "2")]
    pub(super) request: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PairResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub(super) certificate: Vec<u8>,
    /// Every bundle the account's first device knows: its contacts' and its
    /// own devices'.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(super) bundles: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub(super) revocations: Vec<Vec<u8>>,
    /// The accounts the first device accepted (32 bytes each): the new
    /// device answers them as it does.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub(super) accepted: Vec<Vec<u8>>,
    /// The accounts the first device blocked.
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub(super) blocked: Vec<Vec<u8>>,
}
