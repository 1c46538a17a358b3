//! The node key: a secp256k1 key (Waku's ENR requires one), kept as hex in
//! `<data dir>/node.key` with mode 0600, the format of nwaku's `--nodekey`.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use libp2p::identity::{secp256k1, Keypair};
use thiserror::Error;

/// The key file's name inside the data folder.
pub const FILE_NAME: &str = "node.key";

/// Why a node key could not be read, created or imported.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read or written.
    #[error("node key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file or the imported text is not a 32-byte secp256k1 secret in hex.
    #[error("node key {origin} is not a 64-digit hex secp256k1 secret key")]
    Malformed {
        /// Where it came from.
        origin: String,
    },
    /// Importing would overwrite an existing key.
    #[error("{0} already exists; remove it first if you mean to replace this node's identity")]
    Exists(PathBuf),
}

/// The key file in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Loads the node key, or creates one on first start.
pub fn load_or_create(data_dir: &Path) -> Result<Keypair, Error> {
    let file = path(data_dir);
    if file.exists() {
        return load(&file);
    }
    let secret = secp256k1::SecretKey::generate();
    write_new(&file, &secret)?;
    tracing::info!(path = %file.display(), "created a new node key");
    Ok(to_keypair(secret))
}

/// Loads the node key from `file`.
pub fn load(file: &Path) -> Result<Keypair, Error> {
    let text = fs::read_to_string(file).map_err(|source| Error::Io {
        path: file.to_owned(),
        source,
    })?;
    parse(text.trim(), &file.display().to_string())
}

/// Imports a hex secret key as the node key; refuses to overwrite one.
pub fn import(data_dir: &Path, hex_secret: &str) -> Result<Keypair, Error> {
    let file = path(data_dir);
    if file.exists() {
        return Err(Error::Exists(file));
    }
    let keypair = parse(hex_secret.trim(), "given")?;
    let secret = keypair
        .clone()
        .try_into_secp256k1()
        .map_err(|_| Error::Malformed {
            origin: "given".to_owned(),
        })?
        .secret()
        .clone();
    write_new(&file, &secret)?;
    Ok(keypair)
}

fn parse(text: &str, origin: &str) -> Result<Keypair, Error> {
    let malformed = || Error::Malformed {
        origin: origin.to_owned(),
    };
    let mut bytes =
        hex::decode(text.strip_prefix("0x").unwrap_or(text)).map_err(|_| malformed())?;
    let secret = secp256k1::SecretKey::try_from_bytes(&mut bytes).map_err(|_| malformed())?;
    Ok(to_keypair(secret))
}

fn to_keypair(secret: secp256k1::SecretKey) -> Keypair {
    Keypair::from(secp256k1::Keypair::from(secret))
}

fn write_new(file: &Path, secret: &secp256k1::SecretKey) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: file.to_owned(),
        source,
    };
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Created 0600: the key is never readable by others, not even briefly.
        options.mode(0o600);
    }
    let mut f = options.open(file).map_err(io)?;
    f.write_all(hex::encode(secret.to_bytes()).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn import_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let hex_key = "1122334455667788990011223344556677889900112233445566778899001122";
        let k = import(dir.path(), hex_key).unwrap();
        assert!(k.public().to_peer_id().to_string().starts_with("16Uiu2"));
        assert!(matches!(import(dir.path(), hex_key), Err(Error::Exists(_))));
        assert_eq!(
            load(&path(dir.path())).unwrap().public().to_peer_id(),
            k.public().to_peer_id()
        );
    }

    #[test]
    fn malformed_keys() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["xyz", "00", &"ff".repeat(32)] {
            assert!(matches!(
                import(dir.path(), bad),
                Err(Error::Malformed { .. })
            ));
        }
    }
}
