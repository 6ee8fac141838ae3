//! Streamed answers: a plan of steps (send, sleep, wait for the test, break) played
//! out as an SSE body, with SSE framing and keep-alives exactly as the captures show.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::chat::with_id;
use super::echo::Echo;
use super::errors;
use super::scenario::Behaviour;
use super::shared::{Shared, lock};
use crate::fixtures;

const KEEP_ALIVE: &[u8] = b": OPENROUTER PROCESSING\n\n";
const CAPTURE_ID: &str = "gen-1754441342-hIkMo7SMi0ZecQw3oR4d";

/// One step of a streamed answer.
pub(super) enum Step {
    Send(Bytes),
    Sleep(Duration),
    /// Wait for the test's `step()`.
    WaitForTest,
    /// Break the connection.
    Reset,
    /// Send this every so often, for ever.
    Forever {
        every: Duration,
        event: Bytes,
    },
    /// Send this many times, as fast as the reader takes it.
    Repeat {
        times: u64,
        event: Bytes,
    },
}

/// Notes when a streamed answer ends, however it ends.
pub(super) struct CloseGuard(pub(super) Arc<Shared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        lock(&self.0.streams_closed).push(std::time::Instant::now());
        self.0.arrivals.notify_waiters();
    }
}

/// `authorization` is the request's header, which only `StreamLeak` repeats.
pub async fn answer(
    shared: Arc<Shared>,
    request: &Value,
    behaviour: Behaviour,
    authorization: &str,
) -> Response {
    let text = fixtures::sse_events(&fixtures::stream("text").unwrap_or_default());
    let half = text.len() / 2;
    let first_half = || -> Vec<Step> { text[..half].iter().cloned().map(Step::Send).collect() };
    let (steps, id): (Vec<Step>, String) = match behaviour {
        Behaviour::Status(status) => return errors::for_status(status),
        Behaviour::Html(status, padding) => return errors::html_page(status, padding),
        Behaviour::InvalidJson => return errors::invalid_json(),
        Behaviour::NotSse => return super::chat::answer(request, Behaviour::Echo).await,
        Behaviour::Stall(delay) => {
            tokio::time::sleep(delay).await;
            return answer_echo(shared, request);
        }
        Behaviour::Replay => (sends(text), CAPTURE_ID.into()),
        Behaviour::Capture(name) => (
            sends(fixtures::sse_events(
                &fixtures::stream(name).unwrap_or_default(),
            )),
            CAPTURE_ID.into(),
        ),
        Behaviour::LockStep => {
            let mut steps = Vec::new();
            for (i, event) in text.iter().enumerate() {
                if i > 0 {
                    steps.push(Step::WaitForTest);
                }
                steps.push(Step::Send(event.clone()));
            }
            (steps, CAPTURE_ID.into())
        }
        Behaviour::StreamError => {
            let mut steps = first_half();
            let error = json!({"id": "gen-mock", "object": "chat.completion.chunk", "created": 1_754_441_342,
                "model": "openai/gpt-4o", "provider": "OpenAI",
                "error": {"code": 502, "message": "Provider disconnected unexpectedly",
                          "metadata": {"provider_name": "OpenAI"}},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]});
            steps.push(Step::Send(Bytes::from(format!("data: {error}\n\n"))));
            steps.push(Step::Send(Bytes::from_static(b"data: [DONE]\n\n")));
            (steps, CAPTURE_ID.into())
        }
        Behaviour::StreamLeak => {
            let mut steps = first_half();
            let error = json!({"id": "gen-mock", "object": "chat.completion.chunk", "created": 1_754_441_342,
                "model": "openai/gpt-4o",
                "error": {"code": 401, "message": format!("Provider rejected the credentials {authorization}"),
                          "metadata": {"raw": format!("{{\"key\":\"{authorization}\",\"org\":\"org-AbCdEf123456\"}}")}},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]});
            steps.push(Step::Send(Bytes::from(format!("data: {error}\n\n"))));
            steps.push(Step::Send(Bytes::from_static(b"data: [DONE]\n\n")));
            (steps, CAPTURE_ID.into())
        }
        Behaviour::StreamReset => {
            let mut steps = first_half();
            // Half an event, then the connection breaks (a moment later, so that what
            // came before has gone out).
            steps.push(Step::Send(Bytes::from_static(
                b"data: {\"id\":\"gen-mock\",\"choi",
            )));
            steps.push(Step::Sleep(Duration::from_millis(50)));
            steps.push(Step::Reset);
            (steps, CAPTURE_ID.into())
        }
        Behaviour::StreamGarbage => {
            let mut steps = first_half();
            steps.push(Step::Send(Bytes::from_static(
                b"<html>502 Bad Gateway</html>\n\n",
            )));
            steps.extend(text[half..].iter().cloned().map(Step::Send));
            (steps, CAPTURE_ID.into())
        }
        Behaviour::StreamStall(silence) => {
            let mut steps = first_half();
            steps.push(Step::Sleep(silence));
            steps.extend(text[half..].iter().cloned().map(Step::Send));
            (steps, CAPTURE_ID.into())
        }
        Behaviour::StreamBig(bytes) => {
            let image = format!("data:image/png;base64,{}", "A".repeat(bytes));
            let chunk = json!({"id": "gen-mock-image", "object": "chat.completion.chunk", "created": 1_754_441_342,
                "model": "google/gemini-2.5-flash-image", "provider": "Google",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "",
                    "images": [{"type": "image_url", "image_url": {"url": image}}]},
                    "finish_reason": null}]});
            let steps = vec![
                Step::Send(Bytes::from_static(KEEP_ALIVE)),
                Step::Send(Bytes::from(format!("data: {chunk}\n\n"))),
                Step::Send(Bytes::from_static(b"data: [DONE]\n\n")),
            ];
            (steps, "gen-mock-image".into())
        }
        Behaviour::StreamEndless(every) => (
            vec![
                Step::Send(text[1].clone()),
                Step::Forever {
                    every,
                    event: text[2].clone(),
                },
            ],
            CAPTURE_ID.into(),
        ),
        Behaviour::StreamVolume(megabytes) => {
            let delta = json!({"id": "gen-mock-volume", "object": "chat.completion.chunk", "created": 1_754_441_342,
                "model": "openai/gpt-4o", "provider": "OpenAI",
                "choices": [{"index": 0, "delta": {"content": "x".repeat(8 * 1024)}, "finish_reason": null}]});
            let event = Bytes::from(format!("data: {delta}\n\n"));
            let times = (megabytes * 1024 * 1024).div_ceil(event.len() as u64);
            let steps = vec![
                Step::Send(text[0].clone()),
                Step::Repeat { times, event },
                Step::Send(Bytes::from_static(b"data: [DONE]\n\n")),
            ];
            (steps, "gen-mock-volume".into())
        }
        Behaviour::StreamKeepalive(every) => (
            vec![
                Step::Send(text[1].clone()),
                Step::Forever {
                    every,
                    event: Bytes::from_static(KEEP_ALIVE),
                },
            ],
            CAPTURE_ID.into(),
        ),
        Behaviour::StreamBurst(deltas) => (repeated(&text, deltas, None), CAPTURE_ID.into()),
        Behaviour::StreamPaced { deltas, every } => {
            (repeated(&text, deltas, Some(every)), CAPTURE_ID.into())
        }
        Behaviour::EchoWithoutCost | Behaviour::EchoDated => {
            let mut echo = Echo::new(request);
            echo.with_cost = false;
            if behaviour == Behaviour::EchoDated {
                echo.dated();
            }
            (sends(echo.events()), echo.generation_id().to_owned())
        }
        Behaviour::Echo
        | Behaviour::Big(_)
        | Behaviour::BigChunked(_)
        | Behaviour::Pad { .. }
        | Behaviour::Reset
        | Behaviour::ErrorInBody(_) => {
            return answer_echo(shared, request);
        }
    };
    play(shared, steps, &id)
}

