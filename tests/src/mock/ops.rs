//! OpenRouter's other inference operations (`/responses`, `/messages`, `/completions`,
//! `/embeddings`, `/rerank`, `/images`), answered in the captured shapes of
//! `fixtures/openrouter/ops/` byte for byte, and, where no capture exists, in the shapes
//! of OpenRouter's OpenAPI document. A scenario model (`mock/status-429`,
//! `mock/stream-paced-200-20`) works here as on chat.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::chat::{json, with_id};
use super::errors;
use super::scenario::Behaviour;
use super::shared::{Shared, lock};
use super::stream::{Step, play, sends};
use crate::fixtures;

pub async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let recorded = super::record(&shared, request).await;
    let body = match super::authorized_json(&recorded) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let model = body["model"].as_str().unwrap_or_default();
    let behaviour = Behaviour::from_model(model).unwrap_or_else(|| lock(&shared.behaviour).clone());
    let stream = body["stream"] == true;
    let operation = recorded.path.trim_start_matches("/api/v1/");
    if let Behaviour::Status(status) = behaviour {
        return errors::for_status(status);
    }
    if !stream {
        let (answer, id) = complete(operation, &body);
        return with_id(json(Body::from(answer)), &id);
    }
    let mut events = fixtures::sse_events(&streamed(operation, &body));
    if let Behaviour::StreamPaced { deltas, every } = behaviour {
        // The middle event again and again, as a model writing slowly.
        let middle = events[events.len() / 2].clone();
        let tail = events.split_off(events.len() / 2 + 1);
        let mut steps = sends(events);
        for _ in 0..deltas {
            steps.push(Step::Sleep(every));
            steps.push(Step::Send(middle.clone()));
        }
        steps.extend(sends(tail));
        return play(shared, steps, &generation_id(operation));
    }
    play(shared, sends(events), &generation_id(operation))
}

fn generation_id(operation: &str) -> String {
    let kind = match operation {
        "images" => "img-",
        "embeddings" => "emb-",
        "rerank" => "rerank-",
        _ => "",
    };
    format!("gen-{kind}1786400000-mockops0000000000")
}

/// The non-streamed answer and its generation id.
fn complete(operation: &str, request: &Value) -> (Bytes, String) {
    let capture = |name| fixtures::op(name).unwrap_or_default();
    let answer = match operation {
        "responses" => capture("responses-json.json"),
        "embeddings" => capture("embeddings-json.json"),
        "rerank" => capture("rerank.json"),
        "images" => capture("images-json.json"),
        "messages" => Bytes::from(message(request).to_string()),
        _ => Bytes::from(completion(request).to_string()),
    };
    (answer, generation_id(operation))
}

/// The streamed answer, whole.
fn streamed(operation: &str, request: &Value) -> Bytes {
    match operation {
        "responses" => fixtures::op("responses-stream.sse").unwrap_or_default(),
        "messages" => fixtures::op("messages-stream.sse").unwrap_or_default(),
        "images" => {
            let partial = json!({"type": "image_generation.partial_image",
                                 "b64_json": "aW1hZ2U=", "partial_image_index": 0});
            let done = json!({"type": "image_generation.completed", "b64_json": "aW1hZ2Ug",
                              "usage": {"prompt_tokens": 12, "completion_tokens": 1290,
                                        "total_tokens": 1302, "cost": 0.039}});
            Bytes::from(format!(
                ": OPENROUTER PROCESSING\n\ndata: {partial}\n\ndata: {done}\n\ndata: [DONE]\n\n"
            ))
        }
        _ => {
            let text = ["Once", " upon", " a", " time"];
            let mut body = String::from(": OPENROUTER PROCESSING\n\n");
            for piece in text {
                let chunk = json!({"id": "gen-1786400000-mockcompletions0", "object": "text_completion",
                    "created": 1_786_400_000, "model": request["model"],
                    "choices": [{"text": piece, "index": 0, "finish_reason": null, "logprobs": null}]});
                body.push_str(&format!("data: {chunk}\n\n"));
            }
            let last = json!({"id": "gen-1786400000-mockcompletions0", "object": "text_completion",
                "created": 1_786_400_000, "model": request["model"],
                "choices": [{"text": "", "index": 0, "finish_reason": "stop", "logprobs": null}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9, "cost": 0.000052}});
            body.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
            Bytes::from(body)
        }
    }
}

/// A legacy completion (OpenAI's `text_completion`), as OpenRouter answers one.
fn completion(request: &Value) -> Value {
    json!({"id": "gen-1786400000-mockcompletions0", "object": "text_completion",
           "created": 1_786_400_000, "model": request["model"], "provider": "Mock",
           "choices": [{"text": "Once upon a time", "index": 0, "finish_reason": "stop", "logprobs": null}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9, "cost": 0.000052}})
}

/// A non-streamed Anthropic message, as the streamed capture's events add up to.
fn message(request: &Value) -> Value {
    json!({"id": "gen-1787613199-Rd1HqID6PybJhB89ZeWK", "type": "message", "role": "assistant",
           "model": request["model"], "provider": "Mock",
           "content": [{"type": "text", "text": "{\"title\":\"lookup off-by-one bounds bug\"}"}],
           "stop_reason": "end_turn", "stop_sequence": null,
           "usage": {"input_tokens": 1231, "output_tokens": 21, "cache_creation_input_tokens": 0,
                     "cache_read_input_tokens": 0, "cost": 0.002672, "is_byok": false}})
}
