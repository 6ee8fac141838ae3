//! GET /health: is this container alive, and can it serve inference?

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use llm_proxy_shared::AppState;
use serde_json::{Value, json};

pub async fn health(State(app): State<Arc<AppState>>) -> Json<Value> {
    let mut body = json!({
        "status": "healthy",
        "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "uptime": app.started.elapsed().as_secs_f64(),
        "version": env!("CARGO_PKG_VERSION"),
        "environment": app.config.environment.as_str(),
    });
    // Still 200: the service is up and serves the catalogue; it says plainly
    // why inference will not work.
    if !app.openrouter.has_key() {
        body["status"] = json!("degraded");
        body["warnings"] = json!(["OPENROUTER_API_KEY is not set: inference answers 503"]);
    }
    Json(body)
}
