//! The middleware that puts every HTTP request but `/health` and `OPTIONS` (and the
//! local WebSocket emulation, which `$connect` limits) through the `RateLimiter`:
//! before any body is read, or, for inference, by its handler through an `Admission`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;

use super::{Admission, RateLimiter, Scope};
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
    let inference = INFERENCE_PATHS.contains(&path.trim_end_matches('/'));
    let Some(ip) = ClientIp::from_extensions(request.extensions()) else {
        return ApiError::from(InternalError::NoClientAddress).into_response();
    };
    if inference {
        return admit_in_handler(Admission::new(limiter, ip), request, next).await;
    }
    match limiter.check(ip, Scope::Http).await {
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

/// Inference is counted by its handler, which knows what the request may cost; one the
/// handler never counted (refused while its body was read) is counted here, after.
async fn admit_in_handler(admission: Admission, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(admission.clone());
    let mut response = next.run(request).await;
    if admission.decision().is_none() {
        match admission.admit(0.0).await {
            Ok(_) => {}
            Err(refusal) => response = refusal.into_response(),
        }
    }
    if let Some(decision) = admission.decision() {
        decision.write_headers(response.headers_mut());
    }
    response
}
