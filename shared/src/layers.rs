//! The tower layers every function shares, applied once to a finished router:
//! CORS, security headers (`docs/http-api.md`), rate limits, compression, JSON answers
//! for unknown routes and methods, a JSON 500 for a panic, and an access log.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::{metrics, request_id};

use crate::config::{Config, CorsOrigins};
use crate::error::{ApiError, InternalError};
use crate::header_names;
use crate::rate_limit;
use crate::state::AppState;

/// Helmet's default set of security headers, as an API answers them: a policy that
/// allows no content, no framing, no referrer, no sniffing. `Cross-Origin-Resource-Policy`
/// is `cross-origin` (Helmet's default is `same-origin`) because browsers on other
/// origins are this API's callers; CORS decides what they may read.
pub const SECURITY_HEADERS: [(HeaderName, HeaderValue); 12] = [
    (
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    ),
    (
        HeaderName::from_static("origin-agent-cluster"),
        HeaderValue::from_static("?1"),
    ),
    (
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    ),
    (
        HeaderName::from_static("strict-transport-security"),
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    ),
    (
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    ),
    (
        HeaderName::from_static("x-dns-prefetch-control"),
        HeaderValue::from_static("off"),
    ),
    (
        HeaderName::from_static("x-download-options"),
        HeaderValue::from_static("noopen"),
    ),
    (
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    ),
    (
        HeaderName::from_static("x-permitted-cross-domain-policies"),
        HeaderValue::from_static("none"),
    ),
    (
        HeaderName::from_static("x-xss-protection"),
        HeaderValue::from_static("0"),
    ),
];

/// Wraps a router in every shared layer. Call it once, on the complete router.
pub fn apply(router: Router, state: &AppState) -> Router {
    let config = &state.config;
    // Small bodies cost more to compress than to send; SSE and speech must never be
    // compressed (a compressor buffers, and streaming is the point), and audio and
    // images are compressed already.
    let compress_when = SizeAbove::new(1024)
        .and(NotForContentType::SSE)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::const_new("audio/"))
        .and(NotForContentType::GRPC);
    router
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_method)
        .layer(middleware::from_fn_with_state(
            state.rate_limiter.clone(),
            rate_limit::layer::limit,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(CompressionLayer::new().compress_when(compress_when))
        .layer(cors(config))
        // Outside CORS, so a preflight has its id and its line too.
        .layer(middleware::from_fn(access_log))
        .layer(middleware::map_response(security_headers))
}

/// Every answer gets [`SECURITY_HEADERS`] (a handler's own value wins). One middleware,
/// not one layer per header: each layer is another future around every request.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in &SECURITY_HEADERS {
        if let header::Entry::Vacant(entry) = headers.entry(name) {
            entry.insert(value.clone());
        }
    }
    response
}

/// For the streaming runtime: API Gateway's streaming prelude takes one string per
/// header, and `lambda_http` writes a header given twice (`Vary`, from CORS and from
/// compression) as a list, which API Gateway refuses. Repeated fields are folded into
/// one, which HTTP defines to mean the same (RFC 9110 §5.3). `Set-Cookie` cannot be
/// folded and is left alone (`lambda_http` moves it to the prelude's `cookies`).
pub async fn one_value_per_header(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let repeated: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            *name != header::SET_COOKIE && headers.get_all(*name).iter().nth(1).is_some()
        })
        .cloned()
        .collect();
    for name in repeated {
        let joined = headers
            .get_all(&name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b", "[..]);
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.insert(name, value);
        }
    }
    response
}

fn cors(config: &Config) -> CorsLayer {
    let origins = match &config.cors {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        // SDKs add headers of their own (the OpenAI SDK's x-stainless-*); mirroring
        // what the browser asks for keeps them working without a list to maintain.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(header_names::EXPOSED)
        .max_age(std::time::Duration::from_secs(600))
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    if method == Method::OPTIONS {
        return options_response();
    }
    ApiError::not_found(format!("No route for {method} {}", uri.path())).into_response()
}

async fn unknown_method(method: Method, uri: Uri) -> Response {
    if method == Method::OPTIONS {
        return options_response();
    }
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
    .into_response()
}

/// A bare OPTIONS (no CORS preflight headers) still gets a clean answer.
fn options_response() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::ALLOW, "GET, POST, OPTIONS")],
    )
        .into_response()
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::from(InternalError::Panic).into_response()
}

/// One structured line per request: route, status, time. Never the body, the query,
/// the client's address or any header.
async fn access_log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // MatchedPath is an Arc<str>: cloning it costs no allocation.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let id = request_id::of(request.extensions());
    request
        .extensions_mut()
        .insert(request_id::RequestId(id.clone()));
    // Every line the request logs carries its id.
    let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or_default());
    let mut response = next.run(request).instrument(span.clone()).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(
            request_id = id.to_str().unwrap_or_default(),
            method = %method,
            route,
            status,
            latency_ms,
            "request"
        );
    });
    let refused = response.extensions().get::<metrics::Refusal>().copied();
    metrics::request(route, status, latency_ms, refused);
    response.headers_mut().insert(request_id::REQUEST_ID, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn repeated_headers_are_folded_into_one_value_but_cookies_are_not() {
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        let response = one_value_per_header(response).await;
        let headers = response.headers();
        let vary: Vec<_> = headers.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["origin, accept-encoding"]);
        assert_eq!(headers.get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500() {
        let config = Config::from_lookup(|_| None).unwrap();
        let state = AppState::new(config).await.unwrap();
        async fn boom() -> &'static str {
            panic!("secret detail")
        }
        let router = Router::new().route("/boom", get(boom));
        let app = apply(router, &state);
        let mut request = http::Request::builder()
            .uri("/boom")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                1,
            ))));
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["type"], "internal");
        assert!(!body.to_string().contains("secret detail"));
    }
}
