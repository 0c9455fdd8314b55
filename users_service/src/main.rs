//! The `users_service` binary: `serve` (default), `healthcheck`, `create-admin`, `gen-key`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use users_service::{commands, config, Settings};

#[derive(Parser)]
#[command(version, about = "Forgettable Images accounts and tokens service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP on LISTEN_ADDR (the default).
    Serve,
    /// Exit 0 when this service's /readyz answers 200.
    Healthcheck,
    /// Create an admin account; the password comes from ADMIN_PASSWORD or standard input.
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
    /// Write a new Ed25519 signing key (PKCS#8 PEM) and its public key as PATH.pub.
    GenKey {
        #[arg(long)]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        return Ok(common::healthcheck::run_from_env(
            config::DEFAULT_LISTEN_ADDR,
            config::DEFAULT_INSTANCE_NAME,
        )
        .await);
    }
    let settings = Settings::from_env()?;
    common::telemetry::init(settings.server.log_format);
    match cli.command {
        None | Some(Command::Serve) => users_service::serve(settings).await?,
        Some(Command::CreateAdmin { username, email }) => {
            commands::create_admin_command(&settings, username, email).await?
        }
        Some(Command::GenKey { out }) => commands::gen_key_command(&out)?,
        Some(Command::Healthcheck) => {}
    }
    Ok(ExitCode::SUCCESS)
}
