//! The paths (`docs/http-api.md`) that more than one module must agree on: the routers mount
//! them, and the rate limiter counts requests to them against the inference limit.

use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodRouter;
use http::Method;

pub const HEALTH: &str = "/health";
pub const INFERENCE: &str = "/api/v1/inference";
pub const INFERENCE_STREAM: &str = "/api/v1/inference/stream";
pub const CHAT_COMPLETIONS: &str = "/api/v1/chat/completions";
pub const RESPONSES: &str = "/api/v1/responses";
pub const MESSAGES: &str = "/api/v1/messages";
pub const COMPLETIONS: &str = "/api/v1/completions";
pub const EMBEDDINGS: &str = "/api/v1/embeddings";
pub const RERANK: &str = "/api/v1/rerank";
pub const IMAGES: &str = "/api/v1/images";
pub const AUDIO_SPEECH: &str = "/api/v1/audio/speech";
pub const AUDIO_TRANSCRIPTIONS: &str = "/api/v1/audio/transcriptions";

/// Requests that count against the inference limit as well as the default one: the
/// rows of the relay's table of operations.
pub const INFERENCE_PATHS: [&str; 11] = [
    INFERENCE,
    INFERENCE_STREAM,
    CHAT_COMPLETIONS,
    RESPONSES,
    MESSAGES,
    COMPLETIONS,
    EMBEDDINGS,
    RERANK,
    IMAGES,
    AUDIO_SPEECH,
    AUDIO_TRANSCRIPTIONS,
];

/// The local gateway's WebSocket endpoint (API Gateway's WebSocket API on AWS, which is
/// not an HTTP route of the REST API and is limited by its own `$connect` rules).
pub const WEBSOCKET: &str = "/ws";
/// The local gateway's stand-in for API Gateway's Management API, for loopback callers.
pub const CONNECTIONS: &str = "@connections";

/// Whether a path belongs to the WebSocket emulation rather than the HTTP API.
pub fn is_websocket(path: &str) -> bool {
    path == WEBSOCKET || path.split('/').any(|segment| segment == CONNECTIONS)
}

/// One HTTP route as a function mounts it: method, axum path, handler. Each function
/// lists its routes once; its router is built from the list, the local gateway merges
/// the routers, and a test holds `template.yaml`'s API to the same lists.
pub struct Route<S> {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<S>,
}

impl<S: Clone + Send + Sync + 'static> Route<S> {
    pub fn get<H: Handler<T, S>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::GET,
            path,
            handler: axum::routing::get(handler),
        }
    }

    pub fn post<H: Handler<T, S>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::POST,
            path,
            handler: axum::routing::post(handler),
        }
    }
}

/// A router serving `routes` (methods on the same path are merged).
pub fn router<S: Clone + Send + Sync + 'static>(routes: Vec<Route<S>>) -> Router<S> {
    routes.into_iter().fold(Router::new(), |router, route| {
        router.route(route.path, route.handler)
    })
}
