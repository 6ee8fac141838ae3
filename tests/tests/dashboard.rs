//! The template's alarms and dashboard against the metrics the code emits
//! (`docs/operations.md`, "Metrics, dashboard and alarms"): every metric they name in
//! the stack's own namespace is in `llm_proxy_shared::metrics::METRICS` (which
//! `local/tests/metrics.rs` shows the binary emitting), under dimensions it is
//! published with and values the code writes; every alarm notifies the topic; every
//! AWS metric names a resource of the stack.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::collections::BTreeSet;

use llm_proxy_shared::metrics::{self, METRICS, Posted, Refusal};
use llm_proxy_tests::template::{of_type, resources};
use serde_json::{Value, json};

/// What the dashboard's `${AWS::StackName}` becomes here.
const STACK: &str = "STACK";

/// Values the code gives each dimension, where they are few.
fn known_values(dimension: &str) -> Option<Vec<String>> {
    let words = |w: &[&str]| Some(w.iter().map(|s| (*s).to_owned()).collect());
    match dimension {
        metrics::STATUS_CLASS => words(&["1xx", "2xx", "3xx", "4xx", "5xx"]),
        metrics::KIND => words(&Refusal::ALL.map(Refusal::as_str)),
        metrics::OUTCOME => words(&Posted::ALL.map(Posted::as_str)),
        _ => None,
    }
}

/// Checks one metric of the stack's namespace: its name, its dimension set, and the
/// values of dimensions the code gives few values.
fn check_own(name: &str, dimensions: &[(String, String)], place: &str) {
    let (_, _, sets) = METRICS
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("{place} names {name}, which the code never emits"));
    let names: BTreeSet<&str> = dimensions.iter().map(|(d, _)| d.as_str()).collect();
    assert!(
        sets.iter()
            .any(|set| set.iter().copied().collect::<BTreeSet<_>>() == names),
        "{place}: {name} is not published under {names:?}"
    );
    // A SEARCH names no value (""): it shows every value written.
    for (dimension, value) in dimensions.iter().filter(|(_, v)| !v.is_empty()) {
        if let Some(values) = known_values(dimension) {
            assert!(
                values.contains(value),
                "{place}: {name} {dimension}={value} is never written"
            );
        }
    }
}

/// A metric's dimensions: (name, value).
type Dimensions = Vec<(String, String)>;

