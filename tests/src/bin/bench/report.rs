//! `bench report`: what the proxy costs a user on top of OpenRouter, as one table. The
//! mock answers in-process; the release `local-gateway` runs as its own process; the
//! load comes from `client.rs` (a closed-loop HTTP/1.1 client), direct and through the
//! proxy in alternating runs (A B A B) so noise falls on both. Then each Lambda binary's
//! init under a local Runtime API, and the arm64 `bootstrap.zip` sizes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use llm_proxy_tests::runtime_api::RuntimeApi;
use llm_proxy_tests::{Behaviour, GatewayProcess, MockOpenRouter};

use crate::client::{self, Conn};
use llm_proxy_tests::proc_status::peak_rss_kib;

use crate::{Figures, PROFILE, bench_env, sibling, start_gateway};

/// One row of the final table.
struct Row {
    figure: String,
    value: String,
    target: &'static str,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn signed_us(a: Duration, b: Duration) -> f64 {
    us(a) - us(b)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn addr_of(url: &str) -> Result<SocketAddr, String> {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("no address in {url}"))
}

/// `connections` closed loops sending `request` to `addr` for `run`; the latencies
/// and how many were answered.
async fn closed_loop(
    addr: SocketAddr,
    request: &[u8],
    connections: usize,
    run: Duration,
) -> Result<Vec<Duration>, String> {
    let deadline = Instant::now() + run;
    let mut loops = Vec::new();
    for _ in 0..connections {
        let request = request.to_vec();
        loops.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
            let mut samples = Vec::with_capacity(8192);
            while Instant::now() < deadline {
                let t = Instant::now();
                let status = conn.request(&request).await.map_err(|e| e.to_string())?;
                samples.push(t.elapsed());
                if status != 200 {
                    return Err(format!("answered {status}"));
                }
            }
            Ok::<_, String>(samples)
        }));
    }
    let mut samples = Vec::new();
    for l in loops {
        samples.extend(l.await.map_err(|e| e.to_string())??);
    }
    Ok(samples)
}

struct Pair {
    direct: Figures,
    proxy: Figures,
    /// Requests per second, summed over the runs.
    direct_rate: f64,
    proxy_rate: f64,
}

/// Direct and proxied runs alternated `rounds` times.
async fn interleaved(
    direct: (SocketAddr, &[u8]),
    proxy: (SocketAddr, &[u8]),
    connections: usize,
    rounds: usize,
    run: Duration,
) -> Result<Pair, String> {
    // Warm both paths (connections, pools, caches) before counting.
    closed_loop(direct.0, direct.1, connections, run / 2).await?;
    closed_loop(proxy.0, proxy.1, connections, run / 2).await?;
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        d.extend(closed_loop(direct.0, direct.1, connections, run).await?);
        p.extend(closed_loop(proxy.0, proxy.1, connections, run).await?);
    }
    let total = run.as_secs_f64() * rounds as f64;
    Ok(Pair {
        direct_rate: d.len() as f64 / total,
        proxy_rate: p.len() as f64 / total,
        direct: Figures::new(d, None),
        proxy: Figures::new(p, None),
    })
}

/// What one stream showed: first byte, first `data:` event, and each event's delay
/// from the mock handing it to the server to the client holding it.
struct StreamFigures {
    first_byte: Vec<Duration>,
    first_event: Vec<Duration>,
    relay: Vec<Duration>,
}

async fn one_stream(
    mock: &MockOpenRouter,
    addr: SocketAddr,
    request: &[u8],
    conn: Option<&mut Conn>,
    into: &mut StreamFigures,
) -> Result<(), String> {
    let mut fresh;
    let conn = match conn {
        Some(conn) => conn,
        None => {
            fresh = Conn::connect(addr).await.map_err(|e| e.to_string())?;
            &mut fresh
        }
    };
    mock.take_sent();
    let started = Instant::now();
    let times = conn.stream(request).await.map_err(|e| e.to_string())?;
    let sent = mock.take_sent();
    if sent.len() != times.events.len() {
        return Err(format!(
            "the mock sent {} events and {} arrived",
            sent.len(),
            times.events.len()
        ));
    }
    into.first_byte.push(times.first_byte - started);
    let events = llm_proxy_tests::fixtures::sse_events(&times.data);
    let first_data = events
        .iter()
        .position(|e| e.starts_with(b"data: "))
        .ok_or("no data event")?;
    into.first_event.push(times.events[first_data] - started);
    into.relay.extend(
        times
            .events
            .iter()
            .zip(&sent)
            .map(|(arrived, sent)| arrived.saturating_duration_since(*sent)),
    );
    Ok(())
}

