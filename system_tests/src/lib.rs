//! What every system test needs before it starts anything: service binaries built from the
//! sources as they are now, and the real ResMem model.
//!
//! A test never picks up binaries left in a target directory by an earlier build: the first call
//! of [`service_binaries`] runs the same `cargo build` as `cargo xtask test` (nothing to do when
//! that has just run) and takes the paths cargo reports. The model is the converted ResMem one;
//! a test fails with the command that makes it rather than fall back to a smaller model.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
};

use anyhow::{bail, ensure, Context, Result};

/// The binaries the system tests start.
const SERVICES: [&str; 3] = ["users_service", "images_service", "inference_service"];

/// The build `cargo xtask test` runs before the tests; the same here, so it finds nothing to do
/// there and the binaries are never stale anywhere else.
const BUILD_ARGS: [&str; 5] = xtask::test::RELEASE_BUILD;

/// The directory holding freshly built release binaries of the three services, built on first
/// use in this process.
pub fn service_binaries() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!("building the service binaries: {e}"))
}

fn build() -> Result<PathBuf> {
    let mut child = xtask::cargo::command()
        .current_dir(xtask::tools::root())
        .args(BUILD_ARGS)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start cargo build")?;
    let mut found: Vec<PathBuf> = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            if let Some(path) = service_executable(&line?) {
                found.push(path);
            }
        }
    }
    let status = child.wait()?;
    ensure!(
        status.success(),
        "cargo {} failed: {status}",
        BUILD_ARGS.join(" ")
    );
    let dir = found
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .context("cargo built no service binary")?;
    for service in SERVICES {
        ensure!(
            found.contains(&dir.join(service)),
            "cargo did not report building {service} into {}",
            dir.display()
        );
    }
    Ok(dir)
}

/// The executable of a service binary, from one line of cargo's JSON messages.
fn service_executable(line: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    // `--tests` also builds each binary's unit-test harness (profile.test): not the service.
    let is_service_bin = message["reason"] == "compiler-artifact"
        && message["profile"]["test"] != true
        && message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
        && SERVICES.iter().any(|s| message["target"]["name"] == *s);
    is_service_bin
        .then(|| message["executable"].as_str().map(PathBuf::from))
        .flatten()
}

/// The converted ResMem model: `$FORGETTABLE_MODEL_DIR`, else `data/models/resmem`. Fails, saying
/// to run `cargo xtask model`, when it is missing or is another model.
pub fn resmem_model_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("FORGETTABLE_MODEL_DIR").map_or_else(
        || xtask::tools::root().join(xtask::model::DEFAULT_DIR),
        PathBuf::from,
    );
    let usable = xtask::model::licence_note(&dir).and_then(|_| {
        let manifest = dir.join("manifest.json");
        let text = std::fs::read_to_string(&manifest)?;
        let name: serde_json::Value = serde_json::from_str(&text)?;
        ensure!(
            name["name"] == "resmem",
            "the model there is {}",
            name["name"]
        );
        Ok(())
    });
    if let Err(e) = usable {
        bail!(
            "the ResMem model is not in {} ({e:#}): run `cargo xtask model` first",
            dir.display()
        );
    }
    Ok(dir)
}

/// Traefik's variables that lift the gateway's per-address login and registration limits, for
/// stacks whose traffic comes from one address on purpose (those limits have a test of their own).
pub fn gateway_limits_lifted() -> std::collections::BTreeMap<String, String> {
    [
        "GATEWAY_LOGIN_RATE_PER_MINUTE_IP",
        "GATEWAY_REGISTER_RATE_PER_MINUTE_IP",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), "100000".to_owned()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_binary_is_read_from_cargo_messages_and_anything_else_is_not() {
        let bin = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"images_service"},"executable":"/t/release/images_service"}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"images_service"},"executable":null}"#;
        let other = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"xtask"},"executable":"/t/release/xtask"}"#;
        let harness = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"images_service"},"profile":{"test":true},"executable":"/t/release/deps/images_service-0123"}"#;
        assert_eq!(
            service_executable(bin),
            Some(PathBuf::from("/t/release/images_service"))
        );
        assert_eq!(service_executable(lib), None);
        assert_eq!(service_executable(other), None);
        assert_eq!(service_executable(harness), None);
        assert_eq!(service_executable("not json"), None);
    }

    #[test]
    fn a_missing_model_says_to_run_cargo_xtask_model() {
        let empty = tempfile::tempdir().expect("temp dir");
        std::env::set_var("FORGETTABLE_MODEL_DIR", empty.path());
        let err = resmem_model_dir().expect_err("no model there");
        std::env::remove_var("FORGETTABLE_MODEL_DIR");
        assert!(format!("{err:#}").contains("cargo xtask model"), "{err:#}");
    }
}
