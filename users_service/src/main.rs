//! The `users_service` binary: `serve` (default), `healthcheck`, `create-admin`, `gen-key`.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use users_service::{commands, startup::Application};

/// The subcommands users_service has beside `serve` and `healthcheck`.
#[derive(Subcommand)]
enum Command {
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
async fn main() -> ExitCode {
    common::service::main_with::<Application, _, _, _>(|settings, command| async move {
        match command {
            Command::CreateAdmin { username, email } => {
                commands::create_admin_command(&settings, username, email).await
            }
            Command::GenKey { out } => commands::gen_key_command(&out),
        }
    })
    .await
}
