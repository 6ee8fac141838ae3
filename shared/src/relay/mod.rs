//! The relay: the one path from a caller's body to OpenRouter's answer, for every
//! inference operation (`operation`, the table of them) and every transport. Validate
//! under the spend guard (`guard`), decide JSON or SSE, price the worst case (`price`),
//! count the request and reserve that worst case, send the caller's bytes upstream,
//! relay the answer, settle the reservation to what it cost (`cost`). The HTTP routes
//! (one per row of the table, made by [`route`]) and the WebSocket worker all go
//! through [`send`].

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

pub mod cache;
mod cost;
mod guard;
pub mod idempotent;
mod media;
pub mod operation;
pub mod price;

pub use guard::Extras;
pub use operation::{Answering, OPERATIONS, Operation};

use crate::client_ip::ClientIp;
use crate::config::GuardConfig;
use crate::error::{ApiError, quote};
use crate::json_body::JsonBody;
use crate::metrics;
use crate::openrouter::{Attribution, Completion, passed_back};
use crate::rate_limit::{Admission, Reservation};
use crate::routes::Route;
use crate::sse::{Answered, OnEnd, Relay, RelaySettings, SSE_HEADERS};
use crate::state::AppState;
use price::Estimate;

/// A validated request of one operation, ready to go upstream.
#[derive(Debug, Clone)]
pub struct Call {
    pub op: &'static Operation,
    /// The bytes OpenRouter receives: the caller's, unchanged but for what the spend
    /// guard adds (`"stream":true`, the `max_tokens` cap).
    pub body: Bytes,
    pub model: String,
    /// The `models` fallback list: each may answer, so each prices the request.
    pub fallbacks: Vec<String>,
    pub stream: bool,
    /// Output tokens the request may produce at most (`max_tokens` times `n`).
    pub max_output: u64,
    /// The field that sets the output cap, for the refusal that names it.
    pub output_field: &'static str,
    /// Input tokens the body may carry, at most about (`price::input_tokens`).
    pub input_tokens: u64,
    /// The `Content-Type` of a `multipart/form-data` body; `None` for JSON.
    pub form: Option<HeaderValue>,
}

impl Call {
    /// Validates `raw`, a JSON body, for operation `op`, under the spend guard.
    pub fn new(raw: Bytes, op: &'static Operation, guard: &GuardConfig) -> Result<Self, ApiError> {
        guard::prepare(raw, op, guard)
    }

    /// Validates `raw` for operation `op` as JSON or (given `extras.form`) a form,
    /// under the spend guard, with the relay's `extras`.
    pub async fn read(
        raw: Bytes,
        op: &'static Operation,
        guard: &GuardConfig,
        extras: Extras,
    ) -> Result<Self, ApiError> {
        let request = match &extras.form {
            Some(_) if op.encoding != operation::Encoding::JsonOrForm => {
                return Err(ApiError::UnsupportedMediaType {
                    accepted: "application/json",
                });
            }
            Some(content_type) => {
                crate::validation::validate_form(raw.clone(), content_type).await?
            }
            None => crate::validation::validate(&raw, op.body, op.output.fields())?,
        };
        guard::prepare_request(raw, request, op, guard, &extras)
    }
}

/// OpenRouter's answer, as the caller asked for it.
pub enum Answer {
    Complete(Completion),
    Stream(Streamed),
    Media(media::Media),
}

/// A streamed answer whose headers arrived with a success status.
pub struct Streamed {
    pub relay: Relay,
    /// OpenRouter's headers the caller gets too.
    pub headers: HeaderMap,
}

/// OpenRouter's answer, its headers in, before it is relayed.
enum Started {
    Media(reqwest::Response),
    Stream(reqwest::Response),
    Complete(Completion),
}

/// A request counted and its worst case reserved: what [`send`] needs to settle it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reserved {
    pub estimate: Estimate,
    pub reservation: Option<Reservation>,
}

/// How long pricing waits for the catalogue when this container has none (a cold start
/// whose fetch failed): past it, a request is priced without it
/// ([`price::NO_CATALOGUE`]) rather than held while OpenRouter's catalogue is down.
const PRICES_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The catalogue's prices, if this container has them or can fetch them promptly.
async fn prices(app: &Arc<AppState>) -> Option<Arc<crate::catalog::ModelIndex>> {
    match tokio::time::timeout(PRICES_WAIT, app.catalog.get()).await {
        Ok(Ok(view)) => Some(view.index),
        _ => None,
    }
}

