//! The inference_service binary: `serve` (default) or `healthcheck`.

use std::{process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use common::{auth::TokenVerifier, server::shutdown_signal};
use inference_service::{
    config::{Settings, DEFAULT_INSTANCE_NAME, DEFAULT_LISTEN_ADDR},
    startup::Application,
};

#[derive(Parser)]
#[command(
    version,
    about = "Forgettable Images: memorability predictions with an ONNX model"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Exit 0 when this instance's /readyz answers 200.
    Healthcheck,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => common::server::exit_code("inference_service", serve().await),
        Command::Healthcheck => {
            common::healthcheck::run_from_env(DEFAULT_LISTEN_ADDR, DEFAULT_INSTANCE_NAME).await
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    common::telemetry::init(settings.server.log_format);
    let verifier = Arc::new(TokenVerifier::from_env()?);
    if let Err(e) = verifier.refresh().await {
        tracing::warn!(error = %e, "signing keys not fetched yet; will retry on the first token");
    }
    let application = Application::build(settings, verifier).await?;
    tracing::info!(addr = %application.local_addr()?, "inference_service listening");
    application.run_until_stopped(shutdown_signal()).await
}
