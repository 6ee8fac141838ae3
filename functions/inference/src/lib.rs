//! POST /api/v1/inference: one chat completion, answered as one JSON body
//! (`docs/http-api.md`). The work is the library's chat pipeline.

use std::sync::Arc;

use axum::Router;
use llm_proxy_shared::routes::{self, Route};
use llm_proxy_shared::{AppState, chat};

pub fn routes() -> Vec<Route<Arc<AppState>>> {
    vec![Route::post(routes::INFERENCE, chat::inference)]
}

pub fn router(state: Arc<AppState>) -> Router {
    routes::router(routes()).with_state(state)
}
