//! CloudWatch metrics in Embedded Metric Format (`docs/operations.md`, "Metrics"): one
//! JSON line on stdout per fact, which CloudWatch Logs turns into metrics with no API
//! call (a chat request writes two lines: ~11 µs of CPU, BENCHMARKS.md). `METRICS=emf` (the default on Lambda) writes them;
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

use crate::config::MetricsConfig;

/// The models one process publishes by name.
pub const MODELS_KEPT: usize = 50;

/// Every metric the code emits, with its unit and the dimension sets it is published
/// under (an empty set: the total). The binary emits every one (`local/tests/metrics.rs`)
/// and the template's dashboard and alarms name only these (`tests/tests/dashboard.rs`).
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
    pub const ALL: [Self; 4] = [
        Self::RateLimit,
        Self::SpendBudget,
        Self::Validation,
        Self::OverCapacity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::SpendBudget => "spend_budget",
            Self::Validation => "validation",
            Self::OverCapacity => "over_capacity",
        }
    }
}

/// What became of a post to a WebSocket connection, as the `Outcome` of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Delivered,
    Gone,
    Throttled,
    Failed,
}

impl Posted {
    pub const ALL: [Self; 4] = [Self::Delivered, Self::Gone, Self::Throttled, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Gone => "gone",
            Self::Throttled => "throttled",
            Self::Failed => "failed",
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

/// A member of a metric line: a dimension's value or a metric's.
#[derive(Debug, Clone, Copy)]
pub enum Member<'a> {
    Text(&'a str),
    Number(f64),
}

/// One answered HTTP request: its route (the matched template, never the path asked
/// for), status class and time, and what refused it, if anything did.
pub fn request(route: &str, status: u16, latency_ms: f64, refused: Option<Refusal>) {
    let Some(emitter) = emitter() else { return };
    const CLASSES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];
    let class = CLASSES
        .get(usize::from(status / 100))
        .copied()
        .unwrap_or("0xx");
    // The last two members only when the request was refused.
    let members = [
        (ROUTE, Member::Text(route)),
        (STATUS_CLASS, Member::Text(class)),
        (REQUESTS, Member::Number(1.0)),
        (LATENCY, Member::Number(latency_ms)),
        (KIND, Member::Text(refused.map_or("", Refusal::as_str))),
        (REFUSALS, Member::Number(1.0)),
    ];
    match refused {
        None => emitter.write(&[REQUESTS, LATENCY], &members[..4]),
        Some(_) => emitter.write(&[REQUESTS, LATENCY, REFUSALS], &members),
    }
}

/// A refusal outside an HTTP answer (a WebSocket message).
pub fn refused(refusal: Refusal) {
    let Some(emitter) = emitter() else { return };
    let members = [
        (KIND, Member::Text(refusal.as_str())),
        (REFUSALS, Member::Number(1.0)),
    ];
    emitter.write(&[REFUSALS], &members);
}

/// How long OpenRouter took to start an answer that reports nothing else (audio).
pub fn upstream(operation: &str, latency_ms: f64) {
    let Some(emitter) = emitter() else { return };
    let members = [
        (OPERATION, Member::Text(operation)),
        (UPSTREAM_LATENCY, Member::Number(latency_ms)),
    ];
    emitter.write(&[UPSTREAM_LATENCY], &members);
}

/// What one answer reports of itself.
pub struct Answered<'a> {
    pub operation: &'a str,
    /// How long OpenRouter took to start answering.
    pub upstream_ms: f64,
    /// The model that answered, as OpenRouter named it.
    pub model: Option<&'a str>,
    /// Tokens, when OpenRouter reported them.
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cost_usd: f64,
}

/// One answer: OpenRouter's time to start it, its tokens and its cost, in one line.
pub fn answer(answer: Answered<'_>) {
    let Some(emitter) = emitter() else { return };
    let model = emitter.model(answer.model.unwrap_or("unknown"));
    let mut members = Vec::with_capacity(6);
    let mut metrics = Vec::with_capacity(4);
    members.push((OPERATION, Member::Text(answer.operation)));
    members.push((UPSTREAM_LATENCY, Member::Number(answer.upstream_ms)));
    members.push((MODEL, Member::Text(model)));
    metrics.push(UPSTREAM_LATENCY);
    for (name, value) in [(INPUT_TOKENS, answer.input), (OUTPUT_TOKENS, answer.output)] {
        if let Some(value) = value {
            members.push((name, Member::Number(value as f64)));
            metrics.push(name);
        }
    }
    members.push((COST, Member::Number(answer.cost_usd)));
    metrics.push(COST);
    emitter.write(&metrics, &members);
}

/// The share of the day's budget leased so far, in percent.
pub fn day_budget_used(percent: f64) {
    let Some(emitter) = emitter() else { return };
    emitter.write(
        &[DAY_BUDGET_USED],
        &[(DAY_BUDGET_USED, Member::Number(percent))],
    );
}

/// A counter-store call that failed and fell to `RATE_LIMIT_FAIL_MODE`.
pub fn store_fallback() {
    let Some(emitter) = emitter() else { return };
    emitter.write(
        &[STORE_FALLBACKS],
        &[(STORE_FALLBACKS, Member::Number(1.0))],
    );
}

