//! CloudWatch metrics in Embedded Metric Format (`docs/operations.md`, "Metrics"): one
//! JSON line on stdout per fact, which CloudWatch Logs turns into metrics with no API
//! call and no extra latency. `METRICS=emf` (the default on Lambda) writes them;
//! `off` (the default locally) writes nothing.
//!
//! Every metric is published under few dimensions, since CloudWatch bills each
//! combination as one metric: `Route` and `StatusClass` for requests, `Operation` for
//! OpenRouter's latency, `Model` (and the total) for tokens and cost, `Kind` for
//! refusals, `Outcome` for WebSocket posts. A process names at most [`MODELS_KEPT`]
//! models; later ones are published as `other`, so a client cycling through the
//! catalogue cannot make a container create hundreds of metrics.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde_json::{Map, Value, json};

use crate::config::MetricsConfig;

/// The models one process publishes by name.
pub const MODELS_KEPT: usize = 50;

/// Every metric the code emits, with its unit and the dimension sets it is published
/// under (an empty set: the total). The template's dashboard and alarms name only these
/// (`tests/tests/metrics.rs` checks both).
pub const METRICS: &[(&str, &str, &[&[&str]])] = &[
    (REQUESTS, "Count", &[&[ROUTE], &[STATUS_CLASS]]),
    (LATENCY, "Milliseconds", &[&[ROUTE]]),
    (UPSTREAM_LATENCY, "Milliseconds", &[&[OPERATION]]),
    (INPUT_TOKENS, "Count", &[&[MODEL], &[]]),
    (OUTPUT_TOKENS, "Count", &[&[MODEL], &[]]),
    (COST, "None", &[&[MODEL], &[]]),
    (REFUSALS, "Count", &[&[KIND]]),
    (DAY_BUDGET_USED, "Percent", &[&[]]),
    (STORE_FALLBACKS, "Count", &[&[]]),
    (WEBSOCKET_POSTS, "Count", &[&[OUTCOME]]),
];

pub const REQUESTS: &str = "Requests";
pub const LATENCY: &str = "Latency";
pub const UPSTREAM_LATENCY: &str = "UpstreamLatency";
pub const INPUT_TOKENS: &str = "InputTokens";
pub const OUTPUT_TOKENS: &str = "OutputTokens";
pub const COST: &str = "Cost";
pub const REFUSALS: &str = "Refusals";
pub const DAY_BUDGET_USED: &str = "DayBudgetUsed";
pub const STORE_FALLBACKS: &str = "StoreFallbacks";
pub const WEBSOCKET_POSTS: &str = "WebSocketPosts";

pub const ROUTE: &str = "Route";
pub const STATUS_CLASS: &str = "StatusClass";
pub const OPERATION: &str = "Operation";
pub const MODEL: &str = "Model";
pub const KIND: &str = "Kind";
pub const OUTCOME: &str = "Outcome";

/// Why a request was refused, as the `Kind` of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RateLimit,
    SpendBudget,
    Validation,
    OverCapacity,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::SpendBudget => "spend_budget",
            Self::Validation => "validation",
            Self::OverCapacity => "over_capacity",
        }
    }
}

struct Emitter {
    namespace: String,
    models: Mutex<HashSet<String>>,
}

static EMITTER: OnceLock<Option<Emitter>> = OnceLock::new();

/// Turns metrics on or off for this process; the first call decides.
pub fn init(config: &MetricsConfig) {
    let _ = EMITTER.get_or_init(|| {
        config.emf.then(|| Emitter {
            namespace: config.namespace.clone(),
            models: Mutex::new(HashSet::new()),
        })
    });
}

fn emitter() -> Option<&'static Emitter> {
    EMITTER.get().and_then(Option::as_ref)
}

/// Whether this process writes metrics (what they need may then be worked out).
pub fn enabled() -> bool {
    emitter().is_some()
}

/// One answered HTTP request: its route (the matched template, never the path asked
/// for), status class and time, and what refused it, if anything did.
pub fn request(route: &str, status: u16, latency_ms: f64, refused: Option<Refusal>) {
    let Some(emitter) = emitter() else { return };
    let mut members = Map::new();
    members.insert(ROUTE.into(), route.into());
    members.insert(STATUS_CLASS.into(), format!("{}xx", status / 100).into());
    members.insert(REQUESTS.into(), 1.into());
    members.insert(LATENCY.into(), json!(latency_ms));
    let mut emitted = vec![REQUESTS, LATENCY];
    if let Some(refusal) = refused {
        members.insert(KIND.into(), refusal.as_str().into());
        members.insert(REFUSALS.into(), 1.into());
        emitted.push(REFUSALS);
    }
    emitter.write(&emitted, members);
}

/// A refusal outside an HTTP answer (a WebSocket message).
pub fn refused(refusal: Refusal) {
    let Some(emitter) = emitter() else { return };
    let mut members = Map::new();
    members.insert(KIND.into(), refusal.as_str().into());
    members.insert(REFUSALS.into(), 1.into());
    emitter.write(&[REFUSALS], members);
}

/// How long OpenRouter took to start answering an operation.
pub fn upstream(operation: &str, latency_ms: f64) {
    let Some(emitter) = emitter() else { return };
    let mut members = Map::new();
    members.insert(OPERATION.into(), operation.into());
    members.insert(UPSTREAM_LATENCY.into(), json!(latency_ms));
    emitter.write(&[UPSTREAM_LATENCY], members);
}

