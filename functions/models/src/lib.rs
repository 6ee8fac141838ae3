//! GET /health, the model catalogue under /api/v1/models and the embeddings models, and the API's own description
//! at /api/v1/openapi.json.

mod cached;
mod catalog;
mod embeddings;
mod health;
mod openapi;
/// Public for the fuzz targets (`fuzz/`).
pub mod query;
mod request_url;

use std::sync::Arc;

use axum::Router;
use llm_proxy_shared::AppState;
use llm_proxy_shared::routes::{self, Route};

/// GET only; the greedy `{*id}` takes model ids with a slash (`openai/gpt-4o`) and
/// `{id}/endpoints`, after the fixed paths beside it.
pub fn routes() -> Vec<Route<Arc<AppState>>> {
    vec![
        Route::get(routes::HEALTH, health::health),
        Route::get("/api/v1/openapi.json", openapi::openapi),
        Route::get("/api/v1/models", catalog::list),
        Route::get("/api/v1/models/count", catalog::count),
        Route::get("/api/v1/model/{author}/{slug}", catalog::model_by_slug),
        Route::get("/api/v1/models/top", catalog::top),
        Route::get("/api/v1/models/search", catalog::search),
        Route::get("/api/v1/models/providers", catalog::providers),
        Route::get("/api/v1/models/providers/{provider}", catalog::provider),
        Route::get("/api/v1/models/{*id}", catalog::model),
        Route::get("/api/v1/embeddings/models", embeddings::list),
    ]
}

pub fn router(state: Arc<AppState>) -> Router {
    routes::router(routes()).with_state(state)
}
