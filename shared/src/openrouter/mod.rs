//! `OpenRouterClient`: the one pooled HTTP client a container keeps for OpenRouter.
//! It speaks OpenRouter's protocol (auth, attribution, timeouts, errors in the body)
//! and reports failures as `OpenRouterError` facts; `error.rs` maps them for callers.

mod error;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

pub use error::{Call, ErrorAnswer, OpenRouterError};

use crate::config::{Secret, UpstreamConfig};
use crate::header_names::{ATTRIBUTION, PASSED_BACK};

/// The largest JSON answer relayed: what a Lambda function may return (6 MB). Larger
/// answers (images) are for streaming, which has no such limit.
pub const ANSWER_LIMIT: usize = 6 * 1024 * 1024;
/// The largest catalogue read; OpenRouter's is about 1.5 MB.
const CATALOG_LIMIT: usize = 32 * 1024 * 1024;
/// The most of an error answer read. OpenRouter's are a few hundred bytes; a proxy's
/// error page a few KB. Past this it is not OpenRouter's error shape anyway.
const ERROR_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct OpenRouterClient {
    http: reqwest::Client,
    base_url: String,
    /// `{base_url}/chat/completions`, parsed once: parsing it per request (IDNA and all)
    /// was a measurable part of the proxy's own cost.
    /// The URL of each upstream path asked for so far, parsed once.
    urls: Arc<std::sync::RwLock<std::collections::HashMap<&'static str, reqwest::Url>>>,
    api_key: Option<Secret>,
    request_timeout: Duration,
}

/// The caller's headers passed on to OpenRouter: its app attribution (`HTTP-Referer`,
/// `X-Title`, `X-OpenRouter-Title`) unchanged, and the response cache's when the relay
/// allows them (`relay::cache`); no other caller header is.
#[derive(Debug, Clone, Default)]
pub struct Attribution(Vec<(http::HeaderName, HeaderValue)>);

impl Attribution {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self(
            ATTRIBUTION
                .iter()
                .filter_map(|name| headers.get(name).map(|v| (name.clone(), v.clone())))
                .collect(),
        )
    }

    pub fn push(&mut self, name: http::HeaderName, value: HeaderValue) {
        self.0.push((name, value));
    }
}

/// The headers of OpenRouter's answer that the caller gets too
/// ([`PASSED_BACK`]: the generation id, the response cache's).
pub fn passed_back(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in &PASSED_BACK {
        if let Some(value) = headers.get(name) {
            kept.insert(name.clone(), value.clone());
        }
    }
    kept
}

/// A complete, successful, non-streamed answer.
#[derive(Debug)]
pub struct Completion {
    /// OpenRouter's bytes, unchanged (whitespace padding included).
    pub body: Bytes,
    /// The answer's headers the caller gets too ([`passed_back`]).
    pub headers: HeaderMap,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("OPENROUTER_BASE_URL does not make a URL: {0}")]
    Url(#[from] url::ParseError),
}

