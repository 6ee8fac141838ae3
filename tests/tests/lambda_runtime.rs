//! The functions through the real Lambda runtime: `cargo lambda watch` runs the
//! binaries, `cargo lambda invoke` sends the REST API events kept in `events/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]
use llm_proxy_tests::lambda::{LambdaWatch, response_header};
use llm_proxy_tests::{MockOpenRouter, fixtures};
use serde_json::Value;

const KEY: &str = "sk-or-v1-lambda-test-key";

#[tokio::test(flavor = "multi_thread")]
async fn inference_and_health_answer_api_gateway_events() {
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let watch = LambdaWatch::start(&[
        ("OPENROUTER_API_KEY", KEY),
        ("OPENROUTER_BASE_URL", &base),
        ("ENVIRONMENT", "test"),
        // As template.yaml sets it: REST API paths arrive without the stage prefix.
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
    ])
    .unwrap();

    // invoke blocks on a child process; keep the runtime free to serve the mock.
    let health =
        tokio::task::block_in_place(|| watch.invoke("models", "health-rest.json")).unwrap();
    assert_eq!(health["statusCode"], 200, "{health}");
    let body: Value = serde_json::from_str(health["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["environment"], "test");
    assert_eq!(
        response_header(&health, "x-content-type-options").as_deref(),
        Some("nosniff")
    );

    let answer =
        tokio::task::block_in_place(|| watch.invoke("inference", "inference-rest.json")).unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(
        answer["body"].as_str().unwrap().as_bytes(),
        &fixtures::chat_completion()[..]
    );
    assert_eq!(
        response_header(&answer, "x-generation-id").as_deref(),
        Some(fixtures::CHAT_COMPLETION_ID)
    );
    let received = mock.received();
    assert_eq!(received.len(), 1);
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(sent["model"], "openai/gpt-4o");
    assert_eq!(
        received[0].headers["authorization"],
        format!("Bearer {KEY}")
    );

    let invalid =
        tokio::task::block_in_place(|| watch.invoke("inference", "inference-invalid-rest.json"))
            .unwrap();
    assert_eq!(invalid["statusCode"], 400, "{invalid}");
    let body: Value = serde_json::from_str(invalid["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "validation");
    assert_eq!(body["error"]["details"]["field"], "model");
    assert_eq!(
        mock.received().len(),
        1,
        "an invalid request costs no upstream call"
    );
}
