//! The worker: one inference, from OpenRouter to the connection, through the same chat
//! pipeline as the HTTP routes. Streamed deltas are gathered into few messages (the
//! first at once, later ones every `WS_FLUSH_INTERVAL_MS` or at `WS_FLUSH_BYTES`); a
//! silent model gets a `heartbeat` every `WS_HEARTBEAT_INTERVAL`; a client that has
//! gone drops the upstream request at once. Every request ends with exactly one final
//! message: the last `inference_response`, or an `error`.

use std::future::Future;

use bytes::Bytes;
use llm_proxy_shared::error::{ApiError, Chain};
use llm_proxy_shared::openrouter::Attribution;
use llm_proxy_shared::rate_limit::Claim;
use llm_proxy_shared::relay::{self, Answer, Call, Streamed};
use llm_proxy_shared::sse::{Relayed, event_data};
use llm_proxy_shared::websocket::answer::{self, Next, StreamAnswer};
use llm_proxy_shared::websocket::message;
use tokio::time::{Instant, sleep_until};

use crate::invoker::Job;
use crate::outbox::{Outbox, Stop};
use crate::routes::chat_operation;
use crate::{WebSocketApp, now_ms};

pub async fn run(app: &WebSocketApp, job: Job) {
    let mut outbox = Outbox::new(
        &app.connections,
        app.job_endpoint(&job),
        &job.connection_id,
        Some(&job.id),
        &job.request_id,
    );
    let key = format!("ws-request#{}#{}", job.connection_id, job.id);
    match app.state.rate_limiter.claim(&key, &job.message_id).await {
        Ok(Claim::New) => {}
        Ok(Claim::Repeat) => {
            tracing::info!("a repeated delivery of a request; answered once already");
            return;
        }
        Ok(Claim::Taken) => {
            if let Some(reservation) = job.reserved.reservation.clone() {
                app.state.rate_limiter.settle(reservation, 0.0).await;
            }
            let error = ApiError::validation(
                "id",
                "This id is already in use on this connection; give each request its own",
            );
            let _ = outbox.error(error.error_object()).await;
            return;
        }
        // Without the store a repeat cannot be told; answering beats staying silent.
        Err(error) => {
            tracing::warn!(error = %Chain(&error), "request not claimed; answering anyway")
        }
    }
    let result = answer(app, &job, &mut outbox).await;
    match result {
        Ok(()) => tracing::info!(stream = job.stream, "inference answered over WebSocket"),
        Err(Stop::Gone) => tracing::info!("the client left; the upstream request was dropped"),
        Err(Stop::Undeliverable) => tracing::warn!("the answer could not be delivered"),
    }
}

async fn answer(app: &WebSocketApp, job: &Job, outbox: &mut Outbox<'_>) -> Result<(), Stop> {
    let id = job.id.as_str();
    let raw = Bytes::copy_from_slice(job.data.get().as_bytes());
    // `$default` validated it already; the same code cannot refuse it here.
    let call = match Call::new(raw, chat_operation(job.stream), &app.state.config.guard) {
        Ok(call) => call,
        Err(error) => {
            if let Some(reservation) = job.reserved.reservation.clone() {
                app.state.rate_limiter.settle(reservation, 0.0).await;
            }
            return outbox.error(error.error_object()).await;
        }
    };
    let heartbeat = app.state.config.websocket.heartbeat_interval;
    let sent = with_heartbeats(
        outbox,
        heartbeat,
        relay::send(
            &app.state,
            call,
            &Attribution::default(),
            job.reserved.clone(),
        ),
    )
    .await?;
    match sent {
        Err(error) => outbox.error(error.error_object()).await,
        Ok(Answer::Complete(completion)) => match answer::complete(id, &completion.body) {
            Some(message) => outbox.send(message).await,
            None => {
                let error = ApiError::from(llm_proxy_shared::error::UpstreamError::bad_gateway(
                    "OpenRouter's answer could not be read",
                ));
                outbox.error(error.error_object()).await
            }
        },
        Ok(Answer::Stream(stream)) => relay(app, id, stream, outbox).await,
        // WebSocket messages carry chat only, which never answers in media bytes.
        Ok(Answer::Media(_)) => {
            let error = ApiError::from(llm_proxy_shared::error::UpstreamError::bad_gateway(
                "OpenRouter answered with media, which a WebSocket message cannot carry",
            ));
            outbox.error(error.error_object()).await
        }
    }
}

/// Waits for `work`, sending a heartbeat whenever nothing has gone out for `every`;
/// a client that has gone ends the wait (and drops `work`, and any upstream request
/// in it).
async fn with_heartbeats<T>(
    outbox: &mut Outbox<'_>,
    every: std::time::Duration,
    work: impl Future<Output = T>,
) -> Result<T, Stop> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            () = sleep_until(outbox.last_sent + every) => outbox.send(message::heartbeat(now_ms())).await?,
        }
    }
}

async fn relay(
    app: &WebSocketApp,
    id: &str,
    stream: Streamed,
    outbox: &mut Outbox<'_>,
) -> Result<(), Stop> {
    let settings = &app.state.config.websocket;
    let mut relay = stream.relay;
    let mut answer = StreamAnswer::new(id);
    let mut flush_at: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            item = relay.next() => item,
            () = sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                flush_at = None;
                if let Some(message) = answer.flush() {
                    outbox.send(message).await?;
                }
                continue;
            }
            () = sleep_until(outbox.last_sent + settings.heartbeat_interval) => {
                outbox.send(message::heartbeat(now_ms())).await?;
                continue;
            }
        };
        let events = match next {
            Some(Relayed::Events(events)) => events,
            Some(Relayed::Failed(failure)) => {
                if let Some(message) = answer.flush() {
                    outbox.send(message).await?;
                }
                return outbox.error(failure.error_object()).await;
            }
            // The relay ends after [DONE] (handled below) or after a failure.
            None => return outbox.send(answer.finish()).await,
        };
        for data in event_data(&events) {
            match answer.push(&data, settings.flush_bytes) {
                Next::Wait => {
                    if answer.has_pending() && flush_at.is_none() {
                        flush_at = Some(Instant::now() + settings.flush_interval);
                    }
                }
                Next::Flush => {
                    flush_at = None;
                    if let Some(message) = answer.flush() {
                        outbox.send(message).await?;
                    }
                }
                Next::Done => return outbox.send(answer.finish()).await,
                Next::Failed(error) => {
                    if let Some(message) = answer.flush() {
                        outbox.send(message).await?;
                    }
                    return outbox.error(error).await;
                }
            }
        }
    }
}
