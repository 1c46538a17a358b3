//! The crypto stage's own messages inside sessions: the payload around
//! the application's bytes, pairing requests and answers.

/// What the crypto stage seals: the application's bytes, or one of its own
/// messages.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Payload {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(crate) app: Option<Vec<u8>>,
    #[prost(message, optional, tag = "2")]
    pub(crate) pair_request: Option<PairRequest>,
    #[prost(message, optional, tag = "3")]
    pub(crate) pair_response: Option<PairResponse>,
    /// Bundles of the sender's account's devices.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub(crate) devices: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub(crate) revocation: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PairRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) secret: Vec<u8>,
    /// The new device's bundle, its certificate to be filled in.
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) request: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PairResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) certificate: Vec<u8>,
    /// Every bundle the account's first device knows: its contacts' and its
    /// own devices'.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(crate) bundles: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub(crate) revocations: Vec<Vec<u8>>,
}
