//! Speech and transcription (`docs/http-api.md`, "Inference operations"): speech
//! relayed as OpenRouter's audio bytes, as they come; transcription from JSON or from a
//! `multipart/form-data` upload forwarded byte for byte; audio priced by its own
//! tokens per byte; the body limit that holds on AWS; the embeddings models list.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::Duration;

use futures_util::StreamExt;
use llm_proxy_shared::json_body::BODY_LIMIT;
use llm_proxy_tests::{Behaviour, fixtures, gateway_with_mock};
use serde_json::{Value, json};

const KEY: &str = "sk-or-v1-audio";

#[tokio::test]
async fn speech_is_relayed_byte_for_byte_with_openrouters_content_type() {
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/audio/speech"))
        .header("authorization", "Bearer sk-callers-own")
        .json(
            &json!({"model": "hexgrad/kokoro-82m", "input": "Hello", "voice": "af_heart",
                      "response_format": "mp3"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(
        response.headers()["x-generation-id"],
        "gen-tts-1786400000-mockops0000000000"
    );
    let audio = response.bytes().await.unwrap();
    assert_eq!(audio, fixtures::op("audio-speech.bin").unwrap());
    let sent = mock.received().pop().unwrap();
    assert_eq!(sent.headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(sent.headers["content-type"], "application/json");

    // OpenRouter's error before the audio: its status, in the proxy's error shape.
    let refused = reqwest::Client::new()
        .post(gateway.url("/api/v1/audio/speech"))
        .json(&json!({"model": "mock/status-429", "input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "openrouter");
}

#[tokio::test]
async fn a_listener_who_leaves_speech_closes_the_upstream_request() {
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    mock.set_behaviour(Behaviour::StreamPaced {
        deltas: 0,
        every: Duration::from_millis(200),
    });
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/audio/speech"))
        .json(&json!({"model": "hexgrad/kokoro-82m", "input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut audio = response.bytes_stream();
    let first = audio.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"ID3"));
    drop(audio);
    assert!(
        mock.wait_for_streams_closed(1, Duration::from_secs(10))
            .await,
        "the upstream speech was left running"
    );
}

/// A form as the OpenAI SDK sends one: `model`, then the file.
fn form(model: &str, audio: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----llmproxytestboundary7MA4YWxk";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.wav\"\r\n\
         Content-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(audio);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn transcribe(
    gateway: &llm_proxy_tests::Gateway,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/audio/transcriptions"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_form_upload_is_forwarded_as_sent_and_checked_like_json() {
    let (mock, gateway) =
        gateway_with_mock(&[("OPENROUTER_API_KEY", KEY), ("MODEL_DENYLIST", "x-ai/*")])
            .await
            .unwrap();
    // Three megabytes of audio: far over MAX_INPUT_TOKENS were it text, well within
    // it as audio.
    let audio: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (content_type, body) = form("openai/whisper-1", &audio);
    let (status, answer) = transcribe(&gateway, &content_type, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let capture: Value =
        serde_json::from_slice(&fixtures::op("audio-transcriptions.json").unwrap()).unwrap();
    assert_eq!(answer, capture);
    let sent = mock.received().pop().unwrap();
    assert_eq!(sent.body, body, "the form, byte for byte");
    assert_eq!(sent.headers["content-type"], content_type.as_str());

    let upstream = mock.received().len();
    let (denied_type, denied) = form("x-ai/grok-4", b"RIFF");
    let (status, refusal) = transcribe(&gateway, &denied_type, denied).await;
    assert_eq!(
        (status, &refusal["error"]["details"]["field"]),
        (400, &json!("model"))
    );
    let (no_file_type, mut no_file) = form("openai/whisper-1", b"");
    no_file.clear();
    no_file.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nopenai/whisper-1\r\n--{b}--\r\n",
                b = "----llmproxytestboundary7MA4YWxk").as_bytes(),
    );
    let (status, refusal) = transcribe(&gateway, &no_file_type, no_file).await;
    assert_eq!(
        (status, &refusal["error"]["details"]["field"]),
        (400, &json!("file"))
    );
    let (status, refusal) = transcribe(&gateway, &content_type, b"--nothing".to_vec()).await;
    assert_eq!(
        (status, &refusal["error"]["details"]["field"]),
        (400, &json!("body"))
    );
    assert_eq!(
        mock.received().len(),
        upstream,
        "nothing refused went upstream"
    );

    // Only operations that take uploads take forms.
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/chat/completions"))
        .header("content-type", content_type.as_str())
        .body(form("openai/gpt-4o", b"x").1)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn the_body_limit_is_what_reaches_a_function_on_aws() {
    // 6 MiB of Lambda payload, less the event's envelope, as base64.
    const { assert!(BODY_LIMIT * 4 / 3 < 6 * 1024 * 1024 - 32 * 1024) };
    const { assert!(BODY_LIMIT > 4_500_000) };
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    let (content_type, body) = form("openai/whisper-1", &vec![7u8; BODY_LIMIT]);
    let (status, refusal) = transcribe(&gateway, &content_type, body).await;
    assert_eq!(status, 413, "{refusal}");
    assert!(
        refusal["error"]["details"]["message"]
            .as_str()
            .unwrap()
            .contains(&BODY_LIMIT.to_string()),
        "{refusal}"
    );
    let (content_type, body) = form("openai/whisper-1", &vec![7u8; BODY_LIMIT - 400]);
    let (status, answer) = transcribe(&gateway, &content_type, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(mock.received().len(), 1);
}

#[tokio::test]
async fn the_embeddings_models_are_listed_and_paged() {
    let (mock, gateway) = gateway_with_mock(&[]).await.unwrap();
    let get = |query: &'static str| {
        let url = gateway.url(&format!("/api/v1/embeddings/models{query}"));
        async move {
            let response = reqwest::get(url).await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, all) = get("").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.contains(&"openai/text-embedding-3-small"));
    let (status, page) = get("?offset=1&limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], ids[1]);
    let (status, refusal) = get("?limit=1001").await;
    assert_eq!(
        (status, &refusal["error"]["details"]["field"]),
        (400, &json!("limit"))
    );
    let fetched = mock
        .received()
        .iter()
        .filter(|r| r.path == "/api/v1/embeddings/models")
        .count();
    assert_eq!(fetched, 1, "cached like the catalogue");
}