impl OpenRouterClient {
    /// Built once per container: the pool keeps TLS connections warm across invocations.
    pub fn new(config: &UpstreamConfig) -> Result<Self, ClientBuildError> {
        crate::tls::install();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5).min(config.request_timeout))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("llm-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // The base URL must make URLs: checked once here, so that `url` cannot fail.
        reqwest::Url::parse(&format!("{}/chat/completions", config.base_url))?;
        Ok(Self {
            http,
            urls: Arc::default(),
            base_url: config.base_url.clone(),
            api_key: config.api_key.clone(),
            request_timeout: config.request_timeout,
        })
    }

    pub fn has_key(&self) -> bool {
        self.api_key.is_some()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// `path` (an operation's, such as `/responses`) under the base URL.
    fn url(&self, path: &'static str) -> Result<reqwest::Url, OpenRouterError> {
        let cached = self
            .urls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .cloned();
        if let Some(url) = cached {
            return Ok(url);
        }
        let url = reqwest::Url::parse(&format!("{}{path}", self.base_url))
            .map_err(|_| OpenRouterError::Unreadable("the upstream path does not make a URL"))?;
        self.urls
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path, url.clone());
        Ok(url)
    }

    /// Sends an inference body to `path` exactly as the caller wrote it, and returns once
    /// OpenRouter's answer headers arrive with a success status.
    ///
    /// `REQUEST_TIMEOUT` bounds the wait for the answer's headers and every silence
    /// while the body arrives, not the total: OpenRouter keeps slow answers alive with
    /// whitespace, and a long healthy answer must not be cut.
    pub async fn start(
        &self,
        path: &'static str,
        body: Bytes,
        form: Option<&HeaderValue>,
        attribution: &Attribution,
    ) -> Result<reqwest::Response, OpenRouterError> {
        let Some(key) = &self.api_key else {
            return Err(OpenRouterError::NoKey);
        };
        let content_type = form
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        let mut request = self
            .http
            .post(self.url(path)?)
            .bearer_auth(key.expose())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in &attribution.0 {
            request = request.header(name, value);
        }
        let response = self.send(request).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.error_from_response(Call::Chat, response).await)
        }
    }

    /// One non-streamed answer of the operation at `path`, read to the end.
    pub async fn complete(
        &self,
        path: &'static str,
        body: Bytes,
        form: Option<&HeaderValue>,
        attribution: &Attribution,
    ) -> Result<Completion, OpenRouterError> {
        let response = self.start(path, body, form, attribution).await?;
        let headers = passed_back(response.headers());
        let body = self.read_body(response, ANSWER_LIMIT).await?;
        self.late_error(&body)?;
        // A 200 the caller cannot parse is no answer: a proxy or a provider between
        // here and the model broke it off. Checked without building a tree.
        if serde_json::from_slice::<serde::de::IgnoredAny>(body.trim_ascii()).is_err() {
            return Err(OpenRouterError::Unreadable("its answer is not valid JSON"));
        }
        Ok(Completion { body, headers })
    }

    /// A streamed answer of the operation at `path` whose headers arrived with a
    /// success status, and which is an event stream. Anything else behind a 200 (an
    /// error object, a JSON answer, a page) is answered before the caller's first byte,
    /// with its status.
    pub async fn start_stream(
        &self,
        path: &'static str,
        body: Bytes,
        attribution: &Attribution,
    ) -> Result<reqwest::Response, OpenRouterError> {
        let response = self.start(path, body, None, attribution).await?;
        if crate::sse::is_event_stream(response.headers()) {
            return Ok(response);
        }
        Err(self
            .not_as_asked(
                response,
                ANSWER_LIMIT,
                "it answered a streamed request with something other than an event stream",
            )
            .await)
    }

    /// The error a 200 of the wrong kind stands for: the error object in its body, or
    /// `why` it is no answer.
    async fn not_as_asked(
        &self,
        response: reqwest::Response,
        limit: usize,
        why: &'static str,
    ) -> OpenRouterError {
        match self.read_body(response, limit).await {
            Err(error) => error,
            Ok(body) => match self.late_error(&body) {
                Err(error) => error,
                Ok(()) => OpenRouterError::Unreadable(why),
            },
        }
    }

    /// An answer in bytes of a media type (speech) whose headers arrived with a success
    /// status. A JSON body behind the 200 is an error object (or no answer), answered
    /// before the caller's first byte.
    pub async fn start_media(
        &self,
        path: &'static str,
        body: Bytes,
        attribution: &Attribution,
    ) -> Result<reqwest::Response, OpenRouterError> {
        let response = self.start(path, body, None, attribution).await?;
        let json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !json {
            return Ok(response);
        }
        Err(self
            .not_as_asked(
                response,
                ERROR_LIMIT,
                "it answered with JSON where it should have sent media",
            )
            .await)
    }

    /// OpenRouter commits to 200 before the model answers; a failure after that
    /// arrives as an error object in the body (after the keep-alive whitespace).
    fn late_error(&self, body: &[u8]) -> Result<(), OpenRouterError> {
        let trimmed = body.trim_ascii_start();
        if is_error_object(trimmed)
            && let Ok(value) = serde_json::from_slice::<Value>(trimmed)
        {
            let status = value
                .pointer("/error/code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(502);
            return Err(self.answered(Call::Chat, status, &value, None));
        }
        Ok(())
    }

    /// The whole model catalogue, image and audio models included (the plain call
    /// lists only text-output models). It needs no key, so none is sent.
    pub async fn models(&self) -> Result<Bytes, OpenRouterError> {
        let request = self
            .http
            .get(format!("{}/models?output_modalities=all", self.base_url))
            .header(http::header::ACCEPT, "application/json");
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(self.error_from_response(Call::Catalog, response).await);
        }
        self.read_body(response, CATALOG_LIMIT).await
    }

    /// One of OpenRouter's listings at `path` (a model's provider endpoints, the
    /// embeddings models). Like the catalogue, they need no key.
    pub async fn listing(&self, path: &str) -> Result<Bytes, OpenRouterError> {
        let request = self
            .http
            .get(format!("{}{path}", self.base_url))
            .header(http::header::ACCEPT, "application/json");
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(self.error_from_response(Call::Catalog, response).await);
        }
        self.read_body(response, CATALOG_LIMIT).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OpenRouterError> {
        tokio::time::timeout(self.request_timeout, request.send())
            .await
            .map_err(|_| OpenRouterError::Timeout(self.request_timeout))?
            .map_err(OpenRouterError::Unreachable)
    }

    /// Reads a whole body, at most `limit` bytes of it. A body that declares a larger
    /// length is refused before any of it is read. The chunks are kept as they come and
    /// joined once at the end, so a body refused part way never held more than the
    /// limit, and none is copied into a buffer grown by doubling (which holds the old
    /// and the new buffer at once).
    async fn read_body(
        &self,
        response: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, OpenRouterError> {
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(OpenRouterError::TooLarge(limit));
        }
        let mut stream = response.bytes_stream();
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut length = 0;
        loop {
            match tokio::time::timeout(self.request_timeout, stream.next()).await {
                Err(_) => return Err(OpenRouterError::Timeout(self.request_timeout)),
                Ok(None) => break,
                Ok(Some(Ok(chunk))) if length + chunk.len() > limit => {
                    return Err(OpenRouterError::TooLarge(limit));
                }
                Ok(Some(Ok(chunk))) => {
                    length += chunk.len();
                    chunks.push(chunk);
                }
                Ok(Some(Err(e))) => return Err(OpenRouterError::Unreachable(e)),
            }
        }
        // One chunk is the body as it came; more are joined into one buffer, sized once.
        Ok(if chunks.len() == 1 {
            chunks.swap_remove(0)
        } else {
            Bytes::from(chunks.concat())
        })
    }

    async fn error_from_response(
        &self,
        call: Call,
        response: reqwest::Response,
    ) -> OpenRouterError {
        let status = response.status().as_u16();
        let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
        // An error body is small; a huge or stalled one is not worth waiting for, nor
        // worth the memory.
        let read = self.read_body(response, ERROR_LIMIT);
        let body = match tokio::time::timeout(self.request_timeout, read).await {
            Ok(Ok(body)) => body,
            _ => Bytes::new(),
        };
        let value = serde_json::from_slice::<Value>(body.trim_ascii()).unwrap_or(Value::Null);
        self.answered(call, status, &value, retry_after)
    }

    fn answered(
        &self,
        call: Call,
        status: u16,
        body: &Value,
        retry_after: Option<HeaderValue>,
    ) -> OpenRouterError {
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(|m| self.scrub(m));
        let metadata = body
            .pointer("/error/metadata")
            .filter(|m| !m.is_null())
            .map(|m| self.scrub_value(m.clone()));
        OpenRouterError::Answered(Box::new(ErrorAnswer {
            call,
            status,
            message,
            metadata,
            retry_after,
        }))
    }

    fn scrub(&self, text: &str) -> String {
        self.scrubber().text(text)
    }

    /// What removes the key and account ids from upstream text bound for a caller.
    pub fn scrubber(&self) -> Scrubber {
        Scrubber {
            key: self
                .api_key
                .as_ref()
                .map(|key| Arc::<[u8]>::from(key.expose().as_bytes()))
                .filter(|key| !key.is_empty()),
        }
    }

    fn scrub_value(&self, value: Value) -> Value {
        let text = value.to_string();
        let scrubbed = self.scrub(&text);
        if scrubbed == text {
            return value;
        }
        serde_json::from_str(&scrubbed).unwrap_or(Value::Null)
    }
}

