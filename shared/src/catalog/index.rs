//! `ModelIndex`: one parsed copy of OpenRouter's catalogue, indexed once so that a
//! request costs work in proportion to its answer, not to the catalogue.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::model::{Model, provider_of};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the catalogue is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("the catalogue has no data array")]
    NoData,
}

#[derive(Debug)]
pub struct ModelIndex {
    /// In OpenRouter's order (newest first).
    models: Vec<Model>,
    /// By id, and by canonical slug (`openai/gpt-4o-2024-05-13`), which OpenRouter's
    /// own links use.
    by_id: HashMap<String, usize>,
    /// Provider → positions in `models`, providers sorted.
    by_provider: BTreeMap<String, Vec<usize>>,
    /// Positions by context length, largest first, ties by id.
    by_context: Vec<usize>,
    /// The median of the listed positive prices: what a model the catalogue does not
    /// price is reserved at (`docs/rate-limits.md`, "Reserve, then settle").
    median: Option<Prices>,
}

/// A model's price in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prices {
    pub prompt: f64,
    pub completion: f64,
}

impl Prices {
    /// The dearer of two, field by field.
    pub fn max(self, other: Self) -> Self {
        Self {
            prompt: self.prompt.max(other.prompt),
            completion: self.completion.max(other.completion),
        }
    }

    /// What `prompt` and `completion` tokens cost at these prices, in USD.
    pub fn cost(self, prompt: f64, completion: f64) -> f64 {
        (prompt * self.prompt + completion * self.completion) / 1e6
    }
}

/// The median of the positive values, if there are any.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite() && *v > 0.0);
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

impl ModelIndex {
    pub fn parse(body: &[u8]) -> Result<Self, IndexError> {
        let mut root: Value = serde_json::from_slice(body)?;
        let Some(Value::Array(entries)) = root.get_mut("data").map(Value::take) else {
            return Err(IndexError::NoData);
        };
        let mut models = Vec::with_capacity(entries.len());
        for entry in entries {
            // Older or partial catalogues leave fields out or null; only an id is
            // required to serve a model at all.
            let Value::Object(object) = entry else {
                continue;
            };
            if let Some(model) = Model::from_object(object) {
                models.push(model);
            }
        }
        Ok(Self::from_models(models))
    }

    fn from_models(mut models: Vec<Model>) -> Self {
        // A catalogue listing one id twice would make lookups ambiguous: keep the first.
        let mut by_id = HashMap::with_capacity(models.len());
        let mut keep = Vec::with_capacity(models.len());
        for model in models.drain(..) {
            if !by_id.contains_key(&model.id) {
                by_id.insert(model.id.clone(), keep.len());
                keep.push(model);
            }
        }
        for (i, model) in keep.iter().enumerate() {
            by_id.entry(model.canonical_slug.clone()).or_insert(i);
        }
        let models = keep;
        let mut by_provider: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, model) in models.iter().enumerate() {
            by_provider
                .entry(provider_of(&model.id).to_owned())
                .or_default()
                .push(i);
        }
        let mut by_context: Vec<usize> = (0..models.len()).collect();
        by_context.sort_by(|&a, &b| {
            models[b]
                .facts
                .context
                .cmp(&models[a].facts.context)
                .then_with(|| models[a].id.cmp(&models[b].id))
        });
        let prices = |price: fn(&Model) -> Option<f64>| models.iter().filter_map(price).collect();
        let median = median(prices(|m| m.facts.prompt_price))
            .zip(median(prices(|m| m.facts.completion_price)))
            .map(|(prompt, completion)| Prices { prompt, completion });
        Self {
            models,
            by_id,
            by_provider,
            by_context,
            median,
        }
    }

    /// The median prompt and completion prices of the priced models.
    pub fn median_prices(&self) -> Option<Prices> {
        self.median
    }

    /// What `model` costs, as the catalogue lists it: by its id; without OpenRouter's
    /// variant suffix (`:nitro`, `:online`, ...) or `~` alias mark; or as the longest
    /// listed id it extends with a dash (a dated id such as `openai/o1-pro-2025-03-19`).
    /// `None` when nothing listed prices it (negative prices mean "variable").
    pub fn prices(&self, model: &str) -> Option<Prices> {
        let priced = |m: &Model| {
            let prompt = m.facts.prompt_price.filter(|p| *p >= 0.0)?;
            let completion = m.facts.completion_price.filter(|p| *p >= 0.0)?;
            Some(Prices { prompt, completion })
        };
        if let Some(prices) = self.get(model).and_then(priced) {
            return Some(prices);
        }
        let base = crate::catalog::base_id(model);
        if let Some(prices) = self.get(base).and_then(priced) {
            return Some(prices);
        }
        let mut stem = base;
        while let Some((shorter, _)) = stem.rsplit_once('-') {
            if let Some(prices) = self.get(shorter).and_then(priced) {
                return Some(prices);
            }
            stem = shorter;
        }
        None
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn all(&self) -> impl ExactSizeIterator<Item = &Model> {
        self.models.iter()
    }

    /// A model by its id or its canonical slug.
    pub fn get(&self, id: &str) -> Option<&Model> {
        self.by_id.get(id).map(|&i| &self.models[i])
    }

    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.by_provider.keys().map(String::as_str)
    }

    /// The models of one provider, in catalogue order; `None` for an unknown provider.
    pub fn by_provider(&self, provider: &str) -> Option<impl ExactSizeIterator<Item = &Model>> {
        self.by_provider
            .get(provider)
            .map(|positions| positions.iter().map(|&i| &self.models[i]))
    }

    pub fn by_context_length(&self) -> impl Iterator<Item = &Model> {
        self.by_context.iter().map(|&i| &self.models[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index(data: Value) -> ModelIndex {
        ModelIndex::parse(json!({ "data": data }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn tolerates_missing_and_null_fields() {
        let idx = index(json!([
            {"id": "a/only-id"},
            {"id": "b/nulls", "name": null, "description": null, "context_length": null,
             "top_provider": null, "supported_parameters": null, "pricing": null},
            {"name": "no id, skipped"},
            "not an object"
        ]));
        assert_eq!(idx.len(), 2);
        let model: Value = serde_json::from_str(idx.get("a/only-id").unwrap().json.get()).unwrap();
        assert_eq!(model["is_moderated"], false, "not known to be moderated");
        assert_eq!(idx.by_context_length().count(), 2);
    }

    #[test]
    fn context_order_breaks_ties_by_id() {
        let idx = index(json!([
            {"id": "z/small", "context_length": 8},
            {"id": "b/big", "context_length": 100},
            {"id": "a/big", "context_length": 100},
        ]));
        let ids: Vec<&str> = idx.by_context_length().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a/big", "b/big", "z/small"]);
    }

    #[test]
    fn providers_are_sorted_and_unique() {
        let idx = index(json!([{"id": "openai/a"}, {"id": "anthropic/b"}, {"id": "openai/c"}]));
        assert_eq!(idx.providers().collect::<Vec<_>>(), ["anthropic", "openai"]);
        assert_eq!(idx.by_provider("openai").unwrap().count(), 2);
        assert!(idx.by_provider("nobody").is_none());
    }

    #[test]
    fn refuses_a_body_without_data() {
        assert!(ModelIndex::parse(b"{}").is_err());
        assert!(ModelIndex::parse(b"<html>").is_err());
    }
}
