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

pub fn models() -> Bytes {
    Bytes::from_static(MODELS)
}

pub fn error_400() -> Bytes {
    Bytes::from_static(ERROR_400)
}

pub fn error_provider() -> String {
    ERROR_PROVIDER.to_owned()
}
