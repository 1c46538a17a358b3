use murmur_node::Builder;

use crate::{error::CliError, load_config, NodeArgs};

#[allow(clippy::print_stdout)]
pub(crate) async fn run(args: NodeArgs) -> Result<(), CliError> {
    let config = load_config(&args)?;
    let node = Builder::new(config).start().await?;
    for addr in node.listen_addrs() {
        println!("listening on {addr}");
    }
    if let Some(enr) = node.enr() {
        println!("enr {enr}");
    }
    tracing::info!(peer = %node.peer_id(), "node running; Ctrl-C to stop");
    murmur_node::shutdown_signal().await;
    tracing::info!("shutting down");
    actix::System::current().stop();
    Ok(())
}
