//! What a request may cost before it is sent (`docs/rate-limits.md`, "Reserve, then
//! settle"): its input estimated from the body's size, its output at the most it may
//! ask for, at the catalogue's price of the dearest model it names (the model and every
//! fallback). A model the catalogue does not price is priced at `UNPRICED_MODEL_PRICES`,
//! else the catalogue's median, else [`NO_CATALOGUE`]: never at zero.

use super::operation::InputKind;
use crate::catalog::{ModelIndex, Prices};
use crate::config::GuardConfig;
use crate::error::ApiError;

/// Bytes of request body per input token, rounded down: English runs about four
/// characters a token and code about three, and JSON adds bytes of its own, so this
/// overestimates nearly every prompt (a reservation must not fall short).
pub const BYTES_PER_TOKEN: u64 = 3;

/// Prices when there is no catalogue to take a median from (USD per million tokens).
pub const NO_CATALOGUE: Prices = Prices {
    prompt: 5.0,
    completion: 15.0,
};

/// Bytes of encoded audio per input token, rounded down: transcription models bill
/// about 10 to 25 tokens a second of speech, and compressed speech runs 2 to 16 KB a
/// second (wav 32 KB), so this overestimates all but the most compressed audio.
pub const AUDIO_BYTES_PER_TOKEN: u64 = 64;

/// Input tokens a body of `bytes` may carry, at most about.
pub fn input_tokens(bytes: usize, kind: InputKind) -> u64 {
    let per_token = match kind {
        InputKind::Text => BYTES_PER_TOKEN,
        InputKind::Audio => AUDIO_BYTES_PER_TOKEN,
    };
    (bytes as u64).div_ceil(per_token)
}

/// What the proxy knows of a request's cost before the answer.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    pub prices: Prices,
    pub input_tokens: u64,
    /// Output tokens at most (`max_tokens` times `n`).
    pub max_output: u64,
}

impl Estimate {
    /// Prices `models` (the model, then its fallbacks): the dearest of them.
    pub fn new<'a>(
        models: impl IntoIterator<Item = &'a str>,
        input_tokens: u64,
        max_output: u64,
        index: Option<&ModelIndex>,
        guard: &GuardConfig,
    ) -> Self {
        let unpriced = guard
            .unpriced_prices
            .map(|(prompt, completion)| Prices { prompt, completion })
            .or_else(|| index.and_then(ModelIndex::median_prices))
            .unwrap_or(NO_CATALOGUE);
        let prices = models
            .into_iter()
            .map(|model| index.and_then(|i| i.prices(model)).unwrap_or(unpriced))
            .reduce(Prices::max)
            .unwrap_or(unpriced);
        Self {
            prices,
            input_tokens,
            max_output,
        }
    }

    /// The most the request can cost, in USD.
    pub fn worst_case(&self) -> f64 {
        self.prices
            .cost(self.input_tokens as f64, self.max_output as f64)
    }

    /// What an answer cut short after `output_tokens` costs: the whole input, and the
    /// output so far.
    pub fn cut_short(&self, output_tokens: u64) -> f64 {
        self.prices
            .cost(self.input_tokens as f64, output_tokens as f64)
    }

    /// `MAX_REQUEST_COST_USD`: a worst case above it is refused before anything is
    /// sent, naming what to lower (`output_field`, or the input, `input_field`).
    pub fn check_ceiling(
        &self,
        guard: &GuardConfig,
        output_field: &str,
        input_field: &str,
    ) -> Result<(), ApiError> {
        let ceiling = guard.max_request_cost_usd;
        if ceiling <= 0.0 || self.worst_case() <= ceiling {
            return Ok(());
        }
        let input = self.cut_short(0);
        let per_token = self.prices.completion / 1e6;
        let affordable = if per_token > 0.0 {
            ((ceiling - input) / per_token).floor()
        } else {
            0.0
        };
        if input >= ceiling || affordable < 1.0 || output_field == input_field {
            return Err(ApiError::validation(
                input_field,
                format!(
                    "This request's input alone may cost ${input:.4} at this model's price; \
                     at most ${ceiling} per request is accepted on this proxy: send less, or use a cheaper model"
                ),
            ));
        }
        Err(ApiError::validation(
            output_field,
            format!(
                "This request may cost up to ${:.4}; at most ${ceiling} per request is accepted \
                 on this proxy: ask for at most {} output tokens (set {output_field}), or use a cheaper model",
                self.worst_case(),
                affordable as u64
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn guard(vars: &[(&str, &str)]) -> GuardConfig {
        Config::from_pairs(vars).unwrap().guard
    }

    fn index() -> ModelIndex {
        let catalogue = serde_json::json!({"data": [
            {"id": "openai/o1-pro", "pricing": {"prompt": "0.00015", "completion": "0.0006"}},
            {"id": "openai/gpt-4o", "pricing": {"prompt": "0.0000025", "completion": "0.00001"}},
            {"id": "cheap/a", "pricing": {"prompt": "0.0000001", "completion": "0.0000002"}},
            {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
        ]});
        ModelIndex::parse(catalogue.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_dearest_model_prices_the_request_and_variants_dated_ids_and_aliases_are_priced() {
        let index = index();
        let g = guard(&[]);
        let estimate =
            |models: &[&str]| Estimate::new(models.iter().copied(), 1000, 100, Some(&index), &g);
        let o1 = estimate(&["openai/o1-pro"]).prices;
        assert!((o1.prompt - 150.0).abs() < 1e-9);
        assert_eq!(estimate(&["cheap/a", "openai/o1-pro"]).prices, o1);
        for variant in [
            "openai/o1-pro:nitro",
            "~openai/o1-pro",
            "openai/o1-pro-2025-03-19",
        ] {
            assert_eq!(estimate(&[variant]).prices, o1, "{variant}");
        }
        // Unpriced: the median of the positive prices (gpt-4o's here), never zero.
        let median = estimate(&["openrouter/auto"]).prices;
        assert!((median.prompt - 2.5).abs() < 1e-9, "{median:?}");
        assert!(estimate(&["unknown/model"]).prices.completion > 0.0);
        let configured = Estimate::new(
            ["x/y"],
            0,
            0,
            Some(&index),
            &guard(&[("UNPRICED_MODEL_PRICES", "7,21")]),
        );
        assert!((configured.prices.completion - 21.0).abs() < 1e-9);
        assert_eq!(Estimate::new(["x/y"], 0, 0, None, &g).prices, NO_CATALOGUE);
    }

    #[test]
    fn the_ceiling_names_what_to_lower() {
        let index = index();
        let g = guard(&[]);
        let field = |input: u64, output: u64| match Estimate::new(
            ["openai/o1-pro"],
            input,
            output,
            Some(&index),
            &g,
        )
        .check_ceiling(&g, "max_tokens", "messages")
        {
            Ok(()) => "ok".to_owned(),
            Err(ApiError::Validation { field, message, .. }) => format!("{field}: {message}"),
            Err(other) => panic!("{other:?}"),
        };
        assert_eq!(field(100, 100), "ok");
        let output = field(100, 4096);
        assert!(
            output.starts_with("max_tokens: ") && output.contains("at most 391 output tokens"),
            "{output}"
        );
        assert!(field(80_000, 1).starts_with("messages: "));
    }
}
