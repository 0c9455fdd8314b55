//! The `healthcheck` subcommand: exit 0 when the service's own `/readyz` answers 200.
//!
//! Container images have no curl; the binary checks itself.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

/// Asks `http://<addr>/readyz` (an unspecified bind address becomes loopback).
pub async fn run(mut addr: SocketAddr) -> ExitCode {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let url = format!("http://{addr}/readyz");
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("healthcheck: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `healthcheck` subcommand as every service runs it: read `LISTEN_ADDR` the way the service
/// would (with the service's defaults) and ask its `/readyz`.
pub async fn run_from_env(default_addr: &str, default_name: &str) -> ExitCode {
    match crate::config::ServerSettings::from_env(default_addr, default_name) {
        Ok(settings) => run(settings.listen_addr).await,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}
