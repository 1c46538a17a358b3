//! The crypto stage: the default actor is `murmur-sessions`' (re-exported
//! here); the node adds the vault secret it derives from its key.

use murmur_core::{crypto, storage};
pub use murmur_sessions::*;

/// The secret the vault key derives from: the node key, which the database
/// never holds.
pub fn vault_secret(
    keypair: &libp2p::identity::Keypair,
) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    keypair
        .to_protobuf_encoding()
        .map(zeroize::Zeroizing::new)
        .map_err(|e| crate::Error::Config(format!("the node key cannot seal chat state: {e}")))
}

/// Starts the default crypto stage and returns its handle.
pub(crate) async fn start_default(
    storage: storage::Handle,
    node_secret: &[u8],
    settings: &crate::config::Chat,
    metrics: Metrics,
) -> Result<crypto::Handle, crypto::Error> {
    Ok(crypto::Handle::from(
        Crypto::start(storage, node_secret, &settings.sessions(), metrics).await?,
    ))
}
