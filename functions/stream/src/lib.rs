//! The inference operations that may stream (`docs/http-api.md`): chat
//! (`/api/v1/inference/stream`, `/api/v1/chat/completions`), `/api/v1/responses`,
//! `/api/v1/messages`, `/api/v1/completions` and `/api/v1/images`, relayed event by event
//! as Server-Sent Events (or, when the body does not ask for a stream, as one JSON
//! answer). The work is the library's relay; the routes are the rows of its table of
//! operations that may stream, served with Lambda response streaming.

use std::sync::Arc;

use axum::Router;
use llm_proxy_shared::routes::{self, Route};
use llm_proxy_shared::{AppState, relay};

pub fn routes() -> Vec<Route<Arc<AppState>>> {
    relay::routes(true)
}

pub fn router(state: Arc<AppState>) -> Router {
    routes::router(routes()).with_state(state)
}
