//! `bench`: benchmarks that print figures and never fail on a number.
//!
//! Build and run in release: `cargo run --release -p llm-proxy-tests --bin bench -- <name>`
//! (it starts the release `local-gateway` from the same target folder, and the mock
//! OpenRouter in-process; everything on 127.0.0.1). `report` is the one table
//! `scripts/bench` prints (report.rs); the others look closer at one part: `models`, `ratelimit`,
//! `stream`, `websocket`, `all` (those four), and `stream-lambda` (the stream function under
//! `cargo lambda watch --release`; compiles it first if needed), `soak` (a mixed load, soak.rs),
//! `journal` (what an `Idempotency-Key` costs a stream, journal.rs).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

mod client;
mod journal;
mod report;
mod soak;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use llm_proxy_tests::proc_status::{peak_rss_kib, rss_kib};
use llm_proxy_tests::{GatewayProcess, MockOpenRouter};

#[tokio::main]
async fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    let result = match name.as_str() {
        "models" => models().await,
        "ratelimit" => ratelimit().await,
        "stream" => stream().await,
        "stream-lambda" => stream_lambda().await,
        "websocket" => websocket().await,
        "bodies" => bodies().await,
        "report" => report::report().await,
        "lambda-init" => report::lambda_init_table().await,
        "load" => report::load().await,
        "soak" => soak::soak().await,
        "journal" => journal::journal().await,
        "all" => {
            async {
                models().await?;
                ratelimit().await?;
                stream().await?;
                websocket().await
            }
            .await
        }
        _ => Err(
            "usage: bench report|lambda-init|load|soak|journal|models|ratelimit|stream|websocket|bodies|all|stream-lambda".to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A binary built beside this one (`cargo build --release` puts them together).
fn sibling(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name(name)
}

/// The settings every benchmark run of the gateway shares: a key, the mock as upstream,
/// quiet logs, and the limits out of reach.
fn bench_env(base: &str) -> Vec<(&str, &str)> {
    vec![
        ("OPENROUTER_API_KEY", "bench"),
        ("OPENROUTER_BASE_URL", base),
        ("LOG_LEVEL", "warn"),
        UNLIMITED,
        UNLIMITED_INFERENCE,
        NO_BUDGETS[0],
        NO_BUDGETS[1],
    ]
}

/// `binary` (a gateway) against the mock at `base`, with `extra` settings on top.
fn start_gateway(
    binary: &std::path::Path,
    base: &str,
    extra: &[(&str, &str)],
) -> Result<GatewayProcess, String> {
    let mut vars = bench_env(base);
    vars.extend_from_slice(extra);
    GatewayProcess::start(binary, &vars).map_err(|e| e.to_string())
}

/// The limits are part of every request's path, so they stay on, out of reach.
const UNLIMITED: (&str, &str) = ("RATE_LIMIT_MAX_REQUESTS", "1000000000");
const UNLIMITED_INFERENCE: (&str, &str) = ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "1000000000");
/// Spend budgets off: a benchmark's thousands of answers would spend them.
const NO_BUDGETS: [(&str, &str); 2] = [
    ("SPEND_LIMIT_USD", "0"),
    ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0"),
];
const PROFILE: &str = if cfg!(debug_assertions) {
    "debug build: figures mean little"
} else {
    "release"
};

struct Figures {
    /// Sorted, so percentiles are lookups.
    samples: Vec<Duration>,
    /// The run's wall time, for throughput; `None` where requests were not timed as a run.
    wall: Option<Duration>,
}

impl Figures {
    fn new(mut samples: Vec<Duration>, wall: Option<Duration>) -> Self {
        samples.sort();
        Self { samples, wall }
    }

    fn percentile(&self, p: f64) -> Duration {
        let rank = ((p / 100.0) * (self.samples.len() as f64 - 1.0)).round() as usize;
        self.samples.get(rank).copied().unwrap_or_default()
    }

    fn print(&self, label: &str) {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let throughput = self.wall.map_or_else(String::new, |wall| {
            format!(
                "  max={:>8.1} µs  {:>8.0} req/s",
                us(self.percentile(100.0)),
                self.samples.len() as f64 / wall.as_secs_f64()
            )
        });
        println!(
            "{label:<44} n={:<6} p50={:>8.1} µs  p90={:>8.1} µs  p99={:>8.1} µs{throughput}",
            self.samples.len(),
            us(self.percentile(50.0)),
            us(self.percentile(90.0)),
            us(self.percentile(99.0)),
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
    Ok(Figures::new(samples, Some(started.elapsed())))
}

async fn models() -> Result<(), String> {
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let gateway = start_gateway(&sibling("local-gateway"), &base, &[])?;
    println!(
        "models: local-gateway ({PROFILE}) on {}, 414 models, in-memory rate limiter",
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

/// The rate limiter's own cost per request: `RateLimiter::check` timed in-process,
/// against the memory store and against DynamoDB (moto on 127.0.0.1).
async fn ratelimit() -> Result<(), String> {
    use llm_proxy_shared::rate_limit::{
        DEFAULT_BUDGET, DynamoStore, IpKeyer, MemoryStore, RateLimiter, Scope, Store,
    };
    use llm_proxy_tests::dynamo;

    let config = llm_proxy_shared::Config::from_lookup(|k| match k {
        "RATE_LIMIT_MAX_REQUESTS" | "RATE_LIMIT_INFERENCE_MAX_REQUESTS" => {
            Some("1000000000".to_owned())
        }
        _ => None,
    })
    .map_err(|e| e.to_string())?;
    let ips: Vec<llm_proxy_shared::ClientIp> = (0..1000u32)
        .map(|i| llm_proxy_shared::ClientIp(std::net::Ipv4Addr::from(0x0A00_0000 + i).into()))
        .collect();

    async fn run(
        limiter: &RateLimiter,
        ips: &[llm_proxy_shared::ClientIp],
        n: usize,
    ) -> Result<Figures, String> {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            let decision = limiter
                .check(
                    ips[i % ips.len()],
                    if i % 2 == 0 {
                        Scope::Http
                    } else {
                        Scope::Inference
                    },
                )
                .await;
            samples.push(t.elapsed());
            if !decision.map_err(|e| e.to_string())?.allowed {
                return Err("refused".into());
            }
        }
        Ok(Figures::new(samples, Some(started.elapsed())))
    }

    println!("ratelimit: RateLimiter::check per request, 1000 client IPs, half of them inference");
    let memory = RateLimiter::new(
        Store::Memory(MemoryStore::default()),
        IpKeyer::new(b"bench"),
        &config.rate_limits,
    );
    run(&memory, &ips, 2000).await?;
    run(&memory, &ips, 100_000).await?.print("memory store");

    let server = dynamo::DynamoServer::start().map_err(|e| e.to_string())?;
    let direct = dynamo::client(&server.endpoint).await;
    dynamo::create_table(&direct, "bench")
        .await
        .map_err(|e| e.to_string())?;
    let client = DynamoStore::tuned(dynamo::config_for(&server.endpoint), DEFAULT_BUDGET);
    let limiter = RateLimiter::new(
        Store::Dynamo(DynamoStore::new(client, "bench")),
        IpKeyer::new(b"bench"),
        &config.rate_limits,
    );
    run(&limiter, &ips, 100).await?;
    run(&limiter, &ips, 3000)
        .await?
        .print("DynamoDB store (moto, one UpdateItem)");
    println!(
        "(moto is Python answering one request at a time; DynamoDB in-region answers an UpdateItem in single-digit ms)"
    );
    Ok(())
}

/// Both runs' figures, and what the proxy added: `via[i] - straight[i]`, the runs having
/// alternated.
fn print_pairwise(
    straight: Vec<Duration>,
    straight_label: &str,
    via: Vec<Duration>,
    via_label: &str,
) {
    let added: Vec<Duration> = via
        .iter()
        .zip(&straight)
        .map(|(v, s)| v.saturating_sub(*s))
        .collect();
    Figures::new(straight, None).print(straight_label);
    Figures::new(via, None).print(via_label);
    Figures::new(added, None).print("added by the proxy (pairwise)");
}

/// Time to the first byte of a streamed answer (read to its end).
async fn ttfb(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<Duration, String> {
    time_until(client, url, body, |_| true).await
}

/// Time until the streamed answer's bytes so far satisfy `found`; the answer is read to
/// its end either way, so the next request starts on a quiet connection.
async fn time_until(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    found: impl Fn(&[u8]) -> bool,
) -> Result<Duration, String> {
    use futures_util::StreamExt;
    let t = Instant::now();
    let response = client
        .post(url)
        .bearer_auth("bench")
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = response.bytes_stream();
    let mut seen = Vec::new();
    let mut first = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if first.is_none() {
            seen.extend_from_slice(&chunk);
            if found(&seen) {
                first = Some(t.elapsed());
            }
        }
    }
    first.ok_or_else(|| "the stream never showed what was awaited".to_owned())
}

/// The stream relay: memory of the gateway process while it relays 100 MB, and the
/// time to first byte it adds (through the proxy vs straight to the mock, one run).
async fn stream() -> Result<(), String> {
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let gateway = start_gateway(&sibling("local-gateway"), &base, &[])?;
    let client = reqwest::Client::new();
    let pid = gateway.pid();

    let body = serde_json::json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let through = gateway.url("/api/v1/inference/stream");
    let direct = format!("{base}/chat/completions");
    for _ in 0..50 {
        ttfb(&client, &through, &body).await?;
        ttfb(&client, &direct, &body).await?;
    }
    let (mut via, mut straight) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        via.push(ttfb(&client, &through, &body).await?);
        straight.push(ttfb(&client, &direct, &body).await?);
    }
    println!(
        "stream: local-gateway ({PROFILE}); time to first byte, 1000 streams each way, alternating"
    );
    print_pairwise(
        straight,
        "straight to the mock",
        via,
        "through the proxy (local gateway)",
    );

    relay_volume(&client, &through, pid).await?;
    Ok(())
}

/// Relays a 100 MB stream through `url` and samples the RSS of process `pid` as it goes;
/// returns the RSS before and at its peak (KiB), and the rate (MB/s).
async fn relay_volume(
    client: &reqwest::Client,
    url: &str,
    pid: u32,
) -> Result<(u64, u64, f64), String> {
    use futures_util::StreamExt;
    let idle = rss_kib(pid).unwrap_or(0);
    let volume = serde_json::json!({"model": "mock/stream-volume-100", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let started = Instant::now();
    let response = client
        .post(url)
        .json(&volume)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = response.bytes_stream();
    let (mut bytes, mut peak, mut samples) = (0u64, idle, 0u32);
    while let Some(chunk) = stream.next().await {
        bytes += chunk.map_err(|e| e.to_string())?.len() as u64;
        if bytes / (1024 * 1024) > u64::from(samples) {
            samples += 1;
            peak = peak.max(rss_kib(pid).unwrap_or(0));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = bytes as f64 / 1e6 / seconds;
    println!(
        "stream: relayed {:.1} MB in {seconds:.2} s ({rate:.0} MB/s); RSS before {idle} KiB, peak while relaying {peak} KiB ({samples} samples), after {} KiB",
        bytes as f64 / 1e6,
        rss_kib(pid).unwrap_or(0)
    );
    Ok((idle, peak, rate))
}

/// The pid of a running process whose command line starts with `program`.
fn find_process(program: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let first = cmdline.split(|b| *b == 0).next()?;
            std::str::from_utf8(first)
                .ok()?
                .ends_with(program)
                .then_some(pid)
        })
}

/// The `stream` function itself, as a release build under the Lambda runtime emulator.
async fn stream_lambda() -> Result<(), String> {
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let watch = llm_proxy_tests::lambda::LambdaWatch::start_profile(&bench_env(&base), true)
        .map_err(|e| e.to_string())?;
    let client = reqwest::Client::new();
    let url = watch.function_url("stream", "/api/v1/inference/stream");
    let body = serde_json::json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    // The first request starts (and if needed compiles) the function.
    ttfb(&client, &url, &body).await?;
    let pid =
        find_process("release/stream").ok_or("the stream function's process was not found")?;
    println!("stream-lambda: the release `stream` binary under cargo lambda watch (pid {pid})");
    relay_volume(&client, &url, pid).await.map(drop)
}

/// The WebSocket emulation: how many `PostToConnection` calls a paced answer costs, the
/// first delta's added latency, and the gateway's memory holding idle connections.
async fn websocket() -> Result<(), String> {
    use llm_proxy_tests::ws::WsClient;
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let gateway = start_gateway(
        &sibling("local-gateway"),
        &base,
        &[
            ("WS_RATE_LIMIT_CONNECTIONS", "1000000"),
            ("WS_MAX_CONNECTIONS", "1000000"),
        ],
    )?;
    let ws_url = gateway.ws_url();
    let wait = Duration::from_secs(60);
    let request = |id: &str, model: &str| {
        serde_json::json!({"type": "inference_request", "id": id,
            "data": {"model": model, "messages": [{"role": "user", "content": "hi"}]}})
    };
    println!(
        "websocket: local-gateway ({PROFILE}), WS_FLUSH_INTERVAL_MS=100, WS_FLUSH_BYTES=16384"
    );

    // 1. A 500-token answer at a model's pace (one delta every 20 ms: 50 tokens/s).
    let mut client = WsClient::connect(&ws_url)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    client
        .send(&request("paced", "mock/stream-paced-500-20"))
        .await
        .map_err(|e| e.to_string())?;
    let messages = client.until_final("paced", wait, &mut Vec::new()).await;
    println!(
        "  500 deltas, one per 20 ms: {} messages (PostToConnection calls) in {:.1} s, {:.1} deltas per call",
        messages.len(),
        started.elapsed().as_secs_f64(),
        500.0 / messages.len() as f64
    );

    // 2. The first delta's added latency: through the WebSocket emulation (client ->
    //    $default -> worker -> OpenRouter -> Management API -> socket) vs the same
    //    stream's first content event straight from the mock, alternating.
    let http = reqwest::Client::new();
    let direct = format!("{base}/chat/completions");
    let body = serde_json::json!({"model": "mock/stream-text", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let (mut via, mut straight) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let id = format!("first-{i}");
        let t = Instant::now();
        client
            .send(&request(&id, "mock/stream-text"))
            .await
            .map_err(|e| e.to_string())?;
        client.message(wait).await;
        let first = t.elapsed();
        client.until_final(&id, wait, &mut Vec::new()).await;
        let direct_first = first_content(&http, &direct, &body).await?;
        if i >= 10 {
            via.push(first);
            straight.push(direct_first);
        }
    }
    print_pairwise(
        straight,
        "first delta straight from the mock (SSE)",
        via,
        "first delta over the WebSocket emulation",
    );
    drop(client);

    // 3. Memory holding 1,000 idle connections.
    let pid = gateway.pid();
    let before = rss_kib(pid).unwrap_or(0);
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(
            WsClient::connect(&ws_url)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let holding = rss_kib(pid).unwrap_or(0);
    println!(
        "  1,000 idle connections: gateway RSS {before} KiB before, {holding} KiB holding them ({:.1} KiB each), peak {} KiB",
        (holding.saturating_sub(before)) as f64 / 1000.0,
        peak_rss_kib(pid).unwrap_or(0)
    );
    drop(idle);
    Ok(())
}

/// Time to the first event carrying content, straight from an SSE endpoint.
async fn first_content(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<Duration, String> {
    const NEEDLE: &[u8] = b"\"content\":\"P";
    time_until(client, url, body, |seen| {
        seen.windows(NEEDLE.len()).any(|w| w == NEEDLE)
    })
    .await
}

/// Memory for large request bodies: the gateway's peak RSS while `n` clients at once
/// send 4.5 MB chat bodies, just under the body limit (a field of 1.5 million empty
/// arrays, which a JSON tree would make tens of bytes each), for n = 8 and for the
/// in-flight cap.
async fn bodies() -> Result<(), String> {
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let binary = std::env::var_os("BENCH_GATEWAY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| sibling("local-gateway"));
    let padding = "[],".repeat(1_500_000);
    let body = format!(
        r#"{{"model":"openai/gpt-4o","max_tokens":10,"messages":[{{"role":"user","content":"hi"}}],"x":[{}[]]}}"#,
        padding
    );
    println!(
        "bodies: {} ({PROFILE}); each body {:.1} MB",
        binary.display(),
        body.len() as f64 / 1e6
    );
    for clients in [8usize, 100] {
        // One address sends them all: its share is every place, and its bodies pass
        // the input cap, so what is measured is reading and checking them.
        let gateway = start_gateway(
            &binary,
            &base,
            &[
                ("MAX_CONCURRENT_REQUESTS", "100"),
                ("MAX_CONCURRENT_REQUESTS_PER_CLIENT", "100"),
                ("MAX_INPUT_TOKENS", "4000000"),
                ("MAX_REQUEST_COST_USD", "0"),
            ],
        )?;
        let before = rss_kib(gateway.pid()).unwrap_or(0);
        let client = reqwest::Client::new();
        let url = gateway.url("/api/v1/inference");
        let requests = (0..clients).map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move {
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        });
        let statuses = futures_util::future::join_all(requests).await;
        let ok = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
        println!(
            "  {clients:>3} bodies at once: {ok} answered 200; gateway RSS {before} KiB before, peak {} KiB",
            peak_rss_kib(gateway.pid()).unwrap_or(0)
        );
    }
    Ok(())
}
