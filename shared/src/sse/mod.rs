//! The SSE relay: OpenRouter's stream passed on event by event.
//!
//! Each complete upstream event (comments included) is passed on the moment its
//! terminating blank line arrives; only the event in progress is held, so memory stays
//! flat however long the answer. However the stream goes wrong after the first byte
//! (upstream drops, sends garbage, is silent for `REQUEST_TIMEOUT`, or the stream runs
//! past `STREAM_MAX_DURATION_MS`), the client gets whole events and then one final
//! `data:` event carrying an `error` object, never a half-written event or a silent cut.
//!
//! Reading upstream runs in a task of its own, ahead of the client by a few events, so
//! its clocks run whether or not the client reads: the deadline ends a stream a
//! stalled reader holds, and after `SSE_KEEPALIVE_MS` of upstream silence the client
//! gets an SSE comment from the proxy. When the client goes away the task ends, and
//! the upstream request with it.
//!
//! Layout: `events` (SSE framing), `reader` (upstream bytes to checked events); this
//! module runs the relay and reports what the answer cost when it ends.

pub mod events;
mod reader;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

pub use events::event_data;
use reader::EventReader;

use crate::error::ApiError;
use crate::openrouter::Scrubber;

/// What the relay hands on: complete events, or how the stream failed (the last item).
#[derive(Debug)]
pub enum Relayed {
    /// One or more complete events, exactly as upstream sent them (or the proxy's own
    /// keep-alive comment).
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
    pub fn error_object(&self) -> Value {
        let mut object = self.error.error_object();
        if let (Some(message), Some(map)) = (&self.message, object.as_object_mut()) {
            map.insert("message".into(), json!(message));
        }
        object
    }

    /// The final SSE event that tells a streaming client, in its operation's convention.
    pub fn sse_event(&self, end: StreamEnd) -> Bytes {
        let error = self.error_object();
        Bytes::from(match end {
            StreamEnd::ErrorData => format!("data: {}\n\n", json!({ "error": error })),
            StreamEnd::ResponseFailed => format!(
                "data: {}\n\n",
                json!({"type": "response.failed",
                       "response": {"status": "failed",
                                    "error": {"code": error["type"], "message": error["message"]}},
                       "error": error})
            ),
            StreamEnd::Anthropic => format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error",
                       "error": {"type": anthropic_type(self.error.status().as_u16()),
                                 "message": error["message"]}})
            ),
        })
    }

    fn deadline(max_duration: Duration) -> Self {
        let ms = u64::try_from(max_duration.as_millis()).unwrap_or(u64::MAX);
        Self {
            error: ApiError::Timeout { timeout_ms: ms },
            message: Some(format!(
                "The stream reached its maximum duration of {ms} ms and was ended"
            )),
        }
    }
}

/// How a stream that fails after its first byte tells the client, in its operation's
/// own convention (a final event the client's SDK reads as an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// `data: {"error": {...}}`: chat, completions, images.
    ErrorData,
    /// `data: {"type": "response.failed", ...}`: the Responses API.
    ResponseFailed,
    /// `event: error` with Anthropic's error object: Messages. Events after
    /// `message_stop` (OpenRouter may add `data: [DONE]`) are not relayed: Anthropic's
    /// SDK fails on them.
    Anthropic,
}

/// Anthropic's name for an error of this status.
fn anthropic_type(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "invalid_request_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// The relay's clocks and conventions.
#[derive(Clone)]
pub struct RelaySettings {
    /// Upstream silence that ends the stream (`REQUEST_TIMEOUT`).
    pub idle_timeout: Duration,
    /// The longest a stream may run (`STREAM_MAX_DURATION_MS`).
    pub max_duration: Duration,
    /// Silence after which the proxy sends its own comment (`SSE_KEEPALIVE_MS`).
    pub keepalive: Duration,
    /// Takes the key and account ids out of every event before the client gets it.
    pub scrub: Scrubber,
    /// How a failure is told, and where the stream ends.
    pub end: StreamEnd,
}

/// What a streamed answer was, when it ended, for spend accounting.
#[derive(Debug, Default)]
pub struct Answered {
    /// The last `usage` OpenRouter reported.
    pub usage: Option<Value>,
    /// The answering model.
    pub model: Option<String>,
    /// `data` events relayed: about one per token, for an estimate when a stream is cut
    /// before OpenRouter reports usage.
    pub chunks: u64,
}

/// Runs when a stream ends, however it ends, before the client sees the end.
pub type OnEnd = Box<dyn FnOnce(Answered) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The proxy's own keep-alive: a comment, which SSE clients ignore.
const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// How far reading upstream may run ahead of the client, in items.
const AHEAD: usize = 8;

pub struct Relay {
    items: mpsc::Receiver<Relayed>,
    end: StreamEnd,
    /// Set when the deadline ended the stream before its failure could be queued.
    cut: Arc<AtomicBool>,
    max_duration: Duration,
    told_cut: bool,
}

impl Relay {
    /// Starts reading `response` in a task of its own; `on_end` runs when it ends.
    pub fn spawn(
        response: reqwest::Response,
        settings: RelaySettings,
        on_end: Option<OnEnd>,
    ) -> Self {
        let (sender, items) = mpsc::channel(AHEAD);
        let cut = Arc::new(AtomicBool::new(false));
        let reader = EventReader::new(response, settings.idle_timeout);
        let max_duration = settings.max_duration;
        let end = settings.end;
        tokio::spawn(produce(reader, sender, settings, cut.clone(), on_end));
        Self {
            items,
            end,
            cut,
            max_duration,
            told_cut: false,
        }
    }

    /// The next complete events, or the failure that ends the stream; `None` once it
    /// has ended.
    pub async fn next(&mut self) -> Option<Relayed> {
        if let Some(item) = self.items.recv().await {
            return Some(item);
        }
        if self.cut.load(Ordering::Acquire) && !self.told_cut {
            self.told_cut = true;
            return Some(Relayed::Failed(StreamFailure::deadline(self.max_duration)));
        }
        None
    }

    /// The relay as an SSE body: events as they complete, a failure as a final
    /// `data: {"error": ...}` event.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(self, |mut relay| async move {
            let bytes = match relay.next().await? {
                Relayed::Events(events) => events,
                Relayed::Failed(failure) => failure.sse_event(relay.end),
            };
            Some((Ok(bytes), relay))
        })
    }
}

