//! Rate-limit headers: the de-facto `X-RateLimit-*` trio of the tightest limit, and
//! the IETF draft's structured `RateLimit-Policy` and `RateLimit` fields.

use http::{HeaderMap, HeaderValue};

use super::{Decision, Policy};

/// The state of one limit after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub policy: Policy,
    pub remaining: u32,
    /// Unix seconds when the window resets.
    pub reset: u64,
    pub seconds_left: u64,
}

impl Decision {
    /// The limit closest to being spent: least remaining, then the smaller limit.
    pub fn tightest(&self) -> Option<&Quota> {
        self.quotas
            .iter()
            .min_by_key(|q| (q.remaining, q.policy.limit))
    }

    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let Some(tightest) = self.tightest() else {
            return;
        };
        headers.insert(
            "x-ratelimit-limit",
            HeaderValue::from(tightest.policy.limit),
        );
        headers.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(tightest.remaining),
        );
        headers.insert("x-ratelimit-reset", HeaderValue::from(tightest.reset));
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
            headers.insert("ratelimit-policy", value);
        }
        let current = format!(
            "\"{}\";r={};t={}",
            tightest.policy.name, tightest.remaining, tightest.seconds_left
        );
        if let Ok(value) = HeaderValue::from_str(&current) {
            headers.insert("ratelimit", value);
        }
        if !self.allowed {
            headers.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(self.retry_after),
            );
        }
    }
}
