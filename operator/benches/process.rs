//! The `thesa-operator` process with many definitions: the release binary
//! against the tests' API server (`tests/support/apiserver.rs`: the fake
//! API over HTTPS with watches), one ThesaDeployment selecting N copies of
//! the orders sample. Reports the time until every definition is accepted
//! and the process's peak and current RSS (from /proc).
//! `cargo bench -p thesa-operator --bench process` (figures in
//! BENCHMARKS.md); `THESA_BENCH_DEFINITIONS=200,1000` sets the counts.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/memory.rs"]
mod memory;
#[path = "../tests/support/mod.rs"]
mod support;

use support::apiserver::ApiServer;
use support::{NS, accepted_count, client_with, orders_copy, repo_file, sample_deployment};

async fn run(count: usize) {
    let orders = repo_file("definitions/orders/definition.yaml");
    let mut tdep = sample_deployment();
    tdep.spec.definitions.selector = None;
    let definitions = (0..count).map(|i| orders_copy(&orders, i)).collect();
    let server = ApiServer::start(client_with(tdep, definitions).await, None).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_thesa-operator"))
        .args(["run", "--namespace", NS, "--leader-elect", "false"])
        .arg("--metrics-addr=127.0.0.1:0")
        .env("KUBECONFIG", server.kubeconfig(dir.path()))
        .env(
            "RUST_LOG",
            std::env::var("THESA_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
        .stdout(if std::env::var_os("THESA_BENCH_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(if std::env::var_os("THESA_BENCH_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start thesa-operator");
    let pid = child.id();
    let mut done = 0;
    while started.elapsed() < Duration::from_secs(600) {
        done = accepted_count(server.client()).await;
        if done == count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed();
    // Settled: the reconciles its own status updates trigger have run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (peak, now) = memory::rss(&pid.to_string());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(done, count, "every definition accepted within 10 minutes");
    println!(
        "thesa-operator with {count} definitions: all accepted after {:.1} s; peak RSS {peak:.0} MiB, settled {now:.0} MiB",
        took.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let counts = std::env::var("THESA_BENCH_DEFINITIONS").unwrap_or_else(|_| "200,1000".into());
    for count in counts.split(',') {
        run(count.trim().parse().expect("a number of definitions")).await;
    }
}
