//! `ModelQuery`: the filters and sorts of OpenRouter's `GET /models` that the
//! catalogue's own data can answer (`docs/http-api.md`, "Model catalogue"), applied to
//! the in-memory index.

use std::cmp::Ordering;

use super::index::ModelIndex;
use super::model::Model;

/// What a list request asks for. Empty lists and `None` mean "no filter".
#[derive(Debug, Clone, Default)]
pub struct ModelQuery {
    /// Model authors (the part of the id before `/`): `provider`, `model_authors`,
    /// `providers`.
    pub authors: Vec<String>,
    /// Case-insensitive text in the id, name or description: `search`, `q`.
    pub search: Option<String>,
    /// Every one of these must be supported.
    pub supported_parameters: Vec<String>,
    /// Every one of these must be an input modality.
    pub input_modalities: Vec<String>,
    /// At least one of these must be an output modality.
    pub output_modalities: Vec<String>,
    pub min_context: Option<u64>,
    /// Prompt price bounds, USD per million tokens.
    pub prompt_price: Range,
    /// Completion price bounds, USD per million tokens.
    pub completion_price: Range,
    /// Age bounds in days since the model's creation.
    pub age_days: Range,
    /// The model family (`architecture.tokenizer`), e.g. `GPT`, `Claude`.
    pub arch: Option<String>,
    pub intelligence_index: Range,
    pub coding_index: Range,
    pub agentic_index: Range,
    pub sort: Sort,
}

/// Inclusive bounds; either may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Range {
    /// Whether `value` is within; a bound set and no value to compare is a miss.
    fn admits(&self, value: Option<f64>) -> bool {
        if self.min.is_none() && self.max.is_none() {
            return true;
        }
        value.is_some_and(|v| self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// OpenRouter's own order (newest first).
    #[default]
    Catalogue,
    PriceLowToHigh,
    PriceHighToLow,
    ContextHighToLow,
    Newest,
    IntelligenceHighToLow,
    CodingHighToLow,
    AgenticHighToLow,
    ArenaEloHighToLow,
}

impl Sort {
    /// OpenRouter's name for a sort the catalogue can answer; `None` for one it
    /// cannot (throughput, latency, popularity), which keeps the catalogue's order.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "pricing-low-to-high" => Self::PriceLowToHigh,
            "pricing-high-to-low" => Self::PriceHighToLow,
            "context-high-to-low" => Self::ContextHighToLow,
            "newest" => Self::Newest,
            "intelligence-high-to-low" => Self::IntelligenceHighToLow,
            "coding-high-to-low" => Self::CodingHighToLow,
            "agentic-high-to-low" => Self::AgenticHighToLow,
            "design-arena-elo-high-to-low" => Self::ArenaEloHighToLow,
            _ => return None,
        })
    }
}

const DAY_SECS: f64 = 86_400.0;

impl ModelQuery {
    fn admits(&self, model: &Model, now_secs: u64) -> bool {
        let facts = &model.facts;
        let has_all = |have: &[String], wanted: &[String]| wanted.iter().all(|w| have.contains(w));
        (self.authors.is_empty() || self.authors.iter().any(|a| a == model.provider()))
            && self.search.as_deref().is_none_or(|s| model.matches(s))
            && has_all(&facts.supported_parameters, &self.supported_parameters)
            && has_all(&facts.input_modalities, &self.input_modalities)
            && (self.output_modalities.is_empty()
                || self
                    .output_modalities
                    .iter()
                    .any(|m| facts.output_modalities.contains(m)))
            && self.min_context.is_none_or(|min| facts.context >= min)
            && self.prompt_price.admits(facts.prompt_price)
            && self.completion_price.admits(facts.completion_price)
            && self.age_days.admits(
                (model.created > 0)
                    .then(|| now_secs.saturating_sub(model.created) as f64 / DAY_SECS),
            )
            && self
                .arch
                .as_deref()
                .is_none_or(|arch| facts.tokenizer.as_deref() == Some(arch))
            && self.intelligence_index.admits(facts.intelligence_index)
            && self.coding_index.admits(facts.coding_index)
            && self.agentic_index.admits(facts.agentic_index)
    }
}