/// Prices `call`'s worst case, refuses it above `MAX_REQUEST_COST_USD`, then counts it
/// and reserves that worst case against the spend budgets (`docs/rate-limits.md`,
/// "Reserve, then settle"). A refused request is counted all the same.
pub async fn reserve(
    app: &Arc<AppState>,
    call: &Call,
    admission: &Admission,
) -> Result<Reserved, ApiError> {
    let index = prices(app).await;
    let estimate = Estimate::new(
        std::iter::once(call.model.as_str()).chain(call.fallbacks.iter().map(String::as_str)),
        call.input_tokens,
        call.max_output,
        index.as_deref(),
        &app.config.guard,
    );
    if let Err(refusal) =
        estimate.check_ceiling(&app.config.guard, call.output_field, call.op.input)
    {
        let _unreserved = admission.admit(0.0).await?;
        return Err(refusal);
    }
    let reservation = admission.admit(estimate.worst_case()).await?;
    Ok(Reserved {
        estimate,
        reservation,
    })
}

/// Sends `call` to OpenRouter, once [`reserve`] admitted it. Errors before the first
/// byte of the answer come back here, as `ApiError`s with their status; later ones
/// travel inside the stream. The reservation is settled to what the answer cost however
/// it ends: complete, cut short, refused by OpenRouter (nothing), or (a JSON answer
/// whose caller left, dropping this future) not at all, which leaves it charged in full.
pub async fn send(
    app: &Arc<AppState>,
    call: Call,
    attribution: &Attribution,
    reserved: Reserved,
) -> Result<Answer, ApiError> {
    let Reserved {
        estimate,
        reservation,
    } = reserved;
    let index = prices(app).await;
    let limiter = app.rate_limiter.clone();
    let Call {
        op,
        body,
        model,
        stream,
        form,
        ..
    } = call;
    let model = quote(&model).into_owned();
    let openrouter = &app.openrouter;
    let asked = std::time::Instant::now();
    let started = if op.answering == Answering::Bytes {
        openrouter
            .start_media(op.upstream, body, attribution)
            .await
            .map(Started::Media)
    } else if stream {
        openrouter
            .start_stream(op.upstream, body, attribution)
            .await
            .map(Started::Stream)
    } else {
        openrouter
            .complete(op.upstream, body, form.as_ref(), attribution)
            .await
            .map(Started::Complete)
    };
    // OpenRouter's time to answer goes out with the answer's tokens and cost: one metric
    // line per answer, not two (each line is a write to stdout).
    let upstream_ms = asked.elapsed().as_secs_f64() * 1000.0;
    // What the answer cost is worked out to settle a reservation, or for the metrics.
    let accounted = reservation.is_some() || metrics::enabled();
    let started = match started {
        Ok(started) => started,
        Err(error) => {
            if let Some(reservation) = reservation
                && !error.may_be_billed()
            {
                limiter.settle(reservation, 0.0).await;
            }
            return Err(error.into());
        }
    };
    match started {
        Started::Media(upstream) => {
            // Media carries no usage: the reservation stands as its cost
            // (`docs/rate-limits.md`, "Reserve, then settle").
            drop(reservation);
            metrics::upstream(op.name, upstream_ms);
            tracing::info!(operation = op.name, model = %model, "media answer started");
            let upstream_config = &app.config.upstream;
            Ok(Answer::Media(media::relay(
                upstream,
                upstream_config.request_timeout,
                upstream_config.stream_max_duration,
            )))
        }
        Started::Stream(upstream) => {
            let headers = passed_back(upstream.headers());
            let hit = cache_hit(&headers);
            tracing::info!(operation = op.name, model = %model, "stream started");
            let settings = RelaySettings {
                idle_timeout: app.config.upstream.request_timeout,
                max_duration: app.config.upstream.stream_max_duration,
                keepalive: app.config.upstream.sse_keepalive,
                scrub: app.openrouter.scrubber(),
                end: op.stream_end,
            };
            let on_end: Option<OnEnd> = accounted.then(|| -> OnEnd {
                Box::new(move |answered: Answered| {
                    Box::pin(async move {
                        let usage = answered.usage.as_ref();
                        let model = answered.model.as_deref();
                        let spent = if hit {
                            0.0
                        } else {
                            cost::cost(usage, model, answered.chunks, index.as_deref(), &estimate)
                        };
                        answered_metrics(op.name, upstream_ms, usage, model, spent);
                        if let Some(reservation) = reservation {
                            limiter.settle(reservation, spent).await;
                        }
                    })
                })
            });
            let relay = Relay::spawn(upstream, settings, on_end);
            Ok(Answer::Stream(Streamed { relay, headers }))
        }
        Started::Complete(completion) => {
            if accounted {
                let (usage, answered_model) = cost::of_completion(&completion.body);
                let (usage, answered_model) = (usage.as_ref(), answered_model.as_deref());
                let spent = if cache_hit(&completion.headers) {
                    0.0
                } else {
                    cost::cost(usage, answered_model, 0, index.as_deref(), &estimate)
                };
                answered_metrics(op.name, upstream_ms, usage, answered_model, spent);
                if let Some(reservation) = reservation {
                    limiter.settle(reservation, spent).await;
                }
            }
            tracing::info!(operation = op.name, model = %model, "inference answered");
            Ok(Answer::Complete(completion))
        }
    }
}

