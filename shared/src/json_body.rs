//! `JsonBody`: an inference request's body, declared JSON (or `multipart/form-data`,
//! which only the operations that take uploads accept), within the size limit, read in
//! time, kept as the caller's exact bytes (what is forwarded, and what validation
//! reads). Every failure answers in the shape of `docs/errors.md` (axum's own `Json`
//! extractor answers in plain text).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header;

use crate::error::ApiError;
use crate::state::AppState;

/// Lambda's synchronous invocation payload: the whole event, body and envelope.
const LAMBDA_PAYLOAD: usize = 6 * 1024 * 1024;
/// What the event's envelope (headers, request context) may take of it: API Gateway
/// allows 10 KB of headers, and the context and the JSON around them add a few KB.
const ENVELOPE: usize = 64 * 1024;
/// The largest body that reaches a function on AWS (`docs/http-api.md`, "Sizes"):
/// with `BinaryMediaTypes: */*` every body arrives base64-encoded in the event, four
/// bytes for three, so about 4.45 MiB of the 6 MiB. A larger body could never reach a
/// function in production, so it is refused the same way locally.
pub const BODY_LIMIT: usize = (LAMBDA_PAYLOAD - ENVELOPE) / 4 * 3;

pub struct JsonBody {
    pub raw: Bytes,
    /// The `Content-Type` of a `multipart/form-data` body (its boundary included);
    /// `None` for JSON.
    pub form: Option<http::HeaderValue>,
}

/// What a route that takes uploads accepts, for the 415 that names it.
pub const JSON_OR_FORM: &str = "application/json or multipart/form-data";

impl FromRequest<Arc<AppState>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let form = match essence(request.headers()).as_deref() {
            Some("multipart/form-data") => request.headers().get(header::CONTENT_TYPE).cloned(),
            Some(json) if is_json(json) => None,
            _ => {
                return Err(ApiError::UnsupportedMediaType {
                    accepted: if crate::relay::Operation::at(request.uri().path()).is_some_and(
                        |op| op.encoding == crate::relay::operation::Encoding::JsonOrForm,
                    ) {
                        JSON_OR_FORM
                    } else {
                        "application/json"
                    },
                });
            }
        };
        let deadline = state.config.local.body_read_timeout;
        let (parts, body) = request.into_parts();
        let raw = read_body(&parts.headers, body, deadline).await?;
        Ok(Self { raw, form })
    }
}

/// A request body, whole: refused at once if its `Content-Length` is over
/// [`BODY_LIMIT`], as soon as it grows past it otherwise, and cut off if it has not
/// all arrived within `deadline` (a slow client, or one sending less than it said).
pub async fn read_body(
    headers: &http::HeaderMap,
    body: axum::body::Body,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > BODY_LIMIT as u64) {
        return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
    }
    tokio::time::timeout(deadline, read_limited(body, declared))
        .await
        .map_err(|_| body_timeout(deadline))?
}

/// A body that did not arrive in time: slow, or shorter than its `Content-Length`.
fn body_timeout(deadline: Duration) -> ApiError {
    ApiError::BodyTimeout {
        timeout_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
    }
}

async fn read_limited(body: axum::body::Body, declared: Option<u64>) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let capacity = declared.map_or(0, |d| usize::try_from(d).unwrap_or(0).min(BODY_LIMIT));
    let mut kept = BytesMut::with_capacity(capacity);
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(ApiError::validation(
                "body",
                "The request body could not be read",
            ));
        };
        if kept.len() + chunk.len() > BODY_LIMIT {
            return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
        }
        kept.extend_from_slice(&chunk);
    }
    Ok(kept.freeze())
}

/// The media type of the body, lower-cased, without parameters.
fn essence(headers: &http::HeaderMap) -> Option<String> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn extract(content_type: Option<&str>, body: Body) -> Result<JsonBody, ApiError> {
        let config =
            crate::Config::from_lookup(|k| (k == "BODY_READ_TIMEOUT_MS").then(|| "200".to_owned()))
                .unwrap();
        let state = AppState::new(config).await.unwrap();
        let mut builder = http::Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        JsonBody::from_request(builder.body(body).unwrap(), &state).await
    }

    #[tokio::test]
    async fn keeps_the_exact_bytes() {
        let raw = br#"{ "model" : "x",  "z": 1e3 }"#.to_vec();
        let body = extract(
            Some("application/json; charset=utf-8"),
            Body::from(raw.clone()),
        )
        .await
        .unwrap();
        assert_eq!(&body.raw[..], &raw[..]);
    }

    #[tokio::test]
    async fn refuses_what_is_not_json() {
        assert!(matches!(
            extract(None, Body::from("{}")).await,
            Err(ApiError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            extract(Some("text/plain"), Body::from("{}")).await,
            Err(ApiError::UnsupportedMediaType { .. })
        ));
    }

    #[tokio::test]
    async fn a_body_too_large_or_too_slow_is_refused() {
        let big = vec![b' '; BODY_LIMIT + 1];
        assert_eq!(
            extract(Some("application/json"), Body::from(big))
                .await
                .err()
                .unwrap()
                .status(),
            413
        );
        let never =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        assert_eq!(
            extract(Some("application/json"), never)
                .await
                .err()
                .unwrap()
                .status(),
            408
        );
    }
}
