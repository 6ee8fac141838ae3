//! OpenRouter's response cache through the proxy (`docs/http-api.md`, "Response
//! caching"): the caller's cache headers reach OpenRouter as `RESPONSE_CACHE` allows,
//! each client's cache is its own, the cache status comes back, and a hit costs
//! nothing against the spend budgets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_shared::client_ip::ClientIp;
use llm_proxy_tests::{Gateway, client_at, gateway_with_mock};
use serde_json::{Value, json};

const KEY: &str = "sk-or-v1-cache";

fn chat() -> Value {
    json!({"model": "openai/gpt-4o-mini", "max_tokens": 50,
           "messages": [{"role": "user", "content": "What is the capital of France?"}]})
}

async fn ask(
    client: &reqwest::Client,
    gateway: &Gateway,
    cache: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(gateway.url("/api/v1/chat/completions"))
        .json(&chat());
    for (name, value) in cache {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn each_clients_cache_is_its_own_and_a_hit_costs_nothing() {
    let (mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", KEY),
        ("SPEND_LIMIT_USD", "1"),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0"),
    ])
    .await
    .unwrap();
    let cache = [
        ("x-openrouter-cache", "true"),
        ("x-openrouter-cache-ttl", "120"),
    ];
    let (alice, bob) = (client_at("127.0.9.1"), client_at("127.0.9.2"));

    let first = ask(&alice, &gateway, &cache).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-openrouter-cache-status"], "MISS");
    let missed: Value = first.json().await.unwrap();
    let cost = missed["usage"]["cost"].as_f64().unwrap();
    assert!(cost > 0.0, "{missed}");
    let sent = mock.received().pop().unwrap();
    assert_eq!(sent.headers["x-openrouter-cache"], "true");
    assert_eq!(sent.headers["x-openrouter-cache-ttl"], "120");
    let alices: Value = serde_json::from_slice(&sent.body).unwrap();
    let user = alices["user"].as_str().unwrap().to_owned();
    assert!(
        user.starts_with("llm-proxy-") && !user.contains("127.0.9.1"),
        "{user}"
    );

    // The same body from another client is another entry: not Alice's answer.
    let other = ask(&bob, &gateway, &cache).await;
    assert_eq!(other.headers()["x-openrouter-cache-status"], "MISS");
    let bobs: Value = serde_json::from_slice(&mock.received().pop().unwrap().body).unwrap();
    assert_ne!(bobs["user"], alices["user"]);

    for _ in 0..3 {
        let again = ask(&alice, &gateway, &cache).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()["x-openrouter-cache-status"], "HIT");
        assert!(again.headers().get("x-openrouter-cache-age").is_some());
        let hit: Value = again.json().await.unwrap();
        assert_eq!(hit["choices"], missed["choices"]);
        assert_eq!(hit["usage"]["cost"], 0);
    }

    // Alice has spent the miss and nothing more: the rest of her dollar is there to
    // the micro-dollar.
    let limiter = &gateway.state.rate_limiter;
    let alice_ip = ClientIp("127.0.9.1".parse().unwrap());
    let (over, _) = limiter
        .admit(alice_ip, 1.0 - cost + 0.000_02)
        .await
        .unwrap();
    assert!(!over.allowed, "the miss was charged");
    let (room, _) = limiter
        .admit(alice_ip, 1.0 - cost - 0.000_02)
        .await
        .unwrap();
    assert!(room.allowed, "the hits were charged");
}

#[tokio::test]
async fn the_setting_decides_what_reaches_openrouter() {
    for (setting, asked, forwarded) in [
        ("on-request", &[][..], None),
        ("off", &[("x-openrouter-cache", "true")][..], None),
        ("always", &[][..], Some("true")),
        ("always", &[("x-openrouter-cache", "false")][..], None),
    ] {
        let (mock, gateway) =
            gateway_with_mock(&[("OPENROUTER_API_KEY", KEY), ("RESPONSE_CACHE", setting)])
                .await
                .unwrap();
        let response = ask(&reqwest::Client::new(), &gateway, asked).await;
        assert_eq!(response.status(), 200, "{setting}");
        let sent = mock.received().pop().unwrap();
        assert_eq!(
            sent.headers
                .get("x-openrouter-cache")
                .map(|v| v.to_str().unwrap()),
            forwarded,
            "{setting} {asked:?}"
        );
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(
            body.get("user").is_some(),
            forwarded.is_some(),
            "{setting}: {body}"
        );
        if forwarded.is_none() {
            assert_eq!(
                sent.body,
                serde_json::to_vec(&chat()).unwrap(),
                "{setting}: untouched"
            );
        }
    }
    let (_mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", KEY)])
        .await
        .unwrap();
    let response = ask(
        &reqwest::Client::new(),
        &gateway,
        &[("x-openrouter-cache-ttl", "999999")],
    )
    .await;
    assert_eq!(response.status(), 400);
    let refusal: Value = response.json().await.unwrap();
    assert_eq!(
        refusal["error"]["details"]["field"],
        "x-openrouter-cache-ttl"
    );
}
