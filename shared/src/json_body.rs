//! `JsonBody`: a request body that is JSON, within the size limit, kept both as the
//! caller's exact bytes (to forward) and as a parsed value (to validate).
//!
//! axum's own `Json` extractor answers its rejections in plain text; this one answers
//! every failure in the shape of `docs/errors.md`.

use axum::extract::{FromRequest, Request};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header;
use serde_json::Value;

use crate::error::ApiError;

/// Lambda's synchronous invocation payload limit; a larger body could never reach a
/// function in production, so it is refused the same way locally.
pub const BODY_LIMIT: usize = 6 * 1024 * 1024;

pub struct JsonBody {
    pub raw: Bytes,
    pub value: Value,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let raw = read_limited(request.into_body(), declared).await?;
        // serde_json refuses nesting deeper than 128 levels, so a hostile body of
        // 10,000 open brackets is a 400, not a stack overflow.
        let value = serde_json::from_slice(&raw).map_err(|e| {
            ApiError::validation("body", format!("The request body is not valid JSON: {e}"))
        })?;
        Ok(Self { raw, value })
    }
}

/// Past the limit the rest is read and dropped (up to [`DRAIN_LIMIT`]), so that a
/// client still sending sees the 413 instead of a broken connection.
pub const DRAIN_LIMIT: u64 = 4 * BODY_LIMIT as u64;

async fn read_limited(body: axum::body::Body, declared: Option<u64>) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit: BODY_LIMIT };
    let mut stream = body.into_data_stream();
    let mut kept =
        BytesMut::with_capacity(declared.map_or(0, |d| d.min(BODY_LIMIT as u64) as usize));
    let mut seen: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(ApiError::validation(
                "body",
                "The request body could not be read",
            ));
        };
        seen += chunk.len() as u64;
        if seen > DRAIN_LIMIT {
            return Err(too_large);
        }
        if seen <= BODY_LIMIT as u64 && declared.is_none_or(|d| d <= BODY_LIMIT as u64) {
            kept.extend_from_slice(&chunk);
        }
    }
    if seen > BODY_LIMIT as u64 || declared.is_some_and(|d| d > BODY_LIMIT as u64) {
        return Err(too_large);
    }
    Ok(kept.freeze())
}

fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn extract(content_type: Option<&str>, body: Vec<u8>) -> Result<JsonBody, ApiError> {
        let mut builder = http::Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        JsonBody::from_request(builder.body(Body::from(body)).unwrap(), &()).await
    }

    #[tokio::test]
    async fn keeps_the_exact_bytes() {
        let raw = br#"{ "model" : "x",  "z": 1e3 }"#.to_vec();
        let body = extract(Some("application/json; charset=utf-8"), raw.clone())
            .await
            .unwrap();
        assert_eq!(&body.raw[..], &raw[..]);
        assert_eq!(body.value["model"], "x");
    }

    #[tokio::test]
    async fn refuses_what_is_not_json() {
        assert!(matches!(
            extract(None, b"{}".to_vec()).await,
            Err(ApiError::UnsupportedMediaType)
        ));
        assert!(matches!(
            extract(Some("text/plain"), b"{}".to_vec()).await,
            Err(ApiError::UnsupportedMediaType)
        ));
        let err = extract(Some("application/json"), b"{\"a\":".to_vec())
            .await
            .err()
            .unwrap();
        assert_eq!(err.status(), 400);
        let err = extract(Some("application/json"), vec![b'"', 0xff, 0xfe, b'"'])
            .await
            .err()
            .unwrap();
        assert_eq!(err.status(), 400);
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let err = extract(Some("application/json"), deep.into_bytes())
            .await
            .err()
            .unwrap();
        assert_eq!(err.status(), 400);
    }
}
