//! What the stream function hands Lambda when API Gateway's REST API streams its
//! response: the real binary, under its real runtime (`lambda_http`'s streaming mode),
//! fed the REST events in `events/` by a Runtime API that keeps the bytes as written.
//! API Gateway reads a JSON prelude (`statusCode`, `headers` with one string value per
//! header, `cookies`), eight NUL bytes, then the body (`docs/deployment.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::convert::Infallible;
use std::time::Duration;

use base64::Engine;
use llm_proxy_tests::gateway::workspace_root;
use llm_proxy_tests::runtime_api::{Response, RuntimeApi, build_function, split_prelude};
use llm_proxy_tests::{Behaviour, MockOpenRouter, fixtures, read_lock_step_from};
use serde_json::Value;

const KEY: &str = "sk-or-v1-prelude-test";

fn event(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("events").join(name)).unwrap()
}

/// `name`'s event with its (base64) body's model replaced.
fn event_with_model(name: &str, model: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut event: Value = serde_json::from_str(&event(name)).unwrap();
    let body = engine.decode(event["body"].as_str().unwrap()).unwrap();
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    body["model"] = model.into();
    event["body"] = engine.encode(body.to_string()).into();
    event.to_string()
}

/// The function process, ended with the test.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Checks the prelude is one API Gateway accepts and returns it with the body.
fn prelude_and_body(response: &Response, whole: &[u8]) -> (Value, Vec<u8>) {
    assert!(!response.error);
    assert_eq!(response.mode.as_deref(), Some("streaming"));
    assert_eq!(
        response.content_type.as_deref(),
        Some("application/vnd.awslambda.http-integration-response")
    );
    let (prelude, body) = split_prelude(whole)
        .unwrap_or_else(|| panic!("no prelude: {}", String::from_utf8_lossy(whole)));
    assert!(prelude["statusCode"].is_u64(), "{prelude}");
    assert!(
        prelude["cookies"].as_array().unwrap().is_empty(),
        "{prelude}"
    );
    for (name, value) in prelude["headers"].as_object().unwrap() {
        assert!(
            value.is_string(),
            "API Gateway takes one string per header; {name} is {value}"
        );
    }
    (prelude, body.to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_function_writes_what_api_gateway_streaming_reads() {
    let mock = MockOpenRouter::start().await.unwrap();
    let mut api = RuntimeApi::start().await.unwrap();
    let binary = tokio::task::spawn_blocking(|| build_function("stream"))
        .await
        .unwrap()
        .unwrap();
    let _function = Stopped(
        std::process::Command::new(binary)
            .envs(api.function_env("stream"))
            .env("OPENROUTER_API_KEY", KEY)
            .env("OPENROUTER_BASE_URL", mock.base_url())
            .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
            .env("CORS_ORIGINS", "https://app.example.com")
            .env("LOG_LEVEL", "warn")
            .spawn()
            .unwrap(),
    );
    let within = Duration::from_secs(60);

    // Lock-step: the mock sends event k+1 only once the test holds event k, so this
    // completes only if each event leaves the function as it is written.
    mock.set_behaviour(Behaviour::LockStep);
    let mut response = api
        .invoke(event("stream-chat-completions.json"), within)
        .await
        .expect("the function posted no response");
    let mut chunks = std::mem::replace(
        &mut response.chunks,
        tokio::sync::mpsc::unbounded_channel().1,
    );
    let stream = futures_util::stream::poll_fn(move |cx| {
        chunks.poll_recv(cx).map(|c| c.map(Ok::<_, Infallible>))
    });
    let whole = tokio::time::timeout(within, read_lock_step_from(stream, &mock))
        .await
        .expect("events held back")
        .unwrap();
    let (prelude, body) = prelude_and_body(&response, &whole);
    assert_eq!(prelude["statusCode"], 200);
    assert_eq!(prelude["headers"]["content-type"], "text/event-stream");
    assert_eq!(prelude["headers"]["cache-control"], "no-cache");
    assert_eq!(body, fixtures::stream("text").unwrap());

    // stream:false on chat/completions: one JSON answer through the same prelude.
    mock.set_behaviour(Behaviour::Replay);
    let mut response = api
        .invoke(event("stream-chat-completions-json.json"), within)
        .await
        .unwrap();
    let whole = response.body().await;
    let (prelude, body) = prelude_and_body(&response, &whole);
    assert_eq!(prelude["statusCode"], 200);
    assert_eq!(prelude["headers"]["content-type"], "application/json");
    assert_eq!(body, fixtures::chat_completion());

    // OpenRouter refusing before the first byte: its status and the JSON error shape.
    let refused = event_with_model("stream-inference.json", "mock/status-429");
    let mut response = api.invoke(refused, within).await.unwrap();
    let whole = response.body().await;
    let (prelude, body) = prelude_and_body(&response, &whole);
    assert_eq!(prelude["statusCode"], 429);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["type"], "openrouter");

    // A browser's preflight: CORS answered by the function, every header one value.
    let mut response = api
        .invoke(event("stream-preflight.json"), within)
        .await
        .unwrap();
    let whole = response.body().await;
    let (prelude, body) = prelude_and_body(&response, &whole);
    assert!(
        prelude["statusCode"] == 200 || prelude["statusCode"] == 204,
        "{prelude}"
    );
    let headers = &prelude["headers"];
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        headers["vary"].as_str().unwrap().contains("origin"),
        "{prelude}"
    );
    assert!(body.is_empty());
}