async fn streams(
    mock: &MockOpenRouter,
    direct: (SocketAddr, &[u8]),
    proxy: (SocketAddr, &[u8]),
    count: usize,
    reuse: bool,
) -> Result<(StreamFigures, StreamFigures), String> {
    let empty = || StreamFigures {
        first_byte: Vec::new(),
        first_event: Vec::new(),
        relay: Vec::new(),
    };
    let (mut d, mut p) = (empty(), empty());
    let (mut dc, mut pc) = (
        Conn::connect(direct.0).await.map_err(|e| e.to_string())?,
        Conn::connect(proxy.0).await.map_err(|e| e.to_string())?,
    );
    for _ in 0..count {
        let (dconn, pconn) = if reuse {
            (Some(&mut dc), Some(&mut pc))
        } else {
            (None, None)
        };
        one_stream(mock, direct.0, direct.1, dconn, &mut d).await?;
        one_stream(mock, proxy.0, proxy.1, pconn, &mut p).await?;
    }
    Ok((d, p))
}

fn added_row(
    figure: &str,
    direct: Vec<Duration>,
    proxy: Vec<Duration>,
    target: &'static str,
) -> Row {
    let (d, p) = (Figures::new(direct, None), Figures::new(proxy, None));
    Row {
        figure: figure.to_owned(),
        value: format!(
            "+{:.0} µs / +{:.0} µs (direct {:.0} / {:.0})",
            signed_us(p.percentile(50.0), d.percentile(50.0)),
            signed_us(p.percentile(99.0), d.percentile(99.0)),
            us(d.percentile(50.0)),
            us(d.percentile(99.0)),
        ),
        target,
    }
}

/// Each function binary started under a local Runtime API `runs` times: exec to its
/// first poll (init), its first answer, and a warm answer after it.
async fn lambda_init(mock: &MockOpenRouter, runs: usize) -> Result<Vec<Row>, String> {
    let connections = llm_proxy_tests::connections::RecordingConnections::start()
        .await
        .map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let mut rows = Vec::new();
    for (function, event) in [
        ("inference", "inference-chat.json"),
        ("models", "models-list.json"),
        ("stream", "stream-chat-completions-json.json"),
        ("websocket", "websocket-default-ping.json"),
    ] {
        let binary = sibling(function);
        let event = std::fs::read_to_string(
            llm_proxy_tests::gateway::workspace_root()
                .join("events")
                .join(event),
        )
        .map_err(|e| e.to_string())?;
        let (mut inits, mut firsts, mut warms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let mut api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
            let started = Instant::now();
            let mut child = std::process::Command::new(&binary)
                .env_clear()
                .envs(api.function_env(function))
                .envs(bench_env(&base))
                .envs([
                    ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
                    ("WS_MANAGEMENT_ENDPOINT", connections.endpoint.as_str()),
                    ("AWS_REGION", "us-east-1"),
                    ("AWS_ACCESS_KEY_ID", "bench"),
                    ("AWS_SECRET_ACCESS_KEY", "bench"),
                    ("AWS_EC2_METADATA_DISABLED", "true"),
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("{}: {e}", binary.display()))?;
            let result = async {
                let polled = api
                    .first_poll(Duration::from_secs(10))
                    .await
                    .ok_or(format!("{function} never asked for an event"))?;
                inits.push(polled - started);
                for answers in [&mut firsts, &mut warms] {
                    let t = Instant::now();
                    let mut response = api
                        .invoke(event.clone(), Duration::from_secs(10))
                        .await
                        .ok_or(format!("{function} did not answer"))?;
                    response.body().await;
                    answers.push(t.elapsed());
                }
                Ok::<_, String>(())
            }
            .await;
            let _ = child.kill();
            let _ = child.wait();
            result?;
        }
        let median = |v: Vec<Duration>| Figures::new(v, None).percentile(50.0);
        rows.push(Row {
            figure: format!("`{function}` init, first answer, warm answer (median of {runs})"),
            value: format!(
                "{:.1} ms, {:.2} ms, {:.2} ms",
                median(inits).as_secs_f64() * 1e3,
                median(firsts).as_secs_f64() * 1e3,
                median(warms).as_secs_f64() * 1e3
            ),
            target: "init ≤ 15 ms",
        });
    }
    Ok(rows)
}

/// The Lambda part of the report alone.
pub async fn lambda_init_table() -> Result<(), String> {
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    mock.set_behaviour(Behaviour::Replay);
    let rows = lambda_init(&mock, env_number("BENCH_INIT_RUNS", 20)).await?;
    print_table(rows);
    Ok(())
}

fn print_table(rows: Vec<Row>) {
    println!("\n| figure | this run | target |\n|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} |", row.figure, row.value, row.target);
    }
}

