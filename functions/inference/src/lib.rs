//! The inference operations that answer with one JSON body (`docs/http-api.md`):
//! `POST /api/v1/inference` (a chat completion), `/api/v1/embeddings`, `/api/v1/rerank`.
//! The work is the library's relay; the routes are the rows of its table of operations
//! that never stream.

use std::sync::Arc;

use axum::Router;
use llm_proxy_shared::routes::{self, Route};
use llm_proxy_shared::{AppState, relay};

pub fn routes() -> Vec<Route<Arc<AppState>>> {
    relay::routes(false)
}

pub fn router(state: Arc<AppState>) -> Router {
    routes::router(routes()).with_state(state)
}
