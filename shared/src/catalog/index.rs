//! `ModelIndex`: one parsed copy of OpenRouter's catalogue, indexed once so that a
//! request costs work in proportion to its answer, not to the catalogue.

use std::collections::{BTreeMap, HashMap};

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One model as the proxy serves it.
#[derive(Debug)]
pub struct Model {
    pub id: String,
    pub name: Value,
    pub description: Value,
    pub context_length: Value,
    pub pricing: Value,
    pub supported_parameters: Value,
    /// The model object OpenRouter sent, every field kept, plus the documented
    /// `is_moderated` and `max_completion_tokens` lifted from `top_provider`;
    /// serialised once at index time.
    pub json: Box<RawValue>,
    /// Lower-cased id, name and description for case-insensitive search.
    search_text: String,
    context_sort: u64,
}

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
    by_id: HashMap<String, usize>,
    /// Provider → positions in `models`, providers sorted.
    by_provider: BTreeMap<String, Vec<usize>>,
    /// Positions by context length, largest first, ties by id.
    by_context: Vec<usize>,
}

/// A provider is the part of a model id before `/`.
pub fn provider_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(provider, _)| provider)
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
                .context_sort
                .cmp(&models[a].context_sort)
                .then_with(|| models[a].id.cmp(&models[b].id))
        });
        Self {
            models,
            by_id,
            by_provider,
            by_context,
        }
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

impl Model {
    fn from_object(mut object: Map<String, Value>) -> Option<Self> {
        let id = object.get("id")?.as_str()?.to_owned();
        let top_provider = object.get("top_provider").cloned().unwrap_or(Value::Null);
        // The documented model shape (`docs/http-api.md`) carries these two at the
        // top level; OpenRouter keeps them under `top_provider`.
        if !object.contains_key("is_moderated") {
            let moderated = top_provider
                .get("is_moderated")
                .cloned()
                .unwrap_or(Value::Null);
            object.insert("is_moderated".into(), moderated);
        }
        if !object.contains_key("max_completion_tokens") {
            let max = top_provider
                .get("max_completion_tokens")
                .cloned()
                .unwrap_or(Value::Null);
            object.insert("max_completion_tokens".into(), max);
        }
        let field = |name: &str| object.get(name).cloned().unwrap_or(Value::Null);
        let name = field("name");
        let description = field("description");
        let context_length = field("context_length");
        let context_sort = context_length
            .as_u64()
            .or_else(|| context_length.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0);
        let mut search_text = id.to_lowercase();
        for text in [&name, &description] {
            if let Some(text) = text.as_str() {
                search_text.push('\n');
                search_text.push_str(&text.to_lowercase());
            }
        }
        let pricing = field("pricing");
        let supported_parameters = field("supported_parameters");
        let json = serde_json::value::to_raw_value(&object).ok()?;
        Some(Self {
            id,
            name,
            description,
            context_length,
            pricing,
            supported_parameters,
            json,
            search_text,
            context_sort,
        })
    }

    /// `needle` must already be lower-case.
    pub fn matches(&self, needle: &str) -> bool {
        self.search_text.contains(needle)
    }

    pub fn provider(&self) -> &str {
        provider_of(&self.id)
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
    fn keeps_every_field_and_lifts_moderation_and_max_tokens() {
        let idx = index(json!([{
            "id": "openai/gpt-4o", "name": "GPT-4o", "context_length": 128000,
            "architecture": {"modality": "text+image->text"},
            "top_provider": {"is_moderated": true, "max_completion_tokens": 4096},
            "pricing": {"prompt": "0.0000025", "completion": "0.00001", "image": "0.003613"}
        }]));
        let model: Value =
            serde_json::from_str(idx.get("openai/gpt-4o").unwrap().json.get()).unwrap();
        assert_eq!(model["is_moderated"], true);
        assert_eq!(model["max_completion_tokens"], 4096);
        assert_eq!(model["architecture"]["modality"], "text+image->text");
        assert_eq!(model["pricing"]["image"], "0.003613");
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
        assert_eq!(model["is_moderated"], Value::Null);
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