fn zip_sizes() -> Vec<Row> {
    let root = llm_proxy_tests::gateway::workspace_root().join("target/lambda");
    ["inference", "models", "stream", "websocket"]
        .into_iter()
        .map(|f| {
            let value = std::fs::metadata(root.join(f).join("bootstrap.zip")).map_or_else(
                |_| "not built (scripts/build-lambda)".to_owned(),
                |m| format!("{:.2} MB", m.len() as f64 / 1e6),
            );
            Row {
                figure: format!("`{f}` arm64 bootstrap.zip"),
                value,
                target: "≤ 4 MB",
            }
        })
        .collect()
}

/// The mock (replaying captures) and the release gateway pointed at it, every limit out
/// of the way. `BENCH_GATEWAY` names another gateway binary (a build with symbols, an
/// older commit).
async fn mock_and_gateway() -> Result<(MockOpenRouter, GatewayProcess), String> {
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    mock.set_behaviour(Behaviour::Replay);
    let base = mock.base_url();
    let binary = std::env::var_os("BENCH_GATEWAY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| sibling("local-gateway"));
    let threads = std::env::var("TOKIO_WORKER_THREADS").unwrap_or_default();
    let mut extra = vec![("MAX_CONCURRENT_REQUESTS", "10000")];
    if !threads.is_empty() {
        extra.push(("TOKIO_WORKER_THREADS", threads.as_str()));
    }
    let gateway = start_gateway(&binary, &base, &extra)?;
    Ok((mock, gateway))
}

const CHAT: &str = r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"Hello, world!"}],"temperature":0.7,"max_tokens":100}"#;

/// CPU time process `pid` has used, user and system, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start with the state.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field(11), field(12))
}

/// `bench load SECONDS [CONNECTIONS]`: chat requests through the gateway and nothing
/// else, for a profiler attached to the pid it prints.
pub async fn load() -> Result<(), String> {
    let mut args = std::env::args().skip(2);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let connections: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let (_mock, mut gateway) = mock_and_gateway().await?;
    let addr = addr_of(&gateway.base_url)?;
    println!(
        "load: gateway pid {}; {seconds} s at concurrency {connections}",
        gateway.pid()
    );
    let request = client::post(addr, "/api/v1/chat/completions", CHAT);
    let cpu = cpu_ticks(gateway.pid());
    let samples = closed_loop(addr, &request, connections, Duration::from_secs(seconds)).await?;
    let after = cpu_ticks(gateway.pid());
    let per = |ticks: u64| ticks as f64 * 1e4 / samples.len() as f64;
    println!(
        "load: gateway CPU per request: {:.1} µs user + {:.1} µs system",
        per(after.0.saturating_sub(cpu.0)),
        per(after.1.saturating_sub(cpu.1))
    );
    Figures::new(samples, None).print("chat answer, through the proxy");
    // A clean exit, so a profiler wrapped around the gateway writes its results.
    tokio::task::block_in_place(|| gateway.stop(Duration::from_secs(60)));
    Ok(())
}

