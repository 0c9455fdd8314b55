//! Configuration checks run by `cargo xtask test` with the real tools.

use anyhow::Result;

pub mod compose;
pub mod monitoring;
pub mod traefik;

/// Every check, by name, with its outcome.
pub fn run_all() -> Vec<(&'static str, Result<()>)> {
    let mut results = Vec::new();
    results.extend(traefik::checks());
    results.extend(monitoring::checks());
    results.extend(compose::checks());
    results
}
