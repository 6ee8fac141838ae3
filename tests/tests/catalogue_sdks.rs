//! The official OpenRouter and OpenAI Python SDKs' model calls (`tests/catalogue_sdk_check.py`)
//! against the local gateway and the mock, client code unchanged but for the base URL:
//! on today's catalogue, and on one built from it with the fields an older OpenRouter
//! did not send removed. The expected figures are computed here from the catalogue the
//! mock serves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_tests::python::run_check;
use llm_proxy_tests::{Gateway, MockOpenRouter, fixtures};
use serde_json::{Value, json};

/// Fields OpenRouter's catalogue did not carry in early 2025.
const NEWER_FIELDS: [&str; 11] = [
    "canonical_slug",
    "hugging_face_id",
    "supported_parameters",
    "default_parameters",
    "supported_voices",
    "knowledge_cutoff",
    "expiration_date",
    "links",
    "reasoning",
    "benchmarks",
    "alias_target",
];

fn older(catalogue: &Value) -> Value {
    let mut models = catalogue["data"].as_array().unwrap().clone();
    for model in &mut models {
        let model = model.as_object_mut().unwrap();
        for field in NEWER_FIELDS {
            model.remove(field);
        }
        let architecture = model["architecture"].as_object_mut().unwrap();
        architecture.remove("input_modalities");
        architecture.remove("output_modalities");
    }
    json!({ "data": models })
}

/// What the SDKs must see of `catalogue`.
fn expected(catalogue: &Value) -> Value {
    let models = catalogue["data"].as_array().unwrap();
    let inputs = |m: &Value| -> Vec<String> {
        match m["architecture"]["input_modalities"].as_array() {
            Some(list) => list
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect(),
            None => m["architecture"]["modality"]
                .as_str()
                .and_then(|s| s.split_once("->"))
                .map(|(i, _)| i.split('+').map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    };
    json!({
        "total": models.len(),
        "first_100": models.iter().take(100).map(|m| m["id"].clone()).collect::<Vec<_>>(),
        "tools": models.iter().filter(|m| m["supported_parameters"].as_array()
            .is_some_and(|p| p.iter().any(|p| p == "tools"))).count(),
        "image_input": models.iter().filter(|m| inputs(m).iter().any(|i| i == "image")).count(),
    })
}

async fn run_sdks(catalogue: Value) {
    let mock = MockOpenRouter::start().await.unwrap();
    mock.set_models_body(catalogue.to_string().into());
    let base = mock.base_url();
    let gateway = Gateway::start(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-sdk"),
        ("OPENROUTER_BASE_URL", &base),
    ])
    .await
    .unwrap();
    run_check(
        "catalogue_sdk_check.py",
        vec![gateway.url("/api/v1"), expected(&catalogue).to_string()],
        "all catalogue SDK checks passed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdks_model_calls_work_on_todays_catalogue() {
    let catalogue: Value = serde_json::from_slice(&fixtures::models()).unwrap();
    run_sdks(catalogue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdks_model_calls_work_on_an_older_catalogue() {
    let catalogue: Value = serde_json::from_slice(&fixtures::models()).unwrap();
    let old = older(&catalogue);
    assert!(old["data"][0].get("supported_parameters").is_none());
    run_sdks(old).await;
}
