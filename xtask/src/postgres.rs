//! A throwaway PostgreSQL server for test runs, from Debian's `postgresql` package.
//!
//! initdb refuses to run as root, so as root the server runs as the `postgres` system user. The
//! cluster lives in a temporary directory on a free loopback port, with trust authentication
//! (loopback only), and is stopped and removed when dropped.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::tools::{self, step};

/// A running PostgreSQL server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Child,
    port: u16,
    as_postgres_user: bool,
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

impl Postgres {
    /// Installs PostgreSQL when missing, creates a cluster and starts it.
    pub fn start() -> Result<Self> {
        if bin_dir().is_none() {
            tools::install_apt(&["postgresql"])?;
        }
        let bin =
            bin_dir().context("PostgreSQL's initdb not found under /usr/lib/postgresql/*/bin")?;
        let as_postgres_user = tools::output(Command::new("id").arg("-u"))?.trim() == "0";
        let dir = tempfile::Builder::new()
            .prefix("forgettable-pg-")
            .tempdir()?;
        let data = dir.path().join("data");
        if as_postgres_user {
            tools::run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.path()),
            )?;
        }
        let port = tools::free_port()?;
        step(format!(
            "starting a throwaway PostgreSQL on 127.0.0.1:{port}"
        ));
        let mut initdb = Self::command(as_postgres_user, bin.join("initdb"));
        initdb
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data);
        let out = initdb.output().context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut postgres = Self::command(as_postgres_user, bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("postgres.log"))?);
        let child = postgres.spawn().context("starting postgres")?;
        let server = Self {
            dir,
            bin: bin.clone(),
            child,
            port,
            as_postgres_user,
        };
        server.wait_ready(&bin)?;
        Ok(server)
    }

    fn command(as_postgres_user: bool, program: PathBuf) -> Command {
        if as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn wait_ready(&self, bin: &std::path::Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("postgres.log"))
                    .unwrap_or_default();
                bail!("PostgreSQL did not become ready in 30 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The URL of the `postgres` database as superuser (tests create their own databases).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Ask the server itself for a fast shutdown: a signal to `runuser` would not reach it.
        let mut stop = Self::command(self.as_postgres_user, self.bin.join("pg_ctl"));
        stop.args(["stop", "-m", "fast", "-w", "-D"])
            .arg(self.dir.path().join("data"))
            .stdout(Stdio::null());
        if !stop.status().is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
