//! What an answer cost, to settle its reservation (`docs/rate-limits.md`, "Reserve,
//! then settle"): `usage.cost` as OpenRouter reports it (USD); else its token counts
//! times the answering model's catalogue price (or, for a model the catalogue does not
//! list, such as a dated id, the price the request was reserved at); else, for an
//! answer cut short before OpenRouter reported usage, the whole input and one token
//! per relayed chunk at that price. Never zero for a priced model.

use serde_json::Value;

use super::price::Estimate;
use crate::catalog::ModelIndex;

/// The cost OpenRouter reported (`usage.cost`, USD), if it did.
pub fn reported(usage: Option<&Value>) -> Option<f64> {
    usage
        .and_then(|u| u.get("cost"))
        .and_then(Value::as_f64)
        .filter(|cost| cost.is_finite() && *cost >= 0.0)
}

/// The answer's cost in USD.
pub fn cost(
    usage: Option<&Value>,
    model: Option<&str>,
    chunks: u64,
    prices: Option<&ModelIndex>,
    estimate: &Estimate,
) -> f64 {
    if let Some(cost) = reported(usage) {
        return cost;
    }
    match tokens(usage) {
        (None, None) => estimate.cut_short(chunks),
        (prompt, completion) => {
            let listed = model.and_then(|m| prices?.prices(m));
            listed.unwrap_or(estimate.prices).cost(
                prompt.unwrap_or(estimate.input_tokens) as f64,
                completion.unwrap_or(chunks) as f64,
            )
        }
    }
}

/// The input and output tokens `usage` reports. Chat names them prompt and completion
/// tokens; Responses and Messages, input and output tokens.
pub fn tokens(usage: Option<&Value>) -> (Option<u64>, Option<u64>) {
    let count = |fields: [&str; 2]| -> Option<u64> {
        fields.iter().find_map(|field| usage?.get(*field)?.as_u64())
    };
    (
        count(["prompt_tokens", "input_tokens"]),
        count(["completion_tokens", "output_tokens"]),
    )
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
    use crate::catalog::Prices;
    use serde_json::json;

    fn prices() -> ModelIndex {
        let catalogue = json!({"data": [{"id": "openai/gpt-4o",
            "pricing": {"prompt": "0.0000025", "completion": "0.00001"}}]});
        ModelIndex::parse(catalogue.to_string().as_bytes()).unwrap()
    }

    const RESERVED_AT: Estimate = Estimate {
        prices: Prices {
            prompt: 150.0,
            completion: 600.0,
        },
        input_tokens: 2000,
        max_output: 4096,
    };

    #[test]
    fn openrouters_cost_wins_then_tokens_times_price_then_the_estimate() {
        let index = prices();
        let cost = |usage: Option<&Value>, model, chunks| {
            cost(usage, model, chunks, Some(&index), &RESERVED_AT)
        };
        let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100, "cost": 0.42});
        assert!((cost(Some(&usage), Some("openai/gpt-4o"), 0) - 0.42).abs() < 1e-12);
        let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100});
        let expected = 1000.0 * 0.0000025 + 100.0 * 0.00001;
        assert!((cost(Some(&usage), Some("openai/gpt-4o"), 0) - expected).abs() < 1e-12);
        // A dated id the catalogue does not list: the price it was reserved at.
        let dated = 1000.0 * 150e-6 + 100.0 * 600e-6;
        assert!((cost(Some(&usage), Some("openai/o1-pro-2025-03-19"), 0) - dated).abs() < 1e-9);
        // Cut short before usage: the input and one token per chunk, never zero.
        let cut = 2000.0 * 150e-6 + 50.0 * 600e-6;
        assert!((cost(None, None, 50) - cut).abs() < 1e-9);
        assert!(cost(None, None, 0) > 0.0);
    }

    #[test]
    fn a_completion_tells_its_usage_and_model() {
        let (usage, model) =
            of_completion(b"   \n{\"model\":\"m\",\"usage\":{\"cost\":0.1},\"choices\":[]}");
        assert_eq!(usage.unwrap()["cost"], 0.1);
        assert_eq!(model.as_deref(), Some("m"));
    }
}
