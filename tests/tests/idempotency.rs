//! Retries and resuming (`docs/http-api.md`, "Retries and resuming"): a request
//! repeated under its `Idempotency-Key` gets the first answer again with no second
//! upstream call; a dropped stream resumes after its `Last-Event-ID`, on this gateway
//! or on another sharing the table, every event once and in order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::Duration;

use futures_util::StreamExt;
use llm_proxy_tests::dynamo::{self, DynamoServer};
use llm_proxy_tests::{Behaviour, Gateway, MockOpenRouter, client_at, gateway_with_mock};
use serde_json::{Value, json};

const KEY: &str = "sk-or-v1-idempotency";

fn chat(content: &str, stream: bool) -> Value {
    json!({"model": "openai/gpt-4o-mini", "max_tokens": 200, "stream": stream,
           "messages": [{"role": "user", "content": content}]})
}

async fn post(
    client: &reqwest::Client,
    gateway: &Gateway,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(gateway.url("/api/v1/chat/completions"))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Waits until the mock has received `n` inference requests.
async fn upstream_reaches(mock: &MockOpenRouter, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while mock.received().len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached upstream"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_repeated_request_is_answered_once() {
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    let alice = client_at("127.0.8.1");
    let body = chat("Hello there", false);
    let key = [("idempotency-key", "order-1")];

    let first = post(&alice, &gateway, &body, &key).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let id = first.headers()["x-generation-id"].clone();
    let answer = first.bytes().await.unwrap();
    let again = post(&alice, &gateway, &body, &key).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["x-generation-id"], id);
    assert_eq!(again.bytes().await.unwrap(), answer);
    assert_eq!(mock.received().len(), 1, "one upstream call for both");

    // The key with another body: 422, nothing upstream.
    let other = post(&alice, &gateway, &chat("Something else", false), &key).await;
    assert_eq!(other.status(), 422);
    let refusal: Value = other.json().await.unwrap();
    assert_eq!(refusal["error"]["details"]["field"], "idempotency-key");
    // Another client's identical key is its own.
    let bob = post(&client_at("127.0.8.2"), &gateway, &body, &key).await;
    assert_eq!(bob.status(), 200);
    assert!(bob.headers().get("idempotent-replayed").is_none());
    assert_eq!(mock.received().len(), 2);
    // A key that is no key is a 400.
    let bad = post(&alice, &gateway, &body, &[("idempotency-key", "")]).await;
    assert_eq!(bad.status(), 400);
    // Without a key, a repeat is a new request, as before.
    post(&alice, &gateway, &body, &[]).await;
    post(&alice, &gateway, &body, &[]).await;
    assert_eq!(mock.received().len(), 4);
}

#[tokio::test]
async fn a_repeat_while_the_first_is_answered_is_a_conflict() {
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    let mut body = chat("Slowly", false);
    body["model"] = json!("mock/stall-1500");
    let key = [("idempotency-key", "slow-1")];
    let first = {
        let gateway_url = gateway.url("/api/v1/chat/completions");
        let body = body.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(gateway_url)
                .header("idempotency-key", "slow-1")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    upstream_reaches(&mock, 1).await;
    let meanwhile = post(&reqwest::Client::new(), &gateway, &body, &key).await;
    assert_eq!(meanwhile.status(), 409);
    assert_eq!(first.await.unwrap(), 200);
    let after = post(&reqwest::Client::new(), &gateway, &body, &key).await;
    assert_eq!(after.status(), 200);
    assert_eq!(after.headers()["idempotent-replayed"], "true");
    assert_eq!(mock.received().len(), 1);
}

/// An SSE event's id and its delta text.
fn parse(event: &str) -> (Option<u64>, String) {
    let mut id = None;
    let mut text = String::new();
    for line in event.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = value.parse().ok();
        } else if let Some(data) = line.strip_prefix("data: ")
            && let Ok(chunk) = serde_json::from_str::<Value>(data)
        {
            text.push_str(
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or(""),
            );
        }
    }
    (id, text)
}

/// Reads whole events from `response`, `limit` of them at most.
async fn events(response: reqwest::Response, limit: usize) -> Vec<String> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < limit {
        let Some(chunk) = stream.next().await else {
            break;
        };
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if !event.starts_with(':') {
                events.push(event);
            }
        }
    }
    events
}

fn text_of(events: &[String]) -> String {
    events.iter().map(|e| parse(e).1).collect()
}