/// The text capture's opening, its first delta `deltas` times (each after `pace`, if
/// given), and its ending.
fn repeated(text: &[Bytes], deltas: usize, pace: Option<Duration>) -> Vec<Step> {
    let mut steps = sends(text[..2].to_vec());
    for _ in 0..deltas {
        if let Some(pace) = pace {
            steps.push(Step::Sleep(pace));
        }
        steps.push(Step::Send(text[2].clone()));
    }
    steps.extend(sends(text[text.len() - 3..].to_vec()));
    steps
}

fn answer_echo(shared: Arc<Shared>, request: &Value) -> Response {
    let echo = Echo::new(request);
    play(shared, sends(echo.events()), echo.generation_id())
}

pub(super) fn sends(events: Vec<Bytes>) -> Vec<Step> {
    events.into_iter().map(Step::Send).collect()
}

pub(super) fn play(shared: Arc<Shared>, mut steps: Vec<Step>, id: &str) -> Response {
    steps.reverse();
    let guard = CloseGuard(shared);
    let body = stream::unfold((steps, guard), |(mut steps, guard)| async move {
        let sent = |guard: &CloseGuard| lock(&guard.0.sent).push(std::time::Instant::now());
        loop {
            match steps.pop()? {
                Step::Send(bytes) => {
                    sent(&guard);
                    return Some((Ok(bytes), (steps, guard)));
                }
                Step::Sleep(delay) => tokio::time::sleep(delay).await,
                Step::WaitForTest => {
                    if let Ok(permit) = guard.0.steps.acquire().await {
                        permit.forget();
                    }
                }
                Step::Reset => {
                    let error =
                        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock reset");
                    return Some((Err(error), (Vec::new(), guard)));
                }
                Step::Repeat { times, event } => {
                    if times > 1 {
                        steps.push(Step::Repeat {
                            times: times - 1,
                            event: event.clone(),
                        });
                    }
                    return Some((Ok(event), (steps, guard)));
                }
                Step::Forever { every, event } => {
                    tokio::time::sleep(every).await;
                    steps.push(Step::Forever {
                        every,
                        event: event.clone(),
                    });
                    return Some((Ok(event), (steps, guard)));
                }
            }
        }
    });
    let response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response();
    with_id(response, id)
}
