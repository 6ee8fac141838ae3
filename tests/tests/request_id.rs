//! `X-Request-Id` (`docs/http-api.md`, "CORS and headers"): every answer carries one,
//! errors, refusals and streams included, and the request's log line carries the same
//! id. One test in this binary: it installs the process's log subscriber.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm_proxy_tests::ws::{WsClient, tungstenite};
use llm_proxy_tests::{Gateway, client_at, gateway_with_mock};
use serde_json::{Value, json};
use tungstenite::Message;

/// Log lines, as the JSON layer writes them.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn id_of(response: &reqwest::Response) -> String {
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_names_its_request_and_its_log_line_does_too() {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let (_mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-ids"),
        ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "3"),
    ])
    .await
    .unwrap();
    let client = client_at("127.0.6.1");
    let chat = json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}]});
    let post = |body: Value| {
        client
            .post(gateway.url("/api/v1/chat/completions"))
            .json(&body)
            .send()
    };
    let mut ids = Vec::new();
    let ok = post(chat.clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    ids.push(id_of(&ok));
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let stream = post(streamed).await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    ids.push(id_of(&stream));
    stream.bytes().await.unwrap();
    let invalid = post(json!({"messages": []})).await.unwrap();
    assert_eq!(invalid.status(), 400);
    ids.push(id_of(&invalid));
    let limited = post(chat.clone()).await.unwrap();
    assert_eq!(limited.status(), 429);
    ids.push(id_of(&limited));
    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            gateway.url("/api/v1/chat/completions"),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    ids.push(id_of(&preflight));
    // No key: 503.
    let keyless = Gateway::start(&[]).await.unwrap();
    let unavailable = reqwest::Client::new()
        .post(keyless.url("/api/v1/inference"))
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable.status(), 503);
    ids.push(id_of(&unavailable));
    // Over WebSocket: a refused message's error carries its request's id.
    let mut socket = WsClient::connect(&gateway.ws_url()).await.unwrap();
    socket.send_raw(Message::text("{not json")).await.unwrap();
    let error = socket.message(Duration::from_secs(10)).await;
    assert_eq!(error["type"], "error", "{error}");
    let ws_id = error["request_id"].as_str().unwrap().to_owned();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");

    let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    for id in &ids {
        let line = logged
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| {
                line["fields"]["message"] == "request" && line["fields"]["request_id"] == *id
            });
        assert!(line.is_some(), "no log line for {id}:\n{logged}");
    }
    let refused = logged
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["fields"]["message"] == "message refused"
                && line["span"]["request_id"] == ws_id.as_str()
        });
    assert!(refused.is_some(), "no log line for {ws_id}:\n{logged}");
}
