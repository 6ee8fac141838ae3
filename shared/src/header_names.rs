//! The header names the proxy sends or reads, in one place: the handlers that write them
//! and the CORS layer that lets browsers read them use these same constants, so the
//! two cannot drift apart.

use http::HeaderName;

/// OpenRouter's id for a generation, passed back from its answer.
pub const GENERATION_ID: HeaderName = HeaderName::from_static("x-generation-id");
/// OpenRouter's response cache (`docs/http-api.md`, "Response caching"): asked for
/// with the first three, answered with `-Status` (`HIT` or `MISS`), `-TTL`, and on a hit
/// `-Age` and `-Source-Id`.
pub const OPENROUTER_CACHE: HeaderName = HeaderName::from_static("x-openrouter-cache");
pub const OPENROUTER_CACHE_TTL: HeaderName = HeaderName::from_static("x-openrouter-cache-ttl");
pub const OPENROUTER_CACHE_CLEAR: HeaderName = HeaderName::from_static("x-openrouter-cache-clear");
pub const OPENROUTER_CACHE_STATUS: HeaderName =
    HeaderName::from_static("x-openrouter-cache-status");
pub const OPENROUTER_CACHE_AGE: HeaderName = HeaderName::from_static("x-openrouter-cache-age");
pub const OPENROUTER_CACHE_SOURCE: HeaderName =
    HeaderName::from_static("x-openrouter-cache-source-id");

/// OpenRouter's answer headers the caller gets too.
pub const PASSED_BACK: [HeaderName; 5] = [
    GENERATION_ID,
    OPENROUTER_CACHE_STATUS,
    OPENROUTER_CACHE_TTL,
    OPENROUTER_CACHE_AGE,
    OPENROUTER_CACHE_SOURCE,
];

/// How a catalogue answer relates to the cache: `miss`, `hit`, `stale`, `stale-if-error`.
pub const MODELS_CACHE: HeaderName = HeaderName::from_static("x-models-cache");

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// The IETF draft's structured fields (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Tells nginx-style proxies not to buffer a stream.
pub const ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Caller headers OpenRouter reads for app attribution; passed on unchanged.
pub const ATTRIBUTION: [HeaderName; 3] = [
    HeaderName::from_static("http-referer"),
    HeaderName::from_static("x-title"),
    HeaderName::from_static("x-openrouter-title"),
];

/// Headers a browser may read from a cross-origin answer: everything above that the
/// proxy sends, and `Retry-After`.
pub const EXPOSED: [HeaderName; 12] = [
    RATELIMIT_LIMIT,
    RATELIMIT_REMAINING,
    RATELIMIT_RESET,
    RATELIMIT,
    RATELIMIT_POLICY,
    http::header::RETRY_AFTER,
    GENERATION_ID,
    MODELS_CACHE,
    OPENROUTER_CACHE_STATUS,
    OPENROUTER_CACHE_TTL,
    OPENROUTER_CACHE_AGE,
    OPENROUTER_CACHE_SOURCE,
];
