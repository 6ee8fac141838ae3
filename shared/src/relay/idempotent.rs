//! Requests with an `Idempotency-Key` (`docs/http-api.md`, "Retries and resuming"):
//! the first claims the key for its client and is answered through the journal; a
//! repeat of the same request gets that answer again (a stream from after its
//! `Last-Event-ID`, following the generation live while it runs) with no upstream
//! call; the key with another body is a 422; a JSON answer still being made is a 409.
//! Once claimed, the generation is carried to its end whether or not its client stays.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use super::{Answer, Call, Reserved, reserve, send};
use crate::error::ApiError;
use crate::journal::{self, Claimed, Kind, Meta, State, Writer};
use crate::openrouter::Attribution;
use crate::rate_limit::Admission;
use crate::sse::{Relay, Relayed, SSE_HEADERS, StreamEnd};
use crate::state::AppState;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The longest key taken (Stripe's, and the IETF draft's examples, are far shorter).
const MAX_KEY: usize = 255;
/// How long journaled events may wait to be written to DynamoDB, so a follower on
/// another container is at most this (and a poll) behind.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

fn refusal(status: StatusCode, field: &'static str, message: &'static str) -> ApiError {
    ApiError::RequestHead {
        status,
        field,
        message,
    }
}

/// The caller's key, if it sent one that can be used.
pub fn key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= MAX_KEY
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key))
        }
        _ => Err(refusal(
            StatusCode::BAD_REQUEST,
            "idempotency-key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

fn last_event_id(headers: &HeaderMap) -> Result<u64, ApiError> {
    let Some(value) = headers.get(LAST_EVENT_ID) else {
        return Ok(0);
    };
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or(refusal(
            StatusCode::BAD_REQUEST,
            "last-event-id",
            "Last-Event-ID must be the id of an event this stream sent (a whole number)",
        ))
}

/// Answers `call` under the caller's `key`.
pub async fn answer(
    app: &Arc<AppState>,
    admission: Admission,
    headers: &HeaderMap,
    call: Call,
    attribution: Attribution,
    key: &str,
) -> Result<Response, ApiError> {
    let after = last_event_id(headers)?;
    let kind = if call.op.answering == super::Answering::Bytes {
        Kind::Media
    } else if call.stream {
        Kind::Sse
    } else {
        Kind::Json
    };
    let client = app.rate_limiter.client_id(admission.client());
    let scope = journal::digest(&[client.as_bytes(), key.as_bytes()]);
    let form = call.form.as_ref().map_or(&b""[..], HeaderValue::as_bytes);
    let fingerprint = journal::digest(&[call.op.path.as_bytes(), form, &call.body]);
    let claimed = match app.journal.claim(&scope, &fingerprint, kind).await {
        Ok(claimed) => claimed,
        Err(error) => {
            // Served all the same, as without a key: a retry may then pay twice.
            tracing::warn!(error = %error, "journal unavailable; answering without it");
            let reserved = reserve(app, &call, &admission).await?;
            return send(app, call, &attribution, reserved)
                .await
                .map(IntoResponse::into_response);
        }
    };
    match claimed {
        Claimed::First => first(app, admission, call, attribution, scope, kind).await,
        Claimed::Mismatch => {
            let _counted = admission.admit(0.0).await?;
            Err(refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key",
                "This Idempotency-Key was used for another request; use a new key for a new request",
            ))
        }
        Claimed::Existing(meta) => {
            // A replay counts as a request and costs nothing.
            let _counted = admission.admit(0.0).await?;
            replay(app, &scope, meta, after).await
        }
    }
}

async fn first(
    app: &Arc<AppState>,
    admission: Admission,
    call: Call,
    attribution: Attribution,
    scope: String,
    kind: Kind,
) -> Result<Response, ApiError> {
    let reserved: Reserved = match reserve(app, &call, &admission).await {
        Ok(reserved) => reserved,
        Err(refused) => {
            app.journal.release(&scope).await;
            return Err(refused);
        }
    };
    let end = call.op.stream_end;
    let (answered, answer) = tokio::sync::oneshot::channel();
    let app = app.clone();
    // Its own task: the generation runs to its end, and is journaled, whether or not
    // this client waits for it.
    tokio::spawn(async move {
        let journal = app.journal.clone();
        let started = send(&app, call, &attribution, reserved).await;
        let answer = match started {
            Err(error) => {
                journal.release(&scope).await;
                let _gone = answered.send(Err(error));
                return;
            }
            Ok(answer) => answer,
        };
        match answer {
            Answer::Complete(completion) => {
                let headers = pairs(&completion.headers);
                let mut writer = journal.writer(&scope, kind, "application/json".into(), headers);
                writer.push(completion.body.clone()).await;
                writer.end(State::Done).await;
                let _gone = answered.send(Ok(Answer::Complete(completion).into_response()));
            }
            Answer::Stream(streamed) => {
                let headers = pairs(&streamed.headers);
                let mut writer = journal.writer(&scope, kind, "text/event-stream".into(), headers);
                let _gone = answered.send(Ok(follow(&app, &scope, writer.meta(), 0, false)));
                journal_events(streamed.relay, end, &mut writer).await;
            }
            Answer::Media(media) => {
                let content_type = media.content_type.to_str().unwrap_or_default().to_owned();
                let headers = pairs(&media.headers);
                let mut writer = journal.writer(&scope, kind, content_type, headers);
                let _gone = answered.send(Ok(follow(&app, &scope, writer.meta(), 0, false)));
                let mut body = media.body.into_data_stream();
                while let Some(Ok(chunk)) = body.next().await {
                    writer.push(chunk).await;
                }
                writer.end(State::Done).await;
            }
        }
    });
    answer
        .await
        .unwrap_or_else(|_| Err(crate::error::InternalError::AnswerLost.into()))
}

/// Journals a stream's events, each numbered, until it ends. Events wait at most
/// [`FLUSH_EVERY`] to be written, however fast the next ones come.
async fn journal_events(mut relay: Relay, end: StreamEnd, writer: &mut Writer) {
    let mut next = 0;
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let item = tokio::select! {
            item = relay.next() => item,
            () = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)), if flush_at.is_some() => {
                writer.flush(State::Running).await;
                flush_at = None;
                continue;
            }
        };
        let events = match item {
            None => break,
            Some(Relayed::Events(events)) => events,
            Some(Relayed::Failed(failure)) => failure.sse_event(end),
        };
        for piece in journal::number_events(&events, &mut next) {
            writer.push(piece).await;
        }
        if !writer.pending() {
            flush_at = None;
        } else if flush_at.is_none() {
            flush_at = Some(tokio::time::Instant::now() + FLUSH_EVERY);
        }
    }
    writer.end(State::Done).await;
}