async fn resumed_on(first: &Gateway, second: &Gateway, mock: &MockOpenRouter, key: &str) {
    mock.set_behaviour(Behaviour::StreamPaced {
        deltas: 100,
        every: Duration::from_millis(15),
    });
    let body = chat("Tell me a story", true);
    // The whole answer, without a key (and so without ids: bytes as OpenRouter sent them).
    let plain = events(
        post(&client_at("127.0.8.9"), first, &body, &[]).await,
        usize::MAX,
    )
    .await;
    assert!(plain.iter().all(|e| !e.contains("id: ")));
    let whole = text_of(&plain);
    assert!(whole.len() > 40, "{whole}");

    let client = client_at("127.0.8.3");
    let headers = [("idempotency-key", key)];
    let start = events(post(&client, first, &body, &headers).await, 5).await;
    let ids: Vec<u64> = start.iter().map(|e| parse(e).0.unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    let last = ids[4].to_string();
    let mut resume = headers.to_vec();
    resume.push(("last-event-id", last.as_str()));
    let response = post(&client, second, &body, &resume).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    // Live: the first resumed events arrive while the generation still runs.
    let mut stream = response.bytes_stream();
    let first_bytes = stream.next().await.unwrap().unwrap();
    assert!(
        mock.streams_closed().len() < 2,
        "the resumed stream waited for the end of the generation"
    );
    let rest_of = reqwest::Response::from(http::Response::new(reqwest::Body::wrap_stream(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first_bytes) })
            .chain(stream.map(|chunk| chunk.map_err(std::io::Error::other))),
    )));
    let rest = events(rest_of, usize::MAX).await;
    let rest_ids: Vec<u64> = rest.iter().map(|e| parse(e).0.unwrap()).collect();
    let expected: Vec<u64> = (6..6 + rest.len() as u64).collect();
    assert_eq!(rest_ids, expected, "every event once, in order");
    assert!(rest.last().unwrap().contains("data: [DONE]"));
    assert_eq!(format!("{}{}", text_of(&start), text_of(&rest)), whole);
    assert_eq!(
        mock.received().len(),
        2,
        "one upstream generation for the keyed stream"
    );
}

/// `count` gateways counting (and journaling) in one moto_server table, with `extra`
/// settings, and the mock they share.
async fn sharing_a_table(
    extra: &[(&str, &str)],
    count: usize,
) -> (DynamoServer, MockOpenRouter, Vec<Gateway>) {
    let server = DynamoServer::start().unwrap();
    let env = dynamo::table_env(&server, "journal").await.unwrap();
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("OPENROUTER_BASE_URL", base.as_str()),
        ("OPENROUTER_API_KEY", KEY),
        ("RATE_LIMIT_HASH_KEY", "shared-secret"),
    ]);
    vars.extend_from_slice(extra);
    let mut gateways = Vec::new();
    for _ in 0..count {
        gateways.push(Gateway::start(&vars).await.unwrap());
    }
    (server, mock, gateways)
}

#[tokio::test]
async fn a_dropped_stream_resumes_after_its_last_event_id() {
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    resumed_on(&gateway, &gateway, &mock, "story-1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_on_another_gateway_follows_the_live_generation() {
    let (_server, mock, gateways) = sharing_a_table(&[], 2).await;
    let (first, second) = (&gateways[0], &gateways[1]);
    resumed_on(first, second, &mock, "story-2").await;

    // A JSON answer kept in the table is replayed by either gateway, the first too
    // (its memory holds only answers being made).
    mock.set_behaviour(Behaviour::Echo);
    let client = client_at("127.0.8.4");
    let body = chat("Hello from the table", false);
    let key = [("idempotency-key", "json-2")];
    let answer = post(&client, first, &body, &key)
        .await
        .bytes()
        .await
        .unwrap();
    for gateway in [second, first] {
        let again = post(&client, gateway, &body, &key).await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.bytes().await.unwrap(), answer);
    }
    assert_eq!(mock.received().len(), 3);
}

#[tokio::test]
async fn the_journal_expires() {
    let (mock, gateway) =
        gateway_with_mock(&[("OPENROUTER_API_KEY", KEY), ("IDEMPOTENCY_TTL_MS", "300")])
            .await
            .unwrap();
    let body = chat("Hello", false);
    let key = [("idempotency-key", "short-lived")];
    post(&reqwest::Client::new(), &gateway, &body, &key).await;
    // The time the setting gives the answer, passed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = post(&reqwest::Client::new(), &gateway, &body, &key).await;
    assert!(later.headers().get("idempotent-replayed").is_none());
    assert_eq!(mock.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_expires_in_the_table_too() {
    let (_server, mock, gateways) = sharing_a_table(&[("IDEMPOTENCY_TTL_MS", "1000")], 1).await;
    let gateway = &gateways[0];
    let body = chat("Hello", false);
    let key = [("idempotency-key", "short-lived")];
    post(&reqwest::Client::new(), gateway, &body, &key).await;
    let again = post(&reqwest::Client::new(), gateway, &body, &key).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    // Past the record's expiry (whole seconds), whether or not TTL has swept it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = post(&reqwest::Client::new(), gateway, &body, &key).await;
    assert!(later.headers().get("idempotent-replayed").is_none());
    assert_eq!(mock.received().len(), 2);
}
