//! Protobuf codecs for the Waku v2 protocols murmur speaks, and the
//! length-prefixed framing every Waku request/response protocol uses.
//!
//! The types are written by hand with `prost`'s derive (no `protoc` at build
//! time). Where a proto3 encoder would leave a field off the wire but nwaku's
//! decoder insists on seeing it, the type says so and encodes it anyway; see
//! the wire reference, §1.4 "proto3 field presence trap".
//!
//! ```
//! use murmur_proto::{message_hash, WakuMessage};
//! use prost::Message as _;
//!
//! let msg = WakuMessage::new("/test/1/hash/proto", vec![1, 2, 3])
//!     .with_timestamp(1_700_000_000_000_000_000);
//! let bytes = msg.encode_to_vec();
//! let decoded = WakuMessage::decode(bytes.as_slice()).unwrap();
//! assert_eq!(decoded, msg);
//!
//! // The deterministic hash that store, filter and js-waku agree on.
//! let hash = message_hash("/waku/2/rs/1/4", &decoded);
//! assert_eq!(
//!     hash[..4],
//!     [0xbf, 0xd5, 0x79, 0x23],
//! );
//! ```

pub mod chat;
mod error;
pub mod filter;
mod hash;
pub mod legacy_store;
pub mod lightpush;
pub mod lp;
mod message;
pub mod metadata;
pub mod peer_exchange;
pub mod sds;
pub mod store;

pub use error::Error;
pub use hash::message_hash;
pub use message::{WakuMessage, MAX_META_LEN, MAX_WAKU_MESSAGE_LEN};

/// The protocol ids of the Waku protocols, as every implementation spells them.
pub mod protocol {
    /// 11/WAKU2-RELAY, used as the gossipsub protocol id.
    pub const RELAY: &str = "/vac/waku/relay/2.0.0";
    /// 66/WAKU2-METADATA.
    pub const METADATA: &str = "/vac/waku/metadata/1.0.0";
    /// Filter v2, client to service.
    pub const FILTER_SUBSCRIBE: &str = "/vac/waku/filter-subscribe/2.0.0-beta1";
    /// Filter v2, service to client.
    pub const FILTER_PUSH: &str = "/vac/waku/filter-push/2.0.0-beta1";
    /// Lightpush v3.
    pub const LIGHTPUSH: &str = "/vac/waku/lightpush/3.0.0";
    /// Lightpush v2, which go-waku speaks.
    pub const LIGHTPUSH_V2: &str = "/vac/waku/lightpush/2.0.0-beta1";
    /// 34/WAKU2-PEER-EXCHANGE.
    pub const PEER_EXCHANGE: &str = "/vac/waku/peer-exchange/2.0.0-alpha1";
    /// 13/WAKU2-STORE v3.
    pub const STORE: &str = "/vac/waku/store-query/3.0.0";
    /// 13/WAKU2-STORE v2beta4, which go-waku still serves (client only).
    pub const STORE_V2: &str = "/vac/waku/store/2.0.0-beta4";
}
