//! MAX_CONCURRENT_REQUESTS for the local gateway: beyond the cap a request is
//! answered 503 at once rather than queued (on Lambda, reserved concurrency does this).
//! A stream's permit lives as long as its body, so a long stream counts until it ends.
//!
//! A request's body is read before it takes a place, as API Gateway reads it before a
//! function runs: clients trickling bodies hold connections (which `MAX_CONNECTIONS`
//! and `BODY_READ_TIMEOUT_MS` bound), never the places of requests ready to run.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use llm_proxy_shared::ApiError;
use llm_proxy_shared::json_body::read_body;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    max: u32,
    body_read_timeout: Duration,
}

impl InFlightLimit {
    pub fn new(max: u32, body_read_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
            body_read_timeout,
        }
    }
}

pub(crate) async fn limit(
    State(limit): State<InFlightLimit>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(&parts.headers, body, limit.body_read_timeout).await {
        Ok(bytes) => Body::from(bytes),
        Err(error) => return error.into_response(),
    };
    let request = Request::from_parts(parts, body);
    let Ok(permit) = limit.permits.try_acquire_owned() else {
        let mut response = ApiError::Unavailable {
            message: format!(
                "The proxy is serving its limit of {} concurrent requests; retry shortly",
                limit.max
            ),
        }
        .into_response();
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(1));
        return response;
    };
    let response = next.run(request).await;
    if !llm_proxy_shared::sse::is_event_stream(response.headers()) {
        // A buffered answer is complete here; the permit can go.
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}
