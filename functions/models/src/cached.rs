//! HTTP caching for catalogue answers: a weak `ETag` of the body, `If-None-Match` →
//! 304, `Cache-Control` matching the freshness the cached copy has left, and
//! `X-Models-Cache` saying whether the answer came from a fresh, stale or
//! stale-because-upstream-failed copy.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use llm_proxy_shared::catalog::CacheState;
use llm_proxy_shared::header_names::MODELS_CACHE;

/// The request's `If-None-Match`, if any.
pub struct Conditional(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Conditional {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self(value))
    }
}

impl Conditional {
    /// Weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored; `*` matches.
    fn matches(&self, etag: &str) -> bool {
        let Some(header) = &self.0 else { return false };
        let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
        header
            .split(',')
            .any(|tag| tag.trim() == "*" || bare(tag) == bare(etag))
    }
}

pub struct CatalogAnswer {
    state: CacheState,
    fresh_for: Duration,
}

impl CatalogAnswer {
    pub fn new(state: CacheState, fresh_for: Duration) -> Self {
        Self { state, fresh_for }
    }

    pub fn respond(&self, body: impl Into<Bytes>, conditional: &Conditional) -> Response {
        let body: Bytes = body.into();
        let etag = format!("W/\"{:016x}\"", fnv1a(&body));
        let cache_control = format!("public, max-age={}", self.fresh_for.as_secs());
        let mut response = if conditional.matches(&etag) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        };
        let headers = response.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, etag);
        }
        if let Ok(cache_control) = HeaderValue::from_str(&cache_control) {
            headers.insert(header::CACHE_CONTROL, cache_control);
        }
        headers.insert(MODELS_CACHE, HeaderValue::from_static(self.state.as_str()));
        response
    }
}

/// FNV-1a: stable across containers and processes (unlike std's hasher), so every
/// warm container gives the same ETag for the same answer.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = "W/\"00ff\"";
        assert!(Conditional(Some("\"00ff\"".into())).matches(etag));
        assert!(Conditional(Some("\"aa\", W/\"00ff\"".into())).matches(etag));
        assert!(Conditional(Some("*".into())).matches(etag));
        assert!(!Conditional(Some("W/\"0100\"".into())).matches(etag));
        assert!(!Conditional(None).matches(etag));
    }

    #[test]
    fn the_etag_follows_the_body() {
        assert_eq!(fnv1a(b"abc"), fnv1a(b"abc"));
        assert_ne!(fnv1a(b"abc"), fnv1a(b"abd"));
    }
}
