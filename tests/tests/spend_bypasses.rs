//! The credit cannot be drained (`docs/rate-limits.md`, "Reserve, then settle"): every
//! way a request used to cost OpenRouter money while counting nothing against the
//! budgets, tried as an attacker would against a production gateway and the mock
//! serving the real catalogue's prices. Each case spends one request of a client's
//! budget that fits one, then shows the next is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::net::IpAddr;
use std::time::Duration;

use futures_util::StreamExt;
use llm_proxy_tests::dynamo::{self, DynamoServer};
use llm_proxy_tests::ws::WsClient;
use llm_proxy_tests::{Behaviour, Gateway, MockOpenRouter, client_at, gateway_with_mock};
use serde_json::{Value, json};

/// `openai/o1-pro`: $150 per million prompt tokens, $600 per million completion
/// tokens. This prompt (about 12 KB) reserves about $0.61 of input and $0.06 of
/// output; a budget of $0.90 fits one, and any answer charged at its input or more
/// leaves no room for a second.
fn expensive(stream: bool) -> Value {
    let prompt = "lorem ".repeat(2000);
    json!({"model": "openai/o1-pro", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": prompt}]})
}

const BUDGET: [(&str, &str); 5] = [
    ("ENVIRONMENT", "production"),
    ("OPENROUTER_API_KEY", "sk-or-v1-bypass"),
    ("MAX_REQUEST_COST_USD", "5"),
    ("SPEND_LIMIT_USD", "0.9"),
    ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0"),
];

async fn setup(extra: &[(&str, &str)]) -> (MockOpenRouter, Gateway) {
    let mut vars = BUDGET.to_vec();
    vars.extend_from_slice(extra);
    gateway_with_mock(&vars).await.unwrap()
}

async fn post(client: &reqwest::Client, gateway: &Gateway, body: &Value) -> reqwest::Response {
    client
        .post(gateway.url("/api/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The client's next expensive request is refused at its budget, before OpenRouter.
async fn next_is_refused(client: &reqwest::Client, gateway: &Gateway, mock: &MockOpenRouter) {
    let upstream = mock.received().len();
    let response = post(client, gateway, &expensive(false)).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["budget"], "client", "{body}");
    assert_eq!(mock.received().len(), upstream, "refused before OpenRouter");
}

#[tokio::test]
async fn an_abandoned_stream_is_charged_its_input_and_what_was_relayed() {
    let (mock, gateway) = setup(&[]).await;
    mock.set_behaviour(Behaviour::StreamPaced {
        deltas: 500,
        every: Duration::from_millis(20),
    });
    let attacker = client_at("127.0.1.1");
    let response = post(&attacker, &gateway, &expensive(true)).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    for _ in 0..3 {
        body.next().await.unwrap().unwrap();
    }
    drop(body);
    assert!(
        mock.wait_for_streams_closed(1, Duration::from_secs(10))
            .await
    );
    next_is_refused(&attacker, &gateway, &mock).await;
}

#[tokio::test]
async fn an_abandoned_json_request_is_charged_in_full() {
    let (mock, gateway) = setup(&[]).await;
    // OpenRouter's whitespace while the model works, for five seconds.
    mock.set_behaviour(Behaviour::Pad {
        lines: 50,
        every: Duration::from_millis(100),
    });
    let attacker = reqwest::Client::builder()
        .local_address("127.0.1.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let gone = attacker
        .post(gateway.url("/api/v1/inference"))
        .json(&expensive(false))
        .send()
        .await;
    assert!(gone.is_err_and(|e| e.is_timeout()));
    // The proxy dropped its upstream request when the client left...
    assert!(
        mock.wait_for_answers_closed(1, Duration::from_secs(10))
            .await
    );
    // ...and the generation it may have paid for still counts.
    next_is_refused(&client_at("127.0.1.2"), &gateway, &mock).await;
}

#[tokio::test]
async fn an_abandoned_websocket_stream_is_charged() {
    let (mock, gateway) = setup(&[]).await;
    mock.set_behaviour(Behaviour::StreamPaced {
        deltas: 500,
        every: Duration::from_millis(20),
    });
    let address: IpAddr = "127.0.1.6".parse().unwrap();
    let mut ws = WsClient::connect_from(&gateway.ws_url(), address)
        .await
        .unwrap();
    ws.send(&json!({"type": "inference_request", "id": "gone", "data": expensive(true)}))
        .await
        .unwrap();
    let first = ws.message(Duration::from_secs(10)).await;
    assert_eq!(first["type"], "inference_response", "{first}");
    drop(ws);
    assert!(
        mock.wait_for_streams_closed(1, Duration::from_secs(10))
            .await
    );
    next_is_refused(&client_at("127.0.1.6"), &gateway, &mock).await;
}

#[tokio::test]
async fn a_stream_cut_at_its_deadline_is_charged() {
    let (mock, gateway) = setup(&[("STREAM_MAX_DURATION_MS", "500")]).await;
    mock.set_behaviour(Behaviour::StreamPaced {
        deltas: 500,
        every: Duration::from_millis(20),
    });
    let client = client_at("127.0.1.3");
    let text = post(&client, &gateway, &expensive(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("maximum duration"), "{text}");
    next_is_refused(&client, &gateway, &mock).await;
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_charged_in_full() {
    let (mock, gateway) = setup(&[]).await;
    mock.set_behaviour(Behaviour::Big(7_000_000));
    let client = client_at("127.0.1.4");
    assert_eq!(
        post(&client, &gateway, &expensive(false)).await.status(),
        502
    );
    next_is_refused(&client, &gateway, &mock).await;
}

#[tokio::test]
async fn an_answer_from_a_dated_id_without_a_cost_is_priced() {
    let (mock, gateway) = setup(&[]).await;
    mock.set_behaviour(Behaviour::EchoDated);
    let client = client_at("127.0.1.5");
    let answer: Value = post(&client, &gateway, &expensive(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["model"], "openai/o1-pro-2025-03-19");
    assert!(answer["usage"].get("cost").is_none());
    next_is_refused(&client, &gateway, &mock).await;
}

/// OpenRouter down (nothing listens): each request is a 502 and costs the caller
/// nothing, so an outage does not use up the budgets of the clients who retry.
#[tokio::test]
async fn requests_openrouter_never_received_cost_nothing() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/api/v1", closed.local_addr().unwrap());
    drop(closed);
    // Without a catalogue the request is priced at $5/$15 per million tokens: about
    // $0.022 reserved, of a budget that holds one.
    let gateway = Gateway::start(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-outage"),
        ("OPENROUTER_BASE_URL", &base),
        ("SPEND_LIMIT_USD", "0.03"),
    ])
    .await
    .unwrap();
    let client = client_at("127.0.1.7");
    for _ in 0..3 {
        let response = post(&client, &gateway, &expensive(false)).await;
        assert_eq!(response.status(), 502);
    }
}

/// What `body` reserves: its input at a token per three bytes, and its `max_tokens`,
/// at o1-pro's price.
fn worst_case(body: &Value) -> f64 {
    let input = serde_json::to_vec(body).unwrap().len().div_ceil(3) as f64;
    input * 150e-6 + body["max_tokens"].as_f64().unwrap() * 600e-6
}

/// 30 requests at once on a budget worth 8 of them: 8 are served, the rest refused
/// before OpenRouter, whether the budget is one client's or the day's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_at_once_on_a_budget_worth_eight_serve_eight() {
    let body = json!({"model": "openai/o1-pro", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "Hello"}]});
    let budget = format!("{}", worst_case(&body) * 8.5);
    for (setting, budget_name, one_client) in [
        ("SPEND_LIMIT_USD", "client", true),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "global", false),
    ] {
        let (mock, gateway) = gateway_with_mock(&[
            ("OPENROUTER_API_KEY", "sk-or-v1-bypass"),
            ("SPEND_LIMIT_USD", "0"),
            ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0"),
            ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "100"),
            ("MAX_CONCURRENT_REQUESTS_PER_CLIENT", "100"),
            (setting, &budget),
        ])
        .await
        .unwrap();
        // Every answer is held long enough for all 30 to be in flight together.
        mock.set_behaviour(Behaviour::Stall(Duration::from_secs(3)));
        let requests: Vec<_> = (0..30)
            .map(|n| {
                let address = if one_client {
                    "127.0.2.1".to_owned()
                } else {
                    format!("127.0.2.{}", n + 1)
                };
                let url = gateway.url("/api/v1/inference");
                let body = body.clone();
                tokio::spawn(async move {
                    let response = client_at(&address)
                        .post(url)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.unwrap();
                    (status, answer)
                })
            })
            .collect();
        let mut served = 0;
        for request in requests {
            match request.await.unwrap() {
                (200, _) => served += 1,
                (429, refusal) => assert_eq!(refusal["error"]["details"]["budget"], budget_name),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(served, 8, "{budget_name} budget");
        assert_eq!(mock.received().len(), 8);
    }
}

#[tokio::test]
async fn one_request_is_bounded_before_anything_goes_upstream() {
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", "sk-or-v1-bypass")])
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let refusal = |body: Value| {
        let http = http.clone();
        let url = gateway.url("/api/v1/inference");
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 400);
            let body: Value = response.json().await.unwrap();
            body["error"]["details"].clone()
        }
    };
    // A 240 KB prompt to a $150/M model: about $12 of input.
    let big = json!({"model": "openai/o1-pro", "max_tokens": 10,
                     "messages": [{"role": "user", "content": "x".repeat(240_000)}]});
    assert_eq!(refusal(big).await["field"], "messages");
    // The default cap of 4096 tokens at $600/M: $2.46 at worst, refused with a hint.
    let details = refusal(json!({"model": "openai/o1-pro",
        "messages": [{"role": "user", "content": "hi"}]}))
    .await;
    assert_eq!(details["field"], "max_tokens");
    assert!(
        details["message"]
            .as_str()
            .unwrap()
            .contains("output tokens (set max_tokens)"),
        "{details}"
    );
    // Too much input for any model: 400 KB is about 133,000 tokens, over 100,000.
    let huge = json!({"model": "openai/gpt-4o-mini",
                      "messages": [{"role": "user", "content": "x".repeat(400_000)}]});
    assert_eq!(refusal(huge).await["field"], "messages");
    assert!(mock.received().is_empty(), "nothing reached OpenRouter");
}

#[tokio::test]
async fn every_variant_of_a_denied_model_is_refused() {
    let (mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-bypass"),
        ("MODEL_DENYLIST", "openai/o1-pro, *:online"),
    ])
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let field_of = |body: Value| {
        let http = http.clone();
        let url = gateway.url("/api/v1/chat/completions");
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 400, "{body}");
            body["error"]["details"]["field"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
    for model in [
        "openai/o1-pro:nitro",
        "openai/o1-pro:floor",
        "~openai/o1-pro",
        "OpenAI/o1-pro",
        " openai/o1-pro",
        "openai/o1-pro\n",
        "openai/o1-pro\u{200b}",
        "openai/gpt-4o:online",
        "openrouter/auto",
        "@preset/my-preset",
    ] {
        assert_eq!(field_of(chat(model)).await, "model", "{model:?}");
        let mut fallback = chat("openai/gpt-4o");
        fallback["models"] = json!(["openai/gpt-4o-mini", model]);
        assert_eq!(field_of(fallback).await, "models[1]", "{model:?}");
    }
    // Web search by the request's fields is the :online variant too.
    let mut plugin = chat("openai/gpt-4o");
    plugin["plugins"] = json!([{"id": "web", "max_results": 5}]);
    assert_eq!(field_of(plugin).await, "plugins");
    let mut options = chat("openai/gpt-4o");
    options["web_search_options"] = json!({"search_context_size": "high"});
    assert_eq!(field_of(options).await, "web_search_options");
    // Several choices, and presets, are refused unless allowed.
    let mut choices = chat("openai/gpt-4o");
    choices["n"] = json!(3);
    assert_eq!(field_of(choices).await, "n");
    let mut preset = chat("openai/gpt-4o");
    preset["preset"] = json!("my-preset");
    assert_eq!(field_of(preset).await, "preset");
    assert!(mock.received().is_empty(), "nothing reached OpenRouter");

    // A router named exactly on the allowlist is allowed.
    let (_mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-bypass"),
        ("MODEL_ALLOWLIST", "openai/*, openrouter/auto"),
    ])
    .await
    .unwrap();
    let response = http
        .post(gateway.url("/api/v1/inference"))
        .json(&chat("openrouter/auto"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_key_never_leaves_in_a_stream() {
    let key = "sk-or-v1-0123456789abcdef0123456789abcdef";
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", key)])
        .await
        .unwrap();
    mock.set_behaviour(Behaviour::StreamLeak);
    let text = reqwest::Client::new()
        .post(gateway.url("/api/v1/inference/stream"))
        .json(&json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("Provider rejected the credentials"), "{text}");
    assert!(!text.contains(key), "{text}");
    assert!(!text.contains("AbCdEf123456"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");

    // Over WebSocket, the same event becomes an error message's details.
    let mut ws = llm_proxy_tests::ws::WsClient::connect(&gateway.ws_url())
        .await
        .unwrap();
    ws.send(&json!({"type": "inference_request", "id": "leak", "data":
        {"model": "openai/gpt-4o", "stream": true, "messages": [{"role": "user", "content": "x"}]}}))
        .await
        .unwrap();
    let messages = ws
        .until_final("leak", Duration::from_secs(10), &mut Vec::new())
        .await;
    let seen = serde_json::to_string(&messages).unwrap();
    assert!(seen.contains("\"error\""), "{seen}");
    assert!(
        !seen.contains(key) && !seen.contains("AbCdEf123456"),
        "{seen}"
    );
}

/// Two gateways (two containers) sharing one table: a reservation made through one
/// is seen by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_holds_across_gateways_sharing_the_table() {
    let server = DynamoServer::start().unwrap();
    let env = dynamo::table_env(&server, "llm-proxy-rate-limits")
        .await
        .unwrap();
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("OPENROUTER_BASE_URL", base.as_str()),
        ("OPENROUTER_API_KEY", "sk-or-v1-shared"),
        ("RATE_LIMIT_HASH_KEY", "shared-secret"),
        ("SPEND_LIMIT_USD", "0.05"),
    ]);
    let first = Gateway::start(&vars).await.unwrap();
    let second = Gateway::start(&vars).await.unwrap();
    mock.set_behaviour(Behaviour::LockStep);
    let chat = json!({"model": "openai/gpt-4o", "stream": true,
                      "messages": [{"role": "user", "content": "x"}]});
    let client = client_at("127.0.3.1");
    // gpt-4o with the 4096 cap reserves about $0.041 of the $0.05.
    let held = post(&client, &first, &chat).await;
    assert_eq!(held.status(), 200);
    let refused = post(&client, &second, &chat).await;
    assert_eq!(refused.status(), 429);
    llm_proxy_tests::read_lock_step(held, &mock).await.unwrap();
    mock.set_behaviour(Behaviour::Echo);
    let admitted = post(&client, &second, &chat).await;
    assert_eq!(admitted.status(), 200, "settled at the stream's small cost");
}
