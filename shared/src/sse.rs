//! The SSE relay: OpenRouter's stream passed to the client event by event.
//!
//! Each complete upstream event (comments included) is forwarded the moment its
//! terminating blank line arrives; only the event in progress is held, so memory stays
//! flat however long the answer. However the stream goes wrong after the first byte —
//! upstream drops, sends garbage, goes silent for `REQUEST_TIMEOUT`, or the total
//! `STREAM_MAX_DURATION_MS` passes — the client gets whole events and then one final
//! `data:` event carrying an `error` object, never a half-written event or a silent cut.
//! Dropping the relay (the client went away) drops the upstream request with it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::time::Instant;

use crate::error::{ApiError, UpstreamError};

/// One event may carry a base64 image of several megabytes; beyond this it is not an
/// event but a runaway stream.
const MAX_EVENT_BYTES: usize = 32 * 1024 * 1024;

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// What the relay hands on: complete events, or how the stream failed (the last item).
#[derive(Debug)]
pub enum Relayed {
    /// One or more complete events, exactly as upstream sent them.
    Events(Bytes),
    Failed(StreamFailure),
}

/// Why a stream ended early, after its first byte.
#[derive(Debug, Clone)]
pub struct StreamFailure {
    pub error: ApiError,
    /// Says what happened to the stream, in place of the error's own message.
    pub message: Option<String>,
}

impl StreamFailure {
    /// The `error` object of `docs/errors.md`.
    pub fn error_object(&self) -> serde_json::Value {
        let mut object = self.error.error_object();
        if let (Some(message), Some(map)) = (&self.message, object.as_object_mut()) {
            map.insert("message".into(), json!(message));
        }
        object
    }

    /// The final SSE event that tells a streaming client.
    pub fn sse_event(&self) -> Bytes {
        Bytes::from(format!(
            "data: {}\n\n",
            json!({ "error": self.error_object() })
        ))
    }
}

pub struct Relay {
    upstream: Upstream,
    partial: BytesMut,
    ready: VecDeque<Relayed>,
    idle_timeout: Duration,
    max_duration: Duration,
    deadline: Instant,
    saw_done: bool,
    finished: bool,
}

impl Relay {
    pub fn new(
        response: reqwest::Response,
        idle_timeout: Duration,
        max_duration: Duration,
    ) -> Self {
        Self {
            upstream: Box::pin(response.bytes_stream()),
            partial: BytesMut::new(),
            ready: VecDeque::new(),
            idle_timeout,
            max_duration,
            deadline: Instant::now() + max_duration,
            saw_done: false,
            finished: false,
        }
    }

    /// The relay as an SSE body: events as they complete, a failure as a final
    /// `data: {"error": ...}` event.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(self, |mut relay| async move {
            let bytes = match relay.next().await? {
                Relayed::Events(events) => events,
                Relayed::Failed(failure) => failure.sse_event(),
            };
            Some((Ok(bytes), relay))
        })
    }

    /// The next complete events, or the failure that ends the stream; `None` once it
    /// has ended.
    pub async fn next(&mut self) -> Option<Relayed> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(chunk);
            }
            if self.finished {
                return None;
            }
            let next = tokio::select! {
                next = tokio::time::timeout(self.idle_timeout, self.upstream.next()) => next,
                () = tokio::time::sleep_until(self.deadline) => {
                    let ms = u64::try_from(self.max_duration.as_millis()).unwrap_or(u64::MAX);
                    self.fail(ApiError::Timeout { timeout_ms: ms },
                        Some(format!("The stream reached its maximum duration of {ms} ms and was ended")));
                    continue;
                }
            };
            match next {
                Err(_) => {
                    let ms = u64::try_from(self.idle_timeout.as_millis()).unwrap_or(u64::MAX);
                    self.fail(
                        ApiError::Timeout { timeout_ms: ms },
                        Some(format!("OpenRouter sent nothing for {ms} ms")),
                    );
                }
                Ok(None) if self.saw_done && self.partial.iter().all(u8::is_ascii_whitespace) => {
                    self.finished = true
                }
                Ok(None) => self.fail(
                    broken("OpenRouter ended the stream before it was complete"),
                    None,
                ),
                Ok(Some(Err(_))) => self.fail(
                    broken("The connection to OpenRouter broke mid-stream"),
                    None,
                ),
                Ok(Some(Ok(bytes))) => self.take(&bytes),
            }
        }
    }

    /// Adds upstream bytes and queues every event they complete, as one chunk.
    fn take(&mut self, bytes: &[u8]) {
        let scan_from = self.partial.len().saturating_sub(3);
        self.partial.extend_from_slice(bytes);
        let Some(end) = last_event_end(&self.partial, scan_from) else {
            if self.partial.len() > MAX_EVENT_BYTES {
                self.partial.clear();
                self.fail(
                    broken("OpenRouter sent an event larger than the proxy relays"),
                    None,
                );
            }
            return;
        };
        let complete = self.partial.split_to(end).freeze();
        match check_events(&complete) {
            Ok(saw_done) => {
                self.saw_done |= saw_done;
                self.ready.push_back(Relayed::Events(complete));
            }
            Err(valid_up_to) => {
                if valid_up_to > 0 {
                    self.ready
                        .push_back(Relayed::Events(complete.slice(..valid_up_to)));
                }
                self.fail(
                    broken("OpenRouter sent something that is not a server-sent event"),
                    None,
                );
            }
        }
    }

    fn fail(&mut self, error: ApiError, message: Option<String>) {
        let failure = StreamFailure { error, message };
        tracing::warn!(error = %failure.error_object()["message"], "stream ended with an error");
        self.ready.push_back(Relayed::Failed(failure));
        self.finished = true;
        self.partial.clear();
    }
}

