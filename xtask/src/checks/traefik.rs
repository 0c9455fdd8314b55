//! Placeholder until the checks land.

use anyhow::Result;

pub fn checks() -> Vec<(&'static str, Result<()>)> {
    Vec::new()
}
