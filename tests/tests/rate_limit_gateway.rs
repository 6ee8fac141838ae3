//! Rate limits as a client meets them, through the local gateway: the socket address
//! counts, not headers; inference has its own limit; the headers and the 429 are as
//! `docs/rate-limits.md` says; DynamoDB counters; the fail mode when DynamoDB fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_tests::dynamo::{self, DynamoServer};
use llm_proxy_tests::{Gateway, MockOpenRouter, gateway_with_mock};
use serde_json::{Value, json};

const TABLE: &str = "llm-proxy-rate-limits";

async fn gateway_with(extra: &[(&str, &str)]) -> (MockOpenRouter, Gateway) {
    let mut vars = vec![("OPENROUTER_API_KEY", "sk-or-v1-rl")];
    vars.extend_from_slice(extra);
    gateway_with_mock(&vars).await.unwrap()
}

/// Sends `n` GETs, each claiming a different address in `X-Forwarded-For`.
async fn spoofed_gets(gateway: &Gateway, path: &str, n: usize) -> Vec<reqwest::Response> {
    let client = reqwest::Client::new();
    let mut responses = Vec::new();
    for i in 0..n {
        let response = client
            .get(gateway.url(path))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("x-real-ip", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        responses.push(response);
    }
    responses
}

async fn assert_limited(response: reqwest::Response, limit: u32) {
    assert_eq!(response.status(), 429);
    let h = response.headers().clone();
    assert_eq!(h["x-ratelimit-limit"], limit.to_string().as_str());
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        reset >= now && retry >= 1 && retry <= reset - now + 1,
        "reset {reset} now {now} retry {retry}"
    );
    assert!(
        h["ratelimit-policy"]
            .to_str()
            .unwrap()
            .contains(&format!("q={limit}"))
    );
    assert!(h["ratelimit"].to_str().unwrap().contains("r=0"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit");
    assert_eq!(body["error"]["code"], 429);
}

#[tokio::test]
async fn the_gateway_limits_by_the_socket_address_not_headers() {
    let (_mock, gateway) = gateway_with(&[("RATE_LIMIT_MAX_REQUESTS", "3")]).await;
    // Neither /health nor preflights count.
    for _ in 0..5 {
        assert_eq!(
            reqwest::get(gateway.url("/health")).await.unwrap().status(),
            200
        );
        let preflight = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, gateway.url("/api/v1/models"))
            .header("origin", "https://a.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success());
    }
    let mut responses = spoofed_gets(&gateway, "/api/v1/models/providers", 4)
        .await
        .into_iter();
    for remaining in ["2", "1", "0"] {
        let ok = responses.next().unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["x-ratelimit-remaining"], remaining);
    }
    assert_limited(responses.next().unwrap(), 3).await;
}

#[tokio::test]
async fn inference_has_its_own_tighter_limit() {
    let (_mock, gateway) = gateway_with(&[("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "2")]).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    for remaining in ["1", "0"] {
        let ok = client
            .post(gateway.url("/api/v1/inference"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["x-ratelimit-limit"], "2");
        assert_eq!(ok.headers()["x-ratelimit-remaining"], remaining);
    }
    let refused = client
        .post(gateway.url("/api/v1/inference"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_limited(refused, 2).await;
    // The default limit still has room.
    let models = reqwest::get(gateway.url("/api/v1/models/providers"))
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    assert_eq!(models.headers()["x-ratelimit-limit"], "100");
    assert_eq!(models.headers()["x-ratelimit-remaining"], "97");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_counts_in_dynamodb() {
    let server = DynamoServer::start().unwrap();
    dynamo::create_table(&dynamo::client(&server.endpoint).await, TABLE)
        .await
        .unwrap();
    let env = dynamo::sdk_env(&server.endpoint);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("RATE_LIMIT_TABLE", TABLE),
        ("RATE_LIMIT_HASH_KEY", "gateway-secret"),
        ("RATE_LIMIT_MAX_REQUESTS", "3"),
    ]);
    let (_mock, gateway) = gateway_with(&vars).await;
    let mut responses = spoofed_gets(&gateway, "/api/v1/models/providers", 4)
        .await
        .into_iter();
    for _ in 0..3 {
        assert_eq!(responses.next().unwrap().status(), 200);
    }
    assert_limited(responses.next().unwrap(), 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_follows_the_fail_mode_when_dynamodb_fails() {
    let server = DynamoServer::start().unwrap();
    let env = dynamo::sdk_env(&server.endpoint);
    for (mode, status) in [("open", 200), ("closed", 503)] {
        let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // No such table: every counter call fails.
        vars.extend([
            ("RATE_LIMIT_TABLE", "missing-table"),
            ("RATE_LIMIT_HASH_KEY", "s"),
            ("RATE_LIMIT_FAIL_MODE", mode),
        ]);
        let (_mock, gateway) = gateway_with(&vars).await;
        let response = reqwest::get(gateway.url("/api/v1/models/providers"))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{mode}");
        if status == 503 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "unavailable");
        }
    }
}
