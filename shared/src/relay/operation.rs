//! The table of operations (`docs/http-api.md`, "Inference operations"): every
//! inference route this proxy serves is one row, and the one relay reads the row for
//! everything that differs between them. Adding an operation is adding a row (and its
//! tests), never a handler of its own.

use crate::routes;
pub use crate::sse::StreamEnd;

/// How a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// One JSON body; `"stream": true` is refused.
    Json,
    /// Server-Sent Events; `stream` may be left out (the proxy adds it), `false` is
    /// refused.
    Sse,
    /// Whatever the body's `stream` asks for (OpenRouter's own routes).
    AsAsked,
    /// Bytes of OpenRouter's media type (audio), relayed as they arrive.
    Bytes,
}

/// How a request body may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    /// JSON, or `multipart/form-data` with the input as a file part (how the OpenAI SDK
    /// uploads audio).
    JsonOrForm,
}

/// What the input is, for estimating its tokens from its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Text,
    /// Encoded audio: far fewer tokens per byte than text
    /// ([`crate::relay::price::AUDIO_BYTES_PER_TOKEN`]).
    Audio,
}

/// What bounds an answer's output, for the cap and for pricing its worst case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// These fields cap the answer's tokens, each at most `MAX_TOKENS_CAP`; the first is
    /// inserted (set to the cap) when none is given.
    Capped(&'static [&'static str]),
    /// Output the request cannot cap (an image), reserved as `MAX_TOKENS_CAP` tokens
    /// (times `n`).
    Uncapped,
    /// No output to speak of (embeddings, rerank): the input is the cost.
    InputOnly,
}

impl Output {
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Capped(fields) => fields,
            Self::Uncapped | Self::InputOnly => &[],
        }
    }
}

/// What a request body must hold besides a model (`docs/http-api.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRules {
    /// OpenRouter's chat body, checked in depth: `messages` and the sampling ranges.
    Chat,
    /// These top-level fields, present and not null; the rest is OpenRouter's.
    Requires(&'static [&'static str]),
}

#[derive(Debug)]
pub struct Operation {
    /// Names the operation in logs.
    pub name: &'static str,
    /// The route on this proxy.
    pub path: &'static str,
    /// OpenRouter's path, under its base URL.
    pub upstream: &'static str,
    pub answering: Answering,
    pub body: BodyRules,
    /// The field that carries the input, named when there is too much of it.
    pub input: &'static str,
    pub output: Output,
    pub stream_end: StreamEnd,
    pub encoding: Encoding,
    pub input_kind: InputKind,
    /// Whether OpenRouter's response cache serves this operation
    /// (`docs/http-api.md`, "Response caching").
    pub cacheable: bool,
    /// Whether the operation takes a `models` fallback list; without one, `model` is
    /// required.
    pub fallbacks: bool,
}

impl Operation {
    /// The row serving `path`, if any.
    pub fn at(path: &str) -> Option<&'static Operation> {
        let path = path.trim_end_matches('/');
        OPERATIONS.iter().find(|op| op.path == path)
    }
}

use crate::validation::CHAT_OUTPUT_TOKENS as CHAT_TOKENS;

/// What most rows share; each row names only where it differs.
const DEFAULTS: Operation = Operation {
    name: "",
    path: "",
    upstream: "",
    answering: Answering::AsAsked,
    body: BodyRules::Requires(&[]),
    input: "",
    output: Output::InputOnly,
    stream_end: StreamEnd::ErrorData,
    encoding: Encoding::Json,
    input_kind: InputKind::Text,
    cacheable: false,
    fallbacks: true,
};

/// The three chat routes differ only in path and in how they answer.
const CHAT: Operation = Operation {
    name: "chat",
    upstream: "/chat/completions",
    body: BodyRules::Chat,
    input: "messages",
    output: Output::Capped(CHAT_TOKENS),
    cacheable: true,
    ..DEFAULTS
};

/// Every inference operation. `routes::INFERENCE_PATHS` is made from it.
pub static OPERATIONS: [Operation; 11] = [
    Operation {
        path: routes::INFERENCE,
        answering: Answering::Json,
        ..CHAT
    },
    Operation {
        path: routes::INFERENCE_STREAM,
        answering: Answering::Sse,
        ..CHAT
    },
    Operation {
        path: routes::CHAT_COMPLETIONS,
        ..CHAT
    },
    Operation {
        name: "responses",
        path: routes::RESPONSES,
        upstream: "/responses",
        input: "input",
        output: Output::Capped(&["max_output_tokens"]),
        stream_end: StreamEnd::ResponseFailed,
        cacheable: true,
        ..DEFAULTS
    },
    Operation {
        name: "messages",
        path: routes::MESSAGES,
        upstream: "/messages",
        body: BodyRules::Requires(&["messages"]),
        input: "messages",
        output: Output::Capped(&["max_tokens"]),
        stream_end: StreamEnd::Anthropic,
        cacheable: true,
        ..DEFAULTS
    },
    Operation {
        name: "completions",
        path: routes::COMPLETIONS,
        upstream: "/completions",
        body: BodyRules::Requires(&["prompt"]),
        input: "prompt",
        output: Output::Capped(&["max_tokens"]),
        ..DEFAULTS
    },
    Operation {
        name: "embeddings",
        path: routes::EMBEDDINGS,
        upstream: "/embeddings",
        answering: Answering::Json,
        body: BodyRules::Requires(&["input"]),
        input: "input",
        cacheable: true,
        ..DEFAULTS
    },
    Operation {
        name: "rerank",
        path: routes::RERANK,
        upstream: "/rerank",
        answering: Answering::Json,
        body: BodyRules::Requires(&["query", "documents"]),
        input: "documents",
        ..DEFAULTS
    },
    Operation {
        name: "images",
        path: routes::IMAGES,
        upstream: "/images",
        body: BodyRules::Requires(&["prompt"]),
        input: "prompt",
        output: Output::Uncapped,
        ..DEFAULTS
    },
    Operation {
        name: "speech",
        path: routes::AUDIO_SPEECH,
        upstream: "/audio/speech",
        answering: Answering::Bytes,
        body: BodyRules::Requires(&["input"]),
        input: "input",
        output: Output::Uncapped,
        fallbacks: false,
        ..DEFAULTS
    },
    Operation {
        name: "transcriptions",
        path: routes::AUDIO_TRANSCRIPTIONS,
        upstream: "/audio/transcriptions",
        answering: Answering::Json,
        body: BodyRules::Requires(&["input_audio"]),
        input: "input_audio",
        output: Output::Uncapped,
        encoding: Encoding::JsonOrForm,
        input_kind: InputKind::Audio,
        fallbacks: false,
        ..DEFAULTS
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_one_row_and_every_route_is_an_inference_path() {
        for op in &OPERATIONS {
            assert_eq!(
                OPERATIONS.iter().filter(|o| o.path == op.path).count(),
                1,
                "{}",
                op.path
            );
            assert!(routes::INFERENCE_PATHS.contains(&op.path), "{}", op.path);
            assert!(op.upstream.starts_with('/'));
        }
        assert_eq!(
            Operation::at("/api/v1/responses/").map(|o| o.name),
            Some("responses")
        );
        assert!(Operation::at("/api/v1/models").is_none());
    }
}
