//! The paths (`docs/http-api.md`) that more than one module must agree on: the routers mount
//! them, and the rate limiter counts requests to them against the inference limit.

pub const HEALTH: &str = "/health";
pub const INFERENCE: &str = "/api/v1/inference";
pub const INFERENCE_STREAM: &str = "/api/v1/inference/stream";
pub const CHAT_COMPLETIONS: &str = "/api/v1/chat/completions";

/// Requests that count against the inference limit as well as the default one.
pub const INFERENCE_PATHS: [&str; 3] = [INFERENCE, INFERENCE_STREAM, CHAT_COMPLETIONS];
