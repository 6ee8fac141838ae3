//! Streaming end to end: POST /api/v1/inference/stream and /api/v1/chat/completions
//! through the local gateway, against the mock replaying real OpenRouter streams.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llm_proxy_tests::{
    Behaviour, Gateway, MockOpenRouter, fixtures, gateway_with_mock, read_lock_step,
};
use serde_json::{Value, json};

const ENDPOINTS: [&str; 2] = ["/api/v1/inference/stream", "/api/v1/chat/completions"];

async fn setup(extra: &[(&str, &str)]) -> (MockOpenRouter, Gateway) {
    let mut vars = vec![("OPENROUTER_API_KEY", "sk-or-v1-stream")];
    vars.extend_from_slice(extra);
    gateway_with_mock(&vars).await.unwrap()
}

fn request(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Tell me a story"}], "stream": true})
}

async fn post(gateway: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gateway.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of an SSE body, parsed (`[DONE]` as a string).
fn data_events(body: &[u8]) -> Vec<Value> {
    fixtures::sse_events(body)
        .iter()
        .filter_map(|event| {
            std::str::from_utf8(event)
                .ok()?
                .strip_prefix("data: ")
                .map(|d| d.trim().to_owned())
        })
        .map(|d| serde_json::from_str(&d).unwrap_or(Value::String(d)))
        .collect()
}

#[tokio::test]
async fn every_captured_stream_arrives_byte_identical_on_both_endpoints() {
    let (mock, gateway) = setup(&[]).await;
    for endpoint in ENDPOINTS {
        for name in fixtures::STREAMS {
            let response = post(&gateway, endpoint, &request(&format!("mock/stream-{name}"))).await;
            assert_eq!(response.status(), 200, "{endpoint} {name}");
            let h = response.headers().clone();
            assert_eq!(h["content-type"], "text/event-stream", "{endpoint}");
            assert_eq!(h["cache-control"], "no-cache");
            assert_eq!(h["x-accel-buffering"], "no");
            assert_eq!(h["x-generation-id"], "gen-1754441342-hIkMo7SMi0ZecQw3oR4d");
            assert!(
                h.get("content-encoding").is_none(),
                "SSE is never compressed"
            );
            let body = response.bytes().await.unwrap();
            assert_eq!(body, fixtures::stream(name).unwrap(), "{endpoint} {name}");
        }
    }
    assert_eq!(mock.streams_closed().len(), 8);
}

/// A lock-step upstream sends event k+1 only after the client has event k. A proxy
/// that buffered anything would deadlock here, and the test would fail on its timeout.
async fn lock_step(mock: &MockOpenRouter, url: &str) {
    mock.set_behaviour(Behaviour::LockStep);
    let expected = fixtures::sse_events(&fixtures::stream("text").unwrap());
    let run = async {
        let response = reqwest::Client::new()
            .post(url)
            .json(&request("openai/gpt-4o"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        read_lock_step(response, mock).await.unwrap()
    };
    let received = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap_or_else(|_| panic!("{url}: events were held back (buffering?)"));
    assert_eq!(received, fixtures::stream("text").unwrap());
    assert_eq!(fixtures::sse_events(&received).len(), expected.len());
}

#[tokio::test]
async fn events_are_forwarded_as_they_arrive() {
    let (mock, gateway) = setup(&[]).await;
    for endpoint in ENDPOINTS {
        lock_step(&mock, &gateway.url(endpoint)).await;
    }
}

#[tokio::test]
async fn a_two_megabyte_event_passes_intact() {
    let (_mock, gateway) = setup(&[]).await;
    let body = post(&gateway, ENDPOINTS[0], &request("mock/stream-big-2000000"))
        .await
        .bytes()
        .await
        .unwrap();
    let events = data_events(&body);
    let url = events[0]["choices"][0]["delta"]["images"][0]["image_url"]["url"]
        .as_str()
        .unwrap();
    assert_eq!(url.len(), "data:image/png;base64,".len() + 2_000_000);
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn errors_before_the_first_byte_are_json_with_their_status() {
    let (_mock, gateway) = setup(&[]).await;
    for endpoint in ENDPOINTS {
        for (upstream, ours) in [(400, 400), (402, 502), (429, 429), (503, 502)] {
            let response = post(
                &gateway,
                endpoint,
                &request(&format!("mock/status-{upstream}")),
            )
            .await;
            assert_eq!(response.status(), ours, "{endpoint} {upstream}");
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "openrouter");
            assert_eq!(body["error"]["details"]["status"], upstream);
        }
    }
}

/// Whole events, then exactly one final `data:` event with an `error` object.
fn assert_ends_with_error(body: &[u8], kind: &str, message_part: &str) -> Vec<Value> {
    let events = fixtures::sse_events(body);
    assert!(
        events.iter().all(|e| e.ends_with(b"\n\n")),
        "a half-written event: {events:?}"
    );
    let data = data_events(body);
    let last = data.last().unwrap();
    assert_eq!(last["error"]["type"], kind, "{last}");
    let message = last["error"]["message"].as_str().unwrap();
    assert!(message.contains(message_part), "{message}");
    assert!(
        data.iter().rev().skip(1).all(|e| e.get("error").is_none()),
        "one error event only"
    );
    data
}

#[tokio::test]
async fn failures_after_the_first_byte_end_with_one_error_event() {
    let (_mock, gateway) = setup(&[
        ("REQUEST_TIMEOUT", "400"),
        ("STREAM_MAX_DURATION_MS", "700"),
    ])
    .await;
    let text_events = data_events(&fixtures::stream("text").unwrap()).len();

    // Upstream's own error event passes through untouched, [DONE] and all.
    let body = post(&gateway, ENDPOINTS[1], &request("mock/stream-error"))
        .await
        .bytes()
        .await
        .unwrap();
    let data = data_events(&body);
    let error = data.iter().find(|e| e.get("error").is_some()).unwrap();
    assert_eq!(
        error["error"]["message"],
        "Provider disconnected unexpectedly"
    );
    assert_eq!(error["choices"][0]["finish_reason"], "error");
    assert_eq!(data.last().unwrap(), "[DONE]");

    // The connection breaks mid-event: the half event is dropped, an error follows.
    let body = post(&gateway, ENDPOINTS[0], &request("mock/stream-reset"))
        .await
        .bytes()
        .await
        .unwrap();
    let data = assert_ends_with_error(&body, "openrouter", "broke");
    assert!(
        data.len() > 1 && data.len() <= text_events / 2 + 1,
        "{}",
        data.len()
    );

    // Garbage: the events before it, then an error instead of the garbage.
    let body = post(&gateway, ENDPOINTS[0], &request("mock/stream-garbage"))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("<html>"));
    assert_ends_with_error(&body, "openrouter", "not a server-sent event");

    // Silence longer than REQUEST_TIMEOUT mid-stream.
    let body = post(&gateway, ENDPOINTS[0], &request("mock/stream-stall-5000"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_ends_with_error(&body, "timeout", "400 ms");

    // A healthy stream that goes on past STREAM_MAX_DURATION_MS: events every 50 ms
    // keep the idle timeout happy; the total cap ends it cleanly.
    let started = Instant::now();
    let body = post(&gateway, ENDPOINTS[0], &request("mock/stream-endless-50"))
        .await
        .bytes()
        .await
        .unwrap();
    let data = assert_ends_with_error(&body, "timeout", "maximum duration");
    assert!(
        data.len() > 5,
        "the stream ran until the cap: {}",
        data.len()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn comments_keep_a_slow_stream_alive() {
    // Keep-alive comments every 100 ms reset the 400 ms idle timeout; the stream only
    // ends at the total cap.
    let (_mock, gateway) = setup(&[
        ("REQUEST_TIMEOUT", "400"),
        ("STREAM_MAX_DURATION_MS", "1500"),
    ])
    .await;
    let body = post(
        &gateway,
        ENDPOINTS[0],
        &request("mock/stream-keepalive-100"),
    )
    .await
    .bytes()
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.matches(": OPENROUTER PROCESSING\n\n").count() >= 5,
        "{text}"
    );
    assert_ends_with_error(&body, "timeout", "maximum duration");
}

#[tokio::test]
async fn the_proxy_speaks_up_while_the_upstream_is_silent() {
    // OpenRouter says nothing for a second mid-answer; every 50 ms of silence the proxy
    // sends a comment of its own (so no idle cut on the way, API Gateway's included,
    // is reached), between events, never inside one.
    let (_mock, gateway) = setup(&[("SSE_KEEPALIVE_MS", "50")]).await;
    let body = post(&gateway, ENDPOINTS[0], &request("mock/stream-stall-1000"))
        .await
        .bytes()
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let comment = ": keep-alive\n\n";
    assert!(text.matches(comment).count() >= 2, "{text}");
    let expected = String::from_utf8(fixtures::stream("text").unwrap().to_vec()).unwrap();
    assert_eq!(text.replace(comment, ""), expected);
    assert!(
        !text.starts_with(comment),
        "no comment before the answer began"
    );

    // A stream that never goes quiet for that long gets none.
    let (_mock, gateway) = setup(&[("SSE_KEEPALIVE_MS", "60000")]).await;
    let body = post(&gateway, ENDPOINTS[0], &request("mock/stream-stall-200"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(body, fixtures::stream("text").unwrap());
}

#[tokio::test]
async fn when_the_client_goes_the_upstream_request_goes_too() {
    let (mock, gateway) = setup(&[]).await;
    let response = post(&gateway, ENDPOINTS[0], &request("mock/stream-keepalive-10")).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert!(mock.streams_closed().is_empty());
    let aborted = Instant::now();
    drop(body);
    assert!(
        mock.wait_for_streams_closed(1, Duration::from_secs(5))
            .await,
        "upstream never closed"
    );
    let closed = mock.streams_closed()[0];
    let after = closed.saturating_duration_since(aborted);
    assert!(
        after < Duration::from_millis(100),
        "upstream closed {after:?} after the client left"
    );
}

#[tokio::test]
async fn chat_completions_without_stream_answers_json() {
    let (mock, gateway) = setup(&[]).await;
    mock.set_behaviour(Behaviour::Replay);
    let mut body = request("openai/gpt-4o");
    body["stream"] = json!(false);
    let response = post(&gateway, ENDPOINTS[1], &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.bytes().await.unwrap(), fixtures::chat_completion());

    // /inference/stream streams, adding "stream": true when the caller left it out...
    let raw =
        r#"{"model":"openai/gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = reqwest::Client::new()
        .post(gateway.url(ENDPOINTS[0]))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(
        response.bytes().await.unwrap(),
        fixtures::stream("text").unwrap()
    );
    let sent = mock.received().last().unwrap().body.clone();
    assert_eq!(
        &sent[..],
        format!("{{\"stream\":true,{}", &raw[1..]).as_bytes()
    );

    // ...and refuses an explicit false.
    let response = post(&gateway, ENDPOINTS[0], &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["details"]["field"], "stream");
}

#[tokio::test]
async fn streams_count_as_inference() {
    let (_mock, gateway) = setup(&[("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "2")]).await;
    for endpoint in ENDPOINTS {
        let response = post(&gateway, endpoint, &request("openai/gpt-4o")).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let refused = post(&gateway, ENDPOINTS[0], &request("openai/gpt-4o")).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-ratelimit-limit"], "2");
}