pub async fn report() -> Result<(), String> {
    let (mock, gateway) = mock_and_gateway().await?;
    let (mock_addr, proxy_addr) = (mock.addr(), addr_of(&gateway.base_url)?);
    let run = Duration::from_millis(env_number("BENCH_RUN_MS", 1000) as u64);
    let rounds = env_number("BENCH_ROUNDS", 5);
    println!(
        "report: local-gateway ({PROFILE}, pid {}), mock in-process; load from bench's own \
         closed-loop HTTP/1.1 client; {rounds} alternating runs of {} ms each way",
        gateway.pid(),
        run.as_millis()
    );

    let direct = client::post(mock_addr, "/api/v1/chat/completions", CHAT);
    let proxied = client::post(proxy_addr, "/api/v1/chat/completions", CHAT);
    let mut rows = Vec::new();
    let mut throughput = (0.0, 0.0);
    for connections in [1, 32] {
        let pair = interleaved(
            (mock_addr, &direct),
            (proxy_addr, &proxied),
            connections,
            rounds,
            run,
        )
        .await?;
        pair.direct
            .print(&format!("chat answer, direct, c={connections}"));
        pair.proxy
            .print(&format!("chat answer, through the proxy, c={connections}"));
        println!(
            "{:<44} direct {:.0} req/s, through the proxy {:.0} req/s",
            "", pair.direct_rate, pair.proxy_rate
        );
        rows.push(added_row(
            &format!("added latency at concurrency {connections}, p50 / p99"),
            pair.direct.samples,
            pair.proxy.samples,
            if connections == 1 {
                "p50 ≤ 40 µs, p99 ≤ 250 µs"
            } else {
                "—"
            },
        ));
        throughput = (pair.direct_rate, pair.proxy_rate);
    }
    rows.push(Row {
        figure: "throughput at concurrency 32, proxy ÷ direct".to_owned(),
        value: format!(
            "{:.2} ({:.0} ÷ {:.0} req/s)",
            throughput.1 / throughput.0,
            throughput.1,
            throughput.0
        ),
        target: "≥ 0.40",
    });
    rows.push(Row {
        figure: "gateway peak RSS after the load".to_owned(),
        value: format!(
            "{:.1} MB",
            peak_rss_kib(gateway.pid()).unwrap_or(0) as f64 / 1024.0
        ),
        target: "≤ 24 MB",
    });

    let count = env_number("BENCH_STREAMS", 50);
    let stream = r#"{"model":"mock/stream-paced-64-20","messages":[{"role":"user","content":"Tell me a story"}],"stream":true}"#;
    let direct = client::post(mock_addr, "/api/v1/chat/completions", stream);
    let proxied = client::post(proxy_addr, "/api/v1/chat/completions", stream);
    for reuse in [false, true] {
        let (d, p) = streams(
            &mock,
            (mock_addr, &direct),
            (proxy_addr, &proxied),
            count,
            reuse,
        )
        .await?;
        let how = if reuse {
            "one connection, as an SDK"
        } else {
            "new connection each, as a browser"
        };
        rows.push(added_row(
            &format!("stream first byte, {how} ({count} streams)"),
            d.first_byte,
            p.first_byte,
            "p50 ≤ 300 µs, p99 ≤ 500 µs",
        ));
        rows.push(added_row(
            &format!("stream first data event, {how}"),
            d.first_event,
            p.first_event,
            "—",
        ));
        rows.push(added_row(
            &format!("each event's relay (mock hands it over → client has it), {how}"),
            d.relay,
            p.relay,
            "≤ 20 µs",
        ));
    }

    let list = client::get(proxy_addr, "/api/v1/models");
    let models = closed_loop(proxy_addr, &list, 1, run * 2).await?;
    let models = Figures::new(models, None);
    rows.push(Row {
        figure: "GET /api/v1/models (page of 50), warm, p50 / p99".to_owned(),
        value: format!(
            "{:.0} µs / {:.0} µs",
            us(models.percentile(50.0)),
            us(models.percentile(99.0))
        ),
        target: "—",
    });

    let client = reqwest::Client::new();
    let (idle, peak, rate) = crate::relay_volume(
        &client,
        &gateway.url("/api/v1/inference/stream"),
        gateway.pid(),
    )
    .await?;
    rows.push(Row {
        figure: "gateway RSS while relaying a 100 MB stream".to_owned(),
        value: format!(
            "{:.1} MB before, {:.1} MB peak ({rate:.0} MB/s)",
            idle as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
        target: "flat",
    });
    drop(gateway);

    rows.extend(lambda_init(&mock, env_number("BENCH_INIT_RUNS", 20)).await?);
    rows.extend(zip_sizes());

    print_table(rows);
    Ok(())
}
