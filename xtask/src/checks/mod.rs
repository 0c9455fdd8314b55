//! Configuration checks run by `cargo xtask test` with the real tools.

use anyhow::Result;

pub mod compose;
pub mod monitoring;
pub mod openapi;
pub mod traefik;

/// A configuration check: its name, and the function that runs it.
pub type Check = (&'static str, fn() -> Result<()>);

/// Every check, not yet run (a test filter may leave some out).
pub fn all() -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(traefik::checks());
    checks.extend(monitoring::checks());
    checks.extend(compose::checks());
    checks.extend(openapi::checks());
    checks
}
