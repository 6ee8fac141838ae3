//! POST /api/v1/inference/stream and POST /api/v1/chat/completions: chat completions
//! as Server-Sent Events, relayed event by event (and, for chat/completions with
//! `stream` not true, one JSON answer exactly like /api/v1/inference). The work is the
//! library's chat pipeline (`docs/http-api.md`).

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use llm_proxy_shared::{AppState, chat, routes};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(routes::INFERENCE_STREAM, post(chat::inference_stream))
        .route(routes::CHAT_COMPLETIONS, post(chat::chat_completions))
        .with_state(state)
}
