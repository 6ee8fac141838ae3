//! POST /api/v1/inference end to end: a real client, the real local-gateway binary,
//! the mock OpenRouter, real sockets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::{Duration, Instant};

use llm_proxy_tests::{Behaviour, Gateway, MockOpenRouter, fixtures, gateway_with_mock};
use serde_json::{Value, json};

const KEY: &str = "sk-or-v1-test-key-0123456789abcdef";

async fn setup(extra: &[(&str, &str)]) -> (MockOpenRouter, Gateway) {
    let mut vars = vec![("OPENROUTER_API_KEY", KEY)];
    vars.extend_from_slice(extra);
    gateway_with_mock(&vars).await.unwrap()
}

fn example_request() -> Value {
    json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hello, world!"}],
           "temperature": 0.7, "max_tokens": 100, "stream": false})
}

async fn post_json(gateway: &Gateway, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gateway.url("/api/v1/inference"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Asserts the error shape of `docs/errors.md` and returns the `error` object.
async fn error_of(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "errors are JSON"
    );
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert_eq!(error["code"], status, "{body}");
    assert_eq!(error["type"], kind, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error
}

#[tokio::test]
async fn a_chat_request_gets_openrouters_answer_byte_for_byte() {
    let (mock, gateway) = setup(&[]).await;
    mock.set_behaviour(Behaviour::Replay);
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/inference"))
        .header("HTTP-Referer", "https://app.example")
        .header("X-Title", "Example App")
        .header("X-OpenRouter-Title", "Example App 2")
        .header("X-Unrelated", "not forwarded")
        .json(&example_request())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-generation-id"],
        fixtures::CHAT_COMPLETION_ID
    );
    let body = response.bytes().await.unwrap();
    // Whitespace padding included: the proxy does not rewrite OpenRouter's answer.
    assert_eq!(body, fixtures::chat_completion());

    let received = mock.received();
    assert_eq!(received.len(), 1);
    let upstream = &received[0];
    assert_eq!(upstream.path, "/api/v1/chat/completions");
    assert_eq!(upstream.headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(upstream.headers["http-referer"], "https://app.example");
    assert_eq!(upstream.headers["x-title"], "Example App");
    assert_eq!(upstream.headers["x-openrouter-title"], "Example App 2");
    assert!(upstream.headers.get("x-unrelated").is_none());
}

#[tokio::test]
async fn unknown_fields_reach_openrouter_byte_identical() {
    let (mock, gateway) = setup(&[]).await;
    // Odd spacing, key order, number forms and fields that do not exist yet.
    let raw = r#"{ "messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],
  "model" : "openai/gpt-4o", "temperature": 1.0e0, "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
  "provider": {"order": ["openai"], "allow_fallbacks": false}, "plugins": [{"id": "web"}], "modalities": ["image", "text"],
  "reasoning": {"effort": "high"}, "models": ["a/b", "c/d"], "seed": 42, "stop": ["\n\n"], "logprobs": true,
  "max_tokens": 100, "a_field_from_tomorrow": {"nested": [1, 2.50, "\u00e9"]} }"#;
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/inference"))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = mock.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, raw.as_bytes());
}

#[tokio::test]
async fn each_validation_error_names_its_field_and_never_reaches_upstream() {
    let (mock, gateway) = setup(&[]).await;
    let example = example_request();
    let with = |key: &str, value: Value| {
        let mut body = example.clone();
        body[key] = value;
        body
    };
    let mut missing_model = example.clone();
    missing_model.as_object_mut().unwrap().remove("model");
    let cases = [
        (missing_model, "model"),
        (with("messages", json!([])), "messages"),
        (
            with("messages", json!([{"role": "wizard", "content": "hi"}])),
            "messages[0].role",
        ),
        (with("temperature", json!(3)), "temperature"),
        (with("max_tokens", json!(0)), "max_tokens"),
        (with("stream", json!(true)), "stream"),
    ];
    for (body, field) in cases {
        let error = error_of(post_json(&gateway, &body).await, 400, "validation").await;
        assert_eq!(error["details"]["field"], field, "{error}");
        assert!(error["details"]["message"].is_string(), "{error}");
    }
    // A streamed request here is pointed to the streaming endpoint.
    let error = error_of(
        post_json(&gateway, &with("stream", json!(true))).await,
        400,
        "validation",
    )
    .await;
    assert!(
        error["details"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/inference/stream")
    );
    assert!(
        mock.received().is_empty(),
        "invalid requests must not cost an upstream call"
    );
}

#[tokio::test]
async fn hostile_bodies_get_the_error_shape() {
    let (mock, gateway) = setup(&[]).await;
    let client = reqwest::Client::new();
    let send = |content_type: &'static str, body: Vec<u8>| {
        client
            .post(gateway.url("/api/v1/inference"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let error = error_of(
        send("application/json", b"{\"model\": ".to_vec())
            .await
            .unwrap(),
        400,
        "validation",
    )
    .await;
    assert_eq!(error["details"]["field"], "body");

    let form = b"model=openai/gpt-4o".to_vec();
    let error = error_of(
        send("application/x-www-form-urlencoded", form)
            .await
            .unwrap(),
        415,
        "validation",
    )
    .await;
    assert_eq!(error["details"]["field"], "content-type");

    let huge = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(7 * 1024 * 1024)
    );
    error_of(
        send("application/json", huge.into_bytes()).await.unwrap(),
        413,
        "validation",
    )
    .await;

    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let error = error_of(
        send("application/json", deep.into_bytes()).await.unwrap(),
        400,
        "validation",
    )
    .await;
    assert_eq!(error["details"]["field"], "body");

    let bad_utf8 = vec![b'{', b'"', b'm', 0xff, 0xfe, b'"', b':', b'1', b'}'];
    error_of(
        send("application/json", bad_utf8).await.unwrap(),
        400,
        "validation",
    )
    .await;

    // A body over the limit sent without Content-Length is refused the same way, and
    // the client, still writing, gets to read the answer.
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024 * 1024]))),
    );
    let response = client
        .post(gateway.url("/api/v1/inference"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    error_of(response, 413, "validation").await;

    assert!(mock.received().is_empty());
}

#[tokio::test]
async fn upstream_errors_map_as_documented() {
    let (_mock, gateway) = setup(&[]).await;
    // (upstream status, ours)
    for (upstream, ours) in [
        (400, 400),
        (401, 502),
        (402, 502),
        (403, 403),
        (404, 404),
        (429, 429),
        (500, 502),
        (502, 502),
        (503, 502),
    ] {
        let body = json!({"model": format!("mock/status-{upstream}"), "messages": [{"role": "user", "content": "x"}]});
        let response = post_json(&gateway, &body).await;
        let retry_after = response.headers().get("retry-after").cloned();
        let text = format!("{:?}", response.headers());
        assert!(!text.contains(KEY));
        let error = error_of(response, ours, "openrouter").await;
        assert_eq!(
            error["details"]["status"], upstream,
            "upstream {upstream}: {error}"
        );
        assert!(!error.to_string().contains(KEY));
        match upstream {
            429 => assert_eq!(retry_after.unwrap(), "7", "upstream Retry-After is kept"),
            _ => assert!(retry_after.is_none(), "{upstream}"),
        }
        if ours == 502 {
            assert!(
                error["details"].get("message").is_none()
                    && error["details"].get("metadata").is_none(),
                "upstream {upstream}: no upstream text or metadata reaches the caller: {error}"
            );
        }
        if matches!(upstream, 401 | 402) {
            let message = error["message"].as_str().unwrap();
            assert!(
                message.contains("proxy"),
                "401/402 are the proxy's account problems: {message}"
            );
        }
        if upstream == 403 {
            assert_eq!(
                error["details"]["metadata"]["reasons"],
                json!(["harassment"])
            );
        }
        if upstream == 400 {
            // OpenRouter's own words are kept.
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("Received 429 status code"),
                "{error}"
            );
        }
    }
}

