//! The inference_service binary: `serve` (default) or `healthcheck`.

use std::process::ExitCode;

use inference_service::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    common::service::main::<Application>().await
}
