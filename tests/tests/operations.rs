//! OpenRouter's inference operations beyond chat (`docs/http-api.md`, "Inference
//! operations"), each a row of the relay's table with every guard chat has: the
//! official SDKs unchanged, bodies relayed byte for byte, and for every operation the
//! model lists, the inference limit, the token cap, no caller key upstream, and the
//! upstream request dropped when the client leaves a stream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::Duration;

use futures_util::StreamExt;
use llm_proxy_tests::python::run_check;
use llm_proxy_tests::{Behaviour, Gateway, MockOpenRouter, client_at, fixtures, gateway_with_mock};
use serde_json::{Value, json};

const KEY: &str = "sk-or-v1-operations";

/// A minimal valid body of each operation, and the field that caps its output.
fn operations() -> Vec<(&'static str, Value, Option<&'static str>)> {
    vec![
        (
            "/api/v1/responses",
            json!({"model": "openai/gpt-4o", "input": "Hello"}),
            Some("max_output_tokens"),
        ),
        (
            "/api/v1/messages",
            json!({"model": "anthropic/claude-sonnet-4", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hello"}]}),
            Some("max_tokens"),
        ),
        (
            "/api/v1/completions",
            json!({"model": "openai/gpt-4o", "prompt": "Once"}),
            Some("max_tokens"),
        ),
        (
            "/api/v1/embeddings",
            json!({"model": "openai/text-embedding-3-small", "input": "Hello"}),
            None,
        ),
        (
            "/api/v1/rerank",
            json!({"model": "cohere/rerank-v3.5", "query": "capital",
            "documents": ["Paris", "Ruby"]}),
            None,
        ),
        (
            "/api/v1/images",
            json!({"model": "google/gemini-2.5-flash-image", "prompt": "a cat"}),
            None,
        ),
        (
            "/api/v1/audio/speech",
            json!({"model": "hexgrad/kokoro-82m", "input": "Hello", "voice": "af_heart"}),
            None,
        ),
        (
            "/api/v1/audio/transcriptions",
            json!({"model": "openai/whisper-1",
                   "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}),
            None,
        ),
    ]
}

async fn post(
    client: &reqwest::Client,
    gateway: &Gateway,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .post(gateway.url(path))
        .header("authorization", "Bearer sk-callers-own-key")
        .header("x-api-key", "sk-ant-callers-own-key")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_and_anthropic_sdks_work_unchanged() {
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let gateway = Gateway::start(&[("OPENROUTER_API_KEY", KEY), ("OPENROUTER_BASE_URL", &base)])
        .await
        .unwrap();
    let printed = run_check(
        "operations_sdk_check.py",
        vec![gateway.base_url.clone()],
        "done",
    )
    .await;
    assert!(printed.contains("messages.stream: end_turn"), "{printed}");
    for request in mock.received() {
        assert_eq!(request.headers["authorization"], format!("Bearer {KEY}"));
        assert!(
            request.headers.get("x-api-key").is_none(),
            "{}",
            request.path
        );
        assert!(
            request.headers.get("anthropic-version").is_none(),
            "{}",
            request.path
        );
    }
}

#[tokio::test]
async fn json_answers_are_relayed_byte_for_byte() {
    let (_mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    for (path, body, capture) in [
        ("/api/v1/rerank", &operations()[4].1, "rerank.json"),
        ("/api/v1/images", &operations()[5].1, "images-json.json"),
        (
            "/api/v1/embeddings",
            &operations()[3].1,
            "embeddings-json.json",
        ),
        (
            "/api/v1/responses",
            &operations()[0].1,
            "responses-json.json",
        ),
    ] {
        let response = reqwest::Client::new()
            .post(gateway.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(
            response.headers().get("x-generation-id").is_some(),
            "{path}"
        );
        let bytes = response.bytes().await.unwrap();
        assert_eq!(bytes, fixtures::op(capture).unwrap(), "{path}");
    }
}

#[tokio::test]
async fn a_messages_stream_ends_at_message_stop() {
    let (_mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    let mut body = operations()[1].1.clone();
    body["stream"] = json!(true);
    let text = reqwest::Client::new()
        .post(gateway.url("/api/v1/messages"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let capture = fixtures::op("messages-stream.sse").unwrap();
    let capture = std::str::from_utf8(&capture).unwrap();
    let stop = capture.find("event: data").unwrap();
    assert_eq!(
        text,
        capture[..stop],
        "everything up to message_stop, nothing after"
    );
}

#[tokio::test]
async fn every_operation_is_guarded_as_chat_is() {
    let (mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", KEY),
        ("MODEL_DENYLIST", "x-ai/*"),
        ("MAX_TOKENS_CAP", "500"),
        ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "4"),
    ])
    .await
    .unwrap();
    for (n, (path, body, cap)) in operations().into_iter().enumerate() {
        let client = client_at(&format!("127.0.5.{}", n + 1));
        // A denied model, as model and as a fallback: 400, nothing upstream.
        let mut denied = body.clone();
        denied["model"] = json!("x-ai/grok-4");
        let (status, refusal) = post(&client, &gateway, path, &denied).await;
        assert_eq!(
            (status, &refusal["error"]["details"]["field"]),
            (400, &json!("model")),
            "{path}"
        );
        let mut fallback = body.clone();
        fallback["models"] = json!(["openai/gpt-4o", "x-ai/grok-4:nitro"]);
        let (status, refusal) = post(&client, &gateway, path, &fallback).await;
        assert_eq!(
            (status, &refusal["error"]["details"]["field"]),
            (400, &json!("models[1]")),
            "{path}"
        );
        // Over the token cap: 400 naming the field.
        if let Some(field) = cap {
            let mut over = body.clone();
            over[field] = json!(501);
            let (status, refusal) = post(&client, &gateway, path, &over).await;
            assert_eq!(
                (status, &refusal["error"]["details"]["field"]),
                (400, &json!(field)),
                "{path}"
            );
        }
        let refused = if cap.is_some() { 3 } else { 2 };
        // Served, counted against the inference limit with the refusals above, until
        // the limit (4 per client here) is spent.
        for _ in refused..4 {
            let before = mock.received().len();
            let (status, answer) = post(&client, &gateway, path, &body).await;
            assert_eq!(status, 200, "{path}: {answer}");
            assert_eq!(mock.received().len(), before + 1, "{path}");
            let sent = mock.received().pop().unwrap();
            assert_eq!(
                sent.headers["authorization"],
                format!("Bearer {KEY}"),
                "{path}"
            );
            assert!(sent.headers.get("x-api-key").is_none(), "{path}");
            assert!(sent.headers.get("anthropic-version").is_none(), "{path}");
            if let Some(field) = cap {
                let upstream: Value = serde_json::from_slice(&sent.body).unwrap();
                assert!(
                    upstream[field].as_u64().is_some_and(|n| n <= 500),
                    "{path}: {upstream}"
                );
            }
        }
        let (status, refusal) = post(&client, &gateway, path, &body).await;
        assert_eq!(status, 429, "{path}: {refusal}");
    }
}

#[tokio::test]
async fn a_client_that_leaves_a_stream_closes_the_upstream_request() {
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    mock.set_behaviour(Behaviour::StreamPaced {
        deltas: 1000,
        every: Duration::from_millis(20),
    });
    let streaming = [
        "/api/v1/responses",
        "/api/v1/messages",
        "/api/v1/completions",
        "/api/v1/images",
    ];
    for (n, path) in streaming.iter().enumerate() {
        let mut body = operations()
            .into_iter()
            .find(|(p, ..)| p == path)
            .unwrap()
            .1;
        body["stream"] = json!(true);
        let response = reqwest::Client::new()
            .post(gateway.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut events = response.bytes_stream();
        events.next().await.unwrap().unwrap();
        drop(events);
        assert!(
            mock.wait_for_streams_closed(n + 1, Duration::from_secs(10))
                .await,
            "{path}: the upstream stream was left running"
        );
    }
}