#[tokio::test]
async fn a_failure_after_the_padding_is_an_error_not_a_200() {
    let (_mock, gateway) = setup(&[]).await;
    let body =
        json!({"model": "mock/late-error-502", "messages": [{"role": "user", "content": "x"}]});
    let error = error_of(post_json(&gateway, &body).await, 502, "openrouter").await;
    assert_eq!(error["details"]["status"], 502);
    // A provider's failure is OpenRouter's and the proxy's business: its text stays out.
    assert!(error["details"].get("message").is_none(), "{error}");
}

#[tokio::test]
async fn silence_past_request_timeout_is_a_504() {
    let (_mock, gateway) = setup(&[("REQUEST_TIMEOUT", "500")]).await;
    let body = json!({"model": "mock/stall-10000", "messages": [{"role": "user", "content": "x"}]});
    let started = Instant::now();
    let response = post_json(&gateway, &body).await;
    let waited = started.elapsed();
    error_of(response, 504, "timeout").await;
    assert!(
        waited >= Duration::from_millis(500),
        "answered before the timeout: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(3500),
        "timeout not enforced: {waited:?}"
    );
}

#[tokio::test]
async fn padding_keeps_a_slow_answer_alive() {
    // Six gaps of 150 ms add up to more than the 500 ms timeout, but no single
    // silence does: the answer must come through, padding and all.
    let (_mock, gateway) = setup(&[("REQUEST_TIMEOUT", "500")]).await;
    let body = json!({"model": "mock/pad-6-150", "messages": [{"role": "user", "content": "x"}]});
    let response = post_json(&gateway, &body).await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.starts_with(b"         \n"));
    assert!(bytes.ends_with(&fixtures::chat_completion_json()));
}