/// An alarm's metrics: (namespace, name, dimensions).
fn alarm_metrics(alarm: &Value) -> Vec<(Value, String, Dimensions)> {
    let dims = |list: &Value| -> Dimensions {
        list.as_array()
            .map(|list| {
                list.iter()
                    .map(|d| {
                        let value = match &d["Value"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (d["Name"].as_str().unwrap().to_owned(), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let properties = &alarm["Properties"];
    if let Some(name) = properties["MetricName"].as_str() {
        return vec![(
            properties["Namespace"].clone(),
            name.to_owned(),
            dims(&properties["Dimensions"]),
        )];
    }
    properties["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.get("MetricStat"))
        .map(|stat| {
            let metric = &stat["Metric"];
            (
                metric["Namespace"].clone(),
                metric["MetricName"].as_str().unwrap().to_owned(),
                dims(&metric["Dimensions"]),
            )
        })
        .collect()
}

#[test]
fn every_alarm_names_metrics_the_code_emits_and_notifies_the_topic() {
    let own = json!({"Ref": "AWS::StackName"});
    let alarms: Vec<_> = of_type("AWS::CloudWatch::Alarm").collect();
    let named: BTreeSet<&str> = alarms.iter().map(|(id, _)| id.as_str()).collect();
    for wanted in [
        "DaySpendAlarm",
        "ServerErrorAlarm",
        "RefusalAlarm",
        "ThrottleAlarm",
        "StoreFallbackAlarm",
    ] {
        assert!(named.contains(wanted), "no {wanted}: {named:?}");
    }
    for (id, alarm) in alarms {
        assert_eq!(
            alarm["Properties"]["AlarmActions"],
            json!([{"Ref": "AlarmTopic"}]),
            "{id}"
        );
        for (namespace, name, dimensions) in alarm_metrics(alarm) {
            if namespace == own {
                check_own(&name, &dimensions, id);
            } else {
                assert!(
                    namespace == "AWS/Lambda" || namespace == "AWS/ApiGateway",
                    "{id}: {namespace}"
                );
            }
        }
    }
    // The spend alarm watches the share of the day's budget, at the chosen share.
    let spend = &resources()["DaySpendAlarm"]["Properties"];
    assert_eq!(spend["MetricName"], metrics::DAY_BUDGET_USED);
    assert_eq!(spend["Threshold"], json!({"Ref": "SpendAlarmPercent"}));
    // A mail subscription only when an address is given.
    let subscription = &resources()["AlarmEmailSubscription"];
    assert_eq!(subscription["Condition"], "HasAlarmEmail");
    assert_eq!(
        subscription["Properties"]["Endpoint"],
        json!({"Ref": "AlarmEmail"})
    );
}

/// The dashboard's body, with `${AWS::StackName}` as [`STACK`] and every other
/// substitution as the name it substitutes.
fn dashboard() -> Value {
    let body = &resources()["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
    let text = body.as_str().expect("the body is one Fn::Sub string");
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 2..end];
        out.push_str(match name {
            "AWS::StackName" => STACK,
            "SpendAlarmPercent" => "80",
            other => other,
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `SEARCH('{"NS",Dim} MetricName="Name"', ...)`: the namespace, dimension and name.
fn searched(expression: &str) -> (String, Vec<String>, String) {
    let inside = expression
        .strip_prefix("SEARCH('{")
        .unwrap_or_else(|| panic!("{expression}"));
    let (keys, rest) = inside.split_once('}').unwrap();
    let mut keys = keys.split(',').map(|k| k.trim_matches('"').to_owned());
    let namespace = keys.next().unwrap();
    let name = rest
        .split_once("MetricName=\"")
        .and_then(|(_, after)| after.split_once('"'))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_else(|| panic!("{expression}"));
    (namespace, keys.collect(), name)
}

#[test]
fn the_dashboard_shows_every_metric_the_code_emits_and_nothing_else() {
    let body = dashboard();
    let resources = resources();
    let mut shown = BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        let title = widget["properties"]["title"].as_str().unwrap();
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            if let Some(expression) = row[0].get("expression") {
                let (namespace, dimensions, name) = searched(expression.as_str().unwrap());
                assert_eq!(namespace, STACK, "{title}");
                let dimensions: Dimensions =
                    dimensions.into_iter().map(|d| (d, String::new())).collect();
                check_own(&name, &dimensions, title);
                shown.insert(name);
                continue;
            }
            let strings: Vec<&str> = row.iter().filter_map(Value::as_str).collect();
            let (namespace, name) = (strings[0], strings[1]);
            let dimensions: Dimensions = strings[2..]
                .chunks(2)
                .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
                .collect();
            if namespace == STACK {
                check_own(name, &dimensions, title);
                shown.insert(name.to_owned());
            } else {
                // An AWS metric of one of the stack's own resources.
                for (dimension, value) in &dimensions {
                    let resource = value.strip_suffix("-api").unwrap_or(value);
                    assert!(
                        resource == STACK || resources.contains_key(resource),
                        "{title}: {namespace} {name} {dimension}={value} names nothing in the stack"
                    );
                }
            }
        }
    }
    let emitted: BTreeSet<String> = METRICS.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    assert_eq!(
        shown, emitted,
        "the dashboard shows every metric, once each"
    );
}

#[test]
fn every_function_writes_its_metrics_to_the_stacks_namespace() {
    for (id, function) in of_type("AWS::Lambda::Function") {
        let variables = &function["Properties"]["Environment"]["Variables"];
        assert_eq!(
            variables["METRICS_NAMESPACE"],
            json!({"Ref": "AWS::StackName"}),
            "{id}"
        );
        assert!(
            variables.get("METRICS").is_none_or(|m| m == "emf"),
            "{id}: metrics are on, by default on Lambda"
        );
    }
}
