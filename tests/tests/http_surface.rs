//! What every route shares: /health, CORS, security headers, JSON answers for unknown
//! routes and methods. (Start-up refusing bad settings is tested on the binary, in
//! `local/tests/`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_tests::Gateway;
use serde_json::Value;

#[tokio::test]
async fn health_has_the_documented_shape() {
    let gateway = Gateway::start(&[("OPENROUTER_API_KEY", "sk-or-v1-x")])
        .await
        .unwrap();
    let response = reqwest::get(gateway.url("/health")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["environment"], "test");
    assert!(body["uptime"].as_f64().is_some_and(|u| u >= 0.0), "{body}");
    // RFC 3339 with milliseconds, UTC: 2024-01-01T00:00:00.000Z
    let timestamp = body["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), 24, "{timestamp}");
    assert!(
        timestamp.ends_with('Z') && timestamp.as_bytes()[19] == b'.',
        "{timestamp}"
    );
    assert!(body.get("warnings").is_none());
}

#[tokio::test]
async fn security_headers_are_on_every_answer() {
    let gateway = Gateway::start(&[]).await.unwrap();
    for path in ["/health", "/no/such/path"] {
        let response = reqwest::get(gateway.url(path)).await.unwrap();
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{path}"
        );
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{path}"
        );
        // The rest of Helmet's default set.
        for (name, value) in [
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "cross-origin"),
            ("origin-agent-cluster", "?1"),
            ("x-dns-prefetch-control", "off"),
            ("x-download-options", "noopen"),
            ("x-permitted-cross-domain-policies", "none"),
            ("x-xss-protection", "0"),
        ] {
            assert_eq!(h[name], value, "{path}: {name}");
        }
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let gateway = Gateway::start(&[]).await.unwrap();
    let response = reqwest::get(gateway.url("/api/v1/nothing-here"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found");
    assert_eq!(body["error"]["code"], 404);

    let response = reqwest::get(gateway.url("/api/v1/inference"))
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 405);
    assert!(body["error"]["message"].as_str().unwrap().contains("GET"));

    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, gateway.url("/api/v1/inference"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test]
async fn cors_preflight_follows_cors_origins() {
    let gateway = Gateway::start(&[]).await.unwrap();
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str, url: String| {
        client
            .request(reqwest::Method::OPTIONS, url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-stainless-os",
            )
            .send()
    };
    let response = preflight("https://anywhere.example", gateway.url("/api/v1/inference"))
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains("x-stainless-os"), "{allowed}");
    assert!(
        response.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let gateway = Gateway::start(&[("CORS_ORIGINS", "https://app.example")])
        .await
        .unwrap();
    let ok = preflight("https://app.example", gateway.url("/api/v1/inference"))
        .await
        .unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = preflight("https://evil.example", gateway.url("/api/v1/inference"))
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // A simple cross-origin GET carries the header and exposes the rate-limit headers.
    let response = client
        .get(gateway.url("/health"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("x-ratelimit-remaining") && exposed.contains("retry-after"),
        "{exposed}"
    );
}