#[tokio::test]
async fn a_broken_or_absent_upstream_is_a_502() {
    let (mock, gateway) = setup(&[]).await;
    let body = json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]});
    mock.set_behaviour(Behaviour::Reset);
    error_of(post_json(&gateway, &body).await, 502, "openrouter").await;

    // Nothing listens on a port whose listener is closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/api/v1", closed.local_addr().unwrap());
    drop(closed);
    let gateway = Gateway::start(&[("OPENROUTER_API_KEY", KEY), ("OPENROUTER_BASE_URL", &base)])
        .await
        .unwrap();
    let error = error_of(post_json(&gateway, &body).await, 502, "openrouter").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{error}"
    );
}

#[tokio::test]
async fn without_a_key_inference_is_503_and_health_says_why() {
    let mock = MockOpenRouter::start().await.unwrap();
    let gateway = Gateway::start(&[("OPENROUTER_BASE_URL", &mock.base_url())])
        .await
        .unwrap();
    let error = error_of(
        post_json(&gateway, &example_request()).await,
        503,
        "unavailable",
    )
    .await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("OPENROUTER_API_KEY"),
        "{error}"
    );
    assert!(mock.received().is_empty());

    let health: Value = reqwest::get(gateway.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded");
    assert!(
        health["warnings"][0]
            .as_str()
            .unwrap()
            .contains("OPENROUTER_API_KEY")
    );
}

#[tokio::test]
async fn the_key_never_appears_in_answers() {
    let (_mock, gateway) = setup(&[]).await;
    let client = reqwest::Client::new();
    for model in [
        "openai/gpt-4o",
        "mock/status-401",
        "mock/status-500",
        "mock/reset",
    ] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
        let response = client
            .post(gateway.url("/api/v1/inference"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap();
        assert!(
            !headers.contains(KEY) && !text.contains(KEY),
            "{model}: {text}"
        );
    }
}
