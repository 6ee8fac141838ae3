//! The chat pipeline: the one path from a caller's chat body to OpenRouter's answer,
//! whatever the transport. Validate, decide JSON or SSE, send the caller's bytes
//! upstream, log, and hand back the answer with its generation id. The HTTP routes
//! (`/api/v1/inference`, `/inference/stream`, `/chat/completions`) and the WebSocket
//! worker all go through [`send`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::error::ApiError;
use crate::header_names::GENERATION_ID;
use crate::json_body::JsonBody;
use crate::openrouter::{Attribution, Completion};
use crate::sse::{Relay, SSE_HEADERS};
use crate::state::AppState;
use crate::validation::validate_chat_request;

/// What a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// One JSON body; `"stream": true` is refused.
    Json,
    /// Server-Sent Events; `stream` may be left out, `false` is refused.
    Sse,
    /// Whatever the body's `stream` asks for (OpenAI's and OpenRouter's own route).
    AsAsked,
}

/// A validated chat request, ready to go upstream.
#[derive(Debug, Clone)]
pub struct ChatCall {
    /// The bytes OpenRouter receives: the caller's, unchanged but for an added
    /// `"stream":true` where the route streams and the caller left `stream` out.
    pub body: Bytes,
    pub model: String,
    pub stream: bool,
}

impl ChatCall {
    pub fn new(body: JsonBody, answering: Answering) -> Result<Self, ApiError> {
        let request = validate_chat_request(&body.value)?;
        let stream = match (answering, request.stream) {
            (Answering::Json, Some(true)) => {
                return Err(ApiError::validation(
                    "stream",
                    "This endpoint answers with one JSON body; for Server-Sent Events use POST /api/v1/inference/stream \
                     (or POST /api/v1/chat/completions with \"stream\": true)",
                ));
            }
            (Answering::Sse, Some(false)) => {
                return Err(ApiError::validation(
                    "stream",
                    "This endpoint answers with Server-Sent Events; leave stream out or set it true, \
                     or use POST /api/v1/inference for one JSON answer",
                ));
            }
            (Answering::Sse, _) => true,
            (Answering::Json | Answering::AsAsked, asked) => asked == Some(true),
        };
        let body = if stream && request.stream.is_none() {
            with_stream_true(&body.raw)
        } else {
            body.raw
        };
        Ok(Self {
            body,
            model: request.model,
            stream,
        })
    }
}

/// OpenRouter's answer, as the caller asked for it.
pub enum ChatAnswer {
    Complete(Completion),
    Stream(ChatStream),
}

/// A streamed answer whose headers arrived with a success status.
pub struct ChatStream {
    pub relay: Relay,
    pub generation_id: Option<HeaderValue>,
}

/// Sends `call` to OpenRouter. Errors before the first byte of the answer come back
/// here, as `ApiError`s with their status; later ones travel inside the stream.
pub async fn send(
    app: &AppState,
    call: ChatCall,
    attribution: &Attribution,
) -> Result<ChatAnswer, ApiError> {
    let ChatCall {
        body,
        model,
        stream,
    } = call;
    if stream {
        let upstream = app.openrouter.start_chat(body, attribution).await?;
        let generation_id = upstream.headers().get(GENERATION_ID).cloned();
        tracing::info!(model = %model, "stream started");
        let relay = Relay::new(
            upstream,
            app.config.upstream.request_timeout,
            app.config.upstream.stream_max_duration,
        );
        Ok(ChatAnswer::Stream(ChatStream {
            relay,
            generation_id,
        }))
    } else {
        let completion = app.openrouter.chat(body, attribution).await?;
        tracing::info!(model = %model, "inference answered");
        Ok(ChatAnswer::Complete(completion))
    }
}

impl IntoResponse for ChatAnswer {
    fn into_response(self) -> Response {
        let (mut response, generation_id) = match self {
            Self::Complete(completion) => (
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    completion.body,
                )
                    .into_response(),
                completion.generation_id,
            ),
            Self::Stream(stream) => {
                let mut response = (
                    StatusCode::OK,
                    Body::from_stream(stream.relay.into_stream()),
                )
                    .into_response();
                for (name, value) in SSE_HEADERS {
                    response
                        .headers_mut()
                        .insert(name, HeaderValue::from_static(value));
                }
                (response, stream.generation_id)
            }
        };
        if let Some(id) = generation_id {
            response.headers_mut().insert(GENERATION_ID, id);
        }
        response
    }
}

async fn answer(
    app: &AppState,
    headers: &HeaderMap,
    body: JsonBody,
    answering: Answering,
) -> Result<ChatAnswer, ApiError> {
    let call = ChatCall::new(body, answering)?;
    send(app, call, &Attribution::from_headers(headers)).await
}

/// `POST /api/v1/inference`: one JSON answer.
pub async fn inference(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<ChatAnswer, ApiError> {
    answer(&app, &headers, body, Answering::Json).await
}

/// `POST /api/v1/inference/stream`: always Server-Sent Events.
pub async fn inference_stream(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<ChatAnswer, ApiError> {
    answer(&app, &headers, body, Answering::Sse).await
}

/// `POST /api/v1/chat/completions`: as the body's `stream` asks (SDKs set it).
pub async fn chat_completions(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<ChatAnswer, ApiError> {
    answer(&app, &headers, body, Answering::AsAsked).await
}

/// The caller's body with `"stream":true,` added after its opening brace; every other
/// byte stays as the caller wrote it.
fn with_stream_true(raw: &[u8]) -> Bytes {
    let brace = raw.iter().position(|b| *b == b'{').unwrap_or(0);
    let mut out = BytesMut::with_capacity(raw.len() + 16);
    out.extend_from_slice(&raw[..=brace]);
    out.extend_from_slice(b"\"stream\":true,");
    out.extend_from_slice(&raw[brace + 1..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &str) -> JsonBody {
        JsonBody {
            raw: Bytes::copy_from_slice(raw.as_bytes()),
            value: serde_json::from_str(raw).unwrap(),
        }
    }

    const CHAT: &str = r#"  { "model" : "m", "messages":[{"role":"user","content":"hi"}] }"#;

    #[test]
    fn stream_is_added_without_touching_the_rest() {
        let call = ChatCall::new(body(CHAT), Answering::Sse).unwrap();
        assert!(call.stream);
        assert_eq!(
            &call.body[..],
            br#"  {"stream":true, "model" : "m", "messages":[{"role":"user","content":"hi"}] }"#
        );
    }

    #[test]
    fn each_route_answers_as_documented() {
        let json = ChatCall::new(body(CHAT), Answering::Json).unwrap();
        assert!(!json.stream);
        assert_eq!(&json.body[..], CHAT.as_bytes());
        assert!(
            !ChatCall::new(body(CHAT), Answering::AsAsked)
                .unwrap()
                .stream
        );

        let streamed = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        assert!(
            ChatCall::new(body(streamed), Answering::AsAsked)
                .unwrap()
                .stream
        );
        assert_eq!(
            &ChatCall::new(body(streamed), Answering::Sse).unwrap().body[..],
            streamed.as_bytes()
        );
        assert!(ChatCall::new(body(streamed), Answering::Json).is_err());

        let not_streamed =
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#;
        assert!(ChatCall::new(body(not_streamed), Answering::Sse).is_err());
    }
}
