//! GET /health and the model catalogue under /api/v1/models.

mod cached;
mod catalog;
mod health;
mod query;
mod request_url;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use llm_proxy_shared::{AppState, routes};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(routes::HEALTH, get(health::health))
        .route("/api/v1/models", get(catalog::list))
        .route("/api/v1/models/count", get(catalog::count))
        .route("/api/v1/model/{author}/{slug}", get(catalog::model_by_slug))
        .route("/api/v1/models/top", get(catalog::top))
        .route("/api/v1/models/search", get(catalog::search))
        .route("/api/v1/models/providers", get(catalog::providers))
        .route(
            "/api/v1/models/providers/{provider}",
            get(catalog::provider),
        )
        .route("/api/v1/models/{*id}", get(catalog::model))
        .with_state(state)
}
