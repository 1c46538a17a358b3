//! 34/WAKU2-PEER-EXCHANGE (`/vac/waku/peer-exchange/2.0.0-alpha1`).

/// The largest response a client reads: 60 ENRs of at most 300 bytes.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// The largest request a server reads.
pub const MAX_REQUEST_LEN: usize = 1024;
/// nwaku's cap on peers per response.
pub const MAX_PEERS: u64 = 60;

/// One peer, as an RLP-encoded EIP-778 record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerInfo {
    /// The record.
    #[prost(bytes = "vec", tag = "1")]
    pub enr: Vec<u8>,
}

/// How many peers the requester wants.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    /// At most this many.
    #[prost(uint64, tag = "1")]
    pub num_peers: u64,
}

/// The peers, with nwaku's status fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// The records.
    #[prost(message, repeated, tag = "1")]
    pub peer_infos: Vec<PeerInfo>,
    /// 200, 400, 429, 503 (none to give).
    #[prost(uint32, optional, tag = "10")]
    pub status_code: Option<u32>,
    /// `OK`, or why not.
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
}

/// The envelope for both directions. nwaku's decoder requires `query` even in
/// a response, so responses carry an empty one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Rpc {
    /// Set by the requester (and, empty, by the responder).
    #[prost(message, optional, tag = "1")]
    pub query: Option<Query>,
    /// Set by the responder.
    #[prost(message, optional, tag = "2")]
    pub response: Option<Response>,
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn a_response_keeps_an_empty_query_on_the_wire() {
        let rpc = Rpc {
            query: Some(Query::default()),
            response: Some(Response::default()),
        };
        let bytes = rpc.encode_to_vec();
        assert_eq!(&bytes[..2], &[0x0a, 0x00], "field 1, empty");
        assert_eq!(Rpc::decode(bytes.as_slice()).unwrap(), rpc);
    }
}