/// An answer's time to start, tokens and cost, as metrics.
fn answered_metrics(
    operation: &str,
    upstream_ms: f64,
    usage: Option<&serde_json::Value>,
    model: Option<&str>,
    spent: f64,
) {
    let (input, output) = cost::tokens(usage);
    metrics::answer(metrics::Answered {
        operation,
        upstream_ms,
        model,
        input,
        output,
        cost_usd: spent,
    });
}

/// Whether OpenRouter answered from its response cache, which it bills at nothing.
fn cache_hit(headers: &HeaderMap) -> bool {
    headers
        .get(crate::header_names::OPENROUTER_CACHE_STATUS)
        .is_some_and(|status| status.as_bytes().eq_ignore_ascii_case(b"HIT"))
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let (mut response, passed) = match self {
            Self::Complete(completion) => (
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    completion.body,
                )
                    .into_response(),
                completion.headers,
            ),
            Self::Media(media) => (
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, media.content_type)],
                    media.body,
                )
                    .into_response(),
                media.headers,
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
                (response, stream.headers)
            }
        };
        response.headers_mut().extend(passed);
        response
    }
}

/// The handlers box this future: it holds the upstream call's state (kilobytes), and
/// every layer around a handler moves its future at least once; a box moves as a
/// pointer. (Measured: memcpy was 30 % of the gateway's instructions per request.)
async fn answer(
    app: &Arc<AppState>,
    admission: Admission,
    headers: &HeaderMap,
    body: JsonBody,
    op: &'static Operation,
) -> Result<Response, ApiError> {
    let key = match idempotent::key(headers) {
        Ok(key) => key,
        Err(invalid) => {
            let _unreserved = admission.admit(0.0).await?;
            return Err(invalid);
        }
    };
    let mut attribution = Attribution::from_headers(headers);
    let read = async {
        let cache = cache::headers(app.config.upstream.response_cache, op, headers)?;
        let cache_user = cache.map(|sent| {
            for (name, value) in sent {
                attribution.push(name, value);
            }
            app.rate_limiter.client_id(admission.client())
        });
        let extras = Extras {
            form: body.form,
            cache_user,
        };
        Call::read(body.raw, op, &app.config.guard, extras).await
    };
    let call = match read.await {
        Ok(call) => call,
        Err(invalid) => {
            // Counted all the same (the limit is what an invalid flood meets).
            let _unreserved = admission.admit(0.0).await?;
            return Err(invalid);
        }
    };
    if let Some(key) = key {
        // Boxed: its journal calls would make every request's future that much larger.
        return Box::pin(idempotent::answer(
            app,
            admission,
            headers,
            call,
            attribution,
            key,
        ))
        .await;
    }
    let reserved = reserve(app, &call, &admission).await?;
    send(app, call, &attribution, reserved)
        .await
        .map(IntoResponse::into_response)
}

/// The handler's admission: the rate-limit middleware's, or (a router mounted without
/// it) one of its own, so inference is never served uncounted.
fn admission_for(
    app: &Arc<AppState>,
    client: ClientIp,
    given: Option<Extension<Admission>>,
) -> Admission {
    given.map_or_else(
        || Admission::new(app.rate_limiter.clone(), client),
        |Extension(admission)| admission,
    )
}

/// The route of operation `op`: `POST op.path`, answered by the relay.
pub fn route(op: &'static Operation) -> Route<Arc<AppState>> {
    Route::post(
        op.path,
        move |State(app): State<Arc<AppState>>,
              client: ClientIp,
              admission: Option<Extension<Admission>>,
              headers: HeaderMap,
              body: JsonBody| async move {
            let admission = admission_for(&app, client, admission);
            Box::pin(answer(&app, admission, &headers, body, op)).await
        },
    )
}

/// The routes of the operations that never stream (`streaming` false: served by a
/// buffered function) or that may (true: served with response streaming).
pub fn routes(streaming: bool) -> Vec<Route<Arc<AppState>>> {
    OPERATIONS
        .iter()
        .filter(|op| (op.answering != Answering::Json) == streaming)
        .map(route)
        .collect()
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
        let body = JsonBody {
            raw: Bytes::new(),
            form: None,
        };
        let admission = Admission::new(state.rate_limiter.clone(), ip);
        let answer = answer(&state, admission, &headers, body, &OPERATIONS[0]);
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
