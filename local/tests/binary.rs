//! The `local-gateway` binary as a user runs it: what only a process shows. Start-up
//! refusing bad settings, settings read from `.env`, and logs that never hold the key,
//! a prompt or a client address (`docs/configuration.md`). Everything else is tested
//! in-process, in `tests/tests/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use llm_proxy_tests::dynamo::{self, DynamoServer};
use llm_proxy_tests::ws::tungstenite::Message;
use llm_proxy_tests::ws::{WsClient, content as ws_content};
use llm_proxy_tests::{GatewayProcess, MockOpenRouter};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_local-gateway");
const KEY: &str = "sk-or-v1-binary-test-key-5f3a9c";

fn binary() -> &'static Path {
    Path::new(BINARY)
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    // (variable set, its value, the variable the message must name, what it expects)
    for (name, value, named, expected) in [
        (
            "REQUEST_TIMEOUT",
            "abc",
            "REQUEST_TIMEOUT=\"abc\"",
            "milliseconds",
        ),
        (
            "LOG_LEVEL",
            "loud",
            "LOG_LEVEL=\"loud\"",
            "debug, info, warn, error",
        ),
        (
            "RATE_LIMIT_TABLE",
            "limits",
            "RATE_LIMIT_HASH_KEY",
            "required when RATE_LIMIT_TABLE is set",
        ),
    ] {
        let (code, output) =
            GatewayProcess::run_expecting_exit(binary(), &[(name, value)]).unwrap();
        assert_eq!(code, Some(2), "{name}: {output}");
        assert!(output.contains(named), "{name}: {output}");
        assert!(output.contains(expected), "{name}: {output}");
        assert!(!output.contains("listening"), "{name}: {output}");
    }
}

/// A folder of its own under the system's temporary folder, removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("llm-proxy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn settings_come_from_a_dot_env_file_and_the_environment_wins() {
    let mock = MockOpenRouter::start().await.unwrap();
    let folder = Folder::new("dotenv");
    std::fs::write(
        folder.0.join(".env"),
        format!(
            "# as .env.example writes them\nOPENROUTER_API_KEY={KEY}\nOPENROUTER_BASE_URL={}\n\
             ENVIRONMENT=production\nRATE_LIMIT_MAX_REQUESTS=\n",
            mock.base_url()
        ),
    )
    .unwrap();
    // ENVIRONMENT=test comes from the environment, which a .env never overrides.
    let gateway = GatewayProcess::start_in(binary(), &folder.0, &[]).unwrap();

    let health: Value = reqwest::get(gateway.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["status"], "healthy",
        "the key came from .env: {health}"
    );
    assert_eq!(health["environment"], "test");

    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/inference"))
        .json(&json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // An empty value is unset: the default limit applies.
    assert_eq!(response.headers()["x-ratelimit-limit"], "50");
    let received = mock.received();
    assert_eq!(received.len(), 1, "the base URL came from .env");
    assert_eq!(
        received[0].headers["authorization"],
        format!("Bearer {KEY}")
    );
}

/// A client whose address is 127.0.0.2: every 127/8 address is loopback on Linux, and
/// this one appears nowhere else (the gateway, the mock and DynamoDB are on 127.0.0.1),
/// so finding it in a log can only mean the client's address was logged.
fn client_at(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_hold_the_key_a_prompt_an_answer_or_a_client_address() {
    const CLIENT: &str = "127.0.0.2";
    static MEGA_MODEL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("mega/{}", "m".repeat(1024 * 1024)));
    const PROMPT: &str = "my secret prompt 7d1e0b";
    const WS_PROMPT: &str = "my secret websocket prompt 93c4aa";
    const WS_JUNK: &str = "unparseable websocket junk 5f02e1";
    let server = DynamoServer::start().unwrap();
    let env = dynamo::table_env(&server, "llm-proxy-rate-limits")
        .await
        .unwrap();

    // Both log formats: text on a terminal (`test`), JSON lines in `production`.
    for environment in ["test", "production"] {
        let mock = MockOpenRouter::start().await.unwrap();
        let base = mock.base_url();
        // A hash key of its own per run, so each run has counters of its own.
        let hash_key = format!("log-test-{environment}");
        let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.extend([
            ("OPENROUTER_API_KEY", KEY),
            ("OPENROUTER_BASE_URL", &base),
            ("ENVIRONMENT", environment),
            ("LOG_LEVEL", "debug"),
            ("RATE_LIMIT_HASH_KEY", &hash_key),
            // Seven chat requests and one over WebSocket; the ninth is over the limit.
            ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "8"),
            ("MODEL_DENYLIST", "mega/*"),
        ]);
        let gateway = GatewayProcess::start(binary(), &vars).unwrap();
        let client = client_at(CLIENT);
        let mut answers = String::new();

        // Over WebSocket: an inference, and a message that is not JSON at all.
        let ws_url = gateway.ws_url();
        let mut ws = WsClient::connect_from(&ws_url, CLIENT.parse().unwrap())
            .await
            .unwrap();
        ws.send(&json!({"type": "inference_request", "id": "w1", "data": {
            "model": "openai/gpt-4o", "messages": [{"role": "user", "content": WS_PROMPT}]}}))
            .await
            .unwrap();
        let replies = ws
            .until_final("w1", Duration::from_secs(10), &mut Vec::new())
            .await;
        assert!(
            ws_content(&replies).contains("websocket prompt"),
            "the WebSocket answer came back: {replies:?}"
        );
        ws.send_raw(Message::text(WS_JUNK)).await.unwrap();
        assert_eq!(ws.message(Duration::from_secs(10)).await["type"], "error");
        for (model, stream) in [
            ("openai/gpt-4o", false),
            ("openai/gpt-4o", true),
            // A model name of a megabyte: refused, and quoted short.
            (MEGA_MODEL.as_str(), false),
            ("mock/status-401", false),
            ("mock/status-500", false),
            ("mock/reset", false),
            ("mock/stream-error", true),
            // Over the inference limit: a 429.
            ("openai/gpt-4o", false),
        ] {
            let body = json!({"model": model, "stream": stream,
                              "messages": [{"role": "user", "content": PROMPT}]});
            let response = client
                .post(gateway.url("/api/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            answers.push_str(&response.text().await.unwrap());
        }
        assert!(
            answers.contains("You said: my secret prompt"),
            "the answers did come back: {answers}"
        );
        assert!(answers.contains("rate_limit"), "{answers}");

        let logs = gateway.output();
        assert!(
            logs.contains("request"),
            "{environment}: the gateway logs requests: {logs}"
        );
        if environment == "production" {
            let json_lines = logs.lines().filter(|l| l.starts_with('{')).count();
            assert!(json_lines >= 7, "{environment}: JSON log lines: {logs}");
        }
        for (what, secret) in [
            ("the key", KEY),
            ("the prompt", PROMPT),
            ("the WebSocket prompt", WS_PROMPT),
            ("the WebSocket message", WS_JUNK),
            ("the answer", "You said"),
            ("the client address", CLIENT),
            ("a megabyte of model name", &MEGA_MODEL[..1000]),
        ] {
            assert!(
                !logs.contains(secret),
                "{environment}: {what} in the logs:\n{logs}"
            );
        }
    }
}
