//! `cargo xtask swarm up|down`: the suite as the Swarm stack `forgettable` (docker-compose.yml
//! plus deploy/swarm.yml) on this machine's Docker engine, with the images `cargo xtask docker up`
//! builds here.
//!
//! `up` makes this engine a single-node swarm when it is in none (and labels the node so that
//! `down` knows to leave it again), builds or reuses the images, deploys, waits until every
//! service runs its replicas, healthy, and the gateway answers through every users task, then
//! prints the URLs. `down` removes the stack and waits until its containers and networks are
//! gone.

use std::{
    collections::BTreeMap,
    fs,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    docker::{self, Engine, UpArgs},
    stack::admin,
    tools::{self, step},
};

/// The stack's name: services are `forgettable_<service>`.
pub const STACK: &str = "forgettable";
/// The stack files, in order, relative to the workspace root.
pub const STACK_FILES: &[&str] = &["docker-compose.yml", "deploy/swarm.yml"];
/// The node label that says `swarm up` created the swarm, so `swarm down` leaves it.
const CREATED_LABEL: &str = "forgettable-images.swarm-created-by";
/// The bridge network of a swarm node's published ports.
const GATEWAY_BRIDGE: &str = "docker_gwbridge";
/// How long the stack may take to run every replica, healthy.
const DEPLOYED_WITHIN: Duration = Duration::from_secs(300);
/// How long the gateway may take to reach the services once Swarm says they are healthy.
const GATEWAY_WITHIN: Duration = Duration::from_secs(60);
/// How long `down` waits for the stack's containers and networks to go.
const REMOVED_WITHIN: Duration = Duration::from_secs(120);

