//! `murmur`: run a node, the demo, manage the node key, run benchmarks.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;
use tracing_subscriber::{filter::LevelFilter, EnvFilter};

mod bench;
mod bench_bare;
mod bench_catchup;
mod bench_chat;
mod bench_chat_bare;
mod bench_group;
mod bench_scale;
mod bench_serve;
mod bench_stages;
mod bench_store;
mod bench_strangers;
mod chat;
mod demo;
mod error;
mod keys;
mod node;
mod progress;
mod query;

use error::CliError;

/// A node allocates for every message (buffers, envelopes, futures, mailbox
/// entries) across several threads; glibc's allocator spent about a third
/// of a busy relay thread in its bins and consolidation (`perf`, docs/benchmarks.md).
/// Built without transparent huge pages (Cargo.toml): with them an idle
/// node held 16–18 MB more.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Private peer-to-peer messaging over Waku v2.
#[derive(Debug, Parser)]
#[command(name = "murmur", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a relay node on a Waku network.
    Node(NodeArgs),
    /// Chat as a person: an interactive client on a node of its own, or one
    /// command (--code, --add, --send, --read) for scripts.
    Chat(chat::Args),
    /// Start three nodes in this process and watch messages cross between them.
    Demo(demo::Args),
    /// Read history from a Waku store node, as JSON lines.
    Query(query::Args),
    /// Create, show or import the node key.
    #[command(subcommand)]
    Keys(keys::Command),
    /// Measure murmur against a reference run in the same process.
    #[command(subcommand)]
    Bench(bench::Command),
}

