//! The fault matrix: every way OpenRouter can fail, on the JSON route and the streamed
//! one, and what a caller sees: the documented error (`docs/errors.md`) within a bound
//! of the timeout that applies, never a 200 the caller cannot use, a hang or a panic.
//! The gateway runs with room for one request at a time, so a fault that left its
//! request in flight (a task or an upstream connection still held) would turn every
//! later request into a 503; the last request of the run must still be answered.
//!
//! What each fault costs the gateway in memory is measured on the binary, in
//! `local/tests/fault_memory.rs`.
//!
//! Faults tested elsewhere: the client leaving mid-answer (`streaming.rs`), DynamoDB down
//! or silent (`rate_limit_store.rs`, `rate_limit_gateway.rs`), the Management API
//! answering 410 or 429 (`websocket_worker.rs`), a stalled reader (`edges.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::{Duration, Instant};

use llm_proxy_tests::{Gateway, gateway_with_mock};
use serde_json::{Value, json};

/// What the caller should see.
#[derive(Debug)]
enum Seen {
    /// This status, with an error of this `type`, before any byte of an answer.
    Error(u16, &'static str),
    /// A 200 event stream whose last event is an error of this `type`.
    StreamEndsWithError(&'static str),
    /// A 200 event stream whose last event is OpenRouter's own error event, passed on
    /// unchanged (`docs/http-api.md`, "Streaming").
    StreamEndsWithOpenRoutersError,
}

const JSON: &str = "/api/v1/inference";
const SSE: &str = "/api/v1/inference/stream";

/// `REQUEST_TIMEOUT` in these runs; every fault must be answered well within a bound
/// of it.
const TIMEOUT_MS: u64 = 400;
const BOUND: Duration = Duration::from_secs(3);

async fn ask(
    client: &reqwest::Client,
    gateway: &Gateway,
    route: &str,
    model: &str,
) -> (u16, String, String, Duration) {
    let started = Instant::now();
    let response = client
        .post(gateway.url(route))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    (status, content_type, body, started.elapsed())
}

fn check(fault: &str, route: &str, seen: &Seen, answer: (u16, String, String, Duration)) {
    let (status, content_type, body, took) = answer;
    let at = format!("{fault} on {route}: {status} {content_type} after {took:?}: {body}");
    assert!(took < BOUND, "{at}");
    match seen {
        Seen::Error(expected, kind) => {
            assert_eq!(status, *expected, "{at}");
            assert_eq!(content_type, "application/json", "{at}");
            let error: Value = serde_json::from_str(&body).expect(&at);
            assert_eq!(error["error"]["code"], *expected, "{at}");
            assert_eq!(error["error"]["type"], *kind, "{at}");
            assert!(
                error["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{at}"
            );
        }
        Seen::StreamEndsWithError(_) | Seen::StreamEndsWithOpenRoutersError => {
            assert_eq!(status, 200, "{at}");
            assert!(content_type.starts_with("text/event-stream"), "{at}");
            // OpenRouter ends its own error events with `[DONE]`; the proxy's final
            // error event is the last of the stream.
            let last = body
                .split("\n\n")
                .filter_map(|event| event.strip_prefix("data: "))
                .filter(|data| *data != "[DONE]" || matches!(seen, Seen::StreamEndsWithError(_)))
                .last()
                .expect(&at);
            let error: Value = serde_json::from_str(last).expect(&at);
            match seen {
                Seen::StreamEndsWithError(kind) => {
                    assert_eq!(error["error"]["type"], *kind, "{at}")
                }
                _ => assert!(error["error"]["code"].is_u64(), "{at}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_upstream_fault_gets_its_documented_error_in_time() {
    let timeout = TIMEOUT_MS.to_string();
    let (_mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-faults"),
        ("REQUEST_TIMEOUT", &timeout),
        ("MAX_CONCURRENT_REQUESTS", "1"),
        ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "1000"),
        ("RATE_LIMIT_MAX_REQUESTS", "1000"),
    ])
    .await
    .unwrap();
    let client = reqwest::Client::new();

    let matrix: [(&str, &str, &str, Seen); 16] = [
        (
            "resets mid-body",
            JSON,
            "mock/reset",
            Seen::Error(502, "openrouter"),
        ),
        (
            "resets mid-stream",
            SSE,
            "mock/stream-reset",
            Seen::StreamEndsWithError("openrouter"),
        ),
        (
            "stalls before its headers",
            JSON,
            "mock/stall-5000",
            Seen::Error(504, "timeout"),
        ),
        (
            "stalls before its headers",
            SSE,
            "mock/stall-5000",
            Seen::Error(504, "timeout"),
        ),
        (
            "stalls mid-stream",
            SSE,
            "mock/stream-stall-5000",
            Seen::StreamEndsWithError("timeout"),
        ),
        (
            "sends invalid JSON",
            JSON,
            "mock/invalid-json",
            Seen::Error(502, "openrouter"),
        ),
        (
            "sends invalid JSON",
            SSE,
            "mock/invalid-json",
            Seen::Error(502, "openrouter"),
        ),
        (
            "sends a JSON answer to a stream",
            SSE,
            "mock/not-sse",
            Seen::Error(502, "openrouter"),
        ),
        (
            "sends garbage mid-stream",
            SSE,
            "mock/stream-garbage",
            Seen::StreamEndsWithError("openrouter"),
        ),
        (
            "sends a 10 MB answer",
            JSON,
            "mock/big-10000000",
            Seen::Error(502, "openrouter"),
        ),
        (
            "sends a 10 MB answer without saying how long",
            JSON,
            "mock/big-chunked-10000000",
            Seen::Error(502, "openrouter"),
        ),
        (
            "answers with a 10 MB error page",
            SSE,
            "mock/html-502-10000000",
            Seen::Error(502, "openrouter"),
        ),
        (
            "answers with an HTML error page",
            JSON,
            "mock/html-502",
            Seen::Error(502, "openrouter"),
        ),
        (
            "answers with an HTML error page",
            SSE,
            "mock/html-503",
            Seen::Error(502, "openrouter"),
        ),
        (
            "answers 200 with an error inside",
            JSON,
            "mock/late-error-503",
            Seen::Error(502, "openrouter"),
        ),
        (
            "ends the stream with its own error",
            SSE,
            "mock/stream-error",
            Seen::StreamEndsWithOpenRoutersError,
        ),
    ];
    for (fault, route, model, seen) in &matrix {
        check(
            fault,
            route,
            seen,
            ask(&client, &gateway, route, model).await,
        );
    }

    // Nothing was left in flight: with room for one request, this one is answered.
    let (status, _, body, _) = ask(&client, &gateway, JSON, "openai/gpt-4o").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_refuses_the_connection_is_a_502_at_once() {
    // A port that was free a moment ago and that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let gateway = Gateway::start(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-faults"),
        ("OPENROUTER_BASE_URL", &base),
    ])
    .await
    .unwrap();
    let client = reqwest::Client::new();
    for route in [JSON, SSE] {
        let seen = Seen::Error(502, "openrouter");
        check(
            "refuses the connection",
            route,
            &seen,
            ask(&client, &gateway, route, "openai/gpt-4o").await,
        );
    }
}
