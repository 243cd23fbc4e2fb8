//! A throwaway PostgreSQL cluster for the tests and the benchmark: Debian's `postgresql`
//! (installed when missing), its own data directory under `target/pg/`, a free loopback port,
//! trust authentication on 127.0.0.1 only, and stopped when dropped. The tests switch durability
//! off for speed ([`Durability::Off`]); the benchmark keeps production's ([`Durability::On`]:
//! fsync, synchronous commits, full page writes, PostgreSQL's defaults).
//!
//! `initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user the
//! Debian package creates, and its commands run through `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, run};

/// A running cluster; stopped (immediately, it holds nothing worth keeping) when dropped.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<&'static str>,
    port: u16,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`, the maintenance database.
    pub url: String,
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Cluster {
    /// PostgreSQL's `bin` directory, for tests that run a cluster of their own.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    fn command(&self, program: &str) -> Command {
        command(self.run_as, &self.bin.join(program))
    }

    /// The cluster's directory (`target/pg`), writable by the cluster's owner.
    pub fn dir(&self) -> &Path {
        self.data.parent().unwrap_or(&self.data)
    }

    /// The postmaster's process id (the first line of `postmaster.pid`), whose children are the
    /// cluster's other processes.
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// A program of the cluster's version, run as the cluster's owner.
    pub fn program(&self, program: &str) -> Command {
        self.command(program)
    }

    /// The answer of one SQL statement on the maintenance database, unaligned (`psql -tA`).
    pub fn query(&self, sql: &str) -> Result<String> {
        let out = self
            .command("psql")
            .args(["-tA", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-c", sql])
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs `statements` on database `db`, each on its own (`psql -c` per statement: outside
    /// any transaction block, as `VACUUM` must be), stopping at the first that fails.
    pub fn run_in(&self, db: &str, statements: &[String]) -> Result<()> {
        let mut c = self.command("psql");
        c.args(["-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db]);
        for statement in statements {
            c.args(["-c", statement]);
        }
        let out = c.output().context("running psql")?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Creates a database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        self.run_in("postgres", &[format!("CREATE DATABASE {name}")])?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }
}

fn command(run_as: Option<&str>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Whether commits wait for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`: for tests, which keep
    /// nothing.
    Off,
    /// PostgreSQL's defaults, as in production: a commit is acknowledged once its log record is
    /// on disk.
    On,
}

impl Durability {
    /// The server options that set it.
    fn options(self) -> &'static str {
        match self {
            Durability::Off => "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            // pg_stat_statements: the benchmark reads what the limits' statements cost, and
            // which statements (triggers' included: track=all) take a scenario's time.
            Durability::On => {
                "-c fsync=on -c synchronous_commit=on -c full_page_writes=on \
                 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
            }
        }
    }
}

/// Starts a fresh cluster for the tests (installing PostgreSQL with apt when it is missing).
pub fn start() -> Result<Cluster> {
    start_with(Durability::Off)
}

/// Starts a fresh cluster with the given durability.
pub fn start_with(durability: Durability) -> Result<Cluster> {
    let bin = match bin_dir() {
        Some(b) => b,
        None => {
            println!("PostgreSQL is not installed; installing Debian's postgresql");
            crate::tools::apt_install(&["postgresql"])?;
            bin_dir().context("postgresql was installed but no initdb was found")?
        }
    };
    let run_as = is_root().then_some("postgres");
    let dir = root().join("target/pg");
    let data = dir.join("data");
    if data.join("postmaster.pid").exists() {
        // A cluster left running by an interrupted run.
        let _ = command(run_as, &bin.join("pg_ctl"))
            .args(["-D"])
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    if let Some(user) = run_as {
        run(Command::new("chown")
            .args(["-R", &format!("{user}:{user}")])
            .arg(&dir))?;
    }
    println!("initdb {} ({})", data.display(), bin.display());
    let out = command(run_as, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        .output()
        .context("running initdb")?;
    if !out.status.success() {
        bail!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let options = format!(
        "-p {port} -h 127.0.0.1 -k {} {} -c max_connections=300",
        dir.display(),
        durability.options()
    );
    let out = command(run_as, &bin.join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "60", "-o", &options, "start"])
        .output()
        .context("running pg_ctl start")?;
    if !out.status.success() {
        bail!(
            "PostgreSQL did not start: {} (log: {})",
            String::from_utf8_lossy(&out.stderr).trim(),
            dir.join("server.log").display()
        );
    }
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    println!("PostgreSQL listening on 127.0.0.1:{port}");
    Ok(Cluster {
        bin,
        data,
        run_as,
        port,
        url,
    })
}

impl Drop for Cluster {
    /// Stops the cluster quietly (the test run's last line stays the test runner's summary).
    fn drop(&mut self) {
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        if !stopped.is_ok_and(|o| o.status.success()) {
            eprintln!(
                "PostgreSQL could not be stopped; data in {}",
                self.data.display()
            );
        }
    }
}
