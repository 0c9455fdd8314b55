//! Obtaining and converting the ONNX model.

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct ModelArgs {}

pub fn run(_args: ModelArgs) -> Result<()> {
    anyhow::bail!("not implemented yet")
}

/// Prepares the real model for the tests that need it.
pub fn ensure_for_tests() -> Result<()> {
    Ok(())
}

/// Environment the model tests need.
pub fn test_environment() -> Result<Vec<(String, String)>> {
    Ok(Vec::new())
}
