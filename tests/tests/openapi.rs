//! The OpenAPI document (`docs/openapi.json`, served at `/api/v1/openapi.json`) held to
//! the code: it lists exactly the routes the functions mount, the served copy is the
//! committed one, and schemathesis (PyPI, installed into `.venv` by `scripts/test`)
//! finds no answer the document does not describe: no unlisted status, no body off its
//! schema, no 5xx, nothing valid refused and nothing invalid accepted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::collections::BTreeSet;

use llm_proxy_shared::routes::Route;
use llm_proxy_tests::{gateway::workspace_root, gateway_with_mock};
use serde_json::Value;

fn committed() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("docs/openapi.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `(method, axum path)` of every route the HTTP functions mount.
fn mounted() -> BTreeSet<(String, String)> {
    fn of<S>(routes: Vec<Route<S>>) -> Vec<(String, String)> {
        routes
            .into_iter()
            .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
            .collect()
    }
    let mut all = of(inference::routes());
    all.extend(of(models::routes()));
    all.extend(of(stream::routes()));
    all.into_iter().collect()
}

/// The axum route a documented path is served by: the greedy `{*id}` serves a model
/// id (`{author}/{slug}`) and its `/parameters`, `/pricing` and `/endpoints`.
fn served_by(path: &str) -> String {
    match path.strip_prefix("/api/v1/models/{author}/{slug}") {
        Some("" | "/parameters" | "/pricing" | "/endpoints") => "/api/v1/models/{*id}".to_owned(),
        _ => path.to_owned(),
    }
}

#[test]
fn the_document_lists_every_mounted_route_and_no_other() {
    let doc = committed();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), served_by(path)))
        })
        .collect();
    assert_eq!(documented, mounted());
}

#[test]
fn every_error_answer_has_the_error_shape() {
    let doc = committed();
    let responses = &doc["components"]["responses"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let statuses = op["responses"].as_object().unwrap();
            for status in ["429", "500"] {
                if path != "/health" || status == "500" {
                    assert!(statuses.contains_key(status), "{method} {path}: {status}");
                }
            }
            for (status, answer) in statuses {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let answer = match answer["$ref"].as_str() {
                    Some(r) => &responses[r.rsplit('/').next().unwrap()],
                    None => answer,
                };
                assert_eq!(
                    answer["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path}: {status}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_document_is_the_committed_one() {
    let (_mock, gateway) = gateway_with_mock(&[]).await.unwrap();
    let response = reqwest::get(gateway.url("/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{:?}",
        response.headers()
    );
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, committed());
}

/// Runs schemathesis against the document the gateway serves, in every phase: the
/// document's examples, coverage (each constraint's edges and the values just outside
/// them), fuzzing (valid and invalid inputs for every operation) and stateful (following
/// the document's links). Its report is the failure message.
async fn schemathesis(url: String) {
    let python = workspace_root().join(".venv/bin/python");
    assert!(
        workspace_root().join(".venv/bin/schemathesis").is_file(),
        "schemathesis is installed into .venv by scripts/test; run that"
    );
    let mut command = std::process::Command::new(python);
    command
        .arg(workspace_root().join("scripts/run_schemathesis.py"))
        .arg("run")
        .arg(url)
        .args([
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--seed",
            "20261129",
            "--no-color",
            "--suppress-health-check",
            "all",
            "--output-sanitize",
            "false",
            "--generation-database",
            "none",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .env("NO_PROXY", "*")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(std::env::temp_dir());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    // A phase that could not run is reported, not failed: each must say it passed.
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(report.contains(&format!("✅ {phase}")), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_answer_the_document_does_not_describe() {
    // Limits out of reach: a 429 is documented everywhere, and would stand in for the
    // answers under test.
    let (_mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-schemathesis"),
        ("RATE_LIMIT_MAX_REQUESTS", "1000000000"),
        ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "1000000000"),
        ("SPEND_LIMIT_USD", "0"),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0"),
    ])
    .await
    .unwrap();
    schemathesis(gateway.url("/api/v1/openapi.json")).await;
}