/// A repeat's answer: the journaled one.
async fn replay(
    app: &Arc<AppState>,
    scope: &str,
    meta: Meta,
    after: u64,
) -> Result<Response, ApiError> {
    if meta.kind != Kind::Json {
        return Ok(follow(app, scope, &meta, after, true));
    }
    if meta.state == State::Running {
        return Err(refusal(
            StatusCode::CONFLICT,
            "idempotency-key",
            "The request with this Idempotency-Key is still being answered; repeat it once that is done",
        ));
    }
    let pieces: Vec<Bytes> = app.journal.follow(scope, 0, None).collect().await;
    Ok(respond(&meta, Body::from(pieces.concat()), true))
}

/// A streamed answer from the journal, from after piece `after`, live while it runs.
fn follow(app: &Arc<AppState>, scope: &str, meta: &Meta, after: u64, replayed: bool) -> Response {
    let keepalive = (meta.kind == Kind::Sse).then(|| {
        (
            app.config.upstream.sse_keepalive,
            Bytes::from_static(b": keep-alive\n\n"),
        )
    });
    let pieces = app.journal.follow(scope, after, keepalive);
    let body = Body::from_stream(pieces.map(Ok::<_, std::convert::Infallible>));
    respond(meta, body, replayed)
}

fn respond(meta: &Meta, body: Body, replayed: bool) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    if meta.kind == Kind::Sse {
        for (name, value) in SSE_HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
    } else if let Ok(content_type) = HeaderValue::from_str(&meta.content_type) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    for (name, value) in &meta.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

fn pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}
