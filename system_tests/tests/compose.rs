//! Docker Compose against the native launcher, the shared configuration files and the real
//! binaries, without a Docker engine (`tests/compose_stack.rs` runs the stack on one):
//!
//! - drift tests: the processes, variables, endpoints, Traefik files, Prometheus targets and
//!   Grafana provisioning that Compose uses are those of `xtask::stack::native_processes` (what
//!   the native launcher and the end-to-end tests run), so renaming one side fails here;
//! - a launch test: each service binary starts with exactly the environment Compose gives it,
//!   only hosts, ports, the database server and container paths swapped for local ones, as the
//!   image's unprivileged user with the secrets in a folder it cannot write to (like
//!   `/run/secrets`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_norway::Value;
use xtask::stack::{native_processes, Ports, ProcessSpec, StackOptions, USERS_NAMES};

fn root() -> PathBuf {
    xtask::tools::root()
}

fn read(relative: &str) -> String {
    fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

fn yaml(relative: &str) -> Value {
    serde_norway::from_str(&read(relative)).unwrap_or_else(|e| panic!("parsing {relative}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Compose's variable interpolation and `.env` files.

/// Reads `KEY=VALUE` lines (comments and blank lines skipped), as Compose reads `.env`.
fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// Compose interpolation: `$$`, `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
/// `${NAME:?error}`, `${NAME?error}`.
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = rest.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let expr = &body[..end];
            rest = &body[end + 1..];
            let name_len = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_len);
            let value = vars.get(name);
            let set_non_empty = value.is_some_and(|v| !v.is_empty());
            let resolved = if let Some(default) = op.strip_prefix(":-") {
                if set_non_empty {
                    value.cloned()
                } else {
                    Some(default.to_owned())
                }
            } else if let Some(default) = op.strip_prefix('-') {
                Some(value.cloned().unwrap_or_else(|| default.to_owned()))
            } else if let Some(message) = op.strip_prefix(":?") {
                if !set_non_empty {
                    return Err(format!("{name} is required: {message}"));
                }
                value.cloned()
            } else if let Some(message) = op.strip_prefix('?') {
                Some(
                    value
                        .cloned()
                        .ok_or_else(|| format!("{name} is required: {message}"))?,
                )
            } else if op.is_empty() {
                value.cloned()
            } else {
                return Err(format!("unsupported interpolation ${{{expr}}}"));
            };
            out.push_str(&resolved.unwrap_or_default());
        } else {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push_str(vars.get(&rest[..name_len]).map_or("", String::as_str));
            rest = &rest[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn interpolate_all(value: &mut Value, vars: &BTreeMap<String, String>) -> Result<(), String> {
    match value {
        Value::String(s) => *s = interpolate(s, vars)?,
        Value::Sequence(items) => items
            .iter_mut()
            .try_for_each(|v| interpolate_all(v, vars))?,
        Value::Mapping(map) => map
            .values_mut()
            .try_for_each(|v| interpolate_all(v, vars))?,
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The Compose file as Compose sees it: merges applied, variables interpolated.

struct Compose {
    doc: Value,
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Sequence(base), Value::Sequence(over)) => base.extend(over),
        (base, over) => *base = over,
    }
}

/// A bind mount or volume of a service (short syntax `SOURCE:TARGET[:MODE]`).
struct Mount {
    source: String,
    target: String,
}

impl Mount {
    /// The host path of a bind mount (`./…`), `None` for a named volume.
    fn host_path(&self) -> Option<PathBuf> {
        self.source.strip_prefix("./").map(|p| root().join(p))
    }
}

impl Compose {
    /// docker-compose.yml with docker-compose.override.yml over it, as `docker compose` reads
    /// them: mappings merge, lists add up, other values are replaced.
    fn try_load(vars: &BTreeMap<String, String>) -> Result<Compose, String> {
        let mut doc = yaml("docker-compose.yml");
        doc.apply_merge()
            .map_err(|e| format!("YAML merge keys: {e}"))?;
        let mut over = yaml("docker-compose.override.yml");
        over.apply_merge()
            .map_err(|e| format!("YAML merge keys of the override: {e}"))?;
        merge(&mut doc, over);
        interpolate_all(&mut doc, vars)?;
        Ok(Compose { doc })
    }

    fn load(vars: &BTreeMap<String, String>) -> Compose {
        Compose::try_load(vars).unwrap_or_else(|e| panic!("interpolating docker-compose.yml: {e}"))
    }

    /// Interpolated with only the values `.env.example` gives.
    fn with_example_env() -> Compose {
        Compose::load(&parse_env_file(&read(".env.example")))
    }

    fn service_names(&self) -> BTreeSet<String> {
        self.doc["services"]
            .as_mapping()
            .expect("services")
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect()
    }

    fn service(&self, name: &str) -> &Value {
        self.doc["services"]
            .get(name)
            .unwrap_or_else(|| panic!("Compose has no service {name}"))
    }

    /// The environment; `None` for a variable listed without a value (left unset unless given).
    fn env(&self, name: &str) -> BTreeMap<String, Option<String>> {
        let Some(map) = self
            .service(name)
            .get("environment")
            .and_then(Value::as_mapping)
        else {
            return BTreeMap::new();
        };
        map.iter()
            .map(|(k, v)| {
                let key = k.as_str().expect("variable name").to_owned();
                let value = match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    Value::Bool(b) => {
                        panic!("{name}: {key}: quote booleans ({b}) so the value is a string")
                    }
                    other => Some(
                        serde_norway::to_string(other)
                            .expect("scalar")
                            .trim()
                            .to_owned(),
                    ),
                };
                (key, value)
            })
            .collect()
    }

    fn env_value(&self, service: &str, variable: &str) -> String {
        self.env(service)
            .get(variable)
            .cloned()
            .flatten()
            .unwrap_or_else(|| panic!("Compose gives {service} no {variable}"))
    }

    fn strings(&self, service: &str, key: &str) -> Vec<String> {
        match self.service(service).get(key) {
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect(),
            Some(Value::Mapping(map)) => map
                .keys()
                .map(|k| k.as_str().expect("a name").to_owned())
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    fn mounts(&self, service: &str) -> Vec<Mount> {
        self.strings(service, "volumes")
            .iter()
            .map(|spec| {
                let parts: Vec<&str> = spec.split(':').collect();
                assert!(
                    parts.len() >= 2,
                    "{service}: volume {spec:?} is not SOURCE:TARGET"
                );
                Mount {
                    source: parts[0].to_owned(),
                    target: parts[1].to_owned(),
                }
            })
            .collect()
    }

    fn mount_of(&self, service: &str, source: &str) -> Mount {
        self.mounts(service)
            .into_iter()
            .find(|m| m.source == source)
            .unwrap_or_else(|| panic!("{service} does not mount {source}"))
    }

    /// Services Compose builds from this repository, with the text of their image's stages.
    fn built_services(&self) -> BTreeMap<String, String> {
        self.service_names()
            .into_iter()
            .filter_map(|name| {
                let build = self.service(&name).get("build")?;
                assert_eq!(
                    build["context"].as_str(),
                    Some("."),
                    "{name}: build context must be the workspace root"
                );
                let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
                let target = build["target"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: build.target names the image's stage"));
                // The stages as this service's build sees them: `${ARG}` replaced by its value.
                let mut text = stage_chain(&read(dockerfile), target);
                for (key, value) in build["args"].as_mapping().into_iter().flatten() {
                    let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
                        panic!("{name}: build args must be strings");
                    };
                    text = text.replace(&format!("${{{key}}}"), value);
                }
                Some((name, text))
            })
            .collect()
    }

    fn has_healthcheck(&self, service: &str) -> bool {
        self.service(service).get("healthcheck").is_some()
            || self
                .built_services()
                .get(service)
                .is_some_and(|stages| stages.contains("\nHEALTHCHECK"))
    }
}

/// The stages of a Dockerfile, by name: `FROM BASE AS NAME` and the lines up to the next `FROM`.
fn stages(dockerfile: &str) -> Vec<(String, String, String)> {
    let mut stages: Vec<(String, String, String)> = Vec::new();
    for line in dockerfile.lines() {
        if let Some(from) = line.strip_prefix("FROM ") {
            let words: Vec<&str> = from.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                _ => String::new(),
            };
            stages.push((name, words[0].to_owned(), String::new()));
        }
        if let Some((_, _, text)) = stages.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    stages
}

/// The text of the Dockerfile's stage `name` alone.
fn dockerfile_stage(name: &str) -> String {
    stages(&read("Dockerfile"))
        .into_iter()
        .find(|(stage, _, _)| stage == name)
        .unwrap_or_else(|| panic!("the Dockerfile has no stage `{name}`"))
        .2
}

/// The text of stage `target` preceded by the stages it is built `FROM` in the same file:
/// everything that ends up in the image the target names.
fn stage_chain(dockerfile: &str, target: &str) -> String {
    let stages = stages(dockerfile);
    let mut chain = Vec::new();
    let mut name = target.to_owned();
    while let Some((_, base, text)) = stages.iter().find(|(n, _, _)| *n == name) {
        chain.push(text.clone());
        name = base.clone();
    }
    assert!(!chain.is_empty(), "the Dockerfile has no stage {target}");
    chain.reverse();
    chain.concat()
}

// ---------------------------------------------------------------------------------------------
// Endpoints: where a URL or address points, in Compose terms and in native terms.

/// A process and, for Traefik, which of its entrypoints.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Endpoint {
    process: String,
    entrypoint: String,
}

fn endpoint(process: &str, entrypoint: &str) -> Endpoint {
    Endpoint {
        process: process.to_owned(),
        entrypoint: entrypoint.to_owned(),
    }
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"))
}

/// Traefik's entrypoints in a static file: name → address.
fn entrypoints(static_config: &Value) -> BTreeMap<String, String> {
    static_config["entryPoints"]
        .as_mapping()
        .expect("entryPoints")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("name").to_owned(),
                v["address"].as_str().expect("address").to_owned(),
            )
        })
        .collect()
}

/// Compose: `(service, container port)` → endpoint.
fn compose_endpoints(compose: &Compose) -> BTreeMap<(String, u16), Endpoint> {
    let mut map = BTreeMap::new();
    for name in compose.service_names() {
        if let Some(Some(listen)) = compose.env(&name).get("LISTEN_ADDR") {
            map.insert((name.clone(), port_of(listen)), endpoint(&name, ""));
        }
    }
    for (entrypoint, address) in entrypoints(&yaml("traefik/traefik.yml")) {
        map.insert(
            ("traefik".into(), port_of(&address)),
            endpoint("traefik", &entrypoint),
        );
    }
    let errors_port = compose.env_value("errors", "ERRORS_LISTEN");
    map.insert(
        ("errors".into(), port_of(&errors_port)),
        endpoint("errors", ""),
    );
    let prometheus_listen = compose
        .strings("prometheus", "command")
        .iter()
        .find_map(|a| a.strip_prefix("--web.listen-address=").map(str::to_owned))
        .expect("prometheus --web.listen-address");
    map.insert(
        ("prometheus".into(), port_of(&prometheus_listen)),
        endpoint("prometheus", ""),
    );
    map
}

/// Native: loopback port → endpoint, from the launcher's ports and Traefik's native template.
fn native_endpoints(ports: &Ports) -> BTreeMap<u16, Endpoint> {
    let mut map = BTreeMap::new();
    for (name, port) in USERS_NAMES.iter().zip(ports.users) {
        map.insert(port, endpoint(name, ""));
    }
    map.insert(ports.images, endpoint("images", ""));
    map.insert(ports.inference, endpoint("inference", ""));
    map.insert(ports.errors, endpoint("errors", ""));
    map.insert(ports.prometheus, endpoint("prometheus", ""));
    for (entrypoint, address) in entrypoints(&yaml("traefik/traefik.native.yml")) {
        let port = match address.as_str() {
            "${WEB_ADDRESS}" => ports.web,
            "${API_ADDRESS}" => ports.traefik_api,
            "${METRICS_ADDRESS}" => ports.traefik_metrics,
            other => {
                panic!("traefik.native.yml: entrypoint {entrypoint} has an unknown address {other}")
            }
        };
        map.insert(port, endpoint("traefik", &entrypoint));
    }
    map
}

/// Splits `http://host:port/path` into its parts.
fn split_url(url: &str) -> (String, u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url:?} is not an http:// URL"));
    let (authority, path) = rest
        .find('/')
        .map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{url:?} has no explicit port"));
    (
        host.to_owned(),
        port.parse().unwrap_or_else(|_| panic!("{url:?}: bad port")),
        path.to_owned(),
    )
}

