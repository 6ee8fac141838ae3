//! The middleware that puts every HTTP request but `/health` and `OPTIONS` (and the
//! local WebSocket emulation, which `$connect` limits) through
//! the `RateLimiter`, before any body is read.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;

use super::{RateLimiter, Scope};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, InternalError};
use crate::routes::{self, HEALTH, INFERENCE_PATHS};

pub async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if request.method() == Method::OPTIONS || path == HEALTH || routes::is_websocket(path) {
        return next.run(request).await;
    }
    let scope = if INFERENCE_PATHS.contains(&path.trim_end_matches('/')) {
        Scope::Inference
    } else {
        Scope::Http
    };
    let Some(ip) = ClientIp::from_extensions(request.extensions()) else {
        return ApiError::from(InternalError::NoClientAddress).into_response();
    };
    match limiter.check(ip, scope).await {
        Ok(decision) if decision.allowed => {
            let mut response = next.run(request).await;
            decision.write_headers(response.headers_mut());
            response
        }
        Ok(decision) => {
            let mut response = decision.refusal().into_response();
            decision.write_headers(response.headers_mut());
            response
        }
        Err(error) => error.into_response(),
    }
}
