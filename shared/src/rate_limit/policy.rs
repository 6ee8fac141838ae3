//! What a request counts against (`Policy`), and the verdict (`Decision`) with the
//! headers that tell the client about it (`docs/rate-limits.md`).

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use crate::error::ApiError;
use crate::header_names::{
    RATELIMIT, RATELIMIT_LIMIT, RATELIMIT_POLICY, RATELIMIT_REMAINING, RATELIMIT_RESET,
};

/// What a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any HTTP request but `/health` and `OPTIONS`.
    Http,
    /// REST, SSE and chat/completions inference (and WebSocket `inference_request`).
    Inference,
    /// Opening a WebSocket connection.
    WsConnect,
}

/// One limit: its public name, the store attribute that counts it, its size and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub counter: &'static str,
    pub limit: u32,
    pub window: Duration,
}

/// The state of one limit after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub policy: Policy,
    pub remaining: u32,
    /// Unix seconds when the window resets.
    pub reset: u64,
    pub seconds_left: u64,
}

/// The verdict for one request, with the state of every limit it counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub quotas: Vec<Quota>,
    /// Seconds until the spent limit resets (for `Retry-After`); 0 when allowed.
    pub retry_after: u64,
    /// The spend budget that refused the request: `client` or `global`.
    pub budget: Option<&'static str>,
}

impl Decision {
    /// The limit closest to being spent: least remaining, then the smaller limit.
    pub fn tightest(&self) -> Option<&Quota> {
        self.quotas
            .iter()
            .min_by_key(|q| (q.remaining, q.policy.limit))
    }

    /// The limit that refused the request (or the tightest, if the store did not say).
    pub fn spent(&self) -> Option<&Quota> {
        self.quotas
            .iter()
            .find(|q| q.remaining == 0)
            .or(self.tightest())
    }

    /// The 429 for a refused request, naming the spent limit.
    pub fn refusal(&self) -> ApiError {
        let message = match (self.budget, self.spent()) {
            (Some("global"), _) => format!(
                "The proxy's spend budget for today is spent; inference resumes in {} s",
                self.retry_after
            ),
            (Some(_), _) => format!(
                "Your spend budget for this window is spent; retry in {} s",
                self.retry_after
            ),
            (None, spent) => match spent {
                Some(q) => format!(
                    "Rate limit exceeded: {} requests per {} s ({} limit); retry in {} s",
                    q.policy.limit,
                    q.policy.window.as_secs(),
                    q.policy.name,
                    self.retry_after
                ),
                None => "Rate limit exceeded".to_owned(),
            },
        };
        ApiError::RateLimited {
            message,
            retry_after_secs: self.retry_after,
            budget: self.budget,
        }
    }

    /// The de-facto `X-RateLimit-*` trio of the tightest limit, the IETF draft's
    /// `RateLimit-Policy` and `RateLimit`, and `Retry-After` on a refusal.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if !self.allowed {
            headers.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(self.retry_after),
            );
        }
        let Some(tightest) = self.tightest() else {
            return;
        };
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(tightest.policy.limit));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(tightest.remaining));
        headers.insert(RATELIMIT_RESET, HeaderValue::from(tightest.reset));
        let policies: Vec<String> = self
            .quotas
            .iter()
            .map(|q| {
                format!(
                    "\"{}\";q={};w={}",
                    q.policy.name,
                    q.policy.limit,
                    q.policy.window.as_secs().max(1)
                )
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&policies.join(", ")) {
            headers.insert(RATELIMIT_POLICY, value);
        }
        let current = format!(
            "\"{}\";r={};t={}",
            tightest.policy.name, tightest.remaining, tightest.seconds_left
        );
        if let Ok(value) = HeaderValue::from_str(&current) {
            headers.insert(RATELIMIT, value);
        }
    }
}