fn is_url_list(value: &str) -> bool {
    value.split(',').all(|u| u.trim().starts_with("http://"))
}

/// Each URL of a comma-separated list as (endpoint, path), resolved with Compose's names.
/// Loopback in a service's own variables means that service itself.
fn resolve_compose(compose: &Compose, own: &str, value: &str) -> Vec<(Endpoint, String)> {
    let endpoints = compose_endpoints(compose);
    value
        .split(',')
        .map(|url| {
            let (host, port, path) = split_url(url.trim());
            let host = if host == "127.0.0.1" || host == "localhost" {
                own.to_owned()
            } else {
                host
            };
            let target = endpoints
                .get(&(host.clone(), port))
                .unwrap_or_else(|| panic!("{url}: no Compose service {host} listens on {port}"));
            (target.clone(), path)
        })
        .collect()
}

fn resolve_native(ports: &Ports, value: &str) -> Vec<(Endpoint, String)> {
    let endpoints = native_endpoints(ports);
    value
        .split(',')
        .map(|url| {
            let (host, port, path) = split_url(url.trim());
            assert_eq!(host, "127.0.0.1", "native URLs stay on loopback: {url}");
            let target = endpoints
                .get(&port)
                .unwrap_or_else(|| panic!("{url}: no native process on {port}"));
            (target.clone(), path)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The native side.

fn native_options() -> StackOptions {
    StackOptions {
        data_dir: PathBuf::from("/native/data"),
        bin_dir: PathBuf::from("/native/bin"),
        model_dir: PathBuf::from("/native/model"),
        ports: Ports::native_defaults(),
        env_overrides: BTreeMap::new(),
        with_prometheus: true,
    }
}

fn native() -> Vec<ProcessSpec> {
    native_processes(&native_options()).expect("native_processes")
}

/// Variable names docs/configuration.md documents (every `NAME` in backticks).
fn documented_variables() -> BTreeSet<String> {
    read("docs/configuration.md")
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() > 2
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// The Compose-only services: the database and the dashboards.
const COMPOSE_ONLY: [&str; 2] = ["postgres", "grafana"];

// ---------------------------------------------------------------------------------------------
// Drift tests.

#[test]
fn compose_runs_the_processes_the_native_launcher_runs_plus_postgres_and_grafana() {
    let compose = Compose::with_example_env();
    let native: BTreeSet<String> = native().into_iter().map(|p| p.name).collect();
    let compose_names: BTreeSet<String> = compose
        .service_names()
        .into_iter()
        .filter(|n| !COMPOSE_ONLY.contains(&n.as_str()))
        .collect();
    assert_eq!(compose_names, native);
    for name in COMPOSE_ONLY {
        assert!(
            compose.service_names().contains(name),
            "Compose runs {name}"
        );
    }
}

#[test]
fn compose_gives_each_service_every_variable_the_native_launcher_sets_pointing_at_the_same_places()
{
    let compose = Compose::with_example_env();
    let ports = Ports::native_defaults();
    let documented = documented_variables();
    for spec in native() {
        let compose_env = compose.env(&spec.name);
        for (variable, native_value) in &spec.env {
            if IMAGE_VARIABLES.contains(&variable.as_str()) {
                assert!(
                    read("Dockerfile").contains(&format!("{variable}=")),
                    "{}: the native launcher sets {variable}; the image must set it for Compose",
                    spec.name
                );
                continue;
            }
            let Some(Some(compose_value)) = compose_env.get(variable) else {
                panic!(
                    "{}: the native launcher sets {variable}, Compose does not",
                    spec.name
                );
            };
            if variable == "INSTANCE_NAME" {
                assert_eq!(compose_value, &spec.name, "{}: INSTANCE_NAME", spec.name);
                assert_eq!(native_value, &spec.name, "{}: INSTANCE_NAME", spec.name);
            } else if variable == "DATABASE_URL" {
                // SQLite file natively, a PostgreSQL database in Compose: the same name.
                let file = Path::new(native_value.trim_start_matches("sqlite://"));
                let database = compose_value.rsplit('/').next().expect("database name");
                assert_eq!(
                    file.file_stem().and_then(|s| s.to_str()),
                    Some(database),
                    "{}: DATABASE_URL",
                    spec.name
                );
            } else if is_url_list(native_value) {
                assert_eq!(
                    resolve_compose(&compose, &spec.name, compose_value),
                    resolve_native(&ports, native_value),
                    "{}: {variable} points elsewhere in Compose ({compose_value}) than natively ({native_value})",
                    spec.name
                );
            }
        }
        if spec.name == "traefik" {
            let names: BTreeSet<&str> = compose_env
                .keys()
                .map(String::as_str)
                .filter(|name| !TLS_VARIABLES.contains(name))
                .collect();
            assert_eq!(
                names,
                spec.env.keys().map(String::as_str).collect(),
                "Traefik's variables differ between Compose and native (but for TLS)"
            );
        } else if compose.built_services().contains_key(&spec.name) {
            for variable in compose_env.keys() {
                assert!(
                    documented.contains(variable) || variable.starts_with("AWS_"),
                    "{}: {variable} is not in docs/configuration.md",
                    spec.name
                );
            }
            assert_eq!(
                port_of(&compose.env_value(&spec.name, "LISTEN_ADDR")),
                8000,
                "{}",
                spec.name
            );
            assert!(
                compose
                    .env_value(&spec.name, "LISTEN_ADDR")
                    .starts_with("0.0.0.0:"),
                "{}",
                spec.name
            );
        }
    }
}

/// Set by the image itself (`ENV` in the Dockerfile), where the file it names is: the native
/// launcher sets it to the library in `./.venv`.
const IMAGE_VARIABLES: [&str; 1] = ["ORT_DYLIB_PATH"];

/// Traefik's variables for HTTPS, which only Compose and Swarm set: the native gateway is plain
/// HTTP on loopback.
const TLS_VARIABLES: [&str; 4] = [
    "PUBLIC_DOMAIN",
    "TLS_CERTIFICATE",
    "TLS_KEY",
    "TLS_CERT_RESOLVER",
];
/// Set by deploy/swarm.yml only: the users services come from Traefik's Swarm provider.
const SWARM_VARIABLE: &str = "USERS_SERVERS_FROM";

#[test]
fn traefik_dynamic_defaults_are_the_compose_values_and_cover_every_variable_it_reads() {
    let compose = Compose::with_example_env();
    let compose_env = compose.env("traefik");
    let traefik = native()
        .into_iter()
        .find(|p| p.name == "traefik")
        .expect("native traefik");
    let mut read_by_config = BTreeSet::new();
    for entry in fs::read_dir(root().join("traefik/dynamic")).expect("traefik/dynamic") {
        let text = fs::read_to_string(entry.expect("entry").path()).expect("dynamic file");
        for piece in text.split("env \"").skip(1) {
            let (name, after) = piece.split_once('"').expect("closing quote");
            read_by_config.insert(name.to_owned());
            let default = after.trim_start().trim_start_matches(')').trim_start();
            if let Some(default) = default.strip_prefix("| default \"") {
                let default = default.split_once('"').expect("closing quote").0;
                if name != "ADMIN_ALLOWED_CIDRS" {
                    // The allow-list differs on purpose: Docker's bridge gateway, not loopback.
                    assert_eq!(
                        compose_env.get(name).cloned().flatten().as_deref(),
                        Some(default),
                        "{name}: the dynamic file's default is not the Compose value"
                    );
                }
            }
        }
    }
    let mut expected: BTreeSet<String> = traefik.env.keys().cloned().collect();
    expected.extend(TLS_VARIABLES.map(str::to_owned));
    expected.insert(SWARM_VARIABLE.to_owned());
    assert_eq!(read_by_config, expected, "variables the dynamic files read");
}

#[test]
fn traefik_reads_the_same_dynamic_files_with_the_same_entrypoints_in_both_modes() {
    let compose = Compose::with_example_env();
    let compose_static = yaml("traefik/traefik.yml");
    let native_static = yaml("traefik/traefik.native.yml");
    let static_mount = compose
        .mounts("traefik")
        .into_iter()
        .find(|m| m.source == "./traefik/traefik.yml")
        .expect("Compose mounts traefik/traefik.yml");
    assert!(
        compose
            .strings("traefik", "command")
            .contains(&format!("--configFile={}", static_mount.target)),
        "Traefik is started with the mounted static file"
    );
    let dynamic = compose.mount_of("traefik", "./traefik/dynamic");
    assert_eq!(
        compose_static["providers"]["file"]["directory"].as_str(),
        Some(dynamic.target.as_str())
    );
    assert_eq!(
        native_static["providers"]["file"]["directory"].as_str(),
        Some("${DYNAMIC_DIR}")
    );
    assert_eq!(
        compose_static["serversTransport"], native_static["serversTransport"],
        "the two static files give backends the same timeouts"
    );
    assert!(
        !compose_static["serversTransport"]["forwardingTimeouts"]["dialTimeout"].is_null(),
        "a dial timeout bounds how long a vanished backend can hold a request"
    );
    let names = |v: &Value| entrypoints(v).into_keys().collect::<BTreeSet<_>>();
    let mut native_names = names(&native_static);
    // Compose adds the plain-HTTP entrypoint that redirects to HTTPS.
    native_names.insert("web-http".to_owned());
    assert_eq!(names(&compose_static), native_names, "entrypoint names");
    assert!(
        !compose_static["entryPoints"]["web"]["http"]["tls"].is_null(),
        "Compose's web entrypoint speaks TLS"
    );
    assert_eq!(
        compose_static["entryPoints"]["web-http"]["http"]["redirections"]["entryPoint"]["to"]
            .as_str(),
        Some("web"),
        "plain HTTP redirects to the web entrypoint"
    );
    let native_traefik = native()
        .into_iter()
        .find(|p| p.name == "traefik")
        .expect("native traefik");
    assert!(
        native_traefik
            .args
            .iter()
            .any(|a| a.starts_with("--configFile=")),
        "native Traefik gets a static file"
    );
    for key in ["api", "ping", "metrics"] {
        assert_eq!(
            compose_static[key], native_static[key],
            "`{key}` differs between the two static files"
        );
    }
}

#[test]
fn only_the_gateway_entrypoint_is_published_beyond_loopback() {
    let compose = Compose::with_example_env();
    let web_port = port_of(&entrypoints(&yaml("traefik/traefik.yml"))["web"]);
    let redirect_port = port_of(&entrypoints(&yaml("traefik/traefik.yml"))["web-http"]);
    let api_port = port_of(&entrypoints(&yaml("traefik/traefik.yml"))["traefik"]);
    let mut published = BTreeMap::new();
    for name in compose.service_names() {
        for spec in compose.strings(&name, "ports") {
            let parts: Vec<&str> = spec.split(':').collect();
            let container: u16 = parts
                .last()
                .and_then(|p| p.parse().ok())
                .expect("container port");
            if parts.len() == 3 {
                assert_eq!(parts[0], "127.0.0.1", "{name}: {spec} must bind 127.0.0.1");
            } else {
                assert!(
                    name == "traefik" && [web_port, redirect_port].contains(&container),
                    "only Traefik's web entrypoints are public: {name} {spec}"
                );
            }
            published.insert((name.clone(), container), parts.len() == 2);
        }
    }
    let expected = BTreeMap::from([
        (("traefik".to_owned(), web_port), true),
        (("traefik".to_owned(), redirect_port), true),
        (("traefik".to_owned(), api_port), false),
        (("prometheus".to_owned(), 9090), false),
        (("grafana".to_owned(), 3000), false),
    ]);
    assert_eq!(
        published, expected,
        "(service, container port) → published on all interfaces"
    );
}

#[test]
fn prometheus_targets_name_compose_services_on_their_ports_and_the_native_instances() {
    let compose = Compose::with_example_env();
    let monitoring = compose.mount_of("prometheus", "./monitoring");
    assert!(
        compose.strings("prometheus", "command").contains(&format!(
            "--config.file={}/prometheus.yml",
            monitoring.target
        )),
        "Prometheus reads the mounted monitoring/prometheus.yml"
    );
    let endpoints = compose_endpoints(&compose);
    let native_names: BTreeSet<String> = native().into_iter().map(|p| p.name).collect();
    let prometheus = yaml("monitoring/prometheus.yml");
    let mut instances = BTreeSet::new();
    for job in prometheus["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        for file in job["file_sd_configs"][0]["files"]
            .as_sequence()
            .expect("file_sd files")
        {
            let file = file.as_str().expect("file name");
            let targets: serde_json::Value =
                serde_json::from_str(&read(&format!("monitoring/{file}"))).expect("targets JSON");
            for group in targets.as_array().expect("target groups") {
                let instance = group["labels"]["instance"]
                    .as_str()
                    .expect("instance label");
                for target in group["targets"].as_array().expect("targets") {
                    let (host, port) = target
                        .as_str()
                        .and_then(|t| t.rsplit_once(':'))
                        .expect("host:port");
                    let at = endpoints
                        .get(&(host.to_owned(), port.parse().expect("port")))
                        .unwrap_or_else(|| {
                            panic!("{file}: no Compose service {host} listens on {port}")
                        });
                    assert_eq!(
                        at.process, instance,
                        "{file}: target {host}:{port} is labelled {instance}"
                    );
                    if at.process == "traefik" {
                        let metrics = yaml("traefik/traefik.yml")["metrics"]["prometheus"]
                            ["entryPoint"]
                            .clone();
                        assert_eq!(
                            Some(at.entrypoint.as_str()),
                            metrics.as_str(),
                            "Traefik is scraped on its metrics entrypoint"
                        );
                    }
                }
                instances.insert(instance.to_owned());
            }
        }
    }
    let scraped: BTreeSet<String> = native_names.into_iter().filter(|n| n != "errors").collect();
    assert_eq!(
        instances, scraped,
        "instances scraped = native processes except nginx"
    );
}

#[test]
fn grafana_provisioning_points_at_the_paths_and_prometheus_compose_provides() {
    let compose = Compose::with_example_env();
    let provisioning = compose.mount_of("grafana", "./monitoring/grafana/provisioning");
    assert_eq!(provisioning.target, "/etc/grafana/provisioning");
    let dashboards = compose.mount_of("grafana", "./monitoring/grafana/dashboards");
    let json_files = fs::read_dir(dashboards.host_path().expect("bind mount"))
        .expect("monitoring/grafana/dashboards")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert!(
        json_files > 0,
        "monitoring/grafana/dashboards has no dashboard"
    );
    let mut providers = 0;
    let mut datasources = 0;
    for (sub, key) in [("dashboards", "providers"), ("datasources", "datasources")] {
        let dir = root().join("monitoring/grafana/provisioning").join(sub);
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            let text = fs::read_to_string(&path).expect("provisioning file");
            let doc: Value = serde_norway::from_str(&text).expect("provisioning YAML");
            for item in doc[key].as_sequence().into_iter().flatten() {
                if key == "providers" {
                    providers += 1;
                    assert_eq!(
                        item["options"]["path"].as_str(),
                        Some(dashboards.target.as_str()),
                        "{}",
                        path.display()
                    );
                } else {
                    datasources += 1;
                    let url = item["url"].as_str().expect("datasource url");
                    let resolved = resolve_compose(&compose, "grafana", url);
                    assert_eq!(
                        resolved[0].0,
                        endpoint("prometheus", ""),
                        "{}: {url}",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(
        providers > 0 && datasources > 0,
        "Grafana provisions dashboards and a datasource"
    );
}

#[test]
fn every_file_compose_mounts_from_the_repository_exists() {
    let compose = Compose::with_example_env();
    for name in compose.service_names() {
        for mount in compose.mounts(&name) {
            if let Some(path) = mount.host_path() {
                assert!(
                    path.exists(),
                    "{name} mounts {} which does not exist",
                    mount.source
                );
            }
        }
    }
}

#[test]
fn the_database_lives_on_the_internal_network_with_a_database_per_service() {
    let compose = Compose::with_example_env();
    assert_eq!(compose.strings("postgres", "networks"), ["internal"]);
    assert_eq!(
        compose.doc["networks"]["internal"]["internal"].as_bool(),
        Some(true),
        "internal has no route out"
    );
    let init: String = fs::read_dir(root().join("deploy/postgres"))
        .expect("deploy/postgres")
        .map(|e| fs::read_to_string(e.expect("entry").path()).expect("init script"))
        .collect();
    let postgres_env = compose.env("postgres");
    let mut databases = BTreeSet::new();
    for name in compose.service_names() {
        let Some(Some(url)) = compose.env(&name).get("DATABASE_URL").cloned() else {
            continue;
        };
        let parsed = PgUrl::parse(&url);
        assert_eq!(parsed.host, "postgres", "{name}: DATABASE_URL host");
        assert_eq!(
            Some(&Some(parsed.user.clone())),
            postgres_env.get("POSTGRES_USER"),
            "{name}: role"
        );
        assert_eq!(parsed.password, "", "{name}: a password in DATABASE_URL");
        assert_eq!(
            compose.env(&name).get("DATABASE_PASSWORD_FILE"),
            postgres_env.get("POSTGRES_PASSWORD_FILE"),
            "{name}: the password comes from the database's own password file"
        );
        assert!(
            compose
                .strings(&name, "secrets")
                .contains(&"postgres_password".to_owned()),
            "{name}: the postgres_password secret is not mounted"
        );
        assert!(
            init.contains(&format!("CREATE DATABASE {};", parsed.database)),
            "{name}: {} is not created",
            parsed.database
        );
        assert!(
            compose
                .strings(&name, "networks")
                .contains(&"internal".to_owned()),
            "{name} reaches the database"
        );
        databases.insert(parsed.database);
    }
    assert_eq!(
        databases.len(),
        2,
        "users and images each have their own database"
    );
}

#[test]
fn the_gateway_starts_without_waiting_for_any_backend() {
    // Traefik answers with nginx's error pages while a backend starts or fails; waiting for every
    // backend to be healthy would leave port 80 closed whenever one of them fails.
    let compose = Compose::with_example_env();
    assert!(
        compose.service("traefik").get("depends_on").is_none(),
        "traefik must not depend on the backends"
    );
}

#[test]
fn every_dependency_is_awaited_healthy_and_has_a_health_check() {
    let compose = Compose::with_example_env();
    for name in compose.service_names() {
        let Some(depends) = compose
            .service(&name)
            .get("depends_on")
            .and_then(Value::as_mapping)
        else {
            continue;
        };
        for (dependency, condition) in depends {
            let dependency = dependency.as_str().expect("name");
            assert_eq!(
                condition["condition"].as_str(),
                Some("service_healthy"),
                "{name} → {dependency}"
            );
            assert!(
                compose.has_healthcheck(dependency),
                "{dependency} has no health check"
            );
        }
    }
}

/// The binary an image runs: the one its HEALTHCHECK calls with `healthcheck`.
fn image_binary(dockerfile: &str) -> String {
    assert!(
        dockerfile.contains("CMD [\"/app/service\", \"healthcheck\"]"),
        "HEALTHCHECK CMD [\"/app/service\", \"healthcheck\"]"
    );
    dockerfile
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("COPY --from=binaries /out/bin/")?
                .strip_suffix(" /app/service")
        })
        .expect("COPY --from=binaries /out/bin/BINARY /app/service")
        .to_owned()
}

#[test]
fn each_image_runs_its_binary_unprivileged_with_the_healthcheck_subcommand() {
    let compose = Compose::with_example_env();
    let native: BTreeMap<String, ProcessSpec> =
        native().into_iter().map(|p| (p.name.clone(), p)).collect();
    for (service, text) in compose.built_services() {
        let binary = native[&service]
            .program
            .file_name()
            .and_then(|f| f.to_str())
            .expect("binary")
            .to_owned();
        assert_eq!(
            image_binary(&text),
            binary,
            "{service}: HEALTHCHECK runs the binary the launcher runs"
        );
        let entrypoint = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("ENTRYPOINT "))
            .expect("ENTRYPOINT");
        assert!(
            entrypoint == "[\"/app/service\"]" || entrypoint == "[\"/app/entrypoint.sh\"]",
            "{service}: ENTRYPOINT {entrypoint}"
        );
        let user = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .expect("USER");
        assert!(
            user.split(':')
                .all(|id| id.parse::<u32>().is_ok_and(|id| id > 0)),
            "{service}: USER {user}"
        );
        let port = port_of(&compose.env_value(&service, "LISTEN_ADDR"));
        assert!(
            text.contains(&format!("EXPOSE {port}")),
            "{service}: EXPOSE {port}"
        );
        assert!(
            text.contains(&format!("LISTEN_ADDR=0.0.0.0:{port}")),
            "{service}: the image's LISTEN_ADDR"
        );
        assert!(
            read("Dockerfile").contains("cargo install cargo-chef --locked --version"),
            "{service}: pinned cargo-chef"
        );
    }
}

#[test]
fn the_rust_builder_copies_only_manifests_sources_and_migrations() {
    // So that an edit to docs, monitoring, deploy files, tests or tools rebuilds nothing.
    let compiled = dockerfile_stage("compiled");
    let copied: Vec<&str> = compiled
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from="))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[..parts.len() - 1].to_vec()
        })
        .collect();
    for source in &copied {
        let allowed = matches!(*source, "Cargo.toml" | "Cargo.lock")
            || source.ends_with("/Cargo.toml")
            || source.ends_with("/src")
            || source.ends_with("/migrations");
        assert!(allowed, "the builder copies {source}");
    }
    // cargo-chef's skeleton has every member's targets; the real manifests keep the lock file's
    // versions, which `--locked` holds the build to.
    let workspace = read("Cargo.toml");
    let members = workspace
        .lines()
        .find_map(|l| l.strip_prefix("members = ["))
        .expect("the workspace's one-line members list");
    for member in members.split('"').skip(1).step_by(2) {
        assert!(
            copied.contains(&format!("{member}/Cargo.toml").as_str()),
            "the builder lacks the manifest of workspace member {member}"
        );
    }
}

#[test]
fn every_file_a_dockerfile_copies_from_the_context_exists_and_is_not_ignored() {
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("**/").to_owned())
        .collect();
    for file in xtask::checks::compose::DOCKERFILES {
        for line in read(file)
            .lines()
            .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        {
            let parts: Vec<&str> = line.split_whitespace().collect();
            for source in &parts[1..parts.len() - 1] {
                if *source == "." {
                    continue;
                }
                assert!(
                    root().join(source).exists(),
                    "{file}: COPY {source}: no such file in the repository"
                );
                assert!(
                    !ignored.iter().any(|i| source.trim_end_matches('/') == i
                        || source.starts_with(&format!("{i}/"))),
                    "{file}: COPY {source} is excluded by .dockerignore"
                );
            }
        }
    }
}

#[test]
fn the_model_stage_copies_every_file_the_converter_opens() {
    // The `converted` stage's file system, rebuilt from its own COPY lines and nothing else: the
    // converter, run there as the stage runs it, fails on any input the stage lacks.
    let stage = dockerfile_stage("converted");
    let sandbox = tempfile::tempdir().expect("temp dir");
    let inside = |path: &str| sandbox.path().join(path.trim_start_matches('/'));
    let mut workdir = PathBuf::from("/");
    let mut run = None;
    for line in stage.lines() {
        if let Some(copy) = line.strip_prefix("COPY ") {
            let parts: Vec<&str> = copy.split_whitespace().collect();
            assert!(
                !parts[0].starts_with("--"),
                "COPY {copy}: no flags expected here"
            );
            let (sources, dest) = parts.split_at(parts.len() - 1);
            for source in sources {
                let dest = if dest[0].ends_with('/') && !source.ends_with('/') {
                    inside(dest[0]).join(Path::new(source).file_name().expect("name"))
                } else {
                    inside(dest[0])
                };
                copy_tree(&root().join(source), &dest);
            }
        } else if let Some(dir) = line.strip_prefix("WORKDIR ") {
            workdir = PathBuf::from(dir.trim());
        } else if line.contains("python convert_resmem.py") {
            run = Some(workdir.clone());
        }
    }
    let workdir = run.expect("the stage runs convert_resmem.py");
    let out = sandbox.path().join("model-out");
    let converted = Command::new(required_env("FORGETTABLE_PYTHON"))
        .arg("convert_resmem.py")
        .arg("--wheel")
        .arg(required_env("FORGETTABLE_RESMEM_WHEEL"))
        .arg("--out")
        .arg(&out)
        .current_dir(inside(&workdir.to_string_lossy()))
        .output()
        .expect("running the converter");
    assert!(
        converted.status.success(),
        "the converter fails with only the stage's files:\n{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    assert!(out.join("manifest.json").exists(), "no manifest written");
}

fn copy_tree(source: &Path, dest: &Path) {
    if source.is_dir() {
        fs::create_dir_all(dest).expect("dir");
        for entry in fs::read_dir(source).expect("list") {
            let entry = entry.expect("entry");
            copy_tree(&entry.path(), &dest.join(entry.file_name()));
        }
    } else {
        fs::create_dir_all(dest.parent().expect("parent")).expect("dir");
        fs::copy(source, dest).unwrap_or_else(|e| panic!("copying {}: {e}", source.display()));
    }
}

#[test]
fn the_inference_image_converts_the_model_with_the_pins_of_the_native_model_task() {
    let dockerfile = read("Dockerfile");
    for file in [
        xtask::model::REQUIREMENTS_FILE,
        xtask::model::WHEEL_PIN_FILE,
    ] {
        assert!(
            dockerfile.contains(&format!("--require-hashes -r {file}")),
            "the image does not use the hash-checked pins of {file}"
        );
    }
    assert!(
        !dockerfile
            .lines()
            .any(|line| line.contains("pip") && line.contains("==")),
        "the image pins a Python package of its own"
    );
    assert!(
        dockerfile.contains("convert_resmem.py --wheel"),
        "the image runs the native converter"
    );
}

#[test]
fn the_inference_entrypoint_shows_the_licence_note_then_runs_the_service() {
    let dir = tempfile::tempdir().expect("temp dir");
    let entrypoint = dir.path().join("entrypoint.sh");
    fs::copy(root().join("deploy/inference-entrypoint.sh"), &entrypoint).expect("copy");
    // As in the image: the binary is /app/service, beside /app/entrypoint.sh.
    let service = dir.path().join("service");
    fs::write(&service, "#!/bin/sh\necho \"service ran with: $*\"\n").expect("fake service");
    let model = dir.path().join("model");
    fs::create_dir(&model).expect("model dir");
    fs::write(model.join("LICENCE-NOTE.txt"), "Non-commercial use only.").expect("note");
    for file in [&entrypoint, &service] {
        assert!(Command::new("chmod")
            .arg("755")
            .arg(file)
            .status()
            .expect("chmod")
            .success());
    }
    let out = Command::new(&entrypoint)
        .arg("healthcheck")
        .env("MODEL_DIR", &model)
        .output()
        .expect("entrypoint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Model licence: Non-commercial use only.\nservice ran with: healthcheck\n"
    );
}

#[test]
fn every_secret_is_a_file_gen_secrets_writes_and_no_variable_holds_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new("sh")
        .arg(root().join("deploy/gen-secrets.sh"))
        .arg(dir.path())
        .output()
        .expect("running gen-secrets.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compose = Compose::with_example_env();
    let secrets = compose.doc["secrets"].as_mapping().expect("secrets");
    assert!(secrets.len() >= 5, "secrets: {secrets:?}");
    for (name, secret) in secrets {
        let file = secret["file"].as_str().expect("a file secret");
        let written = dir.path().join(file.trim_start_matches("./"));
        assert!(
            written.is_file(),
            "{name:?}: gen-secrets.sh writes no {file}"
        );
    }
    for service in compose.service_names() {
        for (variable, value) in compose.env(&service) {
            assert!(
                !variable.ends_with("PASSWORD") || value.as_deref().is_none_or(str::is_empty),
                "{service}: {variable} holds a secret; use a secret file"
            );
        }
    }
}

#[test]
fn interpolation_follows_compose_rules() {
    let vars = BTreeMap::from([
        ("SET".to_owned(), "x".to_owned()),
        ("EMPTY".to_owned(), String::new()),
    ]);
    assert_eq!(
        interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$ $SET", &vars).as_deref(),
        Ok("x d  d $ x")
    );
    assert!(interpolate("${EMPTY:?needed}", &vars).is_err());
    assert!(interpolate("${EMPTY?needed}", &vars).is_ok());
}

// ---------------------------------------------------------------------------------------------
// The configuration checks themselves fail on broken input.

#[test]
fn a_compose_file_with_an_unknown_service_key_fails_the_schema_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = read("docker-compose.yml").replacen(
        "    restart: unless-stopped\n",
        "    restart_policy: always\n",
        1,
    );
    let file = dir.path().join("docker-compose.yml");
    fs::write(&file, broken).expect("write");
    let err = xtask::checks::compose::validate_compose_file(&file)
        .expect_err("schema must reject restart_policy");
    assert!(format!("{err:#}").contains("restart_policy"), "{err:#}");
    xtask::checks::compose::validate_compose_file(&root().join("docker-compose.yml"))
        .expect("the real file is valid");
}

#[test]
fn a_dockerfile_with_an_unpinned_base_image_fails_hadolint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("Dockerfile");
    fs::write(&file, "FROM debian:latest\nUSER 10001\nCMD [\"true\"]\n").expect("write");
    let err =
        xtask::checks::compose::lint_dockerfile(&file).expect_err("hadolint must flag :latest");
    assert!(format!("{err:#}").contains("DL3007"), "{err:#}");
}

// ---------------------------------------------------------------------------------------------
// Launching the binaries with Compose's environment.

/// `postgres://user:password@host:port/database`.
struct PgUrl {
    user: String,
    password: String,
    host: String,
    port: u16,
    database: String,
}

impl PgUrl {
    fn parse(url: &str) -> PgUrl {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .unwrap_or_else(|| panic!("{url:?} is not a postgres:// URL"));
        let rest = rest.split('?').next().unwrap_or_default();
        let (credentials, rest) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (authority, database) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "5432"));
        PgUrl {
            user: user.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port: port.parse().unwrap_or_else(|_| panic!("{url:?}: bad port")),
            database: database.to_owned(),
        }
    }

    fn to_url(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user, self.password, self.host, self.port, self.database
        )
    }
}

fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with `cargo xtask test`"))
}

fn psql(server: &str, sql: &str) {
    let out = Command::new("psql")
        .args([server, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("running psql (install postgresql-client, or run `cargo xtask test`)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Children killed when the test ends, whatever happens.
struct Children(Vec<(String, Child, PathBuf)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Services in an order where each one's dependencies come first.
fn start_order(compose: &Compose, services: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    while order.len() < services.len() {
        let before = order.len();
        for name in services {
            let ready = compose
                .strings(name, "depends_on")
                .iter()
                .all(|d| order.contains(d) || !services.contains(d));
            if !order.contains(name) && ready {
                order.push(name.clone());
            }
        }
        assert!(order.len() > before, "depends_on has a cycle");
    }
    order
}

#[test]
fn every_service_binary_becomes_ready_with_the_environment_compose_gives_it() {
    let model_dir = system_tests::resmem_model_dir().unwrap_or_else(|e| panic!("{e:#}"));
    let bin_dir = system_tests::service_binaries().unwrap_or_else(|e| panic!("{e:#}"));

    // The secrets as an operator creates them, with the committed generator.
    let project = tempfile::Builder::new()
        .prefix("forgettable-compose-")
        .tempdir()
        .expect("temp dir");
    let status = Command::new("sh")
        .arg(root().join("deploy/gen-secrets.sh"))
        .arg(project.path())
        .stdout(Stdio::null())
        .status()
        .expect("running deploy/gen-secrets.sh");
    assert!(status.success(), "deploy/gen-secrets.sh failed");
    let dot_env = parse_env_file(&fs::read_to_string(project.path().join(".env")).expect(".env"));
    let compose = Compose::load(&dot_env);

    let services: Vec<String> = compose.built_services().into_keys().collect();
    let ports = Ports::free().expect("free ports");
    let port_for = |name: &str| match name {
        "images" => ports.images,
        "inference" => ports.inference,
        other => ports
            .users_port(other)
            .unwrap_or_else(|| panic!("no port for {other}")),
    };

    // A fresh database per Compose database, owned by Compose's role, on the test server.
    let server = PgUrl {
        database: "postgres".into(),
        ..PgUrl::parse(&required_env("TEST_POSTGRES_URL"))
    }
    .to_url();
    let postgres = PgUrl::parse(&server);
    let role = PgUrl::parse(&compose.env_value("users-1", "DATABASE_URL"));
    let password = fs::read_to_string(project.path().join("deploy/secrets/postgres-password"))
        .expect("the database password gen-secrets.sh writes");
    psql(
        &server,
        &format!(
            "DO $$ BEGIN CREATE ROLE {0} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; ALTER ROLE {0} PASSWORD '{1}';",
            role.user, password.trim()
        ),
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let suffix = format!("{}_{nanos}", std::process::id());
    let mut fresh_databases = BTreeMap::new();
    for name in &services {
        if let Some(Some(url)) = compose.env(name).get("DATABASE_URL") {
            let database = PgUrl::parse(url).database;
            fresh_databases.entry(database.clone()).or_insert_with(|| {
                let fresh = format!("compose_{database}_{suffix}");
                psql(
                    &server,
                    &format!("CREATE DATABASE {fresh} OWNER {}", role.user),
                );
                fresh
            });
        }
    }

    // Secrets as Compose mounts them: /run/secrets/<name>, in a folder owned by root that the
    // services' user cannot write to.
    let run_secrets = project.path().join("run/secrets");
    fs::create_dir_all(&run_secrets).expect("secrets folder");
    let secrets: BTreeMap<String, PathBuf> = compose.doc["secrets"]
        .as_mapping()
        .expect("secrets")
        .iter()
        .map(|(k, v)| {
            let file = v["file"]
                .as_str()
                .expect("secret file")
                .trim_start_matches("./");
            let name = k.as_str().expect("name").to_owned();
            let mounted = run_secrets.join(&name);
            fs::copy(project.path().join(file), &mounted).expect("secret copy");
            set_mode(&mounted, 0o444);
            (name, mounted)
        })
        .collect();
    set_mode(&run_secrets, 0o555);
    set_mode(project.path(), 0o755);
    let as_root = running_as_root();

    let mut children = Children(Vec::new());
    // Compose starts every service at once; one at a time, the users instances come first, as
    // images and inference are ready only once a users instance serves the revocation feed.
    let mut order = start_order(&compose, &services);
    order.sort_by_key(|name| !name.starts_with("users"));
    for name in order {
        let dockerfile = compose.built_services()[&name].clone();
        let volumes = compose.mounts(&name);
        let app_dir = project.path().join("containers").join(&name);
        fs::create_dir_all(&app_dir).expect("container dir");
        let mut env = BTreeMap::new();
        for (variable, value) in compose.env(&name) {
            let Some(value) = value else { continue };
            let swapped = swap_for_local(
                &compose,
                &name,
                &variable,
                &value,
                &Local {
                    port_for: &port_for,
                    postgres: &postgres,
                    fresh_databases: &fresh_databases,
                    secrets: &secrets,
                    volumes: &volumes,
                    volume_root: &project.path().join("volumes"),
                    model_dir: &model_dir,
                    dockerfile: &dockerfile,
                },
            );
            env.insert(variable, swapped);
        }
        // The image's user, as in the container; the folders it writes to are its own.
        let (uid, gid) = image_user(&dockerfile);
        if as_root {
            for dir in [&app_dir, &project.path().join("volumes")] {
                fs::create_dir_all(dir).expect("writable folder");
                chown_recursive(dir, uid, gid);
            }
        }
        let binary = bin_dir.join(image_binary(&dockerfile));
        assert!(
            binary.exists(),
            "{} is missing: run `cargo xtask test` (or cargo build --workspace --bins)",
            binary.display()
        );
        let log = app_dir.join("output.log");
        let mut command = Command::new(&binary);
        if as_root {
            command.uid(uid).gid(gid);
        }
        let child = command
            .env_clear()
            .envs(&env)
            .current_dir(&app_dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).expect("log"))
            .stderr(fs::File::create(app_dir.join("output.log.err")).expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        children.0.push((name.clone(), child, log));
        wait_until_ready(&mut children, &name, port_for(&name));

        // The image's HEALTHCHECK: the binary's own subcommand, with the same environment.
        let mut health = Command::new(&binary);
        if as_root {
            health.uid(uid).gid(gid);
        }
        let health = health
            .arg("healthcheck")
            .env_clear()
            .envs(&env)
            .output()
            .expect("healthcheck");
        assert!(
            health.status.success(),
            "{name}: healthcheck failed: {}",
            String::from_utf8_lossy(&health.stderr)
        );
    }
    drop(children);
    for database in fresh_databases.values() {
        psql(&server, &format!("DROP DATABASE {database}"));
    }
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn chown_recursive(dir: &Path, uid: u32, gid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {}", dir.display());
}

/// The `USER uid:gid` an image runs as (its last USER line).
fn image_user(stages: &str) -> (u32, u32) {
    let user = stages
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    let ids: Vec<u32> = user
        .split(':')
        .map(|id| id.trim().parse().expect("numeric USER"))
        .collect();
    (ids[0], *ids.get(1).unwrap_or(&ids[0]))
}

/// What a Compose value is swapped for to run on this machine.
struct Local<'a> {
    port_for: &'a dyn Fn(&str) -> u16,
    postgres: &'a PgUrl,
    fresh_databases: &'a BTreeMap<String, String>,
    secrets: &'a BTreeMap<String, PathBuf>,
    volumes: &'a [Mount],
    volume_root: &'a Path,
    model_dir: &'a Path,
    dockerfile: &'a str,
}

fn swap_for_local(
    compose: &Compose,
    service: &str,
    variable: &str,
    value: &str,
    local: &Local<'_>,
) -> String {
    if variable == "LISTEN_ADDR" {
        assert_eq!(value, "0.0.0.0:8000", "{service}: LISTEN_ADDR");
        return format!("127.0.0.1:{}", (local.port_for)(service));
    }
    if variable == "DATABASE_URL" {
        let url = PgUrl::parse(value);
        assert_eq!(url.host, "postgres", "{service}: DATABASE_URL host");
        return PgUrl {
            host: local.postgres.host.clone(),
            port: local.postgres.port,
            database: local.fresh_databases[&url.database].clone(),
            ..url
        }
        .to_url();
    }
    if variable == "MODEL_DIR" {
        // Baked into the image by its model stage, so it is the converted model natively too.
        assert!(
            local
                .dockerfile
                .lines()
                .any(|l| l.starts_with("COPY --from=")
                    && l.trim_end().ends_with(&format!(" {value}"))),
            "{service}: the image does not provide {value}"
        );
        return local.model_dir.to_string_lossy().into_owned();
    }
    if let Some(secret) = value.strip_prefix("/run/secrets/") {
        assert!(
            compose
                .strings(service, "secrets")
                .contains(&secret.to_owned()),
            "{service} is not given {secret}"
        );
        return local.secrets[secret].to_string_lossy().into_owned();
    }
    let (scheme, path) = value
        .strip_prefix("file://")
        .map_or(("", value), |p| ("file://", p));
    if path.starts_with('/') {
        let mount = local
            .volumes
            .iter()
            .find(|m| path.starts_with(&m.target) && m.host_path().is_none())
            .unwrap_or_else(|| {
                panic!("{service}: {variable}={value} is neither a volume nor a secret")
            });
        let dir = local
            .volume_root
            .join(&mount.source)
            .join(path[mount.target.len()..].trim_start_matches('/'));
        fs::create_dir_all(&dir).expect("volume dir");
        return format!("{scheme}{}", dir.to_string_lossy());
    }
    let mut swapped = value.to_owned();
    for other in compose.built_services().keys() {
        swapped = swapped.replace(
            &format!("//{other}:8000"),
            &format!("//127.0.0.1:{}", (local.port_for)(other)),
        );
    }
    for other in compose.service_names() {
        assert!(
            !swapped.contains(&format!("//{other}:")),
            "{service}: {variable} still names {other}: {swapped}"
        );
    }
    swapped
}

fn wait_until_ready(children: &mut Children, name: &str, port: u16) {
    let url = format!("http://127.0.0.1:{port}/readyz");
    let (_, child, log) = children
        .0
        .iter_mut()
        .find(|(n, _, _)| n == name)
        .expect("child");
    let ready = testkit::poll_until_ready_blocking(&url, Duration::from_secs(180), || {
        child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| format!("{name} exited with {status}"))
    });
    if let Err(not_ready) = ready {
        panic!(
            "{name}: {not_ready}:\n{}\n{}",
            log_tail(log),
            log_tail(&log.with_extension("log.err"))
        );
    }
    let response = ureq::get(&url).call().map_err(Box::new).expect("/readyz");
    assert_eq!(
        response.header("x-served-by"),
        Some(name),
        "{name}: X-Served-By"
    );
}