/// Reads upstream and queues what the client is to get, until the stream ends, the
/// deadline passes or the client goes; then reports what was answered.
async fn produce(
    mut reader: EventReader,
    sender: mpsc::Sender<Relayed>,
    settings: RelaySettings,
    cut: Arc<AtomicBool>,
    on_end: Option<OnEnd>,
) {
    let deadline = Instant::now() + settings.max_duration;
    let mut answered = Answered::default();
    loop {
        let item = tokio::select! {
            item = reader.next() => item,
            () = sleep(settings.keepalive) => Some(Relayed::Events(Bytes::from_static(KEEPALIVE))),
            () = sleep_until(deadline) => Some(Relayed::Failed(StreamFailure::deadline(settings.max_duration))),
        };
        let Some(item) = item else { break };
        let mut ended = false;
        let item = match item {
            Relayed::Events(events) => {
                let mut events = settings.scrub.events(events);
                if settings.end == StreamEnd::Anthropic
                    && let Some(stop) = end_of_event(&events, b"event: message_stop")
                {
                    events.truncate(stop);
                    ended = true;
                }
                Relayed::Events(events)
            }
            failed @ Relayed::Failed(_) => failed,
        };
        let last = match &item {
            Relayed::Events(events) => {
                watch(&mut answered, events);
                ended
            }
            Relayed::Failed(failure) => {
                tracing::warn!(error = %failure.error_object()["message"], "stream ended with an error");
                true
            }
        };
        tokio::select! {
            biased;
            sent = sender.send(item) => if sent.is_err() {
                // The client went away: stop reading (dropping the upstream request).
                break;
            },
            () = sleep_until(deadline) => {
                // A client that stopped reading holds the stream no longer than this.
                cut.store(true, Ordering::Release);
                break;
            }
        }
        if last {
            break;
        }
    }
    drop(reader);
    if let Some(on_end) = on_end {
        on_end(answered).await;
    }
    // The client sees the end only now, after the accounting: on Lambda the
    // invocation ends with the stream.
    drop(sender);
}

/// Where the event holding `marker` ends (after its blank line), if `events` has it.
fn end_of_event(events: &[u8], marker: &[u8]) -> Option<usize> {
    let at = memchr::memmem::find(events, marker)?;
    let rest = &events[at..];
    memchr::memmem::find(rest, b"\n\n")
        .map(|end| at + end + 2)
        .or(Some(events.len()))
}

/// Notes the usage, model and number of data events of passing events. Usage is
/// where each operation puts it: at the top of a chunk (chat, completions, images, a
/// Messages `message_delta`), or inside the object an event carries (a Responses
/// `response.completed`, a Messages `message_start`).
fn watch(answered: &mut Answered, events: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        usage: Option<Value>,
        #[serde(default)]
        model: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Chunk {
        #[serde(default)]
        usage: Option<Value>,
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        response: Option<Inner>,
        #[serde(default)]
        message: Option<Inner>,
    }
    for data in event_data(events) {
        if &data[..] == b"[DONE]" {
            continue;
        }
        answered.chunks += 1;
        // Only the chunks that carry usage are worth parsing.
        if data.windows(7).any(|w| w == b"\"usage\"")
            && let Ok(chunk) = serde_json::from_slice::<Chunk>(&data)
        {
            let inner = chunk.response.or(chunk.message);
            let (inner_usage, inner_model) = inner.map_or((None, None), |i| (i.usage, i.model));
            if let Some(usage) = chunk.usage.or(inner_usage).filter(|u| !u.is_null()) {
                answered.usage = Some(usage);
            }
            answered.model = chunk.model.or(inner_model).or(answered.model.take());
        }
    }
}

/// Whether `headers` say the body is an event stream (OpenRouter's answer to a
/// streamed request, or the proxy's own relay of one).
pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .trim_ascii_start()
            .starts_with(b"text/event-stream")
    })
}

/// The headers every SSE answer carries.
pub const SSE_HEADERS: [(http::HeaderName, &str); 3] = [
    (http::header::CONTENT_TYPE, "text/event-stream"),
    (http::header::CACHE_CONTROL, "no-cache"),
    (crate::header_names::ACCEL_BUFFERING, "no"),
];
