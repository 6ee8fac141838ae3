//! Keys out of plain sight (`docs/deployment.md`, "Secrets"): with
//! `OPENROUTER_API_KEY_SECRET` and `RATE_LIMIT_HASH_KEY_SECRET` the proxy reads both keys
//! from Secrets Manager (moto's, on 127.0.0.1) when it starts; a new value reaches the
//! next container with nothing redeployed, while running ones keep theirs; a secret that
//! cannot be read stops start-up naming the variable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_tests::dynamo::{self, DynamoServer};
use llm_proxy_tests::gateway::GatewayError;
use llm_proxy_tests::{Gateway, MockOpenRouter, client_at};
use serde_json::json;

const TABLE: &str = "llm-proxy-rate-limits";

async fn chat(client: &reqwest::Client, gateway: &Gateway) -> u16 {
    let body = json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}]});
    client
        .post(gateway.url("/api/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The key the mock OpenRouter was last called with.
fn last_key(mock: &MockOpenRouter) -> String {
    let received = mock.received();
    received.last().unwrap().headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_from_secrets_manager_and_a_new_value_reaches_new_containers() {
    let server = DynamoServer::start().unwrap();
    let env = dynamo::table_env(&server, TABLE).await.unwrap();
    let secrets = dynamo::secrets_client(&server.endpoint);
    let api_key = dynamo::create_secret(&secrets, "llm-proxy/openrouter", "sk-or-v1-first")
        .await
        .unwrap();
    let hash_key = dynamo::create_secret(&secrets, "llm-proxy/hash", "a-hash-key-nobody-typed")
        .await
        .unwrap();
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", server.endpoint.as_str()),
        ("OPENROUTER_BASE_URL", base.as_str()),
        ("OPENROUTER_API_KEY_SECRET", api_key.as_str()),
        ("RATE_LIMIT_HASH_KEY_SECRET", hash_key.as_str()),
        ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "2"),
    ]);

    let first = Gateway::start(&vars).await.unwrap();
    let client = client_at("127.0.8.1");
    assert_eq!(chat(&client, &first).await, 200);
    assert_eq!(last_key(&mock), "Bearer sk-or-v1-first");

    // The key is rotated in Secrets Manager; the next container reads the new one.
    secrets
        .put_secret_value()
        .secret_id(&api_key)
        .secret_string("sk-or-v1-second")
        .send()
        .await
        .unwrap();
    let second = Gateway::start(&vars).await.unwrap();
    assert_eq!(chat(&client, &second).await, 200);
    assert_eq!(last_key(&mock), "Bearer sk-or-v1-second");
    // Both hashed the client with the secret's key: one counter, now spent.
    assert_eq!(chat(&client, &first).await, 429);
    // A running container keeps the key it started with.
    assert_eq!(chat(&client_at("127.0.8.2"), &first).await, 200);
    assert_eq!(last_key(&mock), "Bearer sk-or-v1-first");

    let items = dynamo::client(&server.endpoint)
        .await
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let counted: Vec<&String> = items
        .items()
        .iter()
        .filter_map(|item| item["pk"].as_s().ok())
        .filter(|pk| pk.starts_with("http#"))
        .collect();
    assert_eq!(counted.len(), 2, "two clients' counters: {counted:?}");

    // A secret that is not there stops start-up, naming the variable that named it.
    let mut missing = vars.clone();
    missing.push(("OPENROUTER_API_KEY_SECRET", "llm-proxy/nowhere"));
    match Gateway::start(&missing).await {
        Err(error @ GatewayError::Secret(_)) => {
            let message = error.to_string();
            assert!(message.contains("OPENROUTER_API_KEY_SECRET"), "{message}");
            assert!(message.contains("llm-proxy/nowhere"), "{message}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("started without its key"),
    }
}

#[tokio::test]
async fn a_key_given_both_plain_and_as_a_secret_is_refused() {
    for (plain, secret) in [
        ("OPENROUTER_API_KEY", "OPENROUTER_API_KEY_SECRET"),
        ("RATE_LIMIT_HASH_KEY", "RATE_LIMIT_HASH_KEY_SECRET"),
    ] {
        match Gateway::start(&[(plain, "a"), (secret, "b")]).await {
            Err(GatewayError::Config(error)) => {
                let message = error.to_string();
                assert!(message.contains(secret), "{message}");
                assert!(message.contains(plain), "{message}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("{plain} and {secret} both accepted"),
        }
    }
}
