use std::process::ExitCode;

use murmur_core::transport;
use thiserror::Error;

/// What the binary reports: one line that says what is wrong and what to do.
#[derive(Debug, Error)]
pub(crate) enum CliError {
    /// The node could not start or run.
    #[error("{}", explain(.0))]
    Node(#[from] murmur_node::Error),
    /// A flag or argument that makes no sense.
    #[error("{0}")]
    Usage(String),
    /// The demo or a benchmark did not see what it expected.
    #[error("{0}")]
    Failed(String),
    /// An HTTP server (REST API, metrics) could not start.
    #[error(
        "{0}; choose another address or port (--rest-address, --rest-port, [metrics] address)"
    )]
    Http(#[from] murmur_rest::Error),
    /// Reading standard input or writing output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<murmur_node::keys::Error> for CliError {
    fn from(e: murmur_node::keys::Error) -> Self {
        Self::Node(e.into())
    }
}

/// Adds what to do to the errors people meet most.
fn explain(e: &murmur_node::Error) -> String {
    match e {
        murmur_node::Error::Transport(murmur_transport::Error::Listen { reason, .. })
            if reason.contains("in use") =>
        {
            format!("{e}; another program holds that port: choose another with --listen")
        }
        murmur_node::Error::Transport(murmur_transport::Error::Listen { .. }) => {
            format!("{e}; check the address given with --listen")
        }
        murmur_node::Error::Storage(_) => {
            format!("{e}; check store.url (or --store-url) and that the database is running")
        }
        murmur_node::Error::Send(transport::Error::Dial { .. }) => {
            format!("{e}; check the address and that the peer is running")
        }
        murmur_node::Error::Config(_) => format!("{e}; fix it or run `murmur node --help`"),
        _ => e.to_string(),
    }
}

/// Prints a clap error on one line (help and version as clap renders them).
pub(crate) fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim();
            eprintln!("{first}; see `murmur --help`");
            ExitCode::from(2)
        }
    }
}
