//! The catalogue calls: `GET /models` (the captured catalogue, or one a test sets) and
//! `GET /models/{author}/{slug}/endpoints`. No capture of the endpoints call is kept;
//! its answer is built from the catalogue's model in the shape of OpenRouter's
//! published API (`ListEndpointsResponse`), one endpoint per model, by its author.

use serde_json::{Value, json};

/// The endpoints answer for `model` (an id or canonical slug) of `catalogue`; `None`
/// for a model it does not list.
pub fn endpoints(catalogue: &[u8], model: &str) -> Option<Value> {
    let catalogue: Value = serde_json::from_slice(catalogue).ok()?;
    let found = catalogue["data"]
        .as_array()?
        .iter()
        .find(|m| m["id"] == model || m["canonical_slug"] == model)?;
    let id = found["id"].as_str()?;
    let author = id.split('/').next().unwrap_or(id);
    let provider = {
        let mut chars = author.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
            .unwrap_or_default()
    };
    let architecture = &found["architecture"];
    // Older catalogues carry only `modality` (`text+image->text`); OpenRouter's
    // endpoints answer always lists the modalities.
    let (inputs, outputs) = architecture["modality"]
        .as_str()
        .and_then(|m| m.split_once("->"))
        .map_or((vec!["text"], vec!["text"]), |(i, o)| {
            (i.split('+').collect(), o.split('+').collect())
        });
    let listed = |field: &str, derived: Vec<&str>| match &architecture[field] {
        Value::Array(list) => Value::Array(list.clone()),
        _ => json!(derived),
    };
    Some(json!({"data": {
        "id": id,
        "name": found["name"],
        "created": found["created"],
        "description": found["description"],
        "architecture": {
            "modality": architecture["modality"],
            "input_modalities": listed("input_modalities", inputs),
            "output_modalities": listed("output_modalities", outputs),
            "tokenizer": architecture["tokenizer"],
            "instruct_type": architecture["instruct_type"],
        },
        "endpoints": [{
            "name": format!("{provider} | {id}"),
            "model_id": id,
            "model_name": found["name"],
            "context_length": found["context_length"],
            "pricing": {"prompt": found["pricing"]["prompt"], "completion": found["pricing"]["completion"]},
            "provider_name": provider,
            "tag": author,
            "quantization": null,
            "max_completion_tokens": found["top_provider"]["max_completion_tokens"],
            "max_prompt_tokens": null,
            "supported_parameters": match &found["supported_parameters"] {
                Value::Array(list) => Value::Array(list.clone()),
                _ => json!([]),
            },
            "status": 0,
            "uptime_last_5m": 100.0,
            "uptime_last_30m": 99.9,
            "uptime_last_1d": 99.7,
            "latency_last_30m": {"p50": 412.0, "p75": 530.0, "p90": 780.0, "p99": 1900.0},
            "throughput_last_30m": {"p50": 88.0, "p75": 104.0, "p90": 121.0, "p99": 150.0},
            "supports_implicit_caching": false,
            "service_tier": null,
            "native_tools": {},
            "supports_diarization": false,
            "supports_tool_choice": {"auto": true, "function": true, "none": true, "required": true},
        }],
    }}))
}
