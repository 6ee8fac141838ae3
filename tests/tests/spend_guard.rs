//! Protecting the key's credit (`docs/http-api.md`, "Spend guard";
//! `docs/rate-limits.md`, "Spend"): the `max_tokens` cap, the model lists, duplicate
//! keys, and spend budgets per client and per day, accounted from what OpenRouter
//! reports an answer cost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::net::IpAddr;

use llm_proxy_tests::dynamo::{self, DynamoServer};
use llm_proxy_tests::{Behaviour, Gateway, MockOpenRouter, fixtures, gateway_with_mock};
use serde_json::{Value, json};

async fn setup(extra: &[(&str, &str)]) -> (MockOpenRouter, Gateway) {
    let mut vars = vec![("OPENROUTER_API_KEY", "sk-or-v1-guard")];
    vars.extend_from_slice(extra);
    gateway_with_mock(&vars).await.unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello, world!"}]})
}

/// A client with its own loopback address, so that it has counters of its own.
fn client_at(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    gateway: &Gateway,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(gateway.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn refused_with(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], status, "{body}");
    body["error"].clone()
}

#[tokio::test]
async fn a_request_without_max_tokens_gets_the_cap_and_one_above_it_is_refused() {
    let (mock, gateway) = setup(&[("MAX_TOKENS_CAP", "300")]).await;
    let http = reqwest::Client::new();
    let response = post(&http, &gateway, "/api/v1/inference", &chat("openai/gpt-4o")).await;
    assert_eq!(response.status(), 200);
    let sent: Value = serde_json::from_slice(&mock.received()[0].body).unwrap();
    assert_eq!(sent["max_tokens"], 300);

    for field in ["max_tokens", "max_completion_tokens"] {
        let mut body = chat("openai/gpt-4o");
        body[field] = json!(301);
        let error =
            refused_with(post(&http, &gateway, "/api/v1/inference", &body).await, 400).await;
        assert_eq!(error["details"]["field"], field);
    }
    // The OpenAI SDK's own field, within the cap, goes through as written.
    let mut body = chat("openai/gpt-4o");
    body["max_completion_tokens"] = json!(300);
    assert_eq!(
        post(&http, &gateway, "/api/v1/chat/completions", &body)
            .await
            .status(),
        200
    );
    let sent: Value = serde_json::from_slice(&mock.received()[1].body).unwrap();
    assert!(sent.get("max_tokens").is_none(), "{sent}");
    assert_eq!(mock.received().len(), 2);
}

#[tokio::test]
async fn models_outside_the_allowlist_or_on_the_denylist_are_refused() {
    let (mock, gateway) = setup(&[
        ("MODEL_ALLOWLIST", "openai/*, anthropic/claude-sonnet-4"),
        ("MODEL_DENYLIST", "*:online"),
    ])
    .await;
    let http = reqwest::Client::new();
    assert_eq!(
        post(&http, &gateway, "/api/v1/inference", &chat("openai/gpt-4o"))
            .await
            .status(),
        200
    );
    for (model, fallbacks, field) in [
        ("google/gemini-2.5-pro", None, "model"),
        ("openai/gpt-4o:online", None, "model"),
        (
            "openai/gpt-4o",
            Some(json!(["anthropic/claude-sonnet-4", "x-ai/grok-4"])),
            "models[1]",
        ),
    ] {
        let mut body = chat(model);
        if let Some(fallbacks) = fallbacks {
            body["models"] = fallbacks;
        }
        let error = refused_with(
            post(&http, &gateway, "/api/v1/inference/stream", &body).await,
            400,
        )
        .await;
        assert_eq!(error["details"]["field"], field, "{error}");
    }
    assert_eq!(
        mock.received().len(),
        1,
        "refused models never reach OpenRouter"
    );
}

#[tokio::test]
async fn a_body_with_a_key_given_twice_is_refused() {
    let (mock, gateway) = setup(&[]).await;
    // Validated last-wins, read first-wins (or the other way round) upstream: refused.
    let raw = r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"x"}],"model":"openai/o3-pro"}"#;
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/inference"))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let error = refused_with(response, 400).await;
    assert_eq!(error["details"]["field"], "model");
    assert!(mock.received().is_empty());
}

#[tokio::test]
async fn caller_text_is_quoted_back_short() {
    let (_mock, gateway) = setup(&[]).await;
    let role = "r".repeat(4 * 1024 * 1024);
    let body =
        json!({"model": "m".repeat(1024 * 1024), "messages": [{"role": role, "content": "x"}]});
    let response = post(
        &reqwest::Client::new(),
        &gateway,
        "/api/v1/inference",
        &body,
    )
    .await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.len() < 1024, "{} bytes echoed", text.len());
}

