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
