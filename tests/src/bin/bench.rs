//! `bench`: benchmarks that print figures and never fail on a number.
//!
//! Build and run in release: `cargo run --release -p llm-proxy-tests --bin bench -- <name>`
//! (it starts the release `local-gateway` from the same target folder, and the mock
//! OpenRouter in-process; everything on 127.0.0.1). Names: `models`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use llm_proxy_tests::{Gateway, MockOpenRouter};

#[tokio::main]
async fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    let result = match name.as_str() {
        "models" => models().await,
        _ => Err("usage: bench models".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Figures {
    samples: Vec<Duration>,
    wall: Duration,
}

impl Figures {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
        sorted.get(rank).copied().unwrap_or_default()
    }

    fn print(&self, label: &str) {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{label:<44} n={:<6} p50={:>8.1} µs  p90={:>8.1} µs  p99={:>8.1} µs  max={:>8.1} µs  {:>8.0} req/s",
            self.samples.len(),
            us(self.percentile(50.0)),
            us(self.percentile(90.0)),
            us(self.percentile(99.0)),
            us(self.percentile(100.0)),
            self.samples.len() as f64 / self.wall.as_secs_f64(),
        );
    }
}

/// Sends `n` GETs, `concurrency` at a time, each connection kept alive.
async fn measure(url: &str, n: usize, concurrency: usize) -> Result<Figures, String> {
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let per_worker = n / concurrency;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let t = Instant::now();
                let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("{url}: {}", response.status()));
                }
                response.bytes().await.map_err(|e| e.to_string())?;
                samples.push(t.elapsed());
            }
            Ok::<_, String>(samples)
        }));
    }
    let mut samples = Vec::with_capacity(n);
    for worker in workers {
        samples.extend(worker.await.map_err(|e| e.to_string())??);
    }
    Ok(Figures {
        samples,
        wall: started.elapsed(),
    })
}

async fn models() -> Result<(), String> {
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let gateway = Gateway::start(&[("OPENROUTER_BASE_URL", &base), ("LOG_LEVEL", "warn")])
        .map_err(|e| e.to_string())?;
    println!(
        "models: release local-gateway on {}, mock catalogue of 414 models",
        gateway.base_url
    );
    // Warm the cache and the connection.
    measure(&gateway.url("/api/v1/models"), 200, 1).await?;

    for (label, path) in [
        ("GET /health (baseline: routing + layers)", "/health"),
        ("GET /api/v1/models (page of 50)", "/api/v1/models"),
        (
            "GET /api/v1/models?limit=100&offset=300",
            "/api/v1/models?limit=100&offset=300",
        ),
        (
            "GET /api/v1/models?search=code",
            "/api/v1/models?search=code",
        ),
        (
            "GET /api/v1/models/top?limit=10",
            "/api/v1/models/top?limit=10",
        ),
        (
            "GET /api/v1/models/providers/openai",
            "/api/v1/models/providers/openai",
        ),
    ] {
        measure(&gateway.url(path), 5000, 1)
            .await?
            .print(&format!("{label}, 1 client"));
    }
    measure(&gateway.url("/api/v1/models"), 20000, 8)
        .await?
        .print("GET /api/v1/models, 8 clients");
    println!(
        "upstream catalogue fetches during the run: {}",
        mock.models_fetches()
    );
    Ok(())
}
