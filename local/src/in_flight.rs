//! MAX_CONCURRENT_REQUESTS for the local gateway: beyond the cap a request is
//! answered 503 at once rather than queued (on Lambda, reserved concurrency does this),
//! and so is one beyond its client's share (`MAX_CONCURRENT_REQUESTS_PER_CLIENT`), so
//! that one address holding stalled requests leaves places for everyone else.
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
use llm_proxy_shared::json_body::read_body;
use llm_proxy_shared::{ApiError, ClientIp};
use tokio::sync::Semaphore;

use crate::fair_share::FairShare;

#[derive(Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    max: u32,
    shares: FairShare,
    body_read_timeout: Duration,
}

impl InFlightLimit {
    pub fn new(max: u32, per_client: u32, body_read_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
            shares: FairShare::new(per_client),
            body_read_timeout,
        }
    }
}

/// 503 with `Retry-After: 1`: a place frees up soon.
fn busy(message: String) -> Response {
    let mut response = ApiError::Unavailable { message }.into_response();
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(1));
    response
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
    let share = match ClientIp::from_extensions(request.extensions()) {
        Some(client) => match limit.shares.take(client) {
            Some(share) => Some(share),
            None => {
                return busy(format!(
                    "You have {} requests in flight, your share of this proxy; retry when one ends",
                    limit.shares.per_client()
                ));
            }
        },
        None => None,
    };
    let Ok(permit) = limit.permits.try_acquire_owned() else {
        return busy(format!(
            "The proxy is serving its limit of {} concurrent requests; retry shortly",
            limit.max
        ));
    };
    let permit = (permit, share);
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
