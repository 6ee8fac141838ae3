//! CloudWatch metrics as the binary writes them (`docs/operations.md`, "Metrics"):
//! with `METRICS=emf`, every line that carries `_aws` is Embedded Metric Format as
//! CloudWatch's specification requires it, and every metric the code lists
//! (`llm_proxy_shared::metrics::METRICS`, which the template's dashboard and alarms are
//! held to) is emitted under its dimensions by what a user does: chat answers, a stream,
//! a refused body, a spent limit, a WebSocket exchange, a counter store that is down.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use llm_proxy_shared::metrics::METRICS;
use llm_proxy_tests::ws::WsClient;
use llm_proxy_tests::{GatewayProcess, MockOpenRouter, dynamo};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_local-gateway");
const NAMESPACE: &str = "llm-proxy-test";
const PROMPT: &str = "a prompt no metric may carry";

/// The units CloudWatch accepts (`MetricDefinition.Unit`).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks one line against the EMF specification's rules, and returns what it
/// publishes: (metric name, its dimension names) for each dimension set.
fn published(line: &Value) -> Vec<(String, Vec<String>)> {
    let root = line.as_object().expect("an EMF line is a JSON object");
    let aws = root["_aws"].as_object().expect("_aws is an object");
    assert!(
        aws["Timestamp"].is_u64(),
        "Timestamp is ms since the epoch: {line}"
    );
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    assert!(!directives.is_empty(), "{line}");
    let mut out = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().unwrap();
        assert!(!namespace.is_empty() && namespace.len() <= 255, "{line}");
        let sets = directive["Dimensions"].as_array().unwrap();
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{line}");
        for set in sets {
            let set = set.as_array().unwrap();
            assert!(set.len() <= 30, "{line}");
            for dimension in set {
                let value = root[dimension.as_str().unwrap()].as_str();
                assert!(
                    value.is_some_and(|v| !v.is_empty() && v.len() <= 1024),
                    "dimension {dimension} has no string member: {line}"
                );
            }
        }
        for metric in metrics {
            let name = metric["Name"].as_str().unwrap();
            assert!(!name.is_empty() && name.len() <= 255, "{line}");
            let value = &root[name];
            let numbers = match value {
                Value::Array(values) => values.len() <= 100 && values.iter().all(Value::is_number),
                other => other.is_number(),
            };
            assert!(numbers, "metric {name} has no numeric member: {line}");
            if let Some(unit) = metric.get("Unit") {
                assert!(UNITS.contains(&unit.as_str().unwrap()), "{line}");
            }
            for set in sets {
                let dimensions = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap().to_owned())
                    .collect();
                out.push((name.to_owned(), dimensions));
            }
        }
    }
    out
}

fn emf_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

fn with<'a>(lines: &'a [Value], metric: &str, member: &str, value: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| line.get(metric).is_some() && line[member] == value)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_listed_metric_is_emitted_as_the_emf_specification_requires() {
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    // A counter store nobody answers at: every call fails, and falls to memory.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = dynamo::sdk_env(&dead);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("METRICS", "emf"),
        ("METRICS_NAMESPACE", NAMESPACE),
        ("OPENROUTER_API_KEY", "sk-or-v1-metrics"),
        ("OPENROUTER_BASE_URL", &base),
        ("RATE_LIMIT_TABLE", "limits"),
        ("RATE_LIMIT_HASH_KEY", "metrics-test"),
        ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "4"),
    ]);
    let gateway = GatewayProcess::start(Path::new(BINARY), &vars).unwrap();
    let http = reqwest::Client::new();
    let chat = json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": PROMPT}]});
    let post = |body: Value| {
        http.post(gateway.url("/api/v1/chat/completions"))
            .json(&body)
            .send()
    };
    assert_eq!(post(chat.clone()).await.unwrap().status(), 200);
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let stream = post(streamed).await.unwrap();
    assert_eq!(stream.status(), 200);
    stream.bytes().await.unwrap();
    assert_eq!(post(json!({"messages": []})).await.unwrap().status(), 400);
    let mut ws = WsClient::connect(&gateway.ws_url()).await.unwrap();
    ws.send(&json!({"type": "inference_request", "id": "w", "data": chat}))
        .await
        .unwrap();
    ws.until_final("w", Duration::from_secs(10), &mut Vec::new())
        .await;
    // The fifth inference (the refused body counted too) of a limit of four.
    assert_eq!(post(chat.clone()).await.unwrap().status(), 429);

    // Three answers (JSON, stream, WebSocket) each write their tokens and cost when
    // they end, which for a stream is just after its last byte went out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = emf_lines(&gateway.output());
        if lines.iter().filter(|l| l.get("Cost").is_some()).count() >= 3 {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "three answers' metrics never came:\n{}",
            gateway.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let mut emitted = BTreeSet::new();
    for line in &lines {
        assert!(!line.to_string().contains(PROMPT), "{line}");
        for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], NAMESPACE);
        }
        emitted.extend(published(line));
    }
    for (name, _, sets) in METRICS {
        for set in *sets {
            let set: Vec<String> = set.iter().map(|d| (*d).to_owned()).collect();
            assert!(
                emitted.contains(&((*name).to_owned(), set.clone())),
                "{name} {set:?} was never emitted: {emitted:?}"
            );
        }
    }

    let route = "/api/v1/chat/completions";
    let requests = with(&lines, "Requests", "Route", route);
    let classes: Vec<&str> = requests
        .iter()
        .map(|l| l["StatusClass"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["2xx", "2xx", "4xx", "4xx"], "{requests:?}");
    let kinds: Vec<&str> = lines
        .iter()
        .filter(|l| l.get("Refusals").is_some())
        .map(|l| l["Kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["validation", "rate_limit"]);
    let answers = with(&lines, "Cost", "Model", "openai/gpt-4o");
    assert_eq!(answers.len(), 3, "{answers:?}");
    for answer in answers {
        assert!(answer["Cost"].as_f64().unwrap() > 0.0, "{answer}");
        assert!(answer["InputTokens"].as_u64().unwrap() > 0, "{answer}");
        assert!(answer["OutputTokens"].as_u64().unwrap() > 0, "{answer}");
    }
    let used = lines
        .iter()
        .filter_map(|l| l.get("DayBudgetUsed").and_then(Value::as_f64))
        .next_back()
        .unwrap();
    assert!(used > 0.0 && used <= 100.0, "{used}");
    assert!(!with(&lines, "WebSocketPosts", "Outcome", "delivered").is_empty());
}
