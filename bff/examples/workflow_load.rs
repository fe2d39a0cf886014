//! Load generator for workflow events (`scripts/bench-workflow.sh` runs it).
//!
//! Creates `--instances` instances of `--workflow` spread over the BFFs
//! given, then:
//! 1. sends `--event` to distinct instances (round robin over all of them)
//!    from `--concurrency` connections for `--seconds`: events applied per
//!    second;
//! 2. sends events at half that rate, open loop (a request every 1/rate
//!    seconds whether or not earlier ones finished), for `--seconds`: p50,
//!    p99 and max latency.
//!
//! Only 127.0.0.1 URLs are accepted; every phase is bounded in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Options {
    bffs: Vec<String>,
    token: String,
    workflow: String,
    event: String,
    instances: usize,
    concurrency: usize,
    seconds: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        bffs: Vec::new(),
        token: std::env::var("TOKEN").unwrap_or_default(),
        workflow: "bench.toggle".into(),
        event: "flip".into(),
        instances: 2000,
        concurrency: 32,
        seconds: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse().map_err(|_| format!("{flag}: not a number"));
        match flag.as_str() {
            "--bff" => o.bffs = value.split(',').map(String::from).collect(),
            "--workflow" => o.workflow = value,
            "--event" => o.event = value,
            "--instances" => o.instances = number()?,
            "--concurrency" => o.concurrency = number()?,
            "--seconds" => o.seconds = number()? as u64,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.bffs.is_empty() || o.bffs.iter().any(|b| !b.starts_with("http://127.0.0.1:")) {
        return Err("--bff takes http://127.0.0.1:<port> URLs, comma-separated".into());
    }
    if o.token.is_empty() {
        return Err("set TOKEN to a bearer token".into());
    }
    Ok(o)
}

/// Sends one event; its latency when it applied (200).
async fn send(client: &reqwest::Client, o: &Options, target: &(usize, String)) -> Option<Duration> {
    let (bff, id) = target;
    let started = Instant::now();
    let response = client
        .post(format!(
            "{}/ui/workflows/instances/{id}/events",
            o.bffs[*bff]
        ))
        .bearer_auth(&o.token)
        .json(&json!({"event": o.event}))
        .send()
        .await
        .ok()?;
    let ok = response.status() == reqwest::StatusCode::OK;
    let _ = response.bytes().await;
    ok.then(|| started.elapsed())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let o = Arc::new(options()?);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency * 2)
        .build()
        .map_err(|e| e.to_string())?;

    // Instances, alternating between the BFFs.
    let targets: Vec<(usize, String)> = {
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..o.concurrency {
            let (o, client, next) = (o.clone(), client.clone(), next.clone());
            workers.push(tokio::spawn(async move {
                let mut made = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= o.instances {
                        return made;
                    }
                    let bff = n % o.bffs.len();
                    let url = format!("{}/ui/workflows/{}/start", o.bffs[bff], o.workflow);
                    let response = client
                        .post(url)
                        .bearer_auth(&o.token)
                        .json(&json!({}))
                        .send()
                        .await;
                    let body: Value = match response {
                        Ok(r) => r.json().await.unwrap_or(Value::Null),
                        Err(_) => Value::Null,
                    };
                    if let Some(id) = body["id"].as_str() {
                        made.push((bff, id.to_string()));
                    }
                }
            }));
        }
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.map_err(|e| e.to_string())?);
        }
        all
    };
    if targets.len() < o.concurrency * 4 {
        return Err(format!("only {} instances could be started", targets.len()));
    }
    let targets = Arc::new(targets);
    println!("instances: {}", targets.len());

    // 1. Most events per second.
    let duration = Duration::from_secs(o.seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..o.concurrency {
        let (o, client, next, targets) = (o.clone(), client.clone(), next.clone(), targets.clone());
        workers.push(tokio::spawn(async move {
            let (mut applied, mut failed) = (0u64, 0u64);
            while started.elapsed() < duration {
                let n = next.fetch_add(1, Ordering::Relaxed) % targets.len();
                match send(&client, &o, &targets[n]).await {
                    Some(_) => applied += 1,
                    None => failed += 1,
                }
            }
            (applied, failed)
        }));
    }
    let (mut applied, mut failed) = (0, 0);
    for worker in workers {
        let (a, f) = worker.await.map_err(|e| e.to_string())?;
        applied += a;
        failed += f;
    }
    let rate = applied as f64 / started.elapsed().as_secs_f64();
    println!(
        "max: {rate:.0} events/s applied ({applied} applied, {failed} failed) with {} connections",
        o.concurrency
    );

    // 2. Latency at half that rate, open loop.
    let half = (rate / 2.0).max(1.0);
    let gap = Duration::from_secs_f64(1.0 / half);
    let mut ticker = tokio::time::interval(gap);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut requests = Vec::new();
    while started.elapsed() < duration {
        ticker.tick().await;
        let n = next.fetch_add(1, Ordering::Relaxed) % targets.len();
        let (o, client, targets) = (o.clone(), client.clone(), targets.clone());
        requests.push(tokio::spawn(
            async move { send(&client, &o, &targets[n]).await },
        ));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for request in requests {
        match request.await.map_err(|e| e.to_string())? {
            Some(latency) => latencies.push(latency),
            None => failed += 1,
        }
    }
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    if latencies.is_empty() {
        return Err("no event applied in the latency phase".into());
    }
    println!(
        "at {half:.0} events/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} applied, {failed} failed)",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies.len()
    );
    Ok(())
}
