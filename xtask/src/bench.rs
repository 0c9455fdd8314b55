//! `cargo xtask bench …`: runs the `benches` crate in release mode with the same arguments (its
//! `--help` lists the parts and options).

use anyhow::{Context, Result};

use crate::tools;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Parts and options of the benchmark (`cargo xtask bench --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Builds and runs the benchmarks; their own exit code ends this process when they fail, after
/// they have said why.
pub fn run(args: BenchArgs) -> Result<()> {
    let status = crate::cargo::command()
        .current_dir(tools::root())
        .args(["run", "--release", "--package", "benches", "--"])
        .args(&args.args)
        .status()
        .context("cannot start cargo run --package benches")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}
