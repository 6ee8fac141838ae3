//! MAX_CONCURRENT_REQUESTS for the local gateway: beyond the cap a request is
//! answered 503 at once rather than queued (on Lambda, reserved concurrency does this).
//! A stream's permit lives as long as its body, so a long stream counts until it ends.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use llm_proxy_shared::ApiError;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    max: u32,
}

impl InFlightLimit {
    pub fn new(max: u32) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }
}

pub(crate) async fn limit(
    State(limit): State<InFlightLimit>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = limit.permits.try_acquire_owned() else {
        return ApiError::Unavailable {
            message: format!(
                "The proxy is serving its limit of {} concurrent requests; retry shortly",
                limit.max
            ),
        }
        .into_response();
    };
    let response = next.run(request).await;
    let streaming = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
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
