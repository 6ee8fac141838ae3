//! `OpenRouterError`: what can go wrong talking to OpenRouter, as facts; and the one
//! place those facts become what a caller is told (`docs/errors.md`, "OpenRouter's errors").

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use serde_json::Value;

use crate::error::{ApiError, UpstreamError};

/// Which call failed: a catalogue failure is never the caller's fault, whatever the
/// status, while a chat failure may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Chat,
    Catalog,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenRouterError {
    #[error("no OpenRouter API key is configured (OPENROUTER_API_KEY is not set)")]
    NoKey,
    #[error("OpenRouter sent nothing for {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("OpenRouter could not be reached, or the connection broke")]
    Unreachable(#[source] reqwest::Error),
    #[error("OpenRouter answered {}", .0.status)]
    Answered(Box<ErrorAnswer>),
    #[error("OpenRouter's answer is larger than {0} bytes")]
    TooLarge(usize),
    /// A success status over a body that is not what was asked for.
    #[error("OpenRouter's answer could not be read: {0}")]
    Unreadable(&'static str),
}

impl OpenRouterError {
    /// Whether OpenRouter may have run, and billed, a generation for the request: it
    /// did unless it answered with an error or was never asked (no key, or no
    /// connection could be made: an outage must not drain the callers' budgets). An
    /// answer that came too slowly, too large or broken was still generated.
    pub fn may_be_billed(&self) -> bool {
        match self {
            Self::NoKey | Self::Answered(_) => false,
            Self::Unreachable(cause) => !cause.is_connect(),
            Self::Timeout(_) | Self::TooLarge(_) | Self::Unreadable(_) => true,
        }
    }
}

/// An error OpenRouter answered with. Texts are already scrubbed of the key.
#[derive(Debug)]
pub struct ErrorAnswer {
    pub call: Call,
    pub status: u16,
    /// `error.message` of OpenRouter's body; `None` when the body was not its error shape.
    pub message: Option<String>,
    pub metadata: Option<Value>,
    pub retry_after: Option<HeaderValue>,
}

impl From<OpenRouterError> for ApiError {
    fn from(error: OpenRouterError) -> Self {
        match error {
            OpenRouterError::NoKey => ApiError::Unavailable {
                message: "Inference is unavailable: the proxy has no OpenRouter API key (OPENROUTER_API_KEY is not set)".into(),
            },
            OpenRouterError::Timeout(timeout) => ApiError::Timeout {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            },
            OpenRouterError::Unreachable(cause) => UpstreamError {
                cause: Some(Arc::new(cause)),
                ..UpstreamError::bad_gateway(
                    "OpenRouter could not be reached, or the connection broke",
                )
            }
            .into(),
            OpenRouterError::Answered(answer) => map_answer(*answer).into(),
            unreadable @ OpenRouterError::Unreadable(_) => {
                UpstreamError::bad_gateway(unreadable.to_string()).into()
            }
            OpenRouterError::TooLarge(limit) => UpstreamError::bad_gateway(format!(
                "OpenRouter's answer is larger than the {limit} bytes the proxy returns in one body; ask for it streamed"
            ))
            .into(),
        }
    }
}

/// Keeps OpenRouter's status where it tells the caller something they can act on.
fn map_answer(answer: ErrorAnswer) -> UpstreamError {
    let ErrorAnswer {
        call,
        status: upstream_status,
        message: upstream_message,
        metadata,
        retry_after,
    } = answer;
    let readable = upstream_message.is_some();
    let (status, message): (StatusCode, String) = match (call, upstream_status) {
        (Call::Catalog, _) => (
            StatusCode::BAD_GATEWAY,
            "OpenRouter's model catalogue is unavailable".into(),
        ),
        (Call::Chat, 400 | 404 | 413 | 422 | 403 | 429) if readable => (
            StatusCode::from_u16(upstream_status).unwrap_or(StatusCode::BAD_GATEWAY),
            upstream_message.clone().unwrap_or_default(),
        ),
        (Call::Chat, 401) => (
            StatusCode::BAD_GATEWAY,
            "The proxy's OpenRouter account was refused (invalid or revoked API key); this is not a problem with your request".into(),
        ),
        (Call::Chat, 402) => (
            StatusCode::BAD_GATEWAY,
            "The proxy's OpenRouter account is out of credit; this is not a problem with your request".into(),
        ),
        (Call::Chat, _) if !readable => (
            StatusCode::BAD_GATEWAY,
            "OpenRouter answered with an error the proxy could not read".into(),
        ),
        (Call::Chat, _) => (
            StatusCode::BAD_GATEWAY,
            "OpenRouter failed to answer".into(),
        ),
    };
    // OpenRouter's words and metadata are the caller's to read only where they are
    // about the caller's request; a 401, 402 or 5xx describes the proxy's account or
    // OpenRouter itself (a balance, an org), so only its status is passed on.
    let about_the_request = status != StatusCode::BAD_GATEWAY;
    UpstreamError {
        status,
        message,
        upstream_status: Some(upstream_status),
        upstream_message: upstream_message.filter(|_| about_the_request),
        metadata: metadata.filter(|_| about_the_request),
        // Only OpenRouter's own 429 is a "come back later" the caller can act on.
        retry_after: retry_after.filter(|_| call == Call::Chat && upstream_status == 429),
        cause: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat_error(status: u16, message: Option<&str>) -> ApiError {
        OpenRouterError::Answered(Box::new(ErrorAnswer {
            call: Call::Chat,
            status,
            message: message.map(str::to_owned),
            metadata: Some(json!({"reasons": ["violence"]})),
            retry_after: Some(HeaderValue::from_static("7")),
        }))
        .into()
    }

    #[test]
    fn statuses_the_caller_can_act_on_are_kept_the_rest_are_502() {
        for (upstream, ours) in [
            (400, 400),
            (403, 403),
            (404, 404),
            (413, 413),
            (422, 422),
            (429, 429),
            (401, 502),
            (402, 502),
            (408, 502),
            (500, 502),
            (502, 502),
            (503, 502),
        ] {
            assert_eq!(
                chat_error(upstream, Some("m")).status().as_u16(),
                ours,
                "upstream {upstream}"
            );
        }
        assert_eq!(chat_error(400, None).status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn moderation_keeps_its_reasons_and_only_a_429_keeps_retry_after() {
        let text = chat_error(403, Some("flagged")).body().to_string();
        assert!(text.contains("violence"), "{text}");
        let ApiError::OpenRouter(limited) = chat_error(429, Some("slow down")) else {
            panic!("an upstream 429 is an openrouter error");
        };
        assert_eq!(limited.retry_after, Some(HeaderValue::from_static("7")));
        let ApiError::OpenRouter(failed) = chat_error(503, Some("down")) else {
            panic!("an upstream 503 is an openrouter error");
        };
        assert_eq!(failed.retry_after, None);
    }

    #[test]
    fn account_and_server_failures_pass_on_no_upstream_text() {
        for status in [401, 402, 500, 503] {
            let body = chat_error(status, Some("can only afford 1234"))
                .body()
                .to_string();
            assert!(!body.contains("afford"), "{status}: {body}");
            assert!(
                !body.contains("violence"),
                "{status}: metadata passed on: {body}"
            );
            assert!(body.contains(&format!("\"status\":{status}")), "{body}");
        }
    }

    #[test]
    fn a_catalogue_failure_is_always_a_502() {
        let error: ApiError = OpenRouterError::Answered(Box::new(ErrorAnswer {
            call: Call::Catalog,
            status: 404,
            message: Some("not found".into()),
            metadata: None,
            retry_after: None,
        }))
        .into();
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn no_key_is_unavailable_and_silence_a_timeout() {
        assert_eq!(
            ApiError::from(OpenRouterError::NoKey).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(OpenRouterError::Timeout(Duration::from_millis(5))).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
    }
}
