//! Throwaway PostgreSQL for tests: a database per test, created and
//! dropped by the test, in the server `DATABASE_URL` names or else in a
//! cluster of its own (initdb on a free port in a temporary directory,
//! stopped when dropped). Shared by the BFF's unit and integration tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A PostgreSQL server the test may use.
pub struct Postgres {
    /// URL of the `postgres` database (to create and drop others).
    admin_url: String,
    /// The cluster this test started, if any.
    own: Option<Cluster>,
}

struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// A database created for one test; dropped with it.
pub struct Database {
    /// Its URL.
    pub url: String,
    name: String,
    admin_url: String,
}

fn bin_dir() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql; \
             install them (Debian: apt-get install postgresql; `make test` does) or set \
             DATABASE_URL to a server the tests may create databases in"
        )
    })
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root (the
/// server refuses to run as root).
fn run(program: &Path, args: &[&str]) -> std::process::Output {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// `DATABASE_URL`'s server, else a cluster of our own.
    pub fn start() -> Self {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Self {
                admin_url: url,
                own: None,
            },
            _ => Self::start_own(),
        }
    }

    /// A cluster of our own (tests that stop the server need one).
    pub fn start_own() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the data directory failed");
        }
        let data = dir.path().join("data");
        let out = run(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            dir.path().display()
        );
        let log = dir.path().join("log");
        let out = run(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Self {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            own: Some(Cluster {
                bin,
                data,
                _dir: dir,
            }),
        }
    }

    /// A fresh database.
    pub fn database(&self) -> Database {
        let name = format!("thesa_test_{}", uuid::Uuid::new_v4().simple());
        psql(&self.admin_url, &format!("CREATE DATABASE {name}"));
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(b, _)| b);
        Database {
            url: format!("{base}/{name}"),
            name,
            admin_url: self.admin_url.clone(),
        }
    }

    /// Stops our own cluster at once (a crash, as the clients see it).
    pub fn stop(&mut self) {
        if let Some(cluster) = &self.own {
            run(
                &cluster.bin.join("pg_ctl"),
                &[
                    "-D",
                    cluster.data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Best effort: the server may be stopped already.
        let _ = Command::new("psql")
            .args([self.admin_url.as_str(), "-qAtc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-qAtc", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql (install postgresql-client): {e}"));
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
