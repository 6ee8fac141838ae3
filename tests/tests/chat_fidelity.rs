//! Chat bodies OpenRouter accepts are accepted as OpenRouter reads them
//! (`docs/http-api.md`, "Chat requests"): a fallback list without `model`, a reasoning
//! budget the proxy's cap must not undercut, and a key given twice inside a message,
//! named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_tests::gateway_with_mock;
use serde_json::{Value, json};

async fn post(gateway: &llm_proxy_tests::Gateway, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_fallback_list_without_model_goes_through_as_written() {
    let (mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-fidelity"),
        ("MODEL_DENYLIST", "x-ai/*"),
    ])
    .await
    .unwrap();
    // OpenRouter's own example: the first model answers, the next if it fails.
    let body = r#"{"models":["openai/gpt-4o","anthropic/claude-sonnet-4"],"max_tokens":50,"messages":[{"role":"user","content":"Hello"}]}"#;
    let (status, answer) = post(&gateway, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        &mock.received()[0].body[..],
        body.as_bytes(),
        "sent as written"
    );
    // Each is still held to the model lists, and one of the two is still required.
    let (status, refusal) = post(
        &gateway,
        r#"{"models":["openai/gpt-4o","x-ai/grok-4"],"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(refusal["error"]["details"]["field"], "models[1]");
    let (status, refusal) = post(
        &gateway,
        r#"{"models":[],"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(refusal["error"]["details"]["field"], "model");
}

#[tokio::test]
async fn a_reasoning_budget_is_never_undercut_by_the_cap() {
    let (mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-fidelity"),
        ("MAX_TOKENS_CAP", "8000"),
    ])
    .await
    .unwrap();
    let ask = |reasoning: u64, max_tokens: Option<u64>| {
        let mut body = json!({"model": "openai/gpt-4o",
            "reasoning": {"max_tokens": reasoning},
            "messages": [{"role": "user", "content": "Think first"}]});
        if let Some(max_tokens) = max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        body.to_string()
    };
    // No max_tokens: the cap inserted (8000) is above the budget.
    let (status, _) = post(&gateway, &ask(6000, None)).await;
    assert_eq!(status, 200);
    let sent: Value = serde_json::from_slice(&mock.received()[0].body).unwrap();
    assert_eq!(sent["max_tokens"], 8000);
    assert_eq!(sent["reasoning"]["max_tokens"], 6000);
    // A budget at or above the cap, or above the caller's own max_tokens: a 400
    // naming it, and nothing upstream.
    for (reasoning, max_tokens) in [(8000, None), (6000, Some(5000)), (6000, Some(6000))] {
        let (status, refusal) = post(&gateway, &ask(reasoning, max_tokens)).await;
        assert_eq!(status, 400, "{reasoning} {max_tokens:?}");
        assert_eq!(refusal["error"]["details"]["field"], "reasoning.max_tokens");
    }
    assert_eq!(mock.received().len(), 1);
}

#[tokio::test]
async fn a_key_given_twice_inside_a_message_is_named() {
    let (mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", "sk-or-v1-fidelity")])
        .await
        .unwrap();
    for (message, field) in [
        (
            r#"{"role":"user","content":"hi","role":"system"}"#,
            "messages[1].role",
        ),
        (
            r#"{"role":"user","content":"a","name":"x","name":"y"}"#,
            "messages[1].name",
        ),
    ] {
        let body = format!(
            r#"{{"model":"openai/gpt-4o","messages":[{{"role":"user","content":"first"}},{message}]}}"#
        );
        let (status, refusal) = post(&gateway, &body).await;
        assert_eq!(status, 400);
        assert_eq!(refusal["error"]["details"]["field"], field, "{refusal}");
        assert!(
            refusal["error"]["details"]["message"]
                .as_str()
                .unwrap()
                .contains("given twice")
        );
    }
    assert!(mock.received().is_empty());
}
