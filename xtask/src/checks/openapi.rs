//! The services' OpenAPI documents against the OpenAPI specification with
//! `openapi-spec-validator`. Each binary prints the document its `/openapi.json` serves
//! (`SERVICE openapi`), so the check needs no running service.
//!
//! openapi-spec-validator and its dependencies are pinned with their hashes in
//! [`REQUIREMENTS_FILE`] and installed into the project virtualenv.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::tools;

/// openapi-spec-validator, every dependency pinned with its hashes.
pub const REQUIREMENTS_FILE: &str = "xtask/openapi-requirements.txt";
/// The services whose documents are checked (package and binary names).
pub const SERVICES: [&str; 3] = ["users_service", "images_service", "inference_service"];

pub fn checks() -> Vec<super::Check> {
    vec![(
        "the services' OpenAPI documents are valid OpenAPI",
        validate_documents,
    )]
}

/// Validates every service's document, reporting all of their problems at once.
fn validate_documents() -> Result<()> {
    tools::ensure_pip_file(&tools::root().join(REQUIREMENTS_FILE))?;
    // The build the test command makes (nothing to do after its build phase). `cargo run
    // --package SERVICE` would resolve features for one package and recompile half the tree.
    tools::run(
        crate::cargo::command()
            .current_dir(tools::root())
            .args(crate::test::RELEASE_BUILD),
    )?;
    let dir = tempfile::Builder::new()
        .prefix("forgettable-openapi-check-")
        .tempdir()?;
    let problems: Vec<String> = SERVICES
        .iter()
        .filter_map(|service| {
            let file = dir.path().join(format!("{service}.json"));
            write_document(service, &file)
                .and_then(|()| validate(&file))
                .err()
                .map(|e| format!("{service}: {e:#}"))
        })
        .collect();
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// Writes the document the release binary of `service` prints.
fn write_document(service: &str, file: &std::path::Path) -> Result<()> {
    let out = Command::new(tools::root().join("target/release").join(service))
        .arg("openapi")
        .output()
        .with_context(|| format!("running {service} openapi"))?;
    if !out.status.success() {
        bail!(
            "`{service} openapi` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .with_context(|| format!("`{service} openapi` printed no JSON"))?;
    std::fs::write(file, &out.stdout)?;
    Ok(())
}

fn validate(file: &std::path::Path) -> Result<()> {
    let out = Command::new(tools::venv_bin("openapi-spec-validator")?)
        .args(["--validation-errors", "all"])
        .arg(file)
        .output()
        .context("running openapi-spec-validator")?;
    if !out.status.success() {
        bail!(
            "not valid OpenAPI:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_validator_requirement_is_pinned_with_a_hash() -> Result<()> {
        let text = std::fs::read_to_string(tools::root().join(REQUIREMENTS_FILE))?;
        let pins: Vec<&str> = text.lines().filter(|l| l.contains("==")).collect();
        assert!(
            pins.iter()
                .any(|p| p.starts_with("openapi-spec-validator==")),
            "{pins:?}"
        );
        for pin in pins {
            assert!(pin.trim_end().ends_with('\\'), "{pin} has no hash");
        }
        Ok(())
    }
}
