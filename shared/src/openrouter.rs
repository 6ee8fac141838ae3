//! `OpenRouterClient`: the one pooled HTTP client a container keeps for OpenRouter,
//! and the mapping of OpenRouter's answers onto the proxy's (SPEC §2).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use crate::config::{Config, Secret};
use crate::error::{ApiError, UpstreamError};

/// Caller headers OpenRouter uses for app attribution; passed on unchanged.
pub const ATTRIBUTION_HEADERS: [&str; 3] = ["http-referer", "x-title", "x-openrouter-title"];

pub const GENERATION_ID: &str = "x-generation-id";

#[derive(Clone)]
pub struct OpenRouterClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<Secret>,
    request_timeout: Duration,
}

/// A complete, successful upstream answer.
#[derive(Debug)]
pub struct UpstreamBody {
    pub body: Bytes,
    pub generation_id: Option<HeaderValue>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client: {0}")]
pub struct ClientBuildError(#[from] reqwest::Error);

impl OpenRouterClient {
    /// Built once per container: the pool keeps TLS connections warm across invocations.
    pub fn new(config: &Config) -> Result<Self, ClientBuildError> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5).min(config.request_timeout))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("llm-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: config.openrouter_base_url.clone(),
            api_key: config.openrouter_api_key.clone(),
            request_timeout: config.request_timeout,
        })
    }

    pub fn has_key(&self) -> bool {
        self.api_key.is_some()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends a chat-completions body exactly as the caller wrote it.
    ///
    /// `REQUEST_TIMEOUT` bounds the wait for the answer's headers and every silence
    /// while the body arrives, not the total: OpenRouter keeps slow answers alive with
    /// whitespace, and a long healthy answer must not be cut.
    pub async fn start_chat(
        &self,
        body: Bytes,
        caller_headers: &HeaderMap,
    ) -> Result<reqwest::Response, ApiError> {
        let Some(key) = &self.api_key else {
            return Err(ApiError::Unavailable {
                message: "Inference is unavailable: the proxy has no OpenRouter API key (OPENROUTER_API_KEY is not set)".into(),
            });
        };
        let mut request = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(key.expose())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        for name in ATTRIBUTION_HEADERS {
            if let Some(value) = caller_headers.get(name) {
                request = request.header(name, value.clone());
            }
        }
        let response = tokio::time::timeout(self.request_timeout, request.send())
            .await
            .map_err(|_| self.timeout())?
            .map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.error_from_response(response).await)
        }
    }

    /// One non-streamed chat completion, read to the end.
    pub async fn chat(
        &self,
        body: Bytes,
        caller_headers: &HeaderMap,
    ) -> Result<UpstreamBody, ApiError> {
        let response = self.start_chat(body, caller_headers).await?;
        let generation_id = response.headers().get(GENERATION_ID).cloned();
        let body = self.read_body(response).await?;
        // OpenRouter commits to 200 before the model answers; a failure after that
        // arrives as an error object in the body (after the keep-alive whitespace).
        let trimmed = body.trim_ascii_start();
        if is_error_object(trimmed)
            && let Ok(value) = serde_json::from_slice::<Value>(trimmed)
        {
            let status = value
                .pointer("/error/code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(502);
            return Err(self.map_error(status, &value, None));
        }
        Ok(UpstreamBody {
            body,
            generation_id,
        })
    }

    /// The whole model catalogue, image and audio models included (the plain call
    /// lists only text-output models). It needs no key, so none is sent.
    pub async fn models(&self) -> Result<Bytes, ApiError> {
        let request = self
            .http
            .get(format!("{}/models?output_modalities=all", self.base_url))
            .header(http::header::ACCEPT, "application/json");
        let response = tokio::time::timeout(self.request_timeout, request.send())
            .await
            .map_err(|_| self.timeout())?
            .map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            // Whatever upstream said, the caller asked the proxy, not OpenRouter.
            let upstream = self.error_from_response(response).await;
            return Err(match upstream {
                ApiError::OpenRouter(e) => UpstreamError {
                    status: StatusCode::BAD_GATEWAY,
                    message: "OpenRouter's model catalogue is unavailable".into(),
                    retry_after: None,
                    ..*e
                }
                .into(),
                other => other,
            });
        }
        self.read_body(response).await
    }

    async fn read_body(&self, response: reqwest::Response) -> Result<Bytes, ApiError> {
        let mut stream = response.bytes_stream();
        let mut body = BytesMut::new();
        loop {
            match tokio::time::timeout(self.request_timeout, stream.next()).await {
                Err(_) => return Err(self.timeout()),
                Ok(None) => return Ok(body.freeze()),
                Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => return Err(self.unreachable(&e)),
            }
        }
    }

    pub fn timeout(&self) -> ApiError {
        ApiError::Timeout {
            timeout_ms: u64::try_from(self.request_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> ApiError {
        tracing::warn!(error = %self.scrub(&error.to_string()), "OpenRouter request failed");
        UpstreamError::bad_gateway("OpenRouter could not be reached, or the connection broke")
            .into()
    }

    async fn error_from_response(&self, response: reqwest::Response) -> ApiError {
        let status = response.status().as_u16();
        let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
        // An error body is small; a huge one is not worth reading to the end.
        let body = match tokio::time::timeout(self.request_timeout, response.bytes()).await {
            Ok(Ok(body)) => body,
            _ => Bytes::new(),
        };
        let value = serde_json::from_slice::<Value>(body.trim_ascii()).unwrap_or(Value::Null);
        self.map_error(status, &value, retry_after)
    }

    /// SPEC §2: keep the status where it tells the caller something they can act on.
    fn map_error(
        &self,
        upstream_status: u16,
        body: &Value,
        retry_after: Option<HeaderValue>,
    ) -> ApiError {
        let upstream_message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(|m| self.scrub(m));
        let metadata = body
            .pointer("/error/metadata")
            .filter(|m| !m.is_null())
            .cloned();
        let parsed = upstream_message.is_some();
        let (status, message): (StatusCode, String) = match upstream_status {
            400 | 404 | 413 | 422 | 403 | 429 if parsed => (
                StatusCode::from_u16(upstream_status).unwrap_or(StatusCode::BAD_GATEWAY),
                upstream_message.clone().unwrap_or_default(),
            ),
            401 | 402 => (
                StatusCode::BAD_GATEWAY,
                if upstream_status == 401 {
                    "The proxy's OpenRouter account was refused (invalid or revoked API key); this is not a problem with your request".into()
                } else {
                    "The proxy's OpenRouter account is out of credit; this is not a problem with your request".into()
                },
            ),
            _ if !parsed => (
                StatusCode::BAD_GATEWAY,
                "OpenRouter answered with an error the proxy could not read".into(),
            ),
            _ => (
                StatusCode::BAD_GATEWAY,
                "OpenRouter failed to answer".into(),
            ),
        };
        UpstreamError {
            status,
            message,
            upstream_status: Some(upstream_status),
            upstream_message,
            metadata: metadata.map(|m| self.scrub_value(m)),
            retry_after: if upstream_status == 429 {
                retry_after
            } else {
                None
            },
        }
        .into()
    }

    /// Upstream text never carries the key back to a caller, even if it echoes it.
    fn scrub(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) if !key.expose().is_empty() && text.contains(key.expose()) => {
                text.replace(key.expose(), "[redacted]")
            }
            _ => text.to_owned(),
        }
    }

    fn scrub_value(&self, value: Value) -> Value {
        match &self.api_key {
            Some(key) if value.to_string().contains(key.expose()) => {
                serde_json::from_str(&self.scrub(&value.to_string())).unwrap_or(Value::Null)
            }
            _ => value,
        }
    }
}

