//! What an answer cost, for the spend budgets (`docs/rate-limits.md`, "Spend"):
//! `usage.cost` as OpenRouter reports it (USD), else the token counts times the
//! model's catalogue price, else, for a stream cut before OpenRouter reported usage,
//! one completion token per relayed chunk at that price.

use serde_json::Value;

use crate::catalog::ModelIndex;

/// The cost OpenRouter reported (`usage.cost`, USD), if it did.
pub fn reported(usage: Option<&Value>) -> Option<f64> {
    usage
        .and_then(|u| u.get("cost"))
        .and_then(Value::as_f64)
        .filter(|cost| cost.is_finite() && *cost >= 0.0)
}

/// The answer's cost in USD; 0 when nothing tells it.
pub fn cost(
    usage: Option<&Value>,
    model: Option<&str>,
    chunks: u64,
    prices: Option<&ModelIndex>,
) -> f64 {
    if let Some(cost) = reported(usage) {
        return cost;
    }
    let price = |field: &str| -> f64 {
        model
            .and_then(|m| prices?.get(m))
            .and_then(|m| m.pricing.get(field))
            .and_then(|p| match p {
                Value::String(s) => s.parse().ok(),
                other => other.as_f64(),
            })
            .filter(|p: &f64| p.is_finite() && *p >= 0.0)
            .unwrap_or(0.0)
    };
    let tokens = |field: &str| -> Option<f64> {
        usage
            .and_then(|u| u.get(field))
            .and_then(Value::as_u64)
            .map(|n| n as f64)
    };
    match (tokens("prompt_tokens"), tokens("completion_tokens")) {
        (None, None) => chunks as f64 * price("completion"),
        (prompt, completion) => {
            prompt.unwrap_or(0.0) * price("prompt")
                + completion.unwrap_or(0.0) * price("completion")
        }
    }
}

/// What a non-streamed answer says of itself: its usage and model.
pub fn of_completion(body: &[u8]) -> (Option<Value>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Completion {
        #[serde(default)]
        usage: Option<Value>,
        #[serde(default)]
        model: Option<String>,
    }
    match serde_json::from_slice::<Completion>(body.trim_ascii()) {
        Ok(completion) => (completion.usage, completion.model),
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prices() -> ModelIndex {
        let catalogue = json!({"data": [{"id": "openai/gpt-4o",
            "pricing": {"prompt": "0.0000025", "completion": "0.00001"}}]});
        ModelIndex::parse(catalogue.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn openrouters_cost_wins_then_tokens_times_price_then_chunks() {
        let index = prices();
        let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100, "cost": 0.42});
        assert!((cost(Some(&usage), Some("openai/gpt-4o"), 0, Some(&index)) - 0.42).abs() < 1e-12);
        let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100});
        let expected = 1000.0 * 0.0000025 + 100.0 * 0.00001;
        assert!(
            (cost(Some(&usage), Some("openai/gpt-4o"), 0, Some(&index)) - expected).abs() < 1e-12
        );
        assert!(
            (cost(None, Some("openai/gpt-4o"), 50, Some(&index)) - 50.0 * 0.00001).abs() < 1e-12
        );
        assert_eq!(
            cost(Some(&usage), Some("unlisted/model"), 0, Some(&index)),
            0.0
        );
        assert_eq!(cost(None, None, 10, None), 0.0);
    }

    #[test]
    fn a_completion_tells_its_usage_and_model() {
        let (usage, model) =
            of_completion(b"   \n{\"model\":\"m\",\"usage\":{\"cost\":0.1},\"choices\":[]}");
        assert_eq!(usage.unwrap()["cost"], 0.1);
        assert_eq!(model.as_deref(), Some("m"));
    }
}
