use libp2p::Multiaddr;
use thiserror::Error;

/// Why the node could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A listen address could not be bound.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// The operating system's reason, e.g. "Address already in use".
        reason: String,
    },
    /// A static peer address lacks the `/p2p/<peer id>` that redialling needs.
    #[error("static peer {0} has no /p2p/<peer id> at the end; add the peer's id")]
    StaticPeerWithoutId(Multiaddr),
    /// The libp2p transports or behaviours could not be assembled.
    #[error("cannot build the libp2p node: {0}")]
    Build(String),
}
