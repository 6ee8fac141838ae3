//! `EventReader`: OpenRouter's response body cut into complete, well-formed events.
//! Only the event in progress is held; upstream silence longer than `REQUEST_TIMEOUT`,
//! a broken connection, an unfinished stream or garbage end it with a failure.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

use super::events::{check_events, last_event_end};
use super::{Relayed, StreamFailure};
use crate::error::{ApiError, UpstreamError};

/// One event may carry a base64 image of several megabytes; beyond this it is not an
/// event but a runaway stream.
const MAX_EVENT_BYTES: usize = 32 * 1024 * 1024;

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

pub(super) struct EventReader {
    upstream: Upstream,
    partial: BytesMut,
    ready: VecDeque<Relayed>,
    idle_timeout: Duration,
    /// When upstream last sent a byte: silence counts from here, however often the
    /// reader is asked (and its waits cancelled) in between.
    last_byte: Instant,
    saw_done: bool,
    finished: bool,
}

impl EventReader {
    pub(super) fn new(response: reqwest::Response, idle_timeout: Duration) -> Self {
        Self {
            upstream: Box::pin(response.bytes_stream()),
            partial: BytesMut::new(),
            ready: VecDeque::new(),
            idle_timeout,
            last_byte: Instant::now(),
            saw_done: false,
            finished: false,
        }
    }

    /// The next complete events, or the failure that ends the stream; `None` once it
    /// has ended. Cancelling the wait loses nothing.
    pub(super) async fn next(&mut self) -> Option<Relayed> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            let next =
                tokio::time::timeout_at(self.last_byte + self.idle_timeout, self.upstream.next())
                    .await;
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
                Ok(Some(Ok(bytes))) => {
                    self.last_byte = Instant::now();
                    self.take(&bytes);
                }
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
        self.ready
            .push_back(Relayed::Failed(StreamFailure { error, message }));
        self.finished = true;
        self.partial.clear();
    }
}

fn broken(message: &str) -> ApiError {
    UpstreamError::bad_gateway(message).into()
}
