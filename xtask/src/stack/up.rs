//! `cargo xtask up`: install what is missing, build, start the whole suite natively, print where
//! everything is, stream every process's log with its name, and stop cleanly on Ctrl-C/SIGTERM.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::mpsc,
    time::Duration,
};

use anyhow::{bail, Context, Result};

use super::{ensure_tools, Ports, Stack, StackOptions, USERS_NAMES};
use crate::tools::{self, step};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Use the binaries already built instead of running `cargo build` first.
    #[arg(long)]
    pub no_build: bool,
    /// Build and run the debug binaries (faster to build, slower to run).
    #[arg(long)]
    pub debug: bool,
}

fn url_table(ports: &Ports) -> String {
    let mut rows = vec![
        (
            "users (gateway)".to_owned(),
            format!("http://users.localhost:{}", ports.web),
        ),
        (
            "images (gateway)".to_owned(),
            format!("http://images.localhost:{}", ports.web),
        ),
        (
            "inference (gateway)".to_owned(),
            format!("http://inference.localhost:{}", ports.web),
        ),
        (
            "error pages (gateway)".to_owned(),
            format!("http://error.localhost:{}", ports.web),
        ),
        (
            "Traefik dashboard".to_owned(),
            format!("http://127.0.0.1:{}/dashboard/", ports.traefik_api),
        ),
        (
            "Traefik metrics".to_owned(),
            format!("http://127.0.0.1:{}/metrics", ports.traefik_metrics),
        ),
        (
            "Prometheus".to_owned(),
            format!("http://127.0.0.1:{}", ports.prometheus),
        ),
    ];
    for (name, port) in USERS_NAMES.iter().zip(ports.users) {
        rows.push(((*name).to_owned(), format!("http://127.0.0.1:{port}")));
    }
    rows.push((
        "images (direct)".to_owned(),
        format!("http://127.0.0.1:{}", ports.images),
    ));
    rows.push((
        "inference (direct)".to_owned(),
        format!("http://127.0.0.1:{}", ports.inference),
    ));
    rows.push((
        "nginx error pages".to_owned(),
        format!("http://127.0.0.1:{}", ports.errors),
    ));
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(name, url)| format!("  {name:<width$}  {url}\n"))
        .collect()
}

/// The model folder inference_service serves: `MODEL_DIR` when set (relative to the workspace,
/// e.g. `data/models/resmem-int8`), else the fp32 ResMem, converted when missing.
fn model_dir(data_dir: &Path) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MODEL_DIR") {
        let dir = tools::root().join(dir);
        step(format!(
            "serving the model in {} (MODEL_DIR)",
            dir.display()
        ));
        if !dir.join("manifest.json").is_file() {
            bail!(
                "MODEL_DIR={}: no manifest.json there (`cargo xtask model` makes \
                 data/models/resmem, `cargo xtask model --int8` data/models/resmem-int8)",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let dir = data_dir.join("models/resmem");
    step("checking the model");
    crate::model::ensure_model(&dir)
        .context("preparing the model (`cargo xtask model` does this step on its own)")?;
    Ok(dir)
}

pub fn up(args: UpArgs) -> Result<()> {
    // Before the minutes of installing and building.
    super::admin::AdminNetworks::from_env()?;
    let root = tools::root();
    step("checking tools: Traefik, nginx, Prometheus");
    ensure_tools()?;

    let profile = if args.debug { "debug" } else { "release" };
    if !args.no_build {
        step(format!("building the services ({profile})"));
        let mut build = crate::cargo::command();
        build.current_dir(&root).args(["build", "--bins"]);
        if !args.debug {
            build.arg("--release");
        }
        tools::run(&mut build)?;
    }

    let data_dir = root.join("data");
    let model_dir = model_dir(&data_dir)?;

    let opts = StackOptions {
        data_dir,
        bin_dir: root.join("target").join(profile),
        model_dir,
        ports: Ports::native_defaults(),
        env_overrides: BTreeMap::new(),
        with_prometheus: true,
    };
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C/SIGTERM handler")?;

    step("starting the suite");
    let mut stack = Stack::launch(opts, None, true)?;
    println!(
        "\nForgettable Images is running (Ctrl-C stops everything):\n\n{}",
        url_table(stack.ports())
    );
    println!("Logs: {}\n", stack.data_dir().join("logs").display());

    let outcome = loop {
        match stop_rx.recv_timeout(Duration::from_millis(500)) {
            Ok(()) => break Ok(()),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some((name, status)) = stack.exited() {
            break Err(anyhow::anyhow!(
                "{name} exited unexpectedly with {status}; stopping the suite"
            ));
        }
    };
    step("stopping every process");
    stack.stop();
    outcome
}
