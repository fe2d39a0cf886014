//! A throwaway Redis for tests, shared by the BFF's integration tests and
//! the end-to-end suite.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A throwaway Redis on 127.0.0.1 for one test (`redis-server`, which
/// `make test` installs), or the one `REDIS_URL` names. Stopped when
/// dropped.
pub struct Redis {
    child: Option<Child>,
    /// `host:port`, as `THESA_REDIS_ADDR` takes it.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// The Redis of `REDIS_URL`, else one started for the test.
    pub fn start() -> Redis {
        match std::env::var("REDIS_URL") {
            Ok(url) => {
                let addr = url
                    .trim_start_matches("redis://")
                    .trim_end_matches('/')
                    .to_string();
                Redis {
                    child: None,
                    addr,
                    _dir: tempfile::tempdir().unwrap(),
                }
            }
            Err(_) => Self::start_own(),
        }
    }

    /// Starts a `redis-server` for the test and waits until it accepts
    /// connections.
    pub fn start_own() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need a real Redis. \
                     `make test` installs it (Debian package redis-server), or set REDIS_URL"
                )
            });
        let addr = format!("127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child: Some(child),
            addr,
            _dir: dir,
        }
    }

    /// Stops the server (to test what happens when Redis is down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
