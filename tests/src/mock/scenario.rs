//! `Behaviour`: how the mock answers a chat request, and the one parser that reads it
//! from a model name (`mock/<words>-<numbers>`: `mock/status-429`, `mock/pad-6-150`,
//! `mock/stream-stall-5000`), so a scenario can be picked from curl or another process.

use std::time::Duration;

use crate::fixtures;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer as the model asked for, about the prompt: the demo's default.
    Echo,
    /// The echo, with usage but no `cost` (as older OpenRouter answers came):
    /// `mock/echo-nocost`.
    EchoWithoutCost,
    /// The echo without a cost, from a dated model id the catalogue does not list
    /// (`openai/o1-pro-2025-03-19` for `openai/o1-pro`): `mock/echo-dated`.
    EchoDated,
    /// A JSON answer whose content is this many bytes (`mock/big-7000000`).
    Big(usize),
    /// The same, sent in chunks with no declared length, so a reader learns its size
    /// only by reading (`mock/big-chunked-7000000`).
    BigChunked(usize),
    /// Answer with the captures, byte for byte: `chat-completion.json`, and the text
    /// stream (`mock/replay`).
    Replay,
    /// Streams: replay this captured stream (`mock/stream-text`, `-tool-calls`,
    /// `-reasoning`, `-usage-empty-choices`).
    Capture(&'static str),
    /// This error status with OpenRouter's error body (`mock/status-429`).
    Status(u16),
    /// Say nothing for this long before the answer's headers (`mock/stall-5000`).
    Stall(Duration),
    /// Send this many whitespace lines, one every `every`, before the answer
    /// (`mock/pad-6-150`), as OpenRouter does while a model works.
    Pad { lines: usize, every: Duration },
    /// A 200 and part of the body, then a broken connection (`mock/reset`).
    Reset,
    /// A 200 whose body, after padding, is an error object: the model failed late
    /// (`mock/late-error-502`).
    ErrorInBody(u16),
    /// Streams: the captured text stream one event per test `step()`, the first at
    /// once. A proxy that buffers never shows event k, and the test never steps.
    LockStep,
    /// An HTML error page with this status, as a proxy in front of OpenRouter
    /// answers when it fails (`mock/html-502`), padded to this many bytes
    /// (`mock/html-502-10000000`).
    Html(u16, usize),
    /// A 200 whose JSON body breaks off (`mock/invalid-json`); asked for a stream, the
    /// same, which is not an event stream either.
    InvalidJson,
    /// Asked for a stream, a 200 with the JSON completion instead (`mock/not-sse`).
    NotSse,
    /// Streams: half the text stream, then OpenRouter's error event (`mock/stream-error`).
    StreamError,
    /// Streams: half the text stream, then an error event quoting the request's
    /// `Authorization` header and an account id, as a careless provider might
    /// (`mock/stream-leak`).
    StreamLeak,
    /// Streams: half the text stream, half an event, a broken connection.
    StreamReset,
    /// Streams: half the text stream, then something that is not an event.
    StreamGarbage,
    /// Streams: half the text stream, this long a silence, the rest.
    StreamStall(Duration),
    /// Streams: one event carrying a base64 image of this many bytes.
    StreamBig(usize),
    /// Streams: a content delta this often, for ever.
    StreamEndless(Duration),
    /// Streams: about this many MB of 8 KiB content deltas, as fast as read.
    StreamVolume(u64),
    /// Streams: a keep-alive comment this often, for ever.
    StreamKeepalive(Duration),
    /// Streams: this many one-word content deltas at once, then the end.
    StreamBurst(usize),
    /// Streams: this many content deltas, one every `every`, as a model writes
    /// (`mock/stream-paced-500-20`).
    StreamPaced { deltas: usize, every: Duration },
}

impl Behaviour {
    /// Reads a behaviour from a model name; `None` for a model that is not a scenario.
    pub fn from_model(model: &str) -> Option<Self> {
        let spec = model.strip_prefix("mock/")?;
        let (words, numbers): (Vec<&str>, Vec<&str>) = spec
            .split('-')
            .partition(|part| part.parse::<u64>().is_err());
        let numbers: Vec<u64> = numbers.iter().filter_map(|n| n.parse().ok()).collect();
        let first = numbers.first().copied();
        let millis = || first.map(Duration::from_millis);
        Some(match words.join("-").as_str() {
            "echo" => Self::Echo,
            "echo-nocost" => Self::EchoWithoutCost,
            "echo-dated" => Self::EchoDated,
            "big" => Self::Big(usize::try_from(first?).ok()?),
            "big-chunked" => Self::BigChunked(usize::try_from(first?).ok()?),
            "replay" => Self::Replay,
            "status" => Self::Status(u16::try_from(first?).ok()?),
            "stall" => Self::Stall(millis()?),
            "pad" => Self::Pad {
                lines: usize::try_from(first?).ok()?,
                every: Duration::from_millis(numbers.get(1).copied().unwrap_or(10)),
            },
            "reset" => Self::Reset,
            "html" => Self::Html(
                u16::try_from(first?).ok()?,
                numbers
                    .get(1)
                    .map_or(Some(0), |n| usize::try_from(*n).ok())?,
            ),
            "invalid-json" => Self::InvalidJson,
            "not-sse" => Self::NotSse,
            "late-error" => Self::ErrorInBody(u16::try_from(first.unwrap_or(502)).ok()?),
            "stream-error" => Self::StreamError,
            "stream-leak" => Self::StreamLeak,
            "stream-reset" => Self::StreamReset,
            "stream-garbage" => Self::StreamGarbage,
            "stream-stall" => Self::StreamStall(millis()?),
            "stream-big" => Self::StreamBig(usize::try_from(first?).ok()?),
            "stream-endless" => Self::StreamEndless(millis()?.max(Duration::from_millis(1))),
            "stream-volume" => Self::StreamVolume(first?),
            "stream-keepalive" => Self::StreamKeepalive(millis()?.max(Duration::from_millis(1))),
            "stream-burst" => Self::StreamBurst(usize::try_from(first?).ok()?),
            "stream-paced" => Self::StreamPaced {
                deltas: usize::try_from(first?).ok()?,
                every: Duration::from_millis(numbers.get(1).copied().unwrap_or(20)),
            },
            other => {
                let name = other.strip_prefix("stream-")?;
                let known: &'static str = fixtures::STREAMS.iter().find(|s| **s == name)?;
                Self::Capture(known)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_pick_scenarios() {
        assert_eq!(
            Behaviour::from_model("mock/status-429"),
            Some(Behaviour::Status(429))
        );
        assert_eq!(
            Behaviour::from_model("mock/pad-6-150"),
            Some(Behaviour::Pad {
                lines: 6,
                every: Duration::from_millis(150)
            })
        );
        assert_eq!(
            Behaviour::from_model("mock/stream-tool-calls"),
            Some(Behaviour::Capture("tool-calls"))
        );
        assert_eq!(
            Behaviour::from_model("mock/stream-stall-5000"),
            Some(Behaviour::StreamStall(Duration::from_millis(5000)))
        );
        assert_eq!(
            Behaviour::from_model("mock/html-502"),
            Some(Behaviour::Html(502, 0))
        );
        assert_eq!(
            Behaviour::from_model("mock/html-502-100000"),
            Some(Behaviour::Html(502, 100_000))
        );
        assert_eq!(Behaviour::from_model("openai/gpt-4o"), None);
        assert_eq!(Behaviour::from_model("mock/unheard-of"), None);
        assert_eq!(Behaviour::from_model("mock/status"), None);
    }
}
