//! The paths (`docs/http-api.md`) that more than one module must agree on: the routers mount
//! them, and the rate limiter counts requests to them against the inference limit.

pub const HEALTH: &str = "/health";
pub const INFERENCE: &str = "/api/v1/inference";
pub const INFERENCE_STREAM: &str = "/api/v1/inference/stream";
pub const CHAT_COMPLETIONS: &str = "/api/v1/chat/completions";

/// Requests that count against the inference limit as well as the default one.
pub const INFERENCE_PATHS: [&str; 3] = [INFERENCE, INFERENCE_STREAM, CHAT_COMPLETIONS];

/// The local gateway's WebSocket endpoint (API Gateway's WebSocket API on AWS, which is
/// not an HTTP route of the REST API and is limited by its own `$connect` rules).
pub const WEBSOCKET: &str = "/ws";
/// The local gateway's stand-in for API Gateway's Management API, for loopback callers.
pub const CONNECTIONS: &str = "@connections";

/// Whether a path belongs to the WebSocket emulation rather than the HTTP API.
pub fn is_websocket(path: &str) -> bool {
    path == WEBSOCKET || path.split('/').any(|segment| segment == CONNECTIONS)
}
