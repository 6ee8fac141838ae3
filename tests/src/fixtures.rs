//! The real OpenRouter captures (see `fixtures/openrouter/SOURCES.md`), built into the
//! binary so the mock needs no files at run time.

use bytes::Bytes;

const CHAT_COMPLETION: &[u8] =
    include_bytes!("../fixtures/openrouter/responses/chat-completion.json");
const MODELS: &[u8] = include_bytes!("../fixtures/openrouter/models.json");
const ERROR_400: &[u8] = include_bytes!("../fixtures/openrouter/errors/400-openrouter-error.json");
const ERROR_PROVIDER: &str = include_str!("../fixtures/openrouter/errors/400-provider-error.json");

pub const CHAT_COMPLETION_ID: &str = "gen-1767761758-xrHVZNWuYcIilpSLD1oj";

/// The non-streamed answer exactly as captured: whitespace padding, then the JSON.
pub fn chat_completion() -> Bytes {
    Bytes::from_static(CHAT_COMPLETION)
}

/// The same answer without its padding.
pub fn chat_completion_json() -> Bytes {
    Bytes::from_static(CHAT_COMPLETION.trim_ascii())
}

/// A capture of another inference operation (`fixtures/openrouter/ops/`), by file name.
pub fn op(name: &str) -> Option<Bytes> {
    let bytes: &'static [u8] = match name {
        "responses-json.json" => include_bytes!("../fixtures/openrouter/ops/responses-json.json"),
        "responses-stream.sse" => include_bytes!("../fixtures/openrouter/ops/responses-stream.sse"),
        "messages-stream.sse" => include_bytes!("../fixtures/openrouter/ops/messages-stream.sse"),
        "embeddings-json.json" => include_bytes!("../fixtures/openrouter/ops/embeddings-json.json"),
        "rerank.json" => include_bytes!("../fixtures/openrouter/ops/rerank.json"),
        "images-json.json" => include_bytes!("../fixtures/openrouter/ops/images-json.json"),
        "audio-speech.bin" => include_bytes!("../fixtures/openrouter/ops/audio-speech.bin"),
        "audio-transcriptions.json" => {
            include_bytes!("../fixtures/openrouter/ops/audio-transcriptions.json")
        }
        _ => return None,
    };
    Some(Bytes::from_static(bytes))
}

pub fn models() -> Bytes {
    Bytes::from_static(MODELS)
}

pub fn error_400() -> Bytes {
    Bytes::from_static(ERROR_400)
}

pub fn error_provider() -> String {
    ERROR_PROVIDER.to_owned()
}

/// The captured SSE streams, by name: `text`, `tool-calls`, `reasoning`, `usage-empty-choices`.
pub fn stream(name: &str) -> Option<Bytes> {
    let bytes: &'static [u8] = match name {
        "text" => include_bytes!("../fixtures/openrouter/streams/text.sse"),
        "tool-calls" => include_bytes!("../fixtures/openrouter/streams/tool-calls.sse"),
        "reasoning" => include_bytes!("../fixtures/openrouter/streams/reasoning.sse"),
        "usage-empty-choices" => {
            include_bytes!("../fixtures/openrouter/streams/usage-empty-choices.sse")
        }
        _ => return None,
    };
    Some(Bytes::from_static(bytes))
}

pub const STREAMS: [&str; 4] = ["text", "tool-calls", "reasoning", "usage-empty-choices"];

/// Splits an SSE body into its events (each with its blank-line terminator), as
/// OpenRouter sends them one by one.
pub fn sse_events(body: &[u8]) -> Vec<Bytes> {
    let mut events = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < body.len() {
        if body[i] == b'\n' && body[i + 1] == b'\n' {
            events.push(Bytes::copy_from_slice(&body[start..i + 2]));
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    if start < body.len() {
        events.push(Bytes::copy_from_slice(&body[start..]));
    }
    events
}
