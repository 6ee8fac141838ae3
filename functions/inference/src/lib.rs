//! POST /api/v1/inference: one chat completion, answered as one JSON body
//! (`docs/http-api.md`). The work is the library's chat pipeline.

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use llm_proxy_shared::{AppState, chat, routes};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(routes::INFERENCE, post(chat::inference))
        .with_state(state)
}
