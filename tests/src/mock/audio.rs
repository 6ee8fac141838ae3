//! OpenRouter's audio operations and its list of embeddings models, as captured in
//! `fixtures/openrouter/ops/` (speech: raw `audio/mpeg` bytes with `X-Generation-Id:
//! gen-tts-…`; transcriptions: `{"text","usage"}` with `gen-stt-…`) and, for the list,
//! in the shape of OpenRouter's OpenAPI document.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::chat::{json, with_id};
use super::errors;
use super::scenario::Behaviour;
use super::shared::{Recorded, Shared, lock};
use super::stream::CloseGuard;
use crate::fixtures;

/// The size of each piece of audio sent, as a TTS model sends its frames.
const AUDIO_CHUNK: usize = 4096;

pub async fn speech(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let recorded = super::record(&shared, request).await;
    let body = match super::authorized_json(&recorded) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let Some(model) = body["model"].as_str() else {
        return errors::openrouter(400, "model is required");
    };
    let behaviour = Behaviour::from_model(model).unwrap_or_else(|| lock(&shared.behaviour).clone());
    let every = match behaviour {
        Behaviour::Status(status) => return errors::for_status(status),
        Behaviour::StreamPaced { every, .. } => Some(every),
        _ => None,
    };
    let audio = fixtures::op("audio-speech.bin").unwrap_or_default();
    let pieces: Vec<Bytes> = (0..audio.len())
        .step_by(AUDIO_CHUNK)
        .map(|at| audio.slice(at..audio.len().min(at + AUDIO_CHUNK)))
        .collect();
    // Notes when the answer ends, sent or dropped by the proxy.
    let guard = CloseGuard(shared);
    let body = futures_util::stream::iter(pieces).then(move |piece| {
        let _ = &guard;
        async move {
            if let Some(every) = every {
                tokio::time::sleep(every).await;
            }
            Ok::<_, std::convert::Infallible>(piece)
        }
    });
    let response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "audio/mpeg")],
        Body::from_stream(body),
    )
        .into_response();
    with_id(response, "gen-tts-1786400000-mockops0000000000")
}

pub async fn transcriptions(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let recorded = super::record(&shared, request).await;
    let form = recorded
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("multipart/form-data"))
        .map(str::to_owned);
    let fields = match form {
        Some(content_type) => {
            if let Err(refusal) = super::authorized(&recorded) {
                return *refusal;
            }
            match form_fields(&recorded, &content_type).await {
                Some(fields) => fields,
                None => return errors::openrouter(400, "Invalid multipart body"),
            }
        }
        None => match super::authorized_json(&recorded) {
            Ok(body) if !body["input_audio"].is_null() => body,
            Ok(_) => return errors::openrouter(400, "input_audio is required"),
            Err(refusal) => return *refusal,
        },
    };
    let Some(model) = fields["model"].as_str() else {
        return errors::openrouter(400, "model is required");
    };
    if let Some(Behaviour::Status(status)) = Behaviour::from_model(model) {
        return errors::for_status(status);
    }
    let answer = fixtures::op("audio-transcriptions.json").unwrap_or_default();
    with_id(
        json(Body::from(answer)),
        "gen-stt-1786400000-mockops0000000000",
    )
}

/// A form's text fields, and `file` as its size; `None` if it does not parse or has
/// no file.
async fn form_fields(recorded: &Recorded, content_type: &str) -> Option<Value> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let body = recorded.body.clone();
    let parts = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(parts, boundary);
    let mut fields = serde_json::Map::new();
    while let Some(part) = form.next_field().await.ok()? {
        let name = part.name()?.to_owned();
        let value = if part.file_name().is_some() {
            json!(part.bytes().await.ok()?.len())
        } else {
            json!(part.text().await.ok()?)
        };
        fields.insert(name, value);
    }
    fields.contains_key("file").then_some(Value::Object(fields))
}

/// `GET /embeddings/models`, in the OpenAPI document's shape.
pub async fn embedding_models(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    super::record(&shared, request).await;
    let model = |id: &str, name: &str, prompt: &str, context: u64| {
        json!({"id": id, "canonical_slug": id, "name": name, "created": 1_692_901_234,
               "description": format!("{name}, an embeddings model."),
               "context_length": context,
               "architecture": {"modality": "text->text", "input_modalities": ["text"],
                                "output_modalities": ["embeddings"], "tokenizer": "GPT",
                                "instruct_type": null},
               "pricing": {"prompt": prompt, "completion": "0", "request": "0", "image": "0"},
               "top_provider": {"context_length": context, "max_completion_tokens": null,
                                "is_moderated": false},
               "per_request_limits": null, "supported_parameters": [], "default_parameters": null,
               "knowledge_cutoff": null, "expiration_date": null, "supported_voices": null,
               "links": {"details": format!("/api/v1/models/{id}/endpoints")}})
    };
    let body = json!({"data": [
        model("openai/text-embedding-3-small", "OpenAI: Text Embedding 3 Small", "0.00000002", 8192),
        model("openai/text-embedding-3-large", "OpenAI: Text Embedding 3 Large", "0.00000013", 8192),
        model("qwen/qwen3-embedding-8b", "Qwen: Qwen3 Embedding 8B", "0.00000001", 32_000),
    ]});
    json(Body::from(body.to_string()))
}
