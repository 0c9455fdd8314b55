//! Running cargo from a process that cargo started (`cargo xtask`, a test binary).
//!
//! Cargo gives the programs it runs variables describing their own package (`CARGO_PKG_NAME`,
//! `CARGO_MANIFEST_DIR`, …). Build scripts such as ring's ask to be re-run when those change, so a
//! nested `cargo build` that inherited them would rebuild ring and everything above it, and the
//! next plain build would rebuild it all again. [`command`] starts cargo without them.

use std::process::Command;

/// The variables cargo sets for the program it runs, never for itself.
fn set_for_the_running_package(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || [
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
        ]
        .contains(&name)
}

/// `cargo` (the one that started this process when known) without the running package's variables.
pub fn command() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_for_the_running_package) {
            command.env_remove(name);
        }
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_running_package_variables_are_dropped() {
        for name in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_BIN_EXE_users_service",
            "OUT_DIR",
        ] {
            assert!(set_for_the_running_package(name), "{name}");
        }
        for name in [
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!set_for_the_running_package(name), "{name}");
        }
    }
}
