use murmur_node::Builder;

use crate::{error::CliError, load_config, NodeArgs};

pub(crate) async fn run(args: NodeArgs) -> Result<(), CliError> {
    let config = load_config(&args)?;
    let node = Builder::new(config).start().await?;
    #[allow(clippy::print_stdout)]
    for addr in node.listen_addrs() {
        println!("listening on {addr}");
    }
    tracing::info!(peer = %node.peer_id(), "node running; Ctrl-C to stop");
    murmur_node::shutdown_signal().await;
    tracing::info!("shutting down");
    actix::System::current().stop();
    Ok(())
}
