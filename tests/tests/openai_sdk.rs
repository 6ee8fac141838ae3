//! The official OpenAI Python SDK with its base URL set to the proxy: a non-streamed
//! answer, a streamed answer assembled, streamed tool calls assembled into complete
//! arguments, and an upstream 429 as the SDK's RateLimitError — client code unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_tests::gateway::workspace_root;
use llm_proxy_tests::{Gateway, MockOpenRouter};

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_python_sdk_works_unchanged() {
    let python = workspace_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the OpenAI SDK is installed into .venv by scripts/test; run that"
    );
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let gateway = Gateway::start(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-sdk"),
        ("OPENROUTER_BASE_URL", &base),
    ])
    .await
    .unwrap();
    let script = workspace_root().join("tests/openai_sdk_check.py");
    let base_url = gateway.url("/api/v1");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(base_url)
            .env("NO_PROXY", "*")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("all OpenAI SDK checks passed"), "{stdout}");
    // The SDK's own key never goes upstream; the proxy's does.
    for request in mock.received() {
        assert_eq!(request.headers["authorization"], "Bearer sk-or-v1-sdk");
    }
}