#[tokio::test]
async fn a_client_over_its_spend_budget_gets_a_429_naming_the_budget() {
    let (_mock, gateway) = setup(&[("SPEND_LIMIT_USD", "0.000001")]).await;
    let spender = client_at("127.0.0.3");
    // The first answer costs more than the whole budget; the second is refused.
    assert_eq!(
        post(
            &spender,
            &gateway,
            "/api/v1/inference",
            &chat("openai/gpt-4o")
        )
        .await
        .status(),
        200
    );
    let response = post(
        &spender,
        &gateway,
        "/api/v1/chat/completions",
        &chat("openai/gpt-4o"),
    )
    .await;
    assert!(response.headers().get("retry-after").is_some());
    let error = refused_with(response, 429).await;
    assert_eq!(error["type"], "rate_limit");
    assert_eq!(error["details"]["budget"], "client");
    // Streams are accounted too, and another client is unaffected.
    let other = client_at("127.0.0.4");
    let mut streamed = chat("openai/gpt-4o");
    streamed["stream"] = json!(true);
    let response = post(&other, &gateway, "/api/v1/chat/completions", &streamed).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let error = refused_with(
        post(
            &other,
            &gateway,
            "/api/v1/inference",
            &chat("openai/gpt-4o"),
        )
        .await,
        429,
    )
    .await;
    assert_eq!(error["details"]["budget"], "client");
}

#[tokio::test]
async fn over_the_days_budget_every_client_is_refused() {
    let (_mock, gateway) = setup(&[
        ("SPEND_LIMIT_USD", "0"),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0.000001"),
    ])
    .await;
    // The first answer is recorded while the day is within budget, the second learns
    // it no longer is.
    for address in ["127.0.0.5", "127.0.0.6"] {
        let response = post(
            &client_at(address),
            &gateway,
            "/api/v1/inference",
            &chat("openai/gpt-4o"),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let error = refused_with(
        post(
            &client_at("127.0.0.7"),
            &gateway,
            "/api/v1/inference",
            &chat("openai/gpt-4o"),
        )
        .await,
        429,
    )
    .await;
    assert_eq!(error["details"]["budget"], "global");
    // The catalogue costs nothing and stays open.
    assert_eq!(
        client_at("127.0.0.7")
            .get(gateway.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Micro-dollars, rounded up, as the proxy records a cost.
fn micros(usd: f64) -> u64 {
    (usd * 1e6).ceil() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_answers_cost_is_recorded_once_from_usage_or_the_catalogue_price() {
    let server = DynamoServer::start().unwrap();
    let table = "llm-proxy-rate-limits";
    let table_client = dynamo::client(&server.endpoint).await;
    dynamo::create_table(&table_client, table).await.unwrap();
    let env = dynamo::sdk_env(&server.endpoint);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("RATE_LIMIT_TABLE", table),
        ("RATE_LIMIT_HASH_KEY", "spend-test"),
        ("SPEND_LIMIT_USD", "10"),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "100"),
    ]);
    let (mock, gateway) = setup(&vars).await;
    let http = reqwest::Client::new();

    // A JSON answer: OpenRouter's usage.cost.
    let answer: Value = post(&http, &gateway, "/api/v1/inference", &chat("openai/gpt-4o"))
        .await
        .json()
        .await
        .unwrap();
    let json_cost = answer["usage"]["cost"].as_f64().unwrap();

    // A stream: usage.cost of its usage chunk.
    let mut streamed = chat("openai/gpt-4o");
    streamed["stream"] = json!(true);
    let body = post(&http, &gateway, "/api/v1/chat/completions", &streamed)
        .await
        .bytes()
        .await
        .unwrap();
    let stream_cost = fixtures::sse_events(&body)
        .iter()
        .filter_map(|e| e.strip_prefix(b"data: "))
        .filter_map(|d| serde_json::from_slice::<Value>(d).ok())
        .find_map(|chunk| chunk["usage"]["cost"].as_f64())
        .unwrap();

    // An answer without a cost: its tokens at the catalogue's price for the model.
    mock.set_behaviour(Behaviour::EchoWithoutCost);
    let answer: Value = post(&http, &gateway, "/api/v1/inference", &chat("openai/gpt-4o"))
        .await
        .json()
        .await
        .unwrap();
    assert!(answer["usage"].get("cost").is_none());
    let catalogue: Value = serde_json::from_slice(&fixtures::models()).unwrap();
    let price = |model: &str, field: &str| -> f64 {
        catalogue["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == model)
            .map_or(0.0, |m| {
                m["pricing"][field].as_str().unwrap().parse().unwrap()
            })
    };
    let tokens_cost = answer["usage"]["prompt_tokens"].as_f64().unwrap()
        * price("openai/gpt-4o", "prompt")
        + answer["usage"]["completion_tokens"].as_f64().unwrap()
            * price("openai/gpt-4o", "completion");
    assert!(tokens_cost > 0.0, "the fixture prices openai/gpt-4o");

    let expected = micros(json_cost) + micros(stream_cost) + micros(tokens_cost);
    let items = table_client.scan().table_name(table).send().await.unwrap();
    let number =
        |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
         name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .map_or(0, |n| n.parse::<u64>().unwrap())
        };
    let client_spend: u64 = items
        .items()
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("http#"))
        .map(|i| number(i, "spend"))
        .sum();
    let day_spend: u64 = items
        .items()
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("spend-day#"))
        .map(|i| number(i, "total"))
        .sum();
    assert!(json_cost > 0.0 && stream_cost > 0.0);
    assert_eq!(client_spend, expected);
    assert_eq!(day_spend, expected);
}
