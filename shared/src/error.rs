//! `ApiError`: every failure the proxy can answer with, and its one wire shape
//! (`docs/errors.md`). Handlers return `Result<_, ApiError>`; nothing else builds error
//! bodies, and a failed request is logged here, once.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::metrics::Refusal;

/// The `type` field of the wire shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Validation,
    NotFound,
    RateLimit,
    OpenRouter,
    Timeout,
    Unavailable,
    Internal,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::NotFound => "not_found",
            Self::RateLimit => "rate_limit",
            Self::OpenRouter => "openrouter",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("validation error on {field}: {message}")]
    Validation { field: String, message: String },

    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },

    #[error("request body must be JSON")]
    UnsupportedMediaType {
        /// The Content-Types the route takes, for the message.
        accepted: &'static str,
    },

    #[error("the request body did not arrive within {timeout_ms} ms")]
    BodyTimeout { timeout_ms: u64 },

    /// A request head the HTTP parser refused before any route saw it: 400, 414 or
    /// 431, with what was wrong (`request`, `path`, `headers`) and why.
    #[error("request head refused ({status}): {message}")]
    RequestHead {
        status: StatusCode,
        field: &'static str,
        message: &'static str,
    },

    #[error("{message}")]
    NotFound { message: String },

    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },

    #[error("rate limit spent")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
        /// The spend budget that is spent (`client` or `global`), when it is one.
        budget: Option<&'static str>,
    },

    /// OpenRouter answered with an error, or not in a form the proxy can pass on.
    #[error("openrouter error (upstream status {:?}): {}", .0.upstream_status, .0.message)]
    OpenRouter(#[source] Box<UpstreamError>),

    #[error("OpenRouter did not answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },

    #[error("{message}")]
    Unavailable { message: String },

    /// A bug. The message on the wire says nothing of internals; the cause is logged.
    #[error("internal error")]
    Internal(#[from] InternalError),
}

/// What went wrong inside the proxy; logged, never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InternalError {
    #[error("a handler panicked")]
    Panic,
    /// The runtime put neither a Lambda request context nor a socket address on the
    /// request: a wiring mistake, since every real request has one.
    #[error("no client address in the request context")]
    NoClientAddress,
    /// The task making a journaled answer ended before it answered (it panicked).
    #[error("the answer's task ended early")]
    AnswerLost,
}

