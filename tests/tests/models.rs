//! The model catalogue end to end: every /api/v1/models endpoint through the local
//! gateway, against the mock serving the real captured catalogue. Expectations are
//! computed from the fixture itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::Duration;

use llm_proxy_tests::{Gateway, MockOpenRouter, ModelsBehaviour, fixtures, gateway_with_mock};
use serde_json::{Value, json};

async fn setup(extra: &[(&str, &str)]) -> (MockOpenRouter, Gateway) {
    gateway_with_mock(extra).await.unwrap()
}

fn catalogue() -> Vec<Value> {
    let root: Value = serde_json::from_slice(&fixtures::models()).unwrap();
    root["data"].as_array().unwrap().clone()
}

async fn get(gateway: &Gateway, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::get(gateway.url(path)).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn text_matches(model: &Value, needle: &str) -> bool {
    ["id", "name", "description"].iter().any(|f| {
        model[f]
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains(needle))
    })
}

#[tokio::test]
async fn list_pages_through_the_whole_catalogue() {
    let (mock, gateway) = setup(&[]).await;
    let all = catalogue();
    let (status, headers, body) = get(&gateway, "/api/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["pagination"],
        json!({"total": all.len(), "limit": 50, "offset": 0, "hasMore": true})
    );
    assert_eq!(
        ids(&body),
        all.iter()
            .take(50)
            .map(|m| m["id"].as_str().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(headers["content-type"], "application/json");

    // Every field OpenRouter sent is kept, and is_moderated and max_completion_tokens
    // are lifted from top_provider.
    let first = &body["data"][0];
    for (key, value) in all[0].as_object().unwrap() {
        assert_eq!(&first[key], value, "field {key}");
    }
    assert_eq!(
        first["is_moderated"],
        all[0]["top_provider"]["is_moderated"]
    );
    assert_eq!(
        first["max_completion_tokens"],
        all[0]["top_provider"]["max_completion_tokens"]
    );

    // The last page, exactly; then past the end.
    let total = all.len();
    let (_, _, last) = get(
        &gateway,
        &format!("/api/v1/models?limit=3&offset={}", total - 3),
    )
    .await;
    assert_eq!(ids(&last).len(), 3);
    assert_eq!(last["pagination"]["hasMore"], false);
    assert_eq!(ids(&last)[2], all[total - 1]["id"].as_str().unwrap());
    let (_, _, past) = get(&gateway, &format!("/api/v1/models?offset={}", total + 10)).await;
    assert!(ids(&past).is_empty());
    assert_eq!(past["pagination"]["hasMore"], false);
    assert_eq!(past["pagination"]["total"], total);

    // The whole catalogue, image and audio models included, was asked for once.
    let fetches: Vec<_> = mock
        .received_all()
        .into_iter()
        .filter(|r| r.path == "/api/v1/models")
        .collect();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].query.as_deref(), Some("output_modalities=all"));
}

#[tokio::test]
async fn list_filters_by_provider_and_search() {
    let (_mock, gateway) = setup(&[]).await;
    let all = catalogue();
    let openai: Vec<&Value> = all
        .iter()
        .filter(|m| m["id"].as_str().unwrap().starts_with("openai/"))
        .collect();
    let (_, _, body) = get(&gateway, "/api/v1/models?provider=openai&limit=100").await;
    assert_eq!(body["pagination"]["total"], openai.len());
    assert!(ids(&body).iter().all(|id| id.starts_with("openai/")));

    let gpt: Vec<&Value> = all.iter().filter(|m| text_matches(m, "gpt")).collect();
    assert!(gpt.len() > 5, "the fixture has GPT models");
    let (_, _, body) = get(&gateway, "/api/v1/models?search=GPT&limit=5&offset=2").await;
    assert_eq!(
        body["pagination"],
        json!({"total": gpt.len(), "limit": 5, "offset": 2, "hasMore": gpt.len() > 7})
    );
    let expected: Vec<&str> = gpt
        .iter()
        .skip(2)
        .take(5)
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids(&body), expected);

    let both = openai.iter().filter(|m| text_matches(m, "gpt")).count();
    let (_, _, body) = get(&gateway, "/api/v1/models?provider=openai&search=gpt").await;
    assert_eq!(body["pagination"]["total"], both);

    let (_, _, body) = get(&gateway, "/api/v1/models?provider=nobody").await;
    assert_eq!(body["pagination"]["total"], 0);
}