/// Flags shared by every command that runs a node, in nwaku's spirit.
#[derive(Debug, Args, Clone, Default)]
struct NodeArgs {
    /// Configuration file (default: config/default.toml if it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address; repeat for several (default: TCP 60000 and WebSocket 8000).
    #[arg(long = "listen", value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Static peer, ending in `/p2p/<peer id>`; repeat for several.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    peers: Vec<Multiaddr>,
    /// Cluster id (1 is The Waku Network).
    #[arg(long, value_name = "ID")]
    cluster: Option<u16>,
    /// Shard to serve; repeat for several (default: every shard of the cluster).
    #[arg(long = "shard", value_name = "N")]
    shards: Vec<u16>,
    /// Shard for content topics whose autoshard is not served; repeat for
    /// several (default: any served shard).
    #[arg(long = "topic-shard", value_name = "N")]
    topic_shards: Vec<u16>,
    /// Where the node key and the SQLite archive live.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The archive: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB
    /// (default: SQLite in the data folder).
    #[arg(long, value_name = "URL")]
    store_url: Option<String>,
    /// Do not serve store queries to other nodes (the node still archives).
    #[arg(long)]
    no_store: bool,
    /// Do not archive arriving messages (a relay-only node; implies nothing to serve to store).
    #[arg(long)]
    no_archive: bool,
    /// Do not serve filter to light clients.
    #[arg(long)]
    no_filter: bool,
    /// Do not serve lightpush to light clients.
    #[arg(long)]
    no_lightpush: bool,
    /// Run as a light client of the first --peer: lightpush out, filter in, store for history.
    #[arg(long)]
    light: bool,
    /// Do not serve peer exchange.
    #[arg(long)]
    no_peer_exchange: bool,
    /// A peer record (enr:…) to hand out through peer exchange; repeatable.
    #[arg(long = "bootstrap-enr", value_name = "ENR")]
    bootstrap_enrs: Vec<String>,
    /// An EIP-1459 tree (enrtree://KEY@DOMAIN) to find peers in, as nwaku's; repeatable.
    #[arg(long = "dns-discovery-url", value_name = "URL")]
    dns_discovery_urls: Vec<String>,
    /// Find peers with discv5 (Waku's, `d5waku`).
    #[arg(long = "discv5-discovery")]
    discv5: bool,
    /// The UDP port discv5 runs on (default 9000; 0 for any free one).
    #[arg(long = "discv5-udp-port", value_name = "PORT")]
    discv5_udp_port: Option<u16>,
    /// A record (enr:…) discv5 starts from; repeatable. Turns discv5 on.
    #[arg(long = "discv5-bootstrap-node", value_name = "ENR")]
    discv5_bootstrap_nodes: Vec<String>,
    /// Serve the REST API (nwaku's endpoints; default 127.0.0.1:8645).
    #[arg(long)]
    rest: bool,
    /// The REST API's address.
    #[arg(long, value_name = "IP")]
    rest_address: Option<std::net::IpAddr>,
    /// The REST API's port.
    #[arg(long, value_name = "PORT")]
    rest_port: Option<u16>,
    /// Serve the REST API's /admin endpoints (peers, dialling).
    #[arg(long)]
    rest_admin: bool,
    /// An origin browsers may call the REST API from (`*` and `?`
    /// wildcards, `*` alone for any); repeatable.
    #[arg(long = "rest-allow-origin", value_name = "ORIGIN")]
    rest_allow_origins: Vec<String>,
    /// Print a status line (peers, messages in and out, archive size) this
    /// often, in seconds; 0 for none.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    status_interval: u64,
    /// POST every chat message to this http:// URL (a webhook bot); the
    /// secret it is signed with comes from MURMUR_WEBHOOK__SECRET.
    #[arg(long = "webhook", value_name = "URL")]
    webhook: Option<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::clap_exit(&e),
    };
    // The demo and benchmarks print their own story; the node logs its life.
    let quiet = matches!(
        cli.command,
        Command::Demo(_) | Command::Bench(_) | Command::Query(_) | Command::Chat(_)
    );
    init_tracing(if quiet {
        LevelFilter::WARN
    } else {
        LevelFilter::INFO
    });
    let outcome = actix_rt::System::new().block_on(async move {
        match cli.command {
            Command::Node(args) => node::run(args).await,
            Command::Chat(args) => chat::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::Keys(keys::Command::Contact {
                data_dir,
                store_url,
            }) => keys::contact(data_dir, store_url).await,
            Command::Keys(cmd) => keys::run(cmd),
            Command::Bench(cmd) => bench::run(cmd).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default: LevelFilter) {
    let filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Command-line flags as a figment provider, so that errors say where a bad
/// value came from.
struct Flag<T>(&'static str, T);

impl<T: serde::Serialize> figment::Provider for Flag<T> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("command-line flag")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        figment::providers::Serialized::default(self.0, &self.1).data()
    }
}

/// Loads the configuration with the flags on top.
fn load_config(args: &NodeArgs) -> Result<murmur_node::Config, CliError> {
    let mut figment = murmur_node::Config::figment(args.config.as_deref());
    if let Some(path) = &args.config {
        if !path.exists() {
            return Err(CliError::Usage(format!(
                "configuration file {} does not exist",
                path.display()
            )));
        }
    }
    let strings = |v: &[Multiaddr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    if !args.listen.is_empty() {
        figment = figment.merge(Flag("network.listen", strings(&args.listen)));
    }
    if !args.peers.is_empty() {
        figment = figment.merge(Flag("network.peers", strings(&args.peers)));
    }
    if let Some(cluster) = args.cluster {
        figment = figment.merge(Flag("network.cluster", cluster));
    }
    if !args.shards.is_empty() {
        figment = figment.merge(Flag("network.shards", args.shards.clone()));
    }
    if !args.topic_shards.is_empty() {
        figment = figment.merge(Flag("network.topic_shards", args.topic_shards.clone()));
    }
    if let Some(url) = &args.store_url {
        figment = figment.merge(Flag("store.url", url.clone()));
    }
    if args.no_store {
        figment = figment.merge(Flag("store.enabled", false));
    }
    if args.no_archive {
        figment = figment.merge(Flag("store.archive", false));
    }
    if args.no_filter {
        figment = figment.merge(Flag("network.filter", false));
    }
    if args.no_lightpush {
        figment = figment.merge(Flag("network.lightpush", false));
    }
    if args.no_peer_exchange {
        figment = figment.merge(Flag("network.peer_exchange", false));
    }
    if !args.bootstrap_enrs.is_empty() {
        figment = figment.merge(Flag("network.bootstrap_enrs", args.bootstrap_enrs.clone()));
    }
    if !args.dns_discovery_urls.is_empty() {
        figment = figment.merge(Flag(
            "network.dns_discovery_urls",
            args.dns_discovery_urls.clone(),
        ));
    }
    if args.light {
        figment = figment.merge(Flag("network.light", true));
    }
    if args.discv5 || !args.discv5_bootstrap_nodes.is_empty() {
        figment = figment.merge(Flag("network.discv5", true));
    }
    if let Some(port) = args.discv5_udp_port {
        figment = figment.merge(Flag("network.discv5_udp_port", port));
    }
    if !args.discv5_bootstrap_nodes.is_empty() {
        figment = figment.merge(Flag(
            "network.discv5_bootstrap_nodes",
            args.discv5_bootstrap_nodes.clone(),
        ));
    }
    if args.rest {
        figment = figment.merge(Flag("rest.enabled", true));
    }
    if let Some(address) = args.rest_address {
        figment = figment.merge(Flag("rest.address", address));
    }
    if let Some(port) = args.rest_port {
        figment = figment.merge(Flag("rest.port", port));
    }
    if args.rest_admin {
        figment = figment.merge(Flag("rest.admin", true));
    }
    if let Some(url) = &args.webhook {
        figment = figment.merge(Flag("webhook.url", url.clone()));
    }
    if !args.rest_allow_origins.is_empty() {
        figment = figment.merge(Flag("rest.allow_origin", args.rest_allow_origins.clone()));
    }
    if let Some(dir) = &args.data_dir {
        figment = figment.merge(Flag("data_dir", dir.clone()));
    }
    Ok(murmur_node::Config::from_figment(&figment)?)
}
