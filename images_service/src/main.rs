//! The images_service binary: `serve` (default) or `healthcheck`.

use std::process::ExitCode;

use images_service::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    common::service::main::<Application>().await
}
