use murmur_node::Builder;

use crate::{error::CliError, load_config, NodeArgs};

pub(crate) async fn run(args: NodeArgs) -> Result<(), CliError> {
    let config = load_config(&args)?;
    let node = Builder::new(config.clone()).start().await?;
    // Served until the node stops: dropped at the end of this function.
    let rest = if config.rest.enabled {
        Some(murmur_rest::serve(&node).await?)
    } else {
        None
    };
    let webhook = murmur_rest::webhook::start(&node).await?;
    let metrics = if config.metrics.enabled {
        Some(murmur_rest::serve_metrics(&node, config.metrics.address).await?)
    } else {
        None
    };
    {
        // A closed stdout (a supervisor that stopped reading) must not stop the node.
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for addr in node.listen_addrs() {
            let _ = writeln!(out, "listening on {addr}");
        }
        if let Some(enr) = node.enr() {
            let _ = writeln!(out, "enr {enr}");
        }
        if let Some(rest) = &rest {
            let _ = writeln!(out, "rest http://{}", rest.addr());
        }
        if webhook.is_some() {
            let _ = writeln!(
                out,
                "webhook {}",
                config.webhook.url.as_deref().unwrap_or_default()
            );
        }
        if let Some(metrics) = &metrics {
            let _ = writeln!(out, "metrics http://{}/metrics", metrics.addr());
        }
        let _ = out.flush();
    }
    tracing::info!(peer = %node.peer_id(), "node running; Ctrl-C to stop");
    let _status = (args.status_interval > 0).then(|| {
        let every = std::time::Duration::from_secs(args.status_interval);
        tokio::spawn(status_lines(node.clone(), every))
    });
    let outcome = tokio::select! {
        () = murmur_node::shutdown_signal() => {
            tracing::info!("shutting down");
            // A replica standing by takes over now, not when the lease lapses.
            node.close().await.map_err(Into::into)
        }
        holder = node.lease_lost() => Err(murmur_node::Error::from(
            murmur_core::storage::Error::Fenced(holder),
        )
        .into()),
    };
    actix::System::current().stop();
    outcome
}

/// Prints a short line every `every`: peers, relay messages in and out
/// since the start, the archive's size on disk (SQLite).
async fn status_lines(node: murmur_node::Node, every: std::time::Duration) {
    use std::io::Write as _;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Ok(status) = node.status().await else {
            return;
        };
        let metrics = node.transport_metrics();
        let archive = archive_size(node.config())
            .map(|bytes| format!(", archive {:.1} MB", bytes as f64 / 1e6))
            .unwrap_or_default();
        let line = format!(
            "status: {} peers, {} relay messages in, {} out{archive}",
            status.peers.len(),
            metrics.received(),
            metrics.published(),
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The SQLite archive's size on disk, with its write-ahead log.
fn archive_size(config: &murmur_node::Config) -> Option<u64> {
    let url = &config.store.url;
    let path = if url.is_empty() {
        config.data_dir.join("murmur.db")
    } else {
        std::path::PathBuf::from(url.strip_prefix("sqlite://")?)
    };
    let main = std::fs::metadata(&path).ok()?.len();
    let mut wal = path.into_os_string();
    wal.push("-wal");
    Some(main + std::fs::metadata(wal).map_or(0, |m| m.len()))
}
