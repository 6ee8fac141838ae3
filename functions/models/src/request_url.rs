//! `RequestUrl`: the URL a client called, without its query, so an answer can link to
//! its own next page. On Lambda it comes from API Gateway's request context (its
//! domain and the full path, stage or base path included); locally from `Host`.

use axum::extract::FromRequestParts;
use http::request::Parts;
use lambda_http::request::RequestContext;

pub struct RequestUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(RequestContext::ApiGatewayV1(context)) =
            parts.extensions.get::<RequestContext>()
            && let (Some(domain), Some(path)) = (&context.domain_name, &context.path)
        {
            return Ok(Self(format!("https://{domain}{path}")));
        }
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        Ok(Self(format!("http://{host}{}", parts.uri.path())))
    }
}