/// Upstream text never carries the key, or an account or organisation id (the proxy's
/// own, at OpenRouter or a provider), back to a caller, whatever the transport: error
/// answers, events in the middle of a stream, WebSocket messages made from them.
#[derive(Clone, Default)]
pub struct Scrubber {
    key: Option<Arc<[u8]>>,
}

impl Scrubber {
    pub fn text(&self, text: &str) -> String {
        let text = match self.key.as_deref().map(std::str::from_utf8) {
            Some(Ok(key)) if text.contains(key) => text.replace(key, "[redacted]"),
            _ => text.to_owned(),
        };
        scrub_account_ids(&text)
    }

    /// Relayed events: the key wherever it appears; account ids in error events (an
    /// answer's own text may mention `user_…` harmlessly). Events without either pass
    /// as they are, byte for byte.
    pub fn events(&self, events: Bytes) -> Bytes {
        let has = |needle: &[u8]| memchr::memmem::find(&events, needle).is_some();
        let has_key = self.key.as_deref().is_some_and(has);
        if !has_key && !has(b"\"error\"") {
            return events;
        }
        let text = String::from_utf8_lossy(&events);
        let scrubbed = self.text(&text);
        if scrubbed == text {
            return events;
        }
        Bytes::from(scrubbed)
    }
}

