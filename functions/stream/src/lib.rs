//! POST /api/v1/inference/stream and POST /api/v1/chat/completions: chat completions
//! as Server-Sent Events, relayed event by event (and, for chat/completions with
//! `stream` not true, one JSON answer exactly like /api/v1/inference). The work is the
//! library's chat pipeline (`docs/http-api.md`).

use std::sync::Arc;

use axum::Router;
use llm_proxy_shared::routes::{self, Route};
use llm_proxy_shared::{AppState, chat};

pub fn routes() -> Vec<Route<Arc<AppState>>> {
    vec![
        Route::post(routes::INFERENCE_STREAM, chat::inference_stream),
        Route::post(routes::CHAT_COMPLETIONS, chat::chat_completions),
    ]
}

pub fn router(state: Arc<AppState>) -> Router {
    routes::router(routes()).with_state(state)
}
