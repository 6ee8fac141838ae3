//! GET /api/v1/openapi.json: the HTTP API as an OpenAPI 3.1 document. The document is
//! `docs/openapi.json`, committed and compiled in; `tests/tests/openapi.rs` holds it to
//! the routes the functions mount, and schemathesis holds the answers to it.

use axum::http::header;
use axum::response::IntoResponse;

const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

pub async fn openapi() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        DOCUMENT,
    )
}