/// `org-…`, `org_…` and `user_…` ids (of 8 or more letters and digits), as OpenRouter
/// and providers name accounts, become `org-[redacted]`.
fn scrub_account_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, prefix)) = ["org-", "org_", "user_"]
        .iter()
        .filter_map(|prefix| rest.find(prefix).map(|at| (at, prefix.len())))
        .min()
    {
        let tail = &rest[start + prefix..];
        let id = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        out.push_str(&rest[..start + prefix]);
        if id >= 8 {
            out.push_str("[redacted]");
        } else {
            out.push_str(&tail[..id]);
        }
        rest = &tail[id..];
    }
    out.push_str(rest);
    out
}

/// Whether a body is `{"error": ...}`, judged from its first key without parsing
/// the whole (possibly large) answer.
fn is_error_object(body: &[u8]) -> bool {
    body.strip_prefix(b"{")
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"\"error\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use serde_json::json;

    fn client() -> OpenRouterClient {
        let config = crate::Config::from_lookup(|k| {
            (k == "OPENROUTER_API_KEY").then(|| "sk-or-v1-abc".to_owned())
        })
        .unwrap();
        OpenRouterClient::new(&config.upstream).unwrap()
    }

    #[test]
    fn keys_in_upstream_errors_are_scrubbed() {
        let c = client();
        let body = json!({"error": {"code": 403, "message": "flagged for sk-or-v1-abc",
                                    "metadata": {"reasons": ["violence"], "flagged_input": "sk-or-v1-abc"}}});
        let err = ApiError::from(c.answered(Call::Chat, 403, &body, None));
        let text = err.body().to_string();
        assert!(text.contains("violence"), "{text}");
        assert!(!text.contains("sk-or-v1-abc"), "{text}");
    }

    #[test]
    fn account_ids_are_scrubbed() {
        assert_eq!(
            scrub_account_ids("quota of organization org-AbCdEf123456 exceeded"),
            "quota of organization org-[redacted] exceeded"
        );
        assert_eq!(
            scrub_account_ids("user_2uMVNwONqhSdZXQy"),
            "user_[redacted]"
        );
        assert_eq!(scrub_account_ids("an org-chart"), "an org-chart");
    }

    #[test]
    fn an_error_object_is_told_by_its_first_key() {
        assert!(is_error_object(br#"{ "error": {"code": 502}}"#));
        assert!(!is_error_object(br#"{"id": "gen-1", "error": null}"#));
    }
}
