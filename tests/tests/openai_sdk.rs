//! The official OpenAI Python SDK with its base URL set to the proxy: a non-streamed
//! answer, a streamed answer assembled, streamed tool calls assembled into complete
//! arguments, and an upstream 429 as the SDK's RateLimitError — client code unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_tests::python::run_check;
use llm_proxy_tests::{Gateway, MockOpenRouter};

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_python_sdk_works_unchanged() {
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let gateway = Gateway::start(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-sdk"),
        ("OPENROUTER_BASE_URL", &base),
    ])
    .await
    .unwrap();
    run_check(
        "openai_sdk_check.py",
        vec![gateway.url("/api/v1")],
        "all OpenAI SDK checks passed",
    )
    .await;
    // The SDK's own key never goes upstream; the proxy's does.
    for request in mock.received() {
        assert_eq!(request.headers["authorization"], "Bearer sk-or-v1-sdk");
    }
}
