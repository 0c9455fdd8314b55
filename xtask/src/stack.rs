//! The native stack launcher (`cargo xtask up`), shared with the end-to-end tests.

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct UpArgs {}

pub fn up(_args: UpArgs) -> Result<()> {
    anyhow::bail!("not implemented yet")
}

/// Installs what the stack needs (Traefik, nginx, Prometheus).
pub fn ensure_tools() -> Result<()> {
    Ok(())
}

/// Environment the end-to-end tests need (paths of the tools).
pub fn test_environment() -> Result<Vec<(String, String)>> {
    Ok(Vec::new())
}
