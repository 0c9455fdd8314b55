//! `cargo xtask bench`.

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> Result<()> {
    anyhow::bail!("not implemented yet")
}
