//! OpenRouter's error bodies, as the real service words them (`errors/` captures).

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::fixtures;

/// OpenRouter's answer for each error status.
pub fn for_status(status: u16) -> Response {
    match status {
        400 => raw(400, fixtures::error_400()),
        401 => openrouter(401, "User not found."),
        402 => openrouter(
            402,
            "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
        ),
        403 => raw(
            403,
            Bytes::from(
                json!({"error": {"code": 403, "message": "Input was flagged by moderation",
                                 "metadata": {"reasons": ["harassment"], "flagged_input": "...",
                                              "provider_name": "OpenAI", "model_slug": "openai/gpt-4o"}}})
                .to_string(),
            ),
        ),
        404 => openrouter(404, "No endpoints found for mock/model."),
        429 => {
            let mut response = openrouter(429, "Rate limit exceeded: free-models-per-min.");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
            response
        }
        500 => openrouter(500, "Internal Server Error"),
        502 => raw(
            502,
            fixtures::error_provider()
                .replace("\"code\":400", "\"code\":502")
                .into(),
        ),
        503 => openrouter(
            503,
            "No available model provider that meets your routing requirements",
        ),
        other => openrouter(other, "Mock error"),
    }
}

/// `{"error": {"message", "code"}}` with that status.
pub fn openrouter(status: u16, message: &str) -> Response {
    let body = json!({"error": {"message": message, "code": status}});
    raw(status, Bytes::from(body.to_string()))
}

fn raw(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An HTML error page with `status`, as a CDN or load balancer in front of a service
/// answers when the service is down.
pub fn html_page(status: u16, padding: usize) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut page = format!(
        "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n<center><h1>{status}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    // Padding as some servers add it, so browsers show the page rather than their own.
    while page.len() < padding {
        page.push_str("<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n");
    }
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

/// A 200 JSON body that breaks off in the middle.
pub fn invalid_json() -> Response {
    raw(200, Bytes::from_static(br#"{"id":"gen-mock-broken","object":"chat.completion","choices":[{"message":{"role":"assist"#))
}
