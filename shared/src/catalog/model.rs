//! `Model`: one model as the proxy serves it, in one shape whatever era of catalogue
//! OpenRouter sends (`docs/http-api.md`, "Model catalogue"), with what filtering and
//! sorting read from it worked out once.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// A model id without OpenRouter's variant suffix (`:nitro`, `:floor`, `:free`,
/// `:online`, ...) and without the `~` that names a family's latest model.
pub fn base_id(id: &str) -> &str {
    let id = id.strip_prefix('~').unwrap_or(id);
    let slash = id.find('/').map_or(0, |at| at + 1);
    match id[slash..].find(':') {
        Some(colon) => &id[..slash + colon],
        None => id,
    }
}

/// A provider (a model's author) is the part of a model id before `/`.
pub fn provider_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(provider, _)| provider)
}

#[derive(Debug)]
pub struct Model {
    pub id: String,
    pub canonical_slug: String,
    pub name: Value,
    pub description: Value,
    pub context_length: Value,
    pub pricing: Value,
    pub supported_parameters: Value,
    /// Unix seconds (0 when the catalogue does not say).
    pub created: u64,
    /// The model object, serialised once: every field OpenRouter sent, every
    /// documented field present, and OpenAI's `object` and `owned_by`.
    pub json: Box<RawValue>,
    pub facts: Facts,
}

/// What filters and sorts read, lower-cased and parsed once.
#[derive(Debug, Default)]
pub struct Facts {
    /// Id, name and description, lower-cased, for case-insensitive search.
    pub search_text: String,
    pub context: u64,
    pub input_modalities: Vec<String>,
    pub output_modalities: Vec<String>,
    pub supported_parameters: Vec<String>,
    /// USD per million tokens.
    pub prompt_price: Option<f64>,
    pub completion_price: Option<f64>,
    pub tokenizer: Option<String>,
    pub intelligence_index: Option<f64>,
    pub coding_index: Option<f64>,
    pub agentic_index: Option<f64>,
    /// The best Design Arena ELO across arenas.
    pub arena_elo: Option<f64>,
}

impl Model {
    pub(super) fn from_object(mut object: Map<String, Value>) -> Option<Self> {
        let id = object.get("id")?.as_str()?.to_owned();
        normalise(&mut object, &id);
        let field = |name: &str| object.get(name).cloned().unwrap_or(Value::Null);
        let canonical_slug = object
            .get("canonical_slug")
            .and_then(Value::as_str)
            .unwrap_or(&id)
            .to_owned();
        let created = object.get("created").and_then(Value::as_u64).unwrap_or(0);
        let facts = facts(&object, &id);
        let json = serde_json::value::to_raw_value(&object).ok()?;
        Some(Self {
            name: field("name"),
            description: field("description"),
            context_length: field("context_length"),
            pricing: field("pricing"),
            supported_parameters: field("supported_parameters"),
            id,
            canonical_slug,
            created,
            json,
            facts,
        })
    }

    /// `needle` must already be lower-case.
    pub fn matches(&self, needle: &str) -> bool {
        self.facts.search_text.contains(needle)
    }

    pub fn provider(&self) -> &str {
        provider_of(&self.id)
    }
}

/// Fills in every documented field an older (or partial) catalogue leaves out, with
/// the value that means "not known", keeping every field that is there.
fn normalise(object: &mut Map<String, Value>, id: &str) {
    let mut default = |name: &str, value: Value| match object.get(name) {
        Some(existing) if !existing.is_null() => {}
        _ => {
            object.insert(name.to_owned(), value);
        }
    };
    default("name", json!(id));
    default("description", json!(""));
    default("canonical_slug", json!(id));
    default("created", json!(0));
    default("supported_parameters", json!([]));
    for name in [
        "context_length",
        "per_request_limits",
        "default_parameters",
        "supported_voices",
    ] {
        object.entry(name).or_insert(Value::Null);
    }
    let slug = object
        .get("canonical_slug")
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_owned();
    if !object.get("links").is_some_and(Value::is_object) {
        object.insert(
            "links".into(),
            json!({ "details": format!("/api/v1/models/{slug}/endpoints") }),
        );
    }

    let mut architecture = take_object(object, "architecture");
    let modality = architecture
        .get("modality")
        .and_then(Value::as_str)
        .map(str::to_owned);
    architecture.entry("modality").or_insert(Value::Null);
    // `text+image->text`: what goes in, and what comes out.
    let (inputs, outputs) = modality
        .as_deref()
        .and_then(|m| m.split_once("->"))
        .map_or((vec!["text"], vec!["text"]), |(i, o)| {
            (i.split('+').collect(), o.split('+').collect())
        });
    for (name, derived) in [("input_modalities", inputs), ("output_modalities", outputs)] {
        if !architecture.get(name).is_some_and(Value::is_array) {
            architecture.insert(name.into(), json!(derived));
        }
    }
    architecture.entry("instruct_type").or_insert(Value::Null);
    object.insert("architecture".into(), Value::Object(architecture));

    let mut pricing = take_object(object, "pricing");
    for name in ["prompt", "completion"] {
        let price = match pricing.get(name) {
            Some(Value::String(price)) => price.clone(),
            // As a decimal, the way OpenRouter writes prices (`0.000001`, not `1e-6`).
            Some(Value::Number(price)) => price
                .as_f64()
                .map_or_else(|| price.to_string(), |p| p.to_string()),
            _ => "0".to_owned(),
        };
        pricing.insert(name.into(), json!(price));
    }
    object.insert("pricing".into(), Value::Object(pricing));

    let context = object.get("context_length").cloned().unwrap_or(Value::Null);
    let mut top = take_object(object, "top_provider");
    if !top.get("is_moderated").is_some_and(Value::is_boolean) {
        top.insert("is_moderated".into(), json!(false));
    }
    top.entry("context_length").or_insert(context);
    top.entry("max_completion_tokens").or_insert(Value::Null);
    let (moderated, max_tokens) = (
        top["is_moderated"].clone(),
        top["max_completion_tokens"].clone(),
    );
    object.insert("top_provider".into(), Value::Object(top));
    // The documented shape carries these two at the top level too.
    object.entry("is_moderated").or_insert(moderated);
    object.entry("max_completion_tokens").or_insert(max_tokens);

    // OpenAI's model object, so its SDKs read the list and each model.
    object.entry("object").or_insert(json!("model"));
    object.entry("owned_by").or_insert(json!(provider_of(id)));
}