/// Whether a body is `{"error": ...}`, judged from its first key without parsing
/// the whole (possibly large) answer.
fn is_error_object(body: &[u8]) -> bool {
    body.strip_prefix(b"{")
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"\"error\""))
}

/// Copies the generation id onto a response's headers when upstream sent one.
pub fn forward_generation_id(headers: &mut HeaderMap, generation_id: Option<HeaderValue>) {
    if let Some(id) = generation_id {
        headers.insert(HeaderName::from_static(GENERATION_ID), id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client() -> OpenRouterClient {
        let config =
            Config::from_lookup(|k| (k == "OPENROUTER_API_KEY").then(|| "sk-or-v1-abc".to_owned()))
                .unwrap();
        OpenRouterClient::new(&config).unwrap()
    }

    #[test]
    fn status_mapping_follows_the_spec() {
        let c = client();
        let body = json!({"error": {"code": 0, "message": "m"}});
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
                c.map_error(upstream, &body, None).status().as_u16(),
                ours,
                "upstream {upstream}"
            );
        }
        assert_eq!(
            c.map_error(400, &Value::Null, None).status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn moderation_keeps_its_reasons_and_keys_are_scrubbed() {
        let c = client();
        let body = json!({"error": {"code": 403, "message": "flagged for sk-or-v1-abc",
                                    "metadata": {"reasons": ["violence"], "flagged_input": "sk-or-v1-abc"}}});
        let err = c.map_error(403, &body, None);
        let text = err.body().to_string();
        assert!(text.contains("violence"), "{text}");
        assert!(!text.contains("sk-or-v1-abc"), "{text}");
    }
}