/// One post to a WebSocket connection, and what became of it.
pub fn websocket_post(outcome: Posted) {
    let Some(emitter) = emitter() else { return };
    let members = [
        (OUTCOME, Member::Text(outcome.as_str())),
        (WEBSOCKET_POSTS, Member::Number(1.0)),
    ];
    emitter.write(&[WEBSOCKET_POSTS], &members);
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

    fn write(&self, metrics: &[&str], members: &[(&str, Member<'_>)]) {
        let mut line = line(&self.namespace, now_ms(), metrics, members);
        line.push('\n');
        // One write of one whole line: CloudWatch reads EMF line by line, and a locked
        // stdout keeps other writers' lines from landing inside it.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// A directive being gathered: its dimension sets, and its metrics' (name, unit).
type Directive<'a> = (
    &'static [&'static [&'static str]],
    Vec<(&'a str, &'static str)>,
);

/// The EMF object as one JSON line: the members (dimension values and metric values),
/// then `_aws` with one directive per dimension set the metrics share. Written by hand:
/// it is on every request's path, and a `serde_json::Value` of it cost more than the
/// rest of the request's metrics.
pub fn line(
    namespace: &str,
    timestamp_ms: u64,
    metrics: &[&str],
    members: &[(&str, Member<'_>)],
) -> String {
    let mut out = String::with_capacity(512);
    out.push('{');
    for (name, value) in members {
        push_text(&mut out, name);
        out.push(':');
        match value {
            Member::Text(text) => push_text(&mut out, text),
            Member::Number(number) => push_number(&mut out, *number),
        }
        out.push(',');
    }
    out.push_str("\"_aws\":{\"Timestamp\":");
    out.push_str(&timestamp_ms.to_string());
    out.push_str(",\"CloudWatchMetrics\":");
    // Metrics published under the same dimension sets share a directive.
    let mut directives: Vec<Directive<'_>> = Vec::with_capacity(3);
    for name in metrics {
        let Some((_, unit, dimensions)) = METRICS.iter().find(|(n, _, _)| n == name) else {
            continue;
        };
        match directives.iter_mut().find(|(d, _)| d == dimensions) {
            Some((_, definitions)) => definitions.push((name, unit)),
            None => directives.push((dimensions, vec![(name, unit)])),
        }
    }
    push_list(&mut out, &directives, |out, (dimensions, definitions)| {
        out.push_str("{\"Namespace\":");
        push_text(out, namespace);
        out.push_str(",\"Dimensions\":");
        push_list(out, dimensions, |out, set| {
            push_list(out, set, |out, dimension| push_text(out, dimension));
        });
        out.push_str(",\"Metrics\":");
        push_list(out, definitions, |out, (name, unit)| {
            out.push_str("{\"Name\":");
            push_text(out, name);
            out.push_str(",\"Unit\":");
            push_text(out, unit);
            out.push('}');
        });
        out.push('}');
    });
    out.push_str("}}");
    out
}

/// `items` as a JSON array, each written by `each`.
fn push_list<T>(out: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push(']');
}

/// `text` as a JSON string.
fn push_text(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `number` as JSON (which has no NaN or infinity: those are written as 0).
fn push_number(out: &mut String, number: f64) {
    if number.is_finite() {
        out.push_str(&number.to_string());
    } else {
        out.push('0');
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metrics_sharing_dimensions_share_a_directive_and_each_names_its_members() {
        let members = [
            (MODEL, Member::Text("openai/gpt-4o \"quoted\"\n")),
            (INPUT_TOKENS, Member::Number(12.0)),
            (COST, Member::Number(0.25)),
        ];
        let text = line(
            "llm-proxy",
            1_800_000_000_000,
            &[INPUT_TOKENS, COST],
            &members,
        );
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_800_000_000_000u64);
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "{line}");
        assert_eq!(directives[0]["Namespace"], "llm-proxy");
        assert_eq!(directives[0]["Dimensions"], json!([["Model"], []]));
        assert_eq!(
            directives[0]["Metrics"],
            json!([{"Name": "InputTokens", "Unit": "Count"}, {"Name": "Cost", "Unit": "None"}])
        );
        assert_eq!(line["Model"], "openai/gpt-4o \"quoted\"\n");
        assert_eq!(line["InputTokens"], 12.0);
        assert_eq!(line["Cost"], 0.25);
    }

    #[test]
    fn metrics_under_other_dimensions_get_a_directive_each_and_numbers_stay_json() {
        let members = [
            (ROUTE, Member::Text("/api/v1/chat/completions")),
            (STATUS_CLASS, Member::Text("2xx")),
            (REQUESTS, Member::Number(1.0)),
            (LATENCY, Member::Number(f64::NAN)),
        ];
        let text = line("ns", 1, &[REQUESTS, LATENCY], &members);
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 2, "{line}");
        assert_eq!(
            directives[0]["Dimensions"],
            json!([["Route"], ["StatusClass"]])
        );
        assert_eq!(directives[1]["Dimensions"], json!([["Route"]]));
        assert_eq!(line["Latency"], 0);
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
