//! The chat pipeline: the one path from a caller's chat body to OpenRouter's answer,
//! whatever the transport. Validate under the spend guard (`guard`), decide JSON or
//! SSE, send the caller's bytes upstream, log, account for the answer's cost (`cost`),
//! and hand back the answer with its generation id. The HTTP routes
//! (`/api/v1/inference`, `/inference/stream`, `/chat/completions`) and the WebSocket
//! worker all go through [`send`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

mod cost;
mod guard;

use crate::client_ip::ClientIp;
use crate::config::GuardConfig;
use crate::error::{ApiError, quote};
use crate::header_names::GENERATION_ID;
use crate::json_body::JsonBody;
use crate::openrouter::{Attribution, Completion};
use crate::sse::{Answered, OnEnd, Relay, RelaySettings, SSE_HEADERS};
use crate::state::AppState;

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
    /// The bytes OpenRouter receives: the caller's, unchanged but for what the spend
    /// guard adds (`"stream":true`, the `max_tokens` cap).
    pub body: Bytes,
    pub model: String,
    pub stream: bool,
}

impl ChatCall {
    /// Validates `raw` for a route that answers as `answering`, under the spend guard.
    pub fn new(raw: Bytes, answering: Answering, guard: &GuardConfig) -> Result<Self, ApiError> {
        guard::prepare(raw, answering, guard)
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

/// Sends `call` to OpenRouter for `client`. Errors before the first byte of the answer
/// come back here, as `ApiError`s with their status; later ones travel inside the
/// stream. The answer's cost is added to the spend budgets once it is known: before a
/// JSON answer is returned, at the end of a stream (however it ends).
pub async fn send(
    app: &Arc<AppState>,
    call: ChatCall,
    attribution: &Attribution,
    client: ClientIp,
) -> Result<ChatAnswer, ApiError> {
    let ChatCall {
        body,
        model,
        stream,
    } = call;
    let model = quote(&model).into_owned();
    if stream {
        let upstream = app.openrouter.start_stream(body, attribution).await?;
        let generation_id = upstream.headers().get(GENERATION_ID).cloned();
        tracing::info!(model = %model, "stream started");
        let settings = RelaySettings {
            idle_timeout: app.config.upstream.request_timeout,
            max_duration: app.config.upstream.stream_max_duration,
            keepalive: app.config.upstream.sse_keepalive,
        };
        let accounting = app.clone();
        let on_end: OnEnd = Box::new(move |answered: Answered| {
            Box::pin(async move {
                let spent = cost_of(&accounting, &answered).await;
                accounting.rate_limiter.record_spend(client, spent).await;
            })
        });
        let relay = Relay::spawn(upstream, settings, Some(on_end));
        Ok(ChatAnswer::Stream(ChatStream {
            relay,
            generation_id,
        }))
    } else {
        let completion = app.openrouter.chat(body, attribution).await?;
        let (usage, answered_model) = cost::of_completion(&completion.body);
        let answered = Answered {
            usage,
            model: answered_model,
            chunks: 0,
        };
        let spent = cost_of(app, &answered).await;
        app.rate_limiter.record_spend(client, spent).await;
        tracing::info!(model = %model, "inference answered");
        Ok(ChatAnswer::Complete(completion))
    }
}

/// What an answer cost: OpenRouter's figure, else priced from the catalogue (fetched
/// if this container holds none; OpenRouter reports a cost on nearly every answer).
async fn cost_of(app: &Arc<AppState>, answered: &Answered) -> f64 {
    let usage = answered.usage.as_ref();
    if let Some(reported) = cost::reported(usage) {
        return reported;
    }
    let index = app.catalog.get().await.ok().map(|view| view.index);
    cost::cost(
        usage,
        answered.model.as_deref(),
        answered.chunks,
        index.as_deref(),
    )
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

/// The handlers box this future: it holds the upstream call's state (kilobytes), and
/// every layer around a handler moves its future at least once; a box moves as a
/// pointer. (Measured: memcpy was 30 % of the gateway's instructions per request.)
async fn answer(
    app: &Arc<AppState>,
    client: ClientIp,
    headers: &HeaderMap,
    body: JsonBody,
    answering: Answering,
) -> Result<ChatAnswer, ApiError> {
    let call = ChatCall::new(body.raw, answering, &app.config.guard)?;
    send(app, call, &Attribution::from_headers(headers), client).await
}

/// `POST /api/v1/inference`: one JSON answer.
pub async fn inference(
    State(app): State<Arc<AppState>>,
    client: ClientIp,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<ChatAnswer, ApiError> {
    Box::pin(answer(&app, client, &headers, body, Answering::Json)).await
}

/// `POST /api/v1/inference/stream`: always Server-Sent Events.
pub async fn inference_stream(
    State(app): State<Arc<AppState>>,
    client: ClientIp,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<ChatAnswer, ApiError> {
    Box::pin(answer(&app, client, &headers, body, Answering::Sse)).await
}

/// `POST /api/v1/chat/completions`: as the body's `stream` asks (SDKs set it).
pub async fn chat_completions(
    State(app): State<Arc<AppState>>,
    client: ClientIp,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<ChatAnswer, ApiError> {
    Box::pin(answer(&app, client, &headers, body, Answering::AsAsked)).await
}

#[cfg(test)]
mod future_sizes {
    use super::*;

    /// Every layer around a handler moves its future at least once; an SDK future left
    /// unboxed in here made each request copy 16 KB several times (BENCHMARKS.md).
    #[tokio::test]
    async fn the_chat_pipeline_and_the_counter_check_stay_small() {
        let config = crate::config::Config::from_lookup(|_| None).unwrap();
        let state = AppState::new(config).await.unwrap();
        let headers = HeaderMap::new();
        let ip = ClientIp(std::net::IpAddr::from([127, 0, 0, 1]));
        let body = JsonBody { raw: Bytes::new() };
        let answer = answer(&state, ip, &headers, body, Answering::Json);
        assert!(
            std::mem::size_of_val(&answer) < 4096,
            "{}",
            std::mem::size_of_val(&answer)
        );
        let check = state
            .rate_limiter
            .check(ip, crate::rate_limit::Scope::Inference);
        assert!(
            std::mem::size_of_val(&check) < 2048,
            "{}",
            std::mem::size_of_val(&check)
        );
    }
}