#[derive(clap::Args, Debug)]
pub struct SwarmArgs {
    #[command(subcommand)]
    pub command: SwarmCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum SwarmCommand {
    /// Build the images locally, deploy the stack `forgettable` on this engine's swarm (made
    /// when there is none) and wait until every service is healthy.
    Up(UpArgs),
    /// Remove the stack (and the swarm, when `swarm up` made it).
    Down(DownArgs),
}

#[derive(clap::Args, Debug, Default)]
pub struct DownArgs {
    /// Remove the stack's volumes too (database, blobs, Prometheus data, ACME certificates).
    #[arg(long)]
    pub volumes: bool,
}

pub fn run(args: SwarmArgs) -> Result<()> {
    match args.command {
        SwarmCommand::Up(args) => {
            let started = Instant::now();
            up(&args)?;
            println!(
                "\nForgettable Images is running on Docker Swarm (stack {STACK}), deployed in {:.0} s:\n",
                started.elapsed().as_secs_f64()
            );
            print!("{}", docker::gateway_rows());
            println!(
                "  (Traefik's dashboard, Prometheus and Grafana are not published on a Swarm)"
            );
            println!("\nServices: docker stack services {STACK}");
            println!("Stop:     cargo xtask swarm down [--volumes]");
            Ok(())
        }
        SwarmCommand::Down(args) => down(&args),
    }
}

/// Builds the images, joins or makes a swarm, deploys and waits until every service is healthy.
pub fn up(args: &UpArgs) -> Result<()> {
    let engine = Engine::find()?;
    engine.build_images(args)?;
    ensure_swarm()?;
    let vars = environment()?;
    deploy(&vars)?;
    wait_deployed(DEPLOYED_WITHIN)?;
    let domain = vars
        .get("PUBLIC_DOMAIN")
        .cloned()
        .or_else(|| std::env::var("PUBLIC_DOMAIN").ok())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    wait_for_gateway(&domain, GATEWAY_WITHIN)
}

/// Waits until the gateway on this node serves each public service over HTTPS: Swarm reports a
/// task running once its own health check passed, and Traefik sends it traffic after its next
/// probe finds it (a second or two later). `/readyz` is not public, so the probe is
/// `/openapi.json`, which every service answers once the gateway routes to it. The certificate
/// is not checked here: it may be your own or Let's Encrypt's.
fn wait_for_gateway(domain: &str, within: Duration) -> Result<()> {
    tools::ensure_apt(&[("curl", "curl")])?;
    let started = Instant::now();
    for service in ["users", "images", "inference"] {
        let host = format!("{service}.{domain}");
        loop {
            let status = tools::output(
                Command::new("curl")
                    .args(["--silent", "--insecure", "--max-time", "5"])
                    .args(["--output", "/dev/null", "--write-out", "%{http_code}"])
                    .args(["--resolve", &format!("{host}:443:127.0.0.1")])
                    .arg(format!("https://{host}/openapi.json")),
            )
            .unwrap_or_default();
            if status == "200" {
                break;
            }
            if started.elapsed() > within {
                bail!(
                    "https://{host}/openapi.json answered {status:?} through the gateway for {within:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    step(format!(
        "the gateway serves users, images and inference over HTTPS ({:.0} s more)",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// `docker stack deploy` of the stack files, with the settings of `.env` (which `docker stack`
/// does not read) and this machine's defaults.
pub fn deploy(vars: &BTreeMap<String, String>) -> Result<()> {
    let started = Instant::now();
    step(format!(
        "deploying the stack {STACK} ({} + {})",
        STACK_FILES.join(" + "),
        docker::OVERRIDE
    ));
    let mut command = Command::new("docker");
    command.current_dir(tools::root()).args([
        "stack",
        "deploy",
        "--detach=true",
        "--resolve-image=never",
    ]);
    // The local images' names come from the same override as for Compose.
    for file in STACK_FILES.iter().chain([&docker::OVERRIDE]) {
        command.args(["--compose-file", file]);
    }
    command.arg(STACK);
    command.envs(vars);
    tools::run(&mut command)?;
    step(format!(
        "stack deployed in {:.0} s; waiting for every service",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The variables `docker stack deploy` interpolates: `.env`, then this machine's defaults for
/// what `.env` leaves unset; the caller's own environment wins over both.
pub fn environment() -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    if let Ok(text) = fs::read_to_string(tools::root().join(".env")) {
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            if let Some((name, value)) = line.split_once('=') {
                vars.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
    if !vars.contains_key("ADMIN_ALLOWED_CIDRS") {
        // A request from this machine to a port published in host mode arrives from the
        // docker_gwbridge network's gateway.
        vars.insert(
            "ADMIN_ALLOWED_CIDRS".to_owned(),
            format!("127.0.0.1/32,{}/32", gateway_bridge_address()?),
        );
    }
    // What the gateway will read (the caller's own value wins, see below) must be valid.
    let admin = std::env::var(admin::VARIABLE)
        .ok()
        .or_else(|| vars.get(admin::VARIABLE).cloned())
        .unwrap_or_default();
    admin::AdminNetworks::parse(&admin)?;
    if !vars.contains_key("GRAFANA_REPLICAS") {
        // As with Compose: no image of Grafana can be built without a registry.
        vars.insert("GRAFANA_REPLICAS".to_owned(), "0".to_owned());
    }
    vars.retain(|name, _| std::env::var_os(name).is_none());
    Ok(vars)
}

/// The gateway address of docker_gwbridge, the bridge that connects a node's tasks to its host.
/// The engine makes it when the first task with a published port starts; it is made here, as
/// Docker's documentation describes, when it is not there yet, so that its address is known
/// before the gateway's allow-list is set.
fn gateway_bridge_address() -> Result<String> {
    let exists = Command::new("docker")
        .args(["network", "inspect", GATEWAY_BRIDGE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        step(format!(
            "making the {GATEWAY_BRIDGE} network for the swarm's published ports"
        ));
        tools::run(
            Command::new("docker")
                .args(["network", "create", "--driver", "bridge"])
                .args(["--opt", "com.docker.network.bridge.name=docker_gwbridge"])
                .args(["--opt", "com.docker.network.bridge.enable_icc=false"])
                .args([
                    "--opt",
                    "com.docker.network.bridge.enable_ip_masquerade=true",
                ])
                .arg(GATEWAY_BRIDGE)
                .stdout(std::process::Stdio::null()),
        )?;
    }
    let gateway = tools::output(Command::new("docker").args([
        "network",
        "inspect",
        GATEWAY_BRIDGE,
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]))?;
    let gateway = gateway.trim();
    if gateway.is_empty() {
        bail!("the {GATEWAY_BRIDGE} network has no gateway address (docker network inspect {GATEWAY_BRIDGE})");
    }
    Ok(gateway.to_owned())
}

/// Makes this engine a single-node swarm manager when it is in no swarm.
fn ensure_swarm() -> Result<()> {
    match swarm_state()?.as_str() {
        "active" => {
            let manager = tools::output(Command::new("docker").args([
                "info",
                "--format",
                "{{.Swarm.ControlAvailable}}",
            ]))?;
            if manager.trim() != "true" {
                bail!(
                    "this engine is a swarm worker: run `cargo xtask swarm up` on a manager \
                     (docker node ls there shows the nodes)"
                );
            }
            step("this engine is a swarm manager: deploying there");
        }
        "inactive" => {
            step(
                "making this engine a single-node swarm on 127.0.0.1 (to add workers, run \
                 `docker swarm init --advertise-addr <this machine's address>` first)",
            );
            tools::run(Command::new("docker").args([
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
            ]))?;
            tools::run(Command::new("docker").args([
                "node",
                "update",
                "--label-add",
                &format!("{CREATED_LABEL}=cargo-xtask-swarm-up"),
                &node_id()?,
            ]))?;
        }
        other => bail!("this engine's swarm is {other}: see `docker info`"),
    }
    Ok(())
}

/// This engine's node in the swarm (`docker node update` does not take `self`).
fn node_id() -> Result<String> {
    Ok(
        tools::output(Command::new("docker").args(["info", "--format", "{{.Swarm.NodeID}}"]))?
            .trim()
            .to_owned(),
    )
}

fn swarm_state() -> Result<String> {
    Ok(tools::output(Command::new("docker").args([
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}}",
    ]))?
    .trim()
    .to_owned())
}

/// One service of the stack: its name and `running/desired` replicas.
struct ServiceState {
    name: String,
    running: u32,
    desired: u32,
}

fn services() -> Result<Vec<ServiceState>> {
    let text = tools::output(Command::new("docker").args([
        "stack",
        "services",
        STACK,
        "--format",
        "{{.Name}} {{.Replicas}}",
    ]))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (name, replicas) = line.split_once(' ')?;
            // "3/3", or "3/3 (max 1 per node)".
            let replicas = replicas.split_whitespace().next()?;
            let (running, desired) = replicas.split_once('/')?;
            Some(ServiceState {
                name: name.to_owned(),
                running: running.parse().ok()?,
                desired: desired.parse().ok()?,
            })
        })
        .collect())
}

/// Waits until every service of the stack runs all its replicas. A task counts as running once
/// its health check passed, so this is also "every task healthy".
pub fn wait_deployed(within: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let services = services()?;
        let waiting: Vec<String> = services
            .iter()
            .filter(|s| s.running != s.desired)
            .map(|s| format!("{} {}/{}", s.name, s.running, s.desired))
            .collect();
        if !services.is_empty() && waiting.is_empty() {
            step(format!(
                "every service runs its replicas, healthy, {:.0} s after the deploy",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if started.elapsed() > within {
            bail!(
                "not every service was running within {within:?}: {}\n{}",
                waiting.join(", "),
                task_errors()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The tasks of the stack that failed or were rejected, with Swarm's reason.
fn task_errors() -> String {
    let out = Command::new("docker")
        .args([
            "stack",
            "ps",
            STACK,
            "--no-trunc",
            "--filter",
            "desired-state=shutdown",
        ])
        .args(["--format", "{{.Name}} {{.CurrentState}} {{.Error}}"])
        .output();
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("(docker stack ps failed: {e})"),
    }
}

/// How long `down` tries to remove docker_gwbridge while the engine says it has endpoints.
const BRIDGE_RELEASED_WITHIN: Duration = Duration::from_secs(30);

/// Removes docker_gwbridge, which the engine made for the swarm's published ports: it goes with
/// the swarm. `swarm leave` returns before the engine has detached the bridge's last endpoints
/// (the ingress sandbox), so the removal is tried again while the engine answers "active
/// endpoints". Sometimes the engine keeps counting an endpoint that no container holds
/// (moby/moby#37018), which only a restart of the engine clears: the bridge is then left, empty,
/// with a message, and the next `swarm up` uses it again.
fn remove_gateway_bridge() -> Result<()> {
    let started = Instant::now();
    loop {
        let Some(attached) = bridge_endpoints()? else {
            // Already gone (the engine may remove it itself).
            return Ok(());
        };
        let removed = Command::new("docker")
            .args(["network", "rm", GATEWAY_BRIDGE])
            .output()?;
        if removed.status.success() {
            return Ok(());
        }
        let error = String::from_utf8_lossy(&removed.stderr).trim().to_owned();
        if !error.contains("active endpoints") {
            bail!("docker network rm {GATEWAY_BRIDGE} failed: {error}");
        }
        if started.elapsed() > BRIDGE_RELEASED_WITHIN {
            if attached > 0 {
                bail!(
                    "{GATEWAY_BRIDGE} still has {attached} container(s) attached \
                     {BRIDGE_RELEASED_WITHIN:?} after leaving the swarm (docker network inspect \
                     {GATEWAY_BRIDGE})"
                );
            }
            step(format!(
                "{GATEWAY_BRIDGE} is left: no container is attached to it, but the engine still \
                 counts an endpoint (moby/moby#37018); it is empty and harmless, the next `swarm \
                 up` uses it again, and restarting the Docker engine removes the stale count"
            ));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many containers docker_gwbridge lists, or `None` when it does not exist.
pub fn bridge_endpoints() -> Result<Option<usize>> {
    let inspected = Command::new("docker")
        .args([
            "network",
            "inspect",
            GATEWAY_BRIDGE,
            "--format",
            "{{len .Containers}}",
        ])
        .output()?;
    if !inspected.status.success() {
        return Ok(None);
    }
    let count = String::from_utf8_lossy(&inspected.stdout).trim().to_owned();
    Ok(Some(count.parse().with_context(|| {
        format!("docker network inspect {GATEWAY_BRIDGE} counted {count:?} containers")
    })?))
}

/// Removes the stack, waits until its containers and networks are gone, removes its volumes
/// when asked, and leaves the swarm when `up` made it.
pub fn down(args: &DownArgs) -> Result<()> {
    if swarm_state()? != "active" {
        step("this engine is in no swarm: nothing to remove");
        return Ok(());
    }
    step(format!("removing the stack {STACK}"));
    tools::run(Command::new("docker").args(["stack", "rm", STACK]))?;
    let namespace = format!("label=com.docker.stack.namespace={STACK}");
    let started = Instant::now();
    loop {
        let containers = tools::output(
            Command::new("docker").args(["ps", "--all", "--quiet", "--filter", &namespace]),
        )?;
        let networks = tools::output(
            Command::new("docker").args(["network", "ls", "--quiet", "--filter", &namespace]),
        )?;
        if containers.trim().is_empty() && networks.trim().is_empty() {
            break;
        }
        if started.elapsed() > REMOVED_WITHIN {
            bail!(
                "the stack's containers or networks were still there after {REMOVED_WITHIN:?}: \
                 containers {}, networks {}",
                containers.split_whitespace().collect::<Vec<_>>().join(" "),
                networks.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if args.volumes {
        let volumes = tools::output(
            Command::new("docker").args(["volume", "ls", "--quiet", "--filter", &namespace]),
        )?;
        let volumes: Vec<&str> = volumes.split_whitespace().collect();
        if !volumes.is_empty() {
            step(format!("removing the volumes {}", volumes.join(", ")));
            tools::run(Command::new("docker").args(["volume", "rm"]).args(&volumes))?;
        }
    }
    let created_here = tools::output(Command::new("docker").args([
        "node",
        "inspect",
        &node_id()?,
        "--format",
        &format!("{{{{index .Spec.Labels \"{CREATED_LABEL}\"}}}}"),
    ]))?;
    if !created_here.trim().is_empty() {
        step("leaving the single-node swarm `cargo xtask swarm up` made");
        tools::run(Command::new("docker").args(["swarm", "leave", "--force"]))?;
        remove_gateway_bridge()?;
    }
    step(format!("the stack {STACK} is gone"));
    Ok(())
}
