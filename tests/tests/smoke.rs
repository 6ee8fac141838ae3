//! `scripts/smoke`, the check an operator runs against a fresh deployment, run here
//! against the local gateway so it cannot rot: every check passes against a working
//! gateway, and a gateway without its key fails the checks it should.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_tests::gateway::workspace_root;
use llm_proxy_tests::{Gateway, gateway_with_mock};

const CHECKS: [&str; 8] = [
    "health",
    "chat",
    "rate headers",
    "stream",
    "catalogue",
    "websocket",
    "cors",
    "error shape",
];

/// Runs the smoke test against `gateway`: its exit code and what it printed.
async fn smoke(gateway: &Gateway) -> (Option<i32>, String) {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    assert!(python.is_file(), "scripts/test installs .venv; run that");
    let args = [
        root.join("scripts/smoke.py").display().to_string(),
        gateway.url(""),
        gateway.ws_url(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(args)
            .env("NO_PROXY", "*")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

fn line<'a>(output: &'a str, check: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.get(5..).is_some_and(|rest| rest.starts_with(check)))
        .unwrap_or_else(|| panic!("no line for {check}:\n{output}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_check_passes_against_a_working_gateway() {
    let (_mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", "sk-or-v1-smoke")])
        .await
        .unwrap();
    let (code, output) = smoke(&gateway).await;
    assert_eq!(code, Some(0), "{output}");
    for check in CHECKS {
        assert!(line(&output, check).starts_with("ok "), "{output}");
    }
    assert!(
        line(&output, "stream").contains("first byte"),
        "the stream's first byte time is printed: {output}"
    );
    assert!(output.contains("smoke: 8 of 8 checks passed"), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_without_its_key_fails_health_and_inference() {
    // The mock still serves the catalogue: no traffic leaves loopback.
    let (_mock, gateway) = gateway_with_mock(&[]).await.unwrap();
    let (code, output) = smoke(&gateway).await;
    assert_ne!(code, Some(0), "{output}");
    for check in ["health", "chat", "rate headers", "stream", "websocket"] {
        assert!(
            line(&output, check).starts_with("FAIL"),
            "{check}:\n{output}"
        );
    }
    for check in ["catalogue", "cors", "error shape"] {
        assert!(
            line(&output, check).starts_with("ok "),
            "{check}:\n{output}"
        );
    }
}
