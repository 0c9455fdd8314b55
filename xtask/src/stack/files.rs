//! The generated files a native stack needs under its data directory: nginx's configuration
//! (from `nginx/`'s templates), Traefik's static configuration (from `traefik/traefik.native.yml`)
//! and Prometheus's configuration with loopback scrape targets (from `monitoring/`).

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::{StackOptions, USERS_NAMES};
use crate::tools;

/// Replaces each `${NAME}` of `vars` in `template`; fails if a `${…}` placeholder is left, so a
/// template and its caller cannot drift apart silently.
pub fn substitute(template: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = template.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    if let Some(start) = out.find("${") {
        let end = out[start..].find('}').map_or(out.len(), |e| start + e + 1);
        bail!("template placeholder {} has no value", &out[start..end]);
    }
    Ok(out)
}

fn render(template: &Path, target: &Path, vars: &BTreeMap<&str, String>) -> Result<()> {
    let text =
        fs::read_to_string(template).with_context(|| format!("reading {}", template.display()))?;
    let rendered =
        substitute(&text, vars).with_context(|| format!("rendering {}", template.display()))?;
    fs::write(target, rendered).with_context(|| format!("writing {}", target.display()))
}

/// nginx for the error pages: the server block of `nginx/templates/default.conf.template` (the
/// same file the official image renders in Compose) inside a native main configuration whose
/// pid file and temporary paths live in `<dir>`.
pub fn write_nginx(dir: &Path, port: u16) -> Result<()> {
    let root = tools::root().join("nginx");
    for sub in ["tmp", "conf.d"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let server = BTreeMap::from([
        ("ERRORS_LISTEN", format!("127.0.0.1:{port}")),
        (
            "ERRORS_ROOT",
            root.join("html").to_string_lossy().into_owned(),
        ),
    ]);
    render(
        &root.join("templates/default.conf.template"),
        &dir.join("conf.d/errors.conf"),
        &server,
    )?;
    let main = BTreeMap::from([("PREFIX", dir.to_string_lossy().into_owned())]);
    render(
        &root.join("native/nginx.conf.template"),
        &dir.join("nginx.conf"),
        &main,
    )
}

/// Traefik's static configuration for loopback ports, reading the committed dynamic files.
pub fn write_traefik(dir: &Path, opts: &StackOptions) -> Result<()> {
    fs::create_dir_all(dir)?;
    let ports = &opts.ports;
    let vars = BTreeMap::from([
        ("WEB_ADDRESS", format!("127.0.0.1:{}", ports.web)),
        ("API_ADDRESS", format!("127.0.0.1:{}", ports.traefik_api)),
        (
            "METRICS_ADDRESS",
            format!("127.0.0.1:{}", ports.traefik_metrics),
        ),
        (
            "DYNAMIC_DIR",
            tools::root()
                .join("traefik/dynamic")
                .to_string_lossy()
                .into_owned(),
        ),
    ]);
    render(
        &tools::root().join("traefik/traefik.native.yml"),
        &dir.join("traefik.yml"),
        &vars,
    )
}

/// Prometheus: `monitoring/prometheus.yml` and its rules as they are, plus native
/// `targets/*.json` with the loopback ports and the same jobs and `instance` labels as Compose.
pub fn write_prometheus(dir: &Path, opts: &StackOptions) -> Result<()> {
    let monitoring = tools::root().join("monitoring");
    fs::create_dir_all(dir.join("rules"))?;
    fs::create_dir_all(dir.join("targets"))?;
    fs::copy(
        monitoring.join("prometheus.yml"),
        dir.join("prometheus.yml"),
    )
    .context("copying monitoring/prometheus.yml")?;
    for entry in fs::read_dir(monitoring.join("rules")).context("reading monitoring/rules")? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            fs::copy(&path, dir.join("rules").join(name))?;
        }
    }
    let ports = &opts.ports;
    let target = |port: u16, instance: &str| json!({ "targets": [format!("127.0.0.1:{port}")], "labels": { "instance": instance } });
    let jobs = [
        ("traefik", vec![target(ports.traefik_metrics, "traefik")]),
        (
            "users",
            USERS_NAMES
                .iter()
                .zip(ports.users)
                .map(|(name, port)| target(port, name))
                .collect(),
        ),
        ("images", vec![target(ports.images, "images")]),
        ("inference", vec![target(ports.inference, "inference")]),
        ("prometheus", vec![target(ports.prometheus, "prometheus")]),
    ];
    for (job, targets) in jobs {
        fs::write(
            dir.join("targets").join(format!("{job}.json")),
            serde_json::to_string_pretty(&targets)?,
        )?;
    }
    Ok(())
}

/// Creates the data directory and every generated file the stack's processes read.
pub fn prepare(opts: &StackOptions) -> Result<()> {
    let data = &opts.data_dir;
    for sub in ["logs", "keys", "blobs"] {
        fs::create_dir_all(data.join(sub))
            .with_context(|| format!("creating {}", data.join(sub).display()))?;
    }
    write_nginx(&data.join("nginx"), opts.ports.errors)?;
    write_traefik(&data.join("traefik"), opts)?;
    if opts.with_prometheus {
        write_prometheus(&data.join("prometheus"), opts)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_fills_every_placeholder_and_leaves_nginx_variables_alone() {
        let vars = BTreeMap::from([("PORT", "8401".to_owned())]);
        let out =
            substitute("listen ${PORT}; add_header X-Request-Id $rid;", &vars).expect("rendered");
        assert_eq!(out, "listen 8401; add_header X-Request-Id $rid;");
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error() {
        let err = substitute("root ${ROOT};", &BTreeMap::new()).expect_err("must fail");
        assert!(err.to_string().contains("${ROOT}"), "{err}");
    }
}