#[tokio::test]
async fn top_search_and_providers() {
    let (_mock, gateway) = setup(&[]).await;
    let all = catalogue();

    let mut by_context: Vec<&Value> = all.iter().collect();
    by_context.sort_by(|a, b| {
        let len = |m: &Value| m["context_length"].as_u64().unwrap_or(0);
        len(b)
            .cmp(&len(a))
            .then_with(|| a["id"].as_str().cmp(&b["id"].as_str()))
    });
    let (_, _, top) = get(&gateway, "/api/v1/models/top").await;
    let expected: Vec<&str> = by_context
        .iter()
        .take(10)
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids(&top), expected);
    assert_eq!(
        top["data"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["context_length", "id", "name", "pricing"]
    );
    let (_, _, top) = get(&gateway, "/api/v1/models/top?limit=100").await;
    assert_eq!(ids(&top).len(), 100);

    let code: Vec<&Value> = all.iter().filter(|m| text_matches(m, "code")).collect();
    assert!(code.len() > 5);
    let (status, _, found) = get(&gateway, "/api/v1/models/search?q=CoDe&limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(found["total"], code.len());
    assert_eq!(found["query"], "CoDe");
    assert_eq!(
        ids(&found),
        code.iter()
            .take(5)
            .map(|m| m["id"].as_str().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(found["data"][0]["description"], code[0]["description"]);

    let mut providers: Vec<String> = all
        .iter()
        .map(|m| {
            m["id"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    providers.sort();
    providers.dedup();
    let (_, _, body) = get(&gateway, "/api/v1/models/providers").await;
    assert_eq!(body["data"], json!(providers));

    let (_, _, body) = get(&gateway, "/api/v1/models/providers/anthropic").await;
    assert_eq!(body["provider"], "anthropic");
    let anthropic = all
        .iter()
        .filter(|m| m["id"].as_str().unwrap().starts_with("anthropic/"))
        .count();
    assert_eq!(ids(&body).len(), anthropic);
    assert!(body["data"][0]["context_length"].is_u64());
}

#[tokio::test]
async fn one_model_by_id_with_colons_and_dots() {
    let (_mock, gateway) = setup(&[]).await;
    let all = catalogue();
    let with_colon = all
        .iter()
        .find(|m| m["id"].as_str().unwrap().contains(':'))
        .expect("a :variant id");
    let with_dot = all
        .iter()
        .find(|m| m["id"].as_str().unwrap().contains('.'))
        .expect("a dotted id");
    for model in [with_colon, with_dot] {
        let id = model["id"].as_str().unwrap();
        let (status, _, body) = get(&gateway, &format!("/api/v1/models/{id}")).await;
        assert_eq!(status, 200, "{id}");
        assert_eq!(body["data"]["id"], id);
        assert_eq!(body["data"]["architecture"], model["architecture"]);

        let (_, _, body) = get(&gateway, &format!("/api/v1/models/{id}/parameters")).await;
        assert_eq!(
            body["data"],
            json!({"model": id, "supported_parameters": model["supported_parameters"]})
        );
        let (_, _, body) = get(&gateway, &format!("/api/v1/models/{id}/pricing")).await;
        assert_eq!(
            body["data"],
            json!({"model": id, "pricing": model["pricing"]})
        );
    }
    // A client that encodes the slash reaches the same model.
    let id = with_dot["id"].as_str().unwrap();
    let (status, _, body) = get(
        &gateway,
        &format!("/api/v1/models/{}", id.replace('/', "%2F")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["id"], id);
}

#[tokio::test]
async fn unknown_things_are_404_and_bad_parameters_400() {
    let (_mock, gateway) = setup(&[]).await;
    for path in [
        "/api/v1/models/nobody/nothing",
        "/api/v1/models/nobody/nothing/pricing",
        "/api/v1/models/providers/nobody",
    ] {
        let (status, _, body) = get(&gateway, path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["type"], "not_found", "{path}");
    }
    for (path, field) in [
        ("/api/v1/models?limit=abc", "limit"),
        ("/api/v1/models?limit=0", "limit"),
        ("/api/v1/models?offset=-1", "offset"),
        ("/api/v1/models?offset=x", "offset"),
        ("/api/v1/models/search", "q"),
        ("/api/v1/models/search?q=", "q"),
        ("/api/v1/models/search?q=a&limit=0", "limit"),
    ] {
        let (status, _, body) = get(&gateway, path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"]["type"], "validation", "{path}");
        assert_eq!(body["error"]["details"]["field"], field, "{path}");
    }
}

#[tokio::test]
async fn etags_cache_control_and_compression() {
    let (_mock, gateway) = setup(&[]).await;
    let client = reqwest::Client::new();
    let first = client
        .get(gateway.url("/api/v1/models?limit=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].clone();
    let cache_control = first.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    let max_age: u64 = cache_control
        .split("max-age=")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&max_age), "{cache_control}");

    let again = client
        .get(gateway.url("/api/v1/models?limit=5"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());

    // Another answer has another tag.
    let other = client
        .get(gateway.url("/api/v1/models?limit=6"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    for encoding in ["gzip", "br"] {
        let response = client
            .get(gateway.url("/api/v1/models"))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-encoding"], encoding);
        let compressed = response.bytes().await.unwrap().len();
        let plain = client
            .get(gateway.url("/api/v1/models"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
        assert!(
            compressed * 3 < plain,
            "{encoding}: {compressed} vs {plain}"
        );
    }
}

#[tokio::test]
async fn concurrent_cold_requests_share_one_fetch() {
    let (mock, gateway) = setup(&[("MAX_CONCURRENT_REQUESTS_PER_CLIENT", "100")]).await;
    mock.set_models_behaviour(ModelsBehaviour::Hold);
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let request = client.get(gateway.url("/api/v1/models?limit=1"));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    assert!(
        mock.wait_for_models_fetches(1, Duration::from_secs(10))
            .await
    );
    mock.release_models(1);
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(mock.models_fetches(), 1);
}

#[tokio::test]
async fn stale_copies_are_served_while_one_refresh_runs() {
    // Every copy is stale a millisecond after it arrives.
    let (mock, gateway) = setup(&[("MODELS_CACHE_TTL_MS", "1")]).await;
    let (_, headers, _) = get(&gateway, "/api/v1/models/providers").await;
    assert_eq!(headers["x-models-cache"], "miss");

    // The refresh will hang until released; answers must not wait for it.
    mock.set_models_behaviour(ModelsBehaviour::Hold);
    let (status, headers, body) = get(&gateway, "/api/v1/models/providers").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-models-cache"], "stale");
    assert_eq!(headers["cache-control"], "public, max-age=0");
    assert!(!body["data"].as_array().unwrap().is_empty());
    assert!(
        mock.wait_for_models_fetches(2, Duration::from_secs(10))
            .await
    );
    for _ in 0..5 {
        let (status, headers, _) = get(&gateway, "/api/v1/models/providers").await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-models-cache"], "stale");
    }
    assert_eq!(mock.models_fetches(), 2, "one refresh at a time");
    mock.release_models(100);
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_the_copy_and_says_so() {
    let (mock, gateway) = setup(&[("MODELS_CACHE_TTL_MS", "1")]).await;
    let (_, _, before) = get(&gateway, "/api/v1/models/providers").await;
    mock.set_models_behaviour(ModelsBehaviour::Status(503));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, headers, body) = get(&gateway, "/api/v1/models/providers").await;
        assert_eq!(status, 200);
        assert_eq!(body, before);
        if headers["x-models-cache"] == "stale-if-error" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failed refresh was never reported"
        );
    }
    // A down upstream is not asked once per request.
    for _ in 0..5 {
        get(&gateway, "/api/v1/models/providers").await;
    }
    assert_eq!(mock.models_fetches(), 2);
}

#[tokio::test]
async fn with_no_copy_an_upstream_failure_is_an_error() {
    let (mock, gateway) = setup(&[("REQUEST_TIMEOUT", "300")]).await;
    mock.set_models_behaviour(ModelsBehaviour::Status(503));
    let (status, _, body) = get(&gateway, "/api/v1/models").await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "openrouter");
    assert_eq!(body["error"]["details"]["status"], 503);

    mock.set_models_behaviour(ModelsBehaviour::Hold);
    let (status, _, body) = get(&gateway, "/api/v1/models").await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["type"], "timeout");
    mock.release_models(100);
}

#[tokio::test]
async fn a_catalogue_missing_optional_fields_never_fails() {
    let (mock, gateway) = setup(&[]).await;
    let sparse = json!({"data": [
        {"id": "old/bare"},
        {"id": "old/nulls", "name": null, "description": null, "context_length": null, "pricing": null,
         "top_provider": null, "supported_parameters": null, "canonical_slug": null, "architecture": null},
        {"id": "old/partial", "name": "Partial", "top_provider": {"context_length": 8192}},
    ]});
    mock.set_models_body(sparse.to_string().into());
    for path in [
        "/api/v1/models",
        "/api/v1/models?search=part",
        "/api/v1/models/top",
        "/api/v1/models/search?q=old",
        "/api/v1/models/providers",
        "/api/v1/models/providers/old",
        "/api/v1/models/old/nulls",
        "/api/v1/models/old/bare/parameters",
        "/api/v1/models/old/partial/pricing",
    ] {
        let (status, _, body) = get(&gateway, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, _, body) = get(&gateway, "/api/v1/models/old/bare").await;
    assert_eq!(body["data"]["is_moderated"], false);
    assert_eq!(body["data"]["max_completion_tokens"], Value::Null);
    assert_eq!(body["data"]["supported_parameters"], serde_json::json!([]));
}

#[tokio::test]
async fn a_limit_over_the_maximum_is_clamped_and_links_lead_on() {
    let (_mock, gateway) = setup(&[]).await;
    let all = catalogue();
    let (status, _, first) = get(&gateway, "/api/v1/models?limit=500").await;
    assert_eq!(status, 200);
    assert_eq!(first["pagination"]["limit"], 100, "the limit used");
    assert_eq!(ids(&first).len(), 100);
    assert_eq!(first["total_count"], all.len());
    let next = first["links"]["next"].as_str().unwrap();
    assert!(next.starts_with(&gateway.url("/api/v1/models?")), "{next}");
    let second: Value = reqwest::get(next).await.unwrap().json().await.unwrap();
    assert_eq!(second["pagination"]["offset"], 100);
    assert_eq!(
        ids(&second)[0],
        all[100]["id"].as_str().unwrap(),
        "the next page starts where the first ended"
    );
    let (_, _, last) = get(
        &gateway,
        &format!("/api/v1/models?offset={}", all.len() - 1),
    )
    .await;
    assert_eq!(last["links"]["next"], Value::Null);
}

#[tokio::test]
async fn openrouters_filters_and_sorts_are_answered_from_the_catalogue() {
    let (_mock, gateway) = setup(&[]).await;
    let all = catalogue();
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let price = |m: &Value, field: &str| -> f64 {
        m["pricing"][field]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            * 1e6
    };
    // (query, what the fixture says admits a model)
    type Admits<'a> = Box<dyn Fn(&Value) -> bool + 'a>;
    let cases: Vec<(&str, Admits)> = vec![
        (
            "supported_parameters=tools",
            Box::new(|m| strings(&m["supported_parameters"]).contains(&"tools".to_owned())),
        ),
        (
            "supported_parameters=tools,response_format",
            Box::new(|m| {
                let p = strings(&m["supported_parameters"]);
                p.contains(&"tools".to_owned()) && p.contains(&"response_format".to_owned())
            }),
        ),
        (
            "input_modalities=image",
            Box::new(|m| {
                strings(&m["architecture"]["input_modalities"]).contains(&"image".to_owned())
            }),
        ),
        (
            "output_modalities=image",
            Box::new(|m| {
                strings(&m["architecture"]["output_modalities"]).contains(&"image".to_owned())
            }),
        ),
        (
            "context=200000",
            Box::new(|m| m["context_length"].as_u64().unwrap_or(0) >= 200_000),
        ),
        (
            "max_price=1",
            Box::new(|m| (0.0..=1.0).contains(&price(m, "prompt"))),
        ),
        (
            "model_authors=anthropic,google",
            Box::new(|m| {
                let id = m["id"].as_str().unwrap();
                id.starts_with("anthropic/") || id.starts_with("google/")
            }),
        ),
        ("q=flash", Box::new(|m| text_matches(m, "flash"))),
    ];
    for (query, admits) in cases {
        let expected: Vec<&str> = all
            .iter()
            .filter(|m| admits(m))
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "{query}: a filter that filters"
        );
        let (status, _, body) = get(&gateway, &format!("/api/v1/models?{query}&limit=100")).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(body["total_count"], expected.len(), "{query}");
        assert_eq!(
            ids(&body),
            expected.iter().take(100).copied().collect::<Vec<_>>(),
            "{query}"
        );
        let (_, _, count) = get(&gateway, &format!("/api/v1/models/count?{query}")).await;
        assert_eq!(count["data"]["count"], expected.len(), "{query}");
    }

    // Cheapest first (the average of prompt and completion price), as OpenRouter sorts.
    let (_, _, body) = get(
        &gateway,
        "/api/v1/models?sort=pricing-low-to-high&limit=100",
    )
    .await;
    let averages: Vec<f64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (price(m, "prompt") + price(m, "completion")) / 2.0)
        .filter(|p| *p >= 0.0)
        .collect();
    assert!(averages.windows(2).all(|w| w[0] <= w[1]), "{averages:?}");
    // A sort the catalogue cannot answer keeps OpenRouter's order; unknown parameters
    // are ignored.
    let (_, _, popular) = get(&gateway, "/api/v1/models?sort=most-popular&made_up=1").await;
    let (_, _, plain) = get(&gateway, "/api/v1/models").await;
    assert_eq!(ids(&popular), ids(&plain));
}

#[tokio::test]
async fn openrouters_single_model_and_endpoints_calls() {
    let (mock, gateway) = setup(&[]).await;
    let all = catalogue();
    let model = all.iter().find(|m| m["id"] == "openai/gpt-4o").unwrap();
    let (status, _, body) = get(&gateway, "/api/v1/model/openai/gpt-4o").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["id"], "openai/gpt-4o");
    assert_eq!(body["data"]["canonical_slug"], model["canonical_slug"]);

    // The model by id also carries OpenAI's model object at the top level.
    let (_, _, body) = get(&gateway, "/api/v1/models/openai/gpt-4o").await;
    assert_eq!(body["id"], "openai/gpt-4o");
    assert_eq!(body["object"], "model");
    assert_eq!(body["owned_by"], "openai");
    assert_eq!(body["created"], model["created"]);

    // Endpoints are OpenRouter's answer, relayed and cached.
    for _ in 0..2 {
        let (status, headers, body) = get(&gateway, "/api/v1/models/openai/gpt-4o/endpoints").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["id"], "openai/gpt-4o");
        assert!(
            body["data"]["endpoints"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        );
        assert!(headers.get("x-models-cache").is_some());
    }
    let relayed = mock
        .received_all()
        .iter()
        .filter(|r| r.path == "/api/v1/models/openai/gpt-4o/endpoints")
        .count();
    assert_eq!(relayed, 1, "the second answer came from the cache");
    let (status, _, _) = get(&gateway, "/api/v1/models/nobody/nothing/endpoints").await;
    assert_eq!(status, 404, "only models the catalogue lists are relayed");
    let (status, _, _) = get(&gateway, "/api/v1/model/nobody/nothing").await;
    assert_eq!(status, 404);
}