/// One answer's tokens (when OpenRouter reported them) and cost in USD.
pub fn answer(model: Option<&str>, input: Option<u64>, output: Option<u64>, cost_usd: f64) {
    let Some(emitter) = emitter() else { return };
    let mut members = Map::new();
    members.insert(
        MODEL.into(),
        emitter.model(model.unwrap_or("unknown")).into(),
    );
    let mut emitted = Vec::with_capacity(3);
    for (name, value) in [(INPUT_TOKENS, input), (OUTPUT_TOKENS, output)] {
        if let Some(value) = value {
            members.insert(name.into(), value.into());
            emitted.push(name);
        }
    }
    members.insert(COST.into(), json!(cost_usd));
    emitted.push(COST);
    emitter.write(&emitted, members);
}

/// The share of the day's budget leased so far, in percent.
pub fn day_budget_used(percent: f64) {
    let Some(emitter) = emitter() else { return };
    let mut members = Map::new();
    members.insert(DAY_BUDGET_USED.into(), json!(percent));
    emitter.write(&[DAY_BUDGET_USED], members);
}

/// A counter-store call that failed and fell to `RATE_LIMIT_FAIL_MODE`.
pub fn store_fallback() {
    let Some(emitter) = emitter() else { return };
    let mut members = Map::new();
    members.insert(STORE_FALLBACKS.into(), 1.into());
    emitter.write(&[STORE_FALLBACKS], members);
}

/// One post to a WebSocket connection: `delivered`, `gone`, `throttled` or `failed`.
pub fn websocket_post(outcome: &'static str) {
    let Some(emitter) = emitter() else { return };
    let mut members = Map::new();
    members.insert(OUTCOME.into(), outcome.into());
    members.insert(WEBSOCKET_POSTS.into(), 1.into());
    emitter.write(&[WEBSOCKET_POSTS], members);
}

impl Emitter {
    /// `model` when this process has named fewer than [`MODELS_KEPT`] others.
    fn model<'a>(&self, model: &'a str) -> &'a str {
        let mut kept = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.contains(model) {
            return model;
        }
        if kept.len() < MODELS_KEPT {
            kept.insert(model.to_owned());
            return model;
        }
        "other"
    }

    fn write(&self, metrics: &[&str], members: Map<String, Value>) {
        let mut line = line(&self.namespace, now_ms(), metrics, members).to_string();
        line.push('\n');
        // One write of one whole line: CloudWatch reads EMF line by line, and a locked
        // stdout keeps other writers' lines from landing inside it.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// The EMF object: `_aws` with one directive per dimension set the metrics share, and
/// the members (dimension values and metric values) beside it.
pub fn line(
    namespace: &str,
    timestamp_ms: u64,
    metrics: &[&str],
    mut members: Map<String, Value>,
) -> Value {
    // Metrics published under the same dimension sets share a directive.
    let mut directives: Vec<(&[&[&str]], Vec<Value>)> = Vec::new();
    for name in metrics {
        let Some((_, unit, dimensions)) = METRICS.iter().find(|(n, _, _)| n == name) else {
            continue;
        };
        let definition = json!({"Name": name, "Unit": unit});
        match directives.iter_mut().find(|(d, _)| d == dimensions) {
            Some((_, definitions)) => definitions.push(definition),
            None => directives.push((dimensions, vec![definition])),
        }
    }
    let directives: Vec<Value> = directives
        .into_iter()
        .map(|(dimensions, definitions)| {
            json!({"Namespace": namespace, "Dimensions": dimensions, "Metrics": definitions})
        })
        .collect();
    members.insert(
        "_aws".into(),
        json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
    );
    Value::Object(members)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_sharing_dimensions_share_a_directive_and_each_names_its_members() {
        let mut members = Map::new();
        members.insert(MODEL.into(), "openai/gpt-4o".into());
        members.insert(INPUT_TOKENS.into(), 12.into());
        members.insert(COST.into(), json!(0.25));
        let line = line(
            "llm-proxy",
            1_800_000_000_000,
            &[INPUT_TOKENS, COST],
            members,
        );
        assert_eq!(line["_aws"]["Timestamp"], 1_800_000_000_000u64);
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "{line}");
        assert_eq!(directives[0]["Namespace"], "llm-proxy");
        assert_eq!(directives[0]["Dimensions"], json!([["Model"], []]));
        assert_eq!(
            directives[0]["Metrics"],
            json!([{"Name": "InputTokens", "Unit": "Count"}, {"Name": "Cost", "Unit": "None"}])
        );
        assert_eq!(line["Model"], "openai/gpt-4o");
    }

    #[test]
    fn a_process_names_a_bounded_number_of_models() {
        let emitter = Emitter {
            namespace: "llm-proxy".into(),
            models: Mutex::new(HashSet::new()),
        };
        let names: Vec<String> = (0..MODELS_KEPT + 5).map(|n| format!("m/{n}")).collect();
        let published: Vec<&str> = names.iter().map(|n| emitter.model(n)).collect();
        assert_eq!(&published[..MODELS_KEPT], &names[..MODELS_KEPT]);
        assert!(published[MODELS_KEPT..].iter().all(|m| *m == "other"));
        // One already named keeps its name.
        assert_eq!(emitter.model("m/0"), "m/0");
    }
}