fn broken(message: &str) -> ApiError {
    UpstreamError::bad_gateway(message).into()
}

/// Where the last complete event in `buffer` ends (just past its blank line).
fn last_event_end(buffer: &[u8], scan_from: usize) -> Option<usize> {
    let mut end = None;
    let mut i = scan_from;
    while i + 1 < buffer.len() {
        if buffer[i] == b'\n' && buffer[i + 1] == b'\n' {
            end = Some(i + 2);
            i += 2;
        } else if buffer[i] == b'\n' && buffer[i + 1] == b'\r' && buffer.get(i + 2) == Some(&b'\n')
        {
            end = Some(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    end
}

/// Checks complete events line by line: fields, comments, and `data:` that is JSON or
/// `[DONE]`. `Ok(saw_done)`, or `Err(bytes of whole valid events before the bad one)`.
fn check_events(events: &[u8]) -> Result<bool, usize> {
    let mut saw_done = false;
    let mut event_start = 0;
    let mut offset = 0;
    for line in events.split_inclusive(|b| *b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        offset += line.len();
        if text.is_empty() {
            event_start = offset;
            continue;
        }
        let valid = if text.starts_with(b":") {
            true
        } else if let Some(data) = text.strip_prefix(b"data:") {
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data == b"[DONE]" {
                saw_done = true;
                true
            } else {
                serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
            }
        } else {
            [&b"event:"[..], b"id:", b"retry:"]
                .iter()
                .any(|field| text.starts_with(field))
        };
        if !valid {
            return Err(event_start);
        }
    }
    Ok(saw_done)
}

/// The `data` of each event in `events` (complete events, as the relay hands them
/// on), in order; comments and events without data are skipped. Lines of one event's
/// data are joined with `\n`, as the SSE standard says.
pub fn event_data(events: &[u8]) -> Vec<std::borrow::Cow<'_, [u8]>> {
    let mut out = Vec::new();
    let mut current: Option<std::borrow::Cow<'_, [u8]>> = None;
    for line in events.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            out.extend(current.take());
            continue;
        }
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        current = Some(match current.take() {
            None => std::borrow::Cow::Borrowed(data),
            Some(previous) => {
                let mut joined = previous.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(data);
                std::borrow::Cow::Owned(joined)
            }
        });
    }
    out.extend(current);
    out
}

/// The headers every SSE answer carries.
pub const SSE_HEADERS: [(http::HeaderName, &str); 3] = [
    (http::header::CONTENT_TYPE, "text/event-stream"),
    (http::header::CACHE_CONTROL, "no-cache"),
    (crate::header_names::ACCEL_BUFFERING, "no"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_read_per_event() {
        let events = b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
        let data = event_data(events);
        let data: Vec<&[u8]> = data.iter().map(|d| &d[..]).collect();
        assert_eq!(data, [&b"{\"a\":1}"[..], b"one\ntwo", b"[DONE]"]);
    }

    #[test]
    fn events_end_at_blank_lines() {
        assert_eq!(
            last_event_end(b"data: 1\n\ndata: 2\n\ndata: 3", 0),
            Some(18)
        );
        assert_eq!(last_event_end(b"data: 1\n", 0), None);
        assert_eq!(last_event_end(b": ping\r\n\r\n", 0), Some(10));
    }

    #[test]
    fn garbage_is_found_after_the_last_good_event() {
        assert_eq!(
            check_events(b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n\n"),
            Ok(false)
        );
        assert_eq!(
            check_events(b"data: {\"a\":1}\n\ndata: [DONE]\n\n"),
            Ok(true)
        );
        assert_eq!(
            check_events(b"data: {\"a\":1}\n\n<html>oops</html>\n\n"),
            Err(15)
        );
        assert_eq!(check_events(b"data: {\"a\":\n\n"), Err(0));
        assert_eq!(
            check_events(b"event: x\nid: 3\nretry: 10\ndata: {}\n\n"),
            Ok(false)
        );
    }
}
