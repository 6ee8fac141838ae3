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

use llm_proxy_tests::dynamo::{self, DynamoServer};
use llm_proxy_tests::{Behaviour, Gateway, MockOpenRouter, client_at, fixtures, gateway_with_mock};
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
    let role = "r".repeat(3 * 1024 * 1024);
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

/// While a stream holds its reservation (the mock sends the next event only when the
/// test says), a request that does not fit beside it is refused, naming the budget;
/// once the stream has settled at what it cost, the budget has room again.
async fn a_held_reservation_refuses(vars: &[(&str, &str)], budget: &str, next_from: &str) {
    let (mock, gateway) = setup(vars).await;
    mock.set_behaviour(Behaviour::LockStep);
    let holder = client_at("127.0.0.3");
    let mut streamed = chat("openai/gpt-4o");
    streamed["stream"] = json!(true);
    // gpt-4o's worst case with the 4096 cap: about $0.041, of a $0.05 budget.
    let held = post(&holder, &gateway, "/api/v1/chat/completions", &streamed).await;
    assert_eq!(held.status(), 200);

    let response = post(
        &client_at(next_from),
        &gateway,
        "/api/v1/inference",
        &chat("openai/gpt-4o"),
    )
    .await;
    assert!(response.headers().get("retry-after").is_some());
    let error = refused_with(response, 429).await;
    assert_eq!(error["type"], "rate_limit");
    assert_eq!(error["details"]["budget"], budget);
    assert_eq!(
        mock.received().len(),
        1,
        "the refused request never went upstream"
    );

    llm_proxy_tests::read_lock_step(held, &mock).await.unwrap();
    mock.set_behaviour(Behaviour::Echo);
    let response = post(
        &client_at(next_from),
        &gateway,
        "/api/v1/inference",
        &chat("openai/gpt-4o"),
    )
    .await;
    assert_eq!(
        response.status(),
        200,
        "the stream cost far less than it reserved"
    );
}

#[tokio::test]
async fn a_client_over_its_spend_budget_gets_a_429_naming_the_budget() {
    let vars = [
        ("SPEND_LIMIT_USD", "0.05"),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0"),
    ];
    a_held_reservation_refuses(&vars, "client", "127.0.0.3").await;
}

#[tokio::test]
async fn over_the_days_budget_every_client_is_refused() {
    let vars = [
        ("SPEND_LIMIT_USD", "0"),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0.05"),
    ];
    a_held_reservation_refuses(&vars, "global", "127.0.0.7").await;
}

/// Micro-dollars, rounded up, as the proxy records a cost.
fn micros(usd: f64) -> u64 {
    (usd * 1e6).ceil() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_answers_cost_is_recorded_once_from_usage_or_the_catalogue_price() {
    let server = DynamoServer::start().unwrap();
    let table = "llm-proxy-rate-limits";
    let env = dynamo::table_env(&server, table).await.unwrap();
    let table_client = dynamo::client(&server.endpoint).await;
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
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
    // Each reservation settled to its answer's cost (to the micro-dollar, rounded up
    // from a float: one either way for each of the three).
    assert!(
        client_spend.abs_diff(expected) <= 3,
        "{client_spend} recorded, {expected} expected"
    );
    // The day's item holds what this gateway leased of the budget: one slice of
    // 100/256 dollars covers these three.
    assert_eq!(day_spend, micros(100.0 / 256.0));
}
