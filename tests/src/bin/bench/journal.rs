//! `bench journal`: what an `Idempotency-Key` costs a streamed answer (BENCHMARKS.md,
//! "The journal"): time to the first event with and without a key, and the journal's
//! DynamoDB calls per answer, against a gateway in this process counting in a
//! DynamoDB-compatible server (moto_server) on 127.0.0.1.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llm_proxy_tests::dynamo::{self, DynamoServer};
use llm_proxy_tests::{Behaviour, Gateway, MockOpenRouter};

use super::{Figures, PROFILE};

/// A 50-event answer at 50 events a second: a typical answer's pace.
const DELTAS: usize = 50;
const EVERY: Duration = Duration::from_millis(20);

pub async fn journal() -> Result<(), String> {
    let count = std::env::var("BENCH_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize);
    let server = DynamoServer::start().map_err(|e| e.to_string())?;
    let env = dynamo::table_env(&server, "bench-journal")
        .await
        .map_err(|e| e.to_string())?;
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    mock.set_behaviour(Behaviour::StreamPaced {
        deltas: DELTAS,
        every: EVERY,
    });
    let base = mock.base_url();
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend(super::bench_env(&base));
    vars.push(("RATE_LIMIT_HASH_KEY", "bench"));
    let gateway = Gateway::start(&vars).await.map_err(|e| e.to_string())?;
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "openai/gpt-4o-mini", "stream": true,
        "messages": [{"role": "user", "content": "Tell me a story"}]});

    println!(
        "journal ({PROFILE}): {count} streams of {DELTAS} events every {} ms each way, gateway in-process, moto_server on 127.0.0.1",
        EVERY.as_millis()
    );
    for keyed in [false, true] {
        let mut first = Vec::new();
        let mut whole = Vec::new();
        let (writes, reads) = llm_proxy_shared::journal::calls();
        for n in 0..count {
            let mut request = client
                .post(gateway.url("/api/v1/chat/completions"))
                .json(&body);
            if keyed {
                request = request.header("idempotency-key", format!("bench-{n}"));
            }
            let started = Instant::now();
            let response = request.send().await.map_err(|e| e.to_string())?;
            let mut stream = response.bytes_stream();
            let mut seen_data = false;
            let mut text = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                text.extend_from_slice(&chunk);
                if !seen_data && text.windows(6).any(|w| w == b"data: ") {
                    seen_data = true;
                    first.push(started.elapsed());
                }
            }
            whole.push(started.elapsed());
            if !text.ends_with(b"data: [DONE]\n\n") {
                return Err("a stream did not end with [DONE]".to_owned());
            }
        }
        let (w, r) = llm_proxy_shared::journal::calls();
        let how = if keyed { "with a key" } else { "without a key" };
        Figures::new(first, None).print(&format!("first event, {how}"));
        Figures::new(whole, None).print(&format!("whole answer, {how}"));
        println!(
            "{:<44} writes={:.1} reads={:.1} per answer",
            format!("journal DynamoDB calls, {how}"),
            (w - writes) as f64 / count as f64,
            (r - reads) as f64 / count as f64
        );
    }
    Ok(())
}
