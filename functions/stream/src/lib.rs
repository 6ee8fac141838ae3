//! POST /api/v1/inference/stream and POST /api/v1/chat/completions: chat completions
//! as Server-Sent Events, relayed event by event (and, for chat/completions with
//! `stream` not true, one JSON answer exactly like /api/v1/inference).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use llm_proxy_shared::openrouter::forward_generation_id;
use llm_proxy_shared::sse::{Relay, SSE_HEADERS};
use llm_proxy_shared::validation::validate_chat_request;
use llm_proxy_shared::{ApiError, AppState, JsonBody, routes};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(routes::INFERENCE_STREAM, post(inference_stream))
        .route(routes::CHAT_COMPLETIONS, post(chat_completions))
        .with_state(state)
}

/// Always streams: the seed's clients send `"stream": true`, and a body without
/// `stream` is given it.
async fn inference_stream(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let request = validate_chat_request(&body.value)?;
    let raw = match request.stream {
        Some(true) => body.raw,
        None => with_stream_true(&body.raw),
        Some(false) => {
            return Err(ApiError::validation(
                "stream",
                "This endpoint answers with Server-Sent Events; leave stream out or set it true, \
                 or use POST /api/v1/inference for one JSON answer",
            ));
        }
    };
    relay(&app, &headers, raw, &request.model).await
}

/// The OpenAI/OpenRouter-compatible endpoint: SDKs set `stream` themselves.
async fn chat_completions(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let request = validate_chat_request(&body.value)?;
    if request.stream == Some(true) {
        relay(&app, &headers, body.raw, &request.model).await
    } else {
        inference::complete(&app, &headers, body.raw, &request.model).await
    }
}

async fn relay(
    app: &AppState,
    headers: &HeaderMap,
    raw: Bytes,
    model: &str,
) -> Result<Response, ApiError> {
    // Errors before the first byte are ordinary JSON errors with their status.
    let upstream = app.openrouter.start_chat(raw, headers).await?;
    let generation_id = upstream
        .headers()
        .get(llm_proxy_shared::openrouter::GENERATION_ID)
        .cloned();
    tracing::info!(model = %model, "stream started");
    let relay = Relay::new(
        upstream,
        app.config.request_timeout,
        app.config.stream_max_duration,
    );
    let mut response = (StatusCode::OK, Body::from_stream(relay.into_stream())).into_response();
    for (name, value) in SSE_HEADERS {
        response
            .headers_mut()
            .insert(name, http::HeaderValue::from_static(value));
    }
    forward_generation_id(response.headers_mut(), generation_id);
    Ok(response)
}

/// The caller's body with `"stream":true,` added after its opening brace; every other
/// byte stays as the caller wrote it.
fn with_stream_true(raw: &[u8]) -> Bytes {
    let brace = raw.iter().position(|b| *b == b'{').unwrap_or(0);
    let mut out = BytesMut::with_capacity(raw.len() + 16);
    out.extend_from_slice(&raw[..=brace]);
    out.extend_from_slice(b"\"stream\":true,");
    out.extend_from_slice(&raw[brace + 1..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_added_without_touching_the_rest() {
        let raw = br#"  { "model" : "m", "messages":[] }"#;
        let out = with_stream_true(raw);
        assert_eq!(
            &out[..],
            br#"  {"stream":true, "model" : "m", "messages":[] }"#
        );
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["stream"], true);
    }
}