/// What the proxy tells a caller about an OpenRouter failure (the mapping of
/// `docs/errors.md` is made in `openrouter::error`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamError {
    /// The status the proxy answers with.
    pub status: StatusCode,
    pub message: String,
    pub upstream_status: Option<u16>,
    pub upstream_message: Option<String>,
    pub metadata: Option<Value>,
    pub retry_after: Option<HeaderValue>,
    /// Why, for the log line; never sent.
    #[source]
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl UpstreamError {
    /// A 502 with only the proxy's own message.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            message: message.into(),
            upstream_status: None,
            upstream_message: None,
            metadata: None,
            retry_after: None,
            cause: None,
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(error: UpstreamError) -> Self {
        Self::OpenRouter(Box::new(error))
    }
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound {
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::RequestHead { status, .. } => *status,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::OpenRouter(e) => e.status,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn error_type(&self) -> ErrorType {
        match self {
            Self::Validation { .. }
            | Self::PayloadTooLarge { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::BodyTimeout { .. }
            | Self::RequestHead { .. } => ErrorType::Validation,
            Self::NotFound { .. } | Self::MethodNotAllowed { .. } => ErrorType::NotFound,
            Self::RateLimited { .. } => ErrorType::RateLimit,
            Self::OpenRouter(_) => ErrorType::OpenRouter,
            Self::Timeout { .. } => ErrorType::Timeout,
            Self::Unavailable { .. } => ErrorType::Unavailable,
            Self::Internal(_) => ErrorType::Internal,
        }
    }

    /// The `error` object of the wire shape; also what a stream's final error event
    /// and a WebSocket `error` message carry.
    pub fn error_object(&self) -> Value {
        let (message, details) = match self {
            Self::Validation { field, message } => (
                "Validation error".to_owned(),
                Some(json!({ "field": field, "message": message })),
            ),
            Self::PayloadTooLarge { limit } => (
                "Request body too large".to_owned(),
                Some(
                    json!({ "field": "body", "message": format!("The body must be at most {limit} bytes") }),
                ),
            ),
            Self::UnsupportedMediaType { accepted } => (
                "Unsupported media type".to_owned(),
                Some(
                    json!({ "field": "content-type", "message": format!("Content-Type must be {accepted}") }),
                ),
            ),
            Self::BodyTimeout { timeout_ms } => (
                "Request body too slow".to_owned(),
                Some(json!({ "field": "body",
                             "message": format!("The whole body must arrive within {timeout_ms} ms") })),
            ),
            Self::RequestHead {
                status,
                field,
                message,
            } => (
                status.canonical_reason().unwrap_or_default().to_owned(),
                Some(json!({ "field": field, "message": message })),
            ),
            Self::NotFound { message } | Self::Unavailable { message } => (message.clone(), None),
            Self::MethodNotAllowed { method, path } => {
                (format!("Method {method} is not allowed on {path}"), None)
            }
            Self::RateLimited {
                message,
                retry_after_secs,
                budget,
            } => {
                let mut details = json!({ "retry_after": retry_after_secs });
                if let Some(budget) = budget {
                    details["budget"] = json!(budget);
                }
                (message.clone(), Some(details))
            }
            Self::OpenRouter(e) => {
                let mut details = serde_json::Map::new();
                if let Some(status) = e.upstream_status {
                    details.insert("status".into(), json!(status));
                }
                if let Some(upstream_message) = &e.upstream_message {
                    details.insert("message".into(), json!(upstream_message));
                }
                if let Some(metadata) = &e.metadata {
                    details.insert("metadata".into(), metadata.clone());
                }
                (
                    e.message.clone(),
                    (!details.is_empty()).then_some(Value::Object(details)),
                )
            }
            Self::Timeout { timeout_ms } => (
                format!("OpenRouter did not answer within {timeout_ms} ms"),
                None,
            ),
            Self::Internal(_) => ("Internal server error".to_owned(), None),
        };
        let mut object = json!({
            "code": self.status().as_u16(),
            "message": message,
            "type": self.error_type().as_str(),
        });
        if let (Some(details), Some(map)) = (details, object.as_object_mut()) {
            map.insert("details".into(), details);
        }
        object
    }

    /// The whole wire body: `{"error": {...}}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.error_object() })
    }
}

impl ApiError {
    /// What kind of refusal this is, for the `Refusals` metric; `None` for answers
    /// that are not the proxy refusing a request (OpenRouter's errors, a bug, an
    /// unknown route).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Validation { .. }
            | Self::PayloadTooLarge { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::BodyTimeout { .. }
            | Self::RequestHead { .. } => Some(Refusal::Validation),
            Self::RateLimited { budget: None, .. } => Some(Refusal::RateLimit),
            Self::RateLimited {
                budget: Some(_), ..
            } => Some(Refusal::SpendBudget),
            Self::Unavailable { .. } => Some(Refusal::OverCapacity),
            Self::NotFound { .. }
            | Self::MethodNotAllowed { .. }
            | Self::OpenRouter(_)
            | Self::Timeout { .. }
            | Self::Internal(_) => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = Chain(&self);
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), %error, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), %error, "request rejected");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::RateLimited {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::OpenRouter(e) => {
                if let Some(value) = &e.retry_after {
                    headers.insert(header::RETRY_AFTER, value.clone());
                }
            }
            _ => {}
        }
        // The access log's metrics read it (`crate::layers`).
        if let Some(refusal) = self.refusal() {
            response.extensions_mut().insert(refusal);
        }
        response
    }
}

/// Caller text as the proxy quotes it back, in an error or a log: at most
/// [`QUOTE_CHARS`] characters, so a hostile client cannot make the proxy echo (or log)
/// megabytes of its own.
pub fn quote(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => std::borrow::Cow::Borrowed(text),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}…", &text[..at])),
    }
}

pub const QUOTE_CHARS: usize = 64;

/// An error and its causes, `a: b: c`, for one log line.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_error_has_the_documented_shape() {
        let body = ApiError::validation("model", "Model is required").body();
        assert_eq!(
            body,
            json!({"error": {"code": 400, "message": "Validation error", "type": "validation",
                             "details": {"field": "model", "message": "Model is required"}}})
        );
    }

    #[test]
    fn internal_error_hides_its_cause() {
        let body = ApiError::from(InternalError::NoClientAddress)
            .body()
            .to_string();
        assert!(!body.contains("client address"), "{body}");
        assert!(body.contains("\"internal\""), "{body}");
    }

    #[test]
    fn openrouter_429_keeps_retry_after() {
        let response = ApiError::from(UpstreamError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "OpenRouter rate limit".into(),
            upstream_status: Some(429),
            upstream_message: Some("Rate limit exceeded".into()),
            metadata: None,
            retry_after: Some(HeaderValue::from_static("7")),
            cause: None,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
