use std::{io::BufRead, path::PathBuf};

use clap::Subcommand;
use murmur_node::keys;

use crate::error::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the node key if there is none yet, and show it.
    Generate {
        /// Where the node key lives.
        #[arg(long, value_name = "DIR", default_value = "murmur-data")]
        data_dir: PathBuf,
    },
    /// Show the node's peer id and where its key is.
    Show {
        /// Where the node key lives.
        #[arg(long, value_name = "DIR", default_value = "murmur-data")]
        data_dir: PathBuf,
    },
    /// Show this node's chat account, device and contact code (creating the
    /// account on first use). Share the code: whoever adds it can write to
    /// you, even while you are offline.
    Contact {
        /// Where the node key and database live.
        #[arg(long, value_name = "DIR", default_value = "murmur-data")]
        data_dir: PathBuf,
        /// The node's database, if not the SQLite file in the data folder.
        #[arg(long, value_name = "URL")]
        store_url: Option<String>,
    },
    /// Import a secp256k1 secret key (64 hex digits, nwaku's --nodekey format).
    Import {
        /// The key, or `-` to read it from standard input (keeps it out of shell history).
        key: String,
        /// Where the node key lives.
        #[arg(long, value_name = "DIR", default_value = "murmur-data")]
        data_dir: PathBuf,
    },
}

/// Shows the contact code: the crypto stage on the node's own database, no
/// network.
pub(crate) async fn contact(data_dir: PathBuf, store_url: Option<String>) -> Result<(), CliError> {
    let keypair = keys::load_or_create(&data_dir)?;
    // The environment's settings (MURMUR_CHAT__VAULT__SOURCE, ...), so that
    // the state opens with the vault key the node uses.
    let mut config = murmur_node::Config::load(None)?;
    config.data_dir = data_dir;
    if let Some(url) = store_url {
        config.store.url = url;
    }
    let db = murmur_storage::Database::open(&config.store_url())
        .await
        .map_err(murmur_node::Error::from)?;
    let storage = murmur_core::storage::Handle::from(murmur_storage::Storage::start(db));
    let secret = murmur_node::crypto::vault_secret(&keypair, &config)?;
    let crypto = murmur_node::crypto::Crypto::start(
        storage,
        &secret,
        &config.chat.sessions(),
        murmur_node::crypto::Metrics::default(),
    )
    .await
    .map_err(murmur_node::Error::from)?;
    let code = crypto
        .send(murmur_core::crypto::ContactCode)
        .await
        .map_err(murmur_node::Error::from)?
        .map_err(murmur_node::Error::from)?;
    let (account, device) = crypto
        .send(murmur_core::crypto::Identity)
        .await
        .map_err(murmur_node::Error::from)?
        .map_err(murmur_node::Error::from)?;
    #[allow(clippy::print_stdout)]
    {
        println!("account: {account}");
        println!("device: {device}");
        println!("contact code: {code}");
    }
    Ok(())
}

pub(crate) fn run(command: Command) -> Result<(), CliError> {
    let (keypair, dir) = match command {
        Command::Contact { data_dir, .. } => {
            return Err(CliError::Usage(format!(
                "run `murmur keys contact --data-dir {}` from the command line",
                data_dir.display()
            )))
        }
        Command::Generate { data_dir } => (keys::load_or_create(&data_dir)?, data_dir),
        Command::Show { data_dir } => {
            let path = keys::path(&data_dir);
            if !path.exists() {
                return Err(CliError::Usage(format!(
                    "no node key at {}; create one with `murmur keys generate --data-dir {}`",
                    path.display(),
                    data_dir.display()
                )));
            }
            (keys::load(&path)?, data_dir)
        }
        Command::Import { key, data_dir } => {
            let key = if key == "-" {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line
            } else {
                key
            };
            (keys::import(&data_dir, &key)?, data_dir)
        }
    };
    #[allow(clippy::print_stdout)]
    {
        println!("peer id: {}", keypair.public().to_peer_id());
        println!("key file: {}", keys::path(&dir).display());
    }
    Ok(())
}
