//! Gateway configuration checks with the real tools.
//!
//! Traefik has no dry-run, and a broken dynamic file at start silently disables every route while
//! `/ping` stays healthy. So the check starts a throwaway Traefik (with the nginx error pages
//! beside it) on free loopback ports with the committed static and dynamic configuration, and
//! fails on any ERR log line or on any router, service or middleware the API reports as not
//! enabled. nginx's configuration is checked with `nginx -t`.

use std::{collections::BTreeMap, process::Command, time::Duration};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::stack::{self, Ports, Stack, StackOptions};

/// Routers the dynamic configuration must define.
const EXPECTED_ROUTERS: [&str; 10] = [
    "internal-endpoints-hidden",
    "users-admin",
    "users-admin-closed",
    "users-authenticated",
    "users-authenticated-read",
    "users-anonymous",
    "images",
    "inference",
    "error-pages",
    "catch-all",
];

pub fn checks() -> Vec<super::Check> {
    vec![
        ("nginx error-page configuration (nginx -t)", check_nginx),
        ("traefik configuration loads cleanly", check_traefik),
    ]
}

fn check_nginx() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("forgettable-nginx-check-")
        .tempdir()?;
    stack::files::write_nginx(dir.path(), crate::tools::free_port()?)?;
    let out = Command::new(stack::nginx_bin())
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .args(["-e", "stderr", "-t"])
        .output()
        .with_context(|| {
            format!(
                "running {} -t (install nginx: apt-get install nginx)",
                stack::nginx_bin().display()
            )
        })?;
    if !out.status.success() {
        bail!("nginx -t failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn api_list(agent: &ureq::Agent, ports: &Ports, kind: &str) -> Result<Vec<Value>> {
    let url = format!(
        "http://127.0.0.1:{}/api/http/{kind}?per_page=1000",
        ports.traefik_api
    );
    let response = agent
        .get(&url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let body: Value = serde_json::from_reader(response.into_reader())?;
    match body {
        Value::Array(items) => Ok(items),
        other => bail!("{url} did not answer a list: {other}"),
    }
}

fn check_traefik() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("forgettable-traefik-check-")
        .tempdir()?;
    let ports = Ports::free()?;
    let opts = StackOptions {
        data_dir: dir.path().to_path_buf(),
        bin_dir: dir.path().to_path_buf(),
        model_dir: dir.path().to_path_buf(),
        ports: ports.clone(),
        env_overrides: BTreeMap::new(),
        with_prometheus: false,
    };
    let stack = Stack::start_only(opts, &["errors", "traefik"])?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let mut problems = Vec::new();
    for kind in ["routers", "services", "middlewares"] {
        for item in api_list(&agent, &ports, kind)? {
            let name = item["name"].as_str().unwrap_or("?");
            let status = item["status"].as_str().unwrap_or("?");
            if status != "enabled" {
                problems.push(format!("{kind}: {name} is {status}: {}", item["error"]));
            }
        }
    }
    let routers: Vec<String> = api_list(&agent, &ports, "routers")?
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    for expected in EXPECTED_ROUTERS {
        if !routers.iter().any(|r| r == &format!("{expected}@file")) {
            problems.push(format!("router {expected}@file is missing"));
        }
    }
    let log = std::fs::read_to_string(stack.log_path("traefik"))?;
    problems.extend(
        log.lines()
            .filter(|l| l.contains(" ERR ") || l.contains("level=error"))
            .map(|l| format!("log: {l}")),
    );
    drop(stack);
    if !problems.is_empty() {
        bail!("{} problem(s):\n{}", problems.len(), problems.join("\n"));
    }
    Ok(())
}
