//! The crypto stage: the default actor is `murmur-sessions`' (re-exported
//! here); the node adds the vault secret it derives from its key.

use murmur_core::{crypto, storage};

use crate::config::VaultSource;
pub use murmur_sessions::*;

/// The secret the vault key derives from: the node key, which the database
/// never holds, and with `chat.vault.source` other than `node-key` a
/// secret that is not in the data folder either.
pub fn vault_secret(
    keypair: &libp2p::identity::Keypair,
    config: &crate::Config,
) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    let mut secret = keypair
        .to_protobuf_encoding()
        .map(zeroize::Zeroizing::new)
        .map_err(|e| crate::Error::Config(format!("the node key cannot seal chat state: {e}")))?;
    let vault = &config.chat.vault;
    let extra = match vault.source {
        VaultSource::NodeKey => return Ok(secret),
        VaultSource::Passphrase => {
            let passphrase = std::env::var(&vault.passphrase_env).map_err(|_| {
                crate::Error::Config(format!(
                    "chat.vault.source is \"passphrase\" but {} is not set",
                    vault.passphrase_env
                ))
            })?;
            let stretched = stretch(
                zeroize::Zeroizing::new(passphrase).as_bytes(),
                &vault_salt(&config.data_dir)?,
            )?;
            zeroize::Zeroizing::new(stretched.to_vec())
        }
        VaultSource::Command => command_secret(&vault.command)?,
    };
    secret.extend_from_slice(&extra);
    Ok(secret)
}

/// The passphrase's salt, made at random on first use and kept in the data
/// folder (it need not be secret; it makes each node's stretching its own).
fn vault_salt(data_dir: &std::path::Path) -> Result<[u8; 16], crate::Error> {
    let path = data_dir.join(VAULT_SALT_FILE);
    let io = |e: std::io::Error| crate::Error::Config(format!("{}: {e}", path.display()));
    match std::fs::read(&path) {
        Ok(bytes) => bytes
            .as_slice()
            .try_into()
            .map_err(|_| crate::Error::Config(format!("{} is not 16 bytes", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let salt: [u8; 16] = rand::random();
            std::fs::create_dir_all(data_dir).map_err(io)?;
            std::fs::write(&path, salt).map_err(io)?;
            Ok(salt)
        }
        Err(e) => Err(io(e)),
    }
}

/// The file beside the database that holds the passphrase's salt.
pub const VAULT_SALT_FILE: &str = "vault.salt";

/// Argon2id, RFC 9106's second recommended setting but one lane (this
/// is a two-core class of machine): 64 MiB, three passes.
fn stretch(passphrase: &[u8], salt: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>, crate::Error> {
    let params = argon2::Params::new(64 * 1024, 3, 1, Some(32))
        .map_err(|e| crate::Error::Config(format!("argon2 parameters: {e}")))?;
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| crate::Error::Config(format!("stretching the passphrase: {e}")))?;
    Ok(out)
}

/// What `command` prints on standard output (trailing newline removed),
/// or why not.
fn command_secret(command: &[String]) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    let (program, args) = command.split_first().ok_or_else(|| {
        crate::Error::Config(
            "chat.vault.source is \"command\" but chat.vault.command is empty".to_owned(),
        )
    })?;
    let output = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| crate::Error::Config(format!("chat.vault.command {program:?}: {e}")))?;
    let mut secret = zeroize::Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(crate::Error::Config(format!(
            "chat.vault.command {program:?} failed: {}",
            output.status
        )));
    }
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.is_empty() {
        return Err(crate::Error::Config(format!(
            "chat.vault.command {program:?} printed nothing"
        )));
    }
    Ok(secret)
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
