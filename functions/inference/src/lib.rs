//! POST /api/v1/inference: one chat completion, answered as one JSON body.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use llm_proxy_shared::openrouter::forward_generation_id;
use llm_proxy_shared::validation::validate_chat_request;
use llm_proxy_shared::{ApiError, AppState, JsonBody, routes};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(routes::INFERENCE, post(inference))
        .with_state(state)
}

async fn inference(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let request = validate_chat_request(&body.value)?;
    if request.stream == Some(true) {
        return Err(ApiError::validation(
            "stream",
            "This endpoint answers with one JSON body; for Server-Sent Events use POST /api/v1/inference/stream \
             (or POST /api/v1/chat/completions with \"stream\": true)",
        ));
    }
    complete(&app, &headers, body.raw, &request.model).await
}

/// One chat completion answered as JSON, OpenRouter's body unchanged. Also what
/// `/api/v1/chat/completions` answers when `stream` is not true.
pub async fn complete(
    app: &AppState,
    headers: &HeaderMap,
    raw: Bytes,
    model: &str,
) -> Result<Response, ApiError> {
    // The caller's bytes go upstream as they came, so fields the proxy has never
    // heard of arrive exactly as written.
    let answer = app.openrouter.chat(raw, headers).await?;
    tracing::info!(model = %model, "inference answered");
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    forward_generation_id(response.headers_mut(), answer.generation_id);
    Ok(response)
}