/// The object under `name` (an empty one if it is missing or not an object), taken out
/// to be filled in and put back.
fn take_object(object: &mut Map<String, Value>, name: &str) -> Map<String, Value> {
    match object.remove(name) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn facts(object: &Map<String, Value>, id: &str) -> Facts {
    let text = |name: &str| object.get(name).and_then(Value::as_str).unwrap_or_default();
    let mut search_text = id.to_lowercase();
    for part in [text("name"), text("description")] {
        search_text.push('\n');
        search_text.push_str(&part.to_lowercase());
    }
    let strings = |value: Option<&Value>| -> Vec<String> {
        value
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_lowercase)
                    .collect()
            })
            .unwrap_or_default()
    };
    let architecture = object.get("architecture");
    let per_million = |name: &str| -> Option<f64> {
        let price = object
            .get("pricing")?
            .get(name)?
            .as_str()?
            .parse::<f64>()
            .ok()?;
        (price >= 0.0).then_some(price * 1e6)
    };
    let analysis = object
        .get("benchmarks")
        .and_then(|b| b.get("artificial_analysis"));
    let index = |name: &str| analysis.and_then(|a| a.get(name)).and_then(Value::as_f64);
    let arena_elo = object
        .get("benchmarks")
        .and_then(|b| b.get("design_arena"))
        .and_then(Value::as_array)
        .and_then(|arenas| {
            arenas
                .iter()
                .filter_map(|a| a.get("elo").and_then(Value::as_f64))
                .reduce(f64::max)
        });
    let context = object.get("context_length");
    Facts {
        search_text,
        context: context
            .and_then(Value::as_u64)
            .or_else(|| context.and_then(Value::as_f64).map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        input_modalities: strings(architecture.and_then(|a| a.get("input_modalities"))),
        output_modalities: strings(architecture.and_then(|a| a.get("output_modalities"))),
        supported_parameters: strings(object.get("supported_parameters")),
        prompt_price: per_million("prompt"),
        completion_price: per_million("completion"),
        tokenizer: architecture
            .and_then(|a| a.get("tokenizer"))
            .and_then(Value::as_str)
            .map(str::to_lowercase),
        intelligence_index: index("intelligence_index"),
        coding_index: index("coding_index"),
        agentic_index: index("agentic_index"),
        arena_elo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(value: Value) -> Model {
        let Value::Object(object) = value else {
            panic!("an object")
        };
        Model::from_object(object).unwrap()
    }

    fn json_of(model: &Model) -> Value {
        serde_json::from_str(model.json.get()).unwrap()
    }

    #[test]
    fn keeps_every_field_and_lifts_moderation_and_max_tokens() {
        let m = model(json!({
            "id": "openai/gpt-4o", "name": "GPT-4o", "context_length": 128000,
            "architecture": {"modality": "text+image->text"},
            "top_provider": {"is_moderated": true, "max_completion_tokens": 4096},
            "pricing": {"prompt": "0.0000025", "completion": "0.00001", "image": "0.003613"},
            "something_new": {"x": 1}
        }));
        let json = json_of(&m);
        assert_eq!(json["is_moderated"], true);
        assert_eq!(json["max_completion_tokens"], 4096);
        assert_eq!(json["architecture"]["modality"], "text+image->text");
        assert_eq!(json["pricing"]["image"], "0.003613");
        assert_eq!(json["something_new"]["x"], 1);
        assert_eq!(m.facts.input_modalities, ["text", "image"]);
        assert!((m.facts.prompt_price.unwrap() - 2.5).abs() < 1e-9);
    }

    #[test]
    fn an_old_catalogues_model_gets_every_documented_field() {
        let m = model(json!({"id": "a/old", "pricing": {"prompt": 0.000001}}));
        let json = json_of(&m);
        for field in [
            "name",
            "description",
            "context_length",
            "pricing",
            "supported_parameters",
            "is_moderated",
            "max_completion_tokens",
            "canonical_slug",
            "created",
            "architecture",
            "top_provider",
            "per_request_limits",
            "default_parameters",
            "supported_voices",
            "links",
        ] {
            assert!(json.get(field).is_some(), "{field} missing: {json}");
        }
        assert_eq!(json["supported_parameters"], json!([]));
        assert_eq!(
            json["pricing"],
            json!({"prompt": "0.000001", "completion": "0"})
        );
        assert_eq!(json["architecture"]["output_modalities"], json!(["text"]));
        assert_eq!(json["links"]["details"], "/api/v1/models/a/old/endpoints");
        assert_eq!(json["object"], "model");
        assert_eq!(json["owned_by"], "a");
        assert_eq!(json["top_provider"]["is_moderated"], false);
    }
}
