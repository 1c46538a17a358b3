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
    /// Import a secp256k1 secret key (64 hex digits, nwaku's --nodekey format).
    Import {
        /// The key, or `-` to read it from standard input (keeps it out of shell history).
        key: String,
        /// Where the node key lives.
        #[arg(long, value_name = "DIR", default_value = "murmur-data")]
        data_dir: PathBuf,
    },
}

pub(crate) fn run(command: Command) -> Result<(), CliError> {
    let (keypair, dir) = match command {
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
