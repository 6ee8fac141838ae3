//! `X-Request-Id` (`docs/http-api.md`, "CORS and headers"): every answer names its
//! request, and the request's log line carries the same id, so a user's report can be
//! matched to a log line. On Lambda it is API Gateway's request id (the one in API
//! Gateway's own logs too); locally one is made.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Extensions, HeaderName, HeaderValue};
use lambda_http::request::RequestContext;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// This process's key for made ids, so two processes never make the same sequence.
static KEY: LazyLock<std::collections::hash_map::RandomState> =
    LazyLock::new(std::collections::hash_map::RandomState::new);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The id the access log gave a request, in its extensions: a handler that hands the
/// request on as an event of its own (the WebSocket emulation's `$connect`) names it
/// by the same id, as API Gateway does.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// The id of the request with these `extensions`.
pub fn of(extensions: &Extensions) -> HeaderValue {
    let given = extensions
        .get::<RequestContext>()
        .and_then(|context| match context {
            RequestContext::ApiGatewayV1(c) => c.request_id.clone(),
            RequestContext::ApiGatewayV2(c) => c.request_id.clone(),
            RequestContext::WebSocket(c) => c.request_id.clone(),
            _ => None,
        })
        .and_then(|id| HeaderValue::from_str(&id).ok());
    given.unwrap_or_else(made)
}

/// A new id as a header value.
pub fn made() -> HeaderValue {
    HeaderValue::from_str(&fresh()).unwrap_or(HeaderValue::from_static("0"))
}

/// A new id: 128 bits, as 32 hex digits, unique in this process and unguessable.
pub fn fresh() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut hasher = KEY.build_hasher();
        hasher.write_u64(n);
        hasher.write_u64(salt);
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_ids_differ_and_api_gateways_is_kept() {
        assert_ne!(made(), made());
        assert_eq!(made().len(), 32);
        let mut extensions = Extensions::new();
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../../events/models-health.json")).unwrap();
        let context: lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext =
            serde_json::from_value(event["requestContext"].clone()).unwrap();
        extensions.insert(RequestContext::ApiGatewayV1(context));
        assert_eq!(of(&extensions), "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    }
}
