//! `bench soak [REQUESTS] [CONCURRENCY]`: a mixed load against the release local
//! gateway and the mock: valid and invalid chat requests, streams, the catalogue and
//! WebSocket inferences, 10,000 at concurrency 64 by default. It prints what came back,
//! every unexpected answer (a 5xx, or a status the request should not get), and the
//! gateway's open file descriptors and RSS before, at the peak and after.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use llm_proxy_tests::MockOpenRouter;
use llm_proxy_tests::proc_status::{open_fds, peak_rss_kib, rss_kib};
use llm_proxy_tests::ws::WsClient;
use serde_json::json;
use tokio::sync::Mutex;

use crate::{PROFILE, sibling, start_gateway};

/// One request of the mix, by its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Chat,
    Invalid,
    Stream,
    Models,
    WebSocket,
}

fn kind_of(n: usize) -> Kind {
    match n % 10 {
        0..=2 => Kind::Chat,
        3 | 4 => Kind::Invalid,
        5 | 6 => Kind::Stream,
        7 | 8 => Kind::Models,
        _ => Kind::WebSocket,
    }
}

/// One round's shared count: the next request to send, and what came back.
#[derive(Default)]
struct Tally {
    next: AtomicUsize,
    peak_fds: AtomicUsize,
    unexpected: AtomicUsize,
    seen: Mutex<BTreeMap<(Kind, u16), usize>>,
}

/// What one request got: its status (101 for a WebSocket exchange that ended with its
/// final message) and whether that was what it should get.
async fn one(client: &reqwest::Client, base: &str, ws_url: &str, n: usize) -> (Kind, u16, bool) {
    let kind = kind_of(n);
    let chat = json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": format!("soak {n}")}]});
    let post = |path: &str, body: &serde_json::Value| {
        client.post(format!("{base}{path}")).json(body).send()
    };
    let outcome = match kind {
        Kind::Chat => post("/api/v1/inference", &chat).await,
        Kind::Invalid => {
            post(
                "/api/v1/inference",
                &json!({"model": "", "messages": "none"}),
            )
            .await
        }
        Kind::Stream => post("/api/v1/inference/stream", &chat).await,
        Kind::Models => {
            client
                .get(format!("{base}/api/v1/models?limit=20"))
                .send()
                .await
        }
        Kind::WebSocket => {
            let done = async {
                let mut ws = WsClient::connect(ws_url).await.ok()?;
                ws.send(&json!({"type": "inference_request", "id": "s", "data": chat}))
                    .await
                    .ok()?;
                let messages = ws
                    .until_final("s", Duration::from_secs(30), &mut Vec::new())
                    .await;
                messages.last().map(|m| m["type"] == "inference_response")
            };
            let ok = done.await == Some(true);
            return (kind, if ok { 101 } else { 0 }, ok);
        }
    };
    let Ok(response) = outcome else {
        return (kind, 0, false);
    };
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let expected = match kind {
        Kind::Invalid => status == 400,
        Kind::Stream => status == 200 && body.ends_with(b"data: [DONE]\n\n"),
        _ => status == 200,
    };
    (kind, status, expected)
}

pub async fn soak() -> Result<(), String> {
    let mut args = std::env::args().skip(2);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let gateway = start_gateway(
        &sibling("local-gateway"),
        &base,
        &[
            ("MAX_CONCURRENT_REQUESTS", "1000"),
            ("WS_RATE_LIMIT_CONNECTIONS", "1000000"),
            ("WS_MAX_CONNECTIONS", "100000"),
        ],
    )?;
    let pid = gateway.pid();
    let ws_url = gateway.ws_url();
    let base_url = gateway.base_url.clone();
    println!(
        "soak: {total} requests at concurrency {concurrency} against local-gateway ({PROFILE}, pid {pid}): 3/10 chat, 2/10 invalid, 2/10 streamed, 2/10 catalogue, 1/10 WebSocket"
    );
    let (fds_before, rss_fresh) = (open_fds(pid), rss_kib(pid).unwrap_or(0));
    // One request of each kind first: the catalogue's cache, the pools and the lazily
    // built parts are the gateway's working state, not something the load leaves.
    let warm_up = reqwest::Client::new();
    for n in 0..10 {
        let (kind, status, expected) = one(&warm_up, &base_url, &ws_url, n).await;
        if !expected {
            return Err(format!("warm-up: {kind:?} got {status}"));
        }
    }
    drop(warm_up);
    let rss_before = rss_kib(pid).unwrap_or(0);
    // Two rounds on one gateway: if what the first leaves behind (the allocator keeps
    // freed memory) grew again in the second, something would be leaking.
    for round in 1..=2 {
        let tally = Arc::new(Tally {
            peak_fds: AtomicUsize::new(fds_before),
            ..Tally::default()
        });
        let client = reqwest::Client::new();
        println!("soak: round {round}");
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let tally = tally.clone();
                let (client, base_url, ws_url) = (client.clone(), base_url.clone(), ws_url.clone());
                tokio::spawn(async move {
                    loop {
                        let n = tally.next.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            return;
                        }
                        let (kind, status, expected) = one(&client, &base_url, &ws_url, n).await;
                        if !expected {
                            tally.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                        *tally.seen.lock().await.entry((kind, status)).or_default() += 1;
                        if n.is_multiple_of(100) {
                            tally.peak_fds.fetch_max(open_fds(pid), Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.map_err(|e| e.to_string())?;
        }
        let took = started.elapsed();
        drop(client);
        let rss_peak = peak_rss_kib(pid).unwrap_or(0);

        // The clients are gone. What the gateway still holds is its pools: upstream
        // connections to the mock and the Management API client's to `@connections`,
        // closed once idle past their timeout (90 s, checked as often). Wait for that, up
        // to 4 minutes, noting the count every 30 s.
        let settle = Instant::now();
        let mut fds_after = open_fds(pid);
        let mut timeline = vec![format!("0 s: {fds_after}")];
        while fds_after > fds_before && settle.elapsed() < Duration::from_secs(240) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            fds_after = open_fds(pid);
            let secs = settle.elapsed().as_secs();
            if secs.is_multiple_of(30) {
                timeline.push(format!("{secs} s: {fds_after}"));
            }
        }
        timeline.push(format!("{} s: {fds_after}", settle.elapsed().as_secs()));
        let rss_after = rss_kib(pid).unwrap_or(0);

        println!(
            "soak: {total} in {:.1} s ({:.0} req/s)",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64()
        );
        let seen = tally.seen.lock().await;
        for ((kind, status), count) in seen.iter() {
            println!("  {kind:?} {status}: {count}");
        }
        let server_errors: usize = seen
            .iter()
            .filter(|((_, status), _)| *status >= 500)
            .map(|(_, count)| count)
            .sum();
        println!(
            "soak: unexpected answers {}, of them 5xx {server_errors}",
            tally.unexpected.load(Ordering::Relaxed)
        );
        println!(
            "soak: open fds {fds_before} before, {} at the peak (sampled), {fds_after} after; after the load: {}",
            tally.peak_fds.load(Ordering::Relaxed),
            timeline.join(", ")
        );
        println!(
            "soak: RSS {:.1} MB fresh, {:.1} MB warmed up (one request of each kind), {:.1} MB peak, {:.1} MB after",
            rss_fresh as f64 / 1024.0,
            rss_before as f64 / 1024.0,
            rss_peak as f64 / 1024.0,
            rss_after as f64 / 1024.0
        );
    }
    Ok(())
}
