//! GET /health and the model catalogue under /api/v1/models.

mod health;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use llm_proxy_shared::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .with_state(state)
}
