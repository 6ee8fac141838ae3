//! Memory under OpenRouter's faults, on the real binary (`tests/tests/faults.rs` checks
//! what each caller sees; this checks what the faults cost the gateway). Each fault is
//! sent by several clients at once, round after round, and /proc says how much memory
//! the gateway took at its peak and whether what it keeps grows from round to round.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::path::Path;

use futures_util::future::join_all;
use llm_proxy_tests::proc_status::{peak_rss_kib, reset_peak, rss_kib};
use llm_proxy_tests::{GatewayProcess, MockOpenRouter};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_local-gateway");

const JSON: &str = "/api/v1/inference";
const SSE: &str = "/api/v1/inference/stream";
const CLIENTS: usize = 8;
const ROUNDS: usize = 6;
const LEAK_ROUNDS: usize = 40;
/// Memory figures are in KiB, as /proc gives them.
const MIB: u64 = 1024;
/// What a fault that holds no body may cost a request.
const SMALL: u64 = MIB / 2;

async fn round(client: &reqwest::Client, gateway: &GatewayProcess, route: &str, model: &str) {
    let asks = (0..CLIENTS).map(|_| async {
        let response = client
            .post(gateway.url(route))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let _ = response.bytes().await;
        status
    });
    for status in join_all(asks).await {
        assert!(
            status < 500 || status == 502 || status == 504,
            "{model}: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cost_bounded_memory_that_does_not_grow() {
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let gateway = GatewayProcess::start(
        Path::new(BINARY),
        &[
            ("OPENROUTER_API_KEY", "sk-or-v1-fault-memory"),
            ("OPENROUTER_BASE_URL", &base),
            ("REQUEST_TIMEOUT", "300"),
            ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "100000"),
            ("RATE_LIMIT_MAX_REQUESTS", "100000"),
        ],
    )
    .unwrap();
    let pid = gateway.pid();
    let client = reqwest::Client::new();
    // The catalogue (which prices every request) is working state, not a fault's cost:
    // loaded before anything is measured, however slowly it arrives on a busy machine.
    let mut loaded = false;
    for _ in 0..50 {
        let catalogue = client
            .get(gateway.url("/api/v1/models?limit=1"))
            .send()
            .await;
        if catalogue.is_ok_and(|r| r.status() == 200) {
            loaded = true;
            break;
        }
    }
    assert!(loaded, "the catalogue never loaded");
    round(&client, &gateway, JSON, "openai/gpt-4o").await;
    round(&client, &gateway, SSE, "openai/gpt-4o").await;
    // (route, fault, what one request may cost at most, in KiB.) A JSON answer is read
    // up to 6 MiB (`docs/errors.md`): one that says it is larger is refused unread, one
    // that does not say costs that much and the allocator's slack, at most about twice.
    // An event is held whole until it ends, and copied as it grows: up to four times
    // its size while it is assembled and relayed. Every other fault costs at most what the
    // HTTP client had read ahead (up to ~400 KB a connection). The biggest come first,
    // before anything else has grown the heap they could reuse.
    let faults = [
        (JSON, "mock/big-chunked-10000000", 14 * MIB),
        (SSE, "mock/big-chunked-10000000", 14 * MIB),
        (JSON, "mock/big-10000000", SMALL),
        (JSON, "mock/html-502-10000000", SMALL),
        (SSE, "mock/html-503-10000000", SMALL),
        (SSE, "mock/stream-big-3000000", 12 * MIB),
        (JSON, "mock/reset", SMALL),
        (SSE, "mock/stream-reset", SMALL),
        (JSON, "mock/stall-5000", SMALL),
        (SSE, "mock/stream-stall-5000", SMALL),
        (JSON, "mock/invalid-json", SMALL),
        (SSE, "mock/stream-garbage", SMALL),
        (JSON, "mock/html-502", SMALL),
        (SSE, "mock/not-sse", SMALL),
        (JSON, "mock/late-error-503", SMALL),
        (SSE, "mock/stream-error", SMALL),
    ];
    for (route, model, per_request) in faults {
        reset_peak(pid).unwrap();
        let before = rss_kib(pid).unwrap();
        let mut after = Vec::new();
        for _ in 0..ROUNDS {
            round(&client, &gateway, route, model).await;
            after.push(rss_kib(pid).unwrap());
        }
        let peak = peak_rss_kib(pid).unwrap();
        let at = format!(
            "{model} on {route}: {before} KiB before, peak {peak}, after each round {after:?}"
        );
        eprintln!("{at}");
        let bound = CLIENTS as u64 * per_request;
        assert!(peak <= before + bound, "more than {bound} KiB: {at}");
    }

    // A request that left even a little behind adds up: the cheap faults again, all
    // of them in every round, 3,520 requests. Once the heap has settled (a fifth of the
    // way), what stays resident may move by one of the allocator's 2 MiB steps, not by
    // what the 2,800 requests after that would leave at a kilobyte or two each.
    let cheap: Vec<_> = faults
        .iter()
        .filter(|(_, model, per_request)| *per_request == SMALL && !model.contains("stall"))
        .collect();
    let mut after = Vec::new();
    for _ in 0..LEAK_ROUNDS {
        for (route, model, _) in &cheap {
            round(&client, &gateway, route, model).await;
        }
        after.push(rss_kib(pid).unwrap());
    }
    let settled = after[LEAK_ROUNDS / 5 - 1];
    let last = after[LEAK_ROUNDS - 1];
    let requests = LEAK_ROUNDS * cheap.len() * CLIENTS;
    eprintln!("{requests} requests of cheap faults: after each round {after:?}");
    assert!(
        last <= settled + 3 * MIB,
        "{requests} requests: grew from {settled} KiB to {last}: {after:?}"
    );
}