impl ModelIndex {
    /// The models `query` asks for, in its order (`now_secs` for ages).
    pub fn select(&self, query: &ModelQuery, now_secs: u64) -> Vec<&Model> {
        let mut models: Vec<&Model> = self.all().filter(|m| query.admits(m, now_secs)).collect();
        let key: Option<fn(&Model) -> Option<f64>> = match query.sort {
            Sort::Catalogue => None,
            Sort::PriceLowToHigh => Some(|m| average_price(m).map(|p| -p)),
            Sort::PriceHighToLow => Some(average_price),
            Sort::ContextHighToLow => Some(|m| Some(m.facts.context as f64)),
            Sort::Newest => Some(|m| (m.created > 0).then_some(m.created as f64)),
            Sort::IntelligenceHighToLow => Some(|m| m.facts.intelligence_index),
            Sort::CodingHighToLow => Some(|m| m.facts.coding_index),
            Sort::AgenticHighToLow => Some(|m| m.facts.agentic_index),
            Sort::ArenaEloHighToLow => Some(|m| m.facts.arena_elo),
        };
        if let Some(key) = key {
            // Highest first; models without a value last; the sort is stable, so ties
            // keep the catalogue's order.
            models.sort_by(|a, b| match (key(a), key(b)) {
                (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            });
        }
        models
    }
}

/// The average of prompt and completion price, as OpenRouter sorts by price.
fn average_price(model: &Model) -> Option<f64> {
    Some((model.facts.prompt_price? + model.facts.completion_price?) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index() -> ModelIndex {
        let data = json!([
            {"id": "openai/cheap", "created": 1000, "context_length": 8000,
             "architecture": {"modality": "text->text", "tokenizer": "GPT"},
             "pricing": {"prompt": "0.000001", "completion": "0.000002"},
             "supported_parameters": ["tools", "temperature"]},
            {"id": "openai/dear", "created": 3000, "context_length": 128000,
             "architecture": {"modality": "text+image->text+image", "tokenizer": "GPT"},
             "pricing": {"prompt": "0.00001", "completion": "0.00003"},
             "supported_parameters": ["temperature"],
             "benchmarks": {"artificial_analysis": {"intelligence_index": 70}}},
            {"id": "anthropic/mid", "created": 2000, "context_length": 200000,
             "architecture": {"modality": "text+image->text", "tokenizer": "Claude"},
             "pricing": {"prompt": "0.000003", "completion": "0.000015"},
             "supported_parameters": ["tools"],
             "benchmarks": {"artificial_analysis": {"intelligence_index": 60}}},
        ]);
        ModelIndex::parse(json!({ "data": data }).to_string().as_bytes()).unwrap()
    }

    fn ids(index: &ModelIndex, query: ModelQuery) -> Vec<String> {
        index
            .select(&query, 3000 + 86_400)
            .into_iter()
            .map(|m| m.id.clone())
            .collect()
    }

    #[test]
    fn filters_combine() {
        let index = index();
        let q = |f: fn(&mut ModelQuery)| {
            let mut query = ModelQuery::default();
            f(&mut query);
            query
        };
        assert_eq!(
            ids(&index, q(|q| q.supported_parameters = vec!["tools".into()])),
            ["openai/cheap", "anthropic/mid"]
        );
        assert_eq!(
            ids(&index, q(|q| q.input_modalities = vec!["image".into()])),
            ["openai/dear", "anthropic/mid"]
        );
        assert_eq!(
            ids(&index, q(|q| q.output_modalities = vec!["image".into()])),
            ["openai/dear"]
        );
        assert_eq!(
            ids(&index, q(|q| q.min_context = Some(100_000))),
            ["openai/dear", "anthropic/mid"]
        );
        assert_eq!(
            ids(
                &index,
                q(|q| q.prompt_price = Range {
                    min: None,
                    max: Some(3.0)
                })
            ),
            ["openai/cheap", "anthropic/mid"]
        );
        assert_eq!(
            ids(&index, q(|q| q.authors = vec!["anthropic".into()])),
            ["anthropic/mid"]
        );
        assert_eq!(
            ids(&index, q(|q| q.arch = Some("claude".into()))),
            ["anthropic/mid"]
        );
        assert_eq!(
            ids(
                &index,
                q(|q| q.intelligence_index = Range {
                    min: Some(65.0),
                    max: None
                })
            ),
            ["openai/dear"]
        );
        assert_eq!(
            ids(
                &index,
                q(|q| q.age_days = Range {
                    min: None,
                    max: Some(1.0)
                })
            ),
            ["openai/dear"]
        );
    }

    #[test]
    fn sorts_put_models_without_a_value_last() {
        let index = index();
        let sorted = |sort| {
            ids(
                &index,
                ModelQuery {
                    sort,
                    ..ModelQuery::default()
                },
            )
        };
        assert_eq!(
            sorted(Sort::PriceLowToHigh),
            ["openai/cheap", "anthropic/mid", "openai/dear"]
        );
        assert_eq!(
            sorted(Sort::PriceHighToLow),
            ["openai/dear", "anthropic/mid", "openai/cheap"]
        );
        assert_eq!(
            sorted(Sort::ContextHighToLow),
            ["anthropic/mid", "openai/dear", "openai/cheap"]
        );
        assert_eq!(
            sorted(Sort::Newest),
            ["openai/dear", "anthropic/mid", "openai/cheap"]
        );
        assert_eq!(
            sorted(Sort::IntelligenceHighToLow),
            ["openai/dear", "anthropic/mid", "openai/cheap"]
        );
        assert_eq!(Sort::from_name("most-popular"), None);
    }
}
