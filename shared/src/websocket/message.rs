//! The messages of the WebSocket protocol (`docs/websocket.md`): reading what a client
//! sends, writing what the proxy sends, and splitting a message larger than a frame.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::validation::validate_chat_request;

/// API Gateway's largest WebSocket frame; nothing the proxy sends is larger.
pub const FRAME_LIMIT: usize = 32 * 1024;
/// API Gateway's largest WebSocket message (frames of one message together).
pub const MESSAGE_LIMIT: usize = 128 * 1024;
/// The longest request `id` a client may choose.
pub const MAX_ID_CHARS: usize = 128;
/// A close frame's reason is at most 123 bytes (RFC 6455 §5.5).
const MAX_CLOSE_REASON: usize = 123;

/// A client's message, understood and checked.
#[derive(Debug)]
pub enum ClientMessage {
    /// A chat completion; `data` is the chat body as the client wrote it.
    Inference {
        id: String,
        data: Box<RawValue>,
        stream: bool,
    },
    Ping,
    Close {
        code: u16,
        reason: String,
    },
}

/// A client message that was refused, with the `id` to answer with when it had one.
#[derive(Debug)]
pub struct Refusal {
    pub id: Option<String>,
    pub error: ApiError,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    reason: Option<Value>,
}

const TYPES: &str = "inference_request, ping, close";

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        let refuse = |id: Option<String>, field: &str, message: String| Refusal {
            id,
            error: ApiError::validation(field, message),
        };
        if !text.trim_start().starts_with('{') {
            return Err(refuse(
                None,
                "message",
                "A message must be a JSON object such as {\"type\": \"ping\"}".into(),
            ));
        }
        let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
            refuse(
                None,
                "message",
                format!("The message is not valid JSON: {e}"),
            )
        })?;
        // The id first, so that every later refusal can name the request.
        let id = match envelope.id {
            None => None,
            Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
                Ok(Value::String(id))
                    if !id.trim().is_empty() && id.chars().count() <= MAX_ID_CHARS =>
                {
                    Some(id)
                }
                Ok(Value::Null) => None,
                _ => {
                    return Err(refuse(
                        None,
                        "id",
                        format!(
                            "id must be a non-empty string of at most {MAX_ID_CHARS} characters"
                        ),
                    ));
                }
            },
        };
        let kind = match envelope
            .kind
            .map(|raw| serde_json::from_str::<Value>(raw.get()))
        {
            Some(Ok(Value::String(kind))) => kind,
            None | Some(Ok(Value::Null)) => {
                return Err(refuse(
                    id,
                    "type",
                    format!("type is required: one of {TYPES}"),
                ));
            }
            _ => return Err(refuse(id, "type", format!("type must be one of {TYPES}"))),
        };
        match kind.as_str() {
            "ping" => Ok(Self::Ping),
            "close" => Ok(Self::Close {
                code: close_code(envelope.code.as_ref()),
                reason: close_reason(envelope.reason.as_ref()),
            }),
            "inference_request" => {
                let Some(id) = id else {
                    return Err(refuse(
                        None,
                        "id",
                        "id is required: the proxy names each answer after it".into(),
                    ));
                };
                let Some(data) = envelope.data.filter(|d| d.get().starts_with('{')) else {
                    return Err(refuse(
                        Some(id),
                        "data",
                        "data is required: the chat request, a JSON object with model and messages"
                            .into(),
                    ));
                };
                let stream = match check_chat(data) {
                    Ok(stream) => stream,
                    Err(error) => {
                        return Err(Refusal {
                            id: Some(id),
                            error,
                        });
                    }
                };
                Ok(Self::Inference {
                    id,
                    data: data.to_owned(),
                    stream,
                })
            }
            other => Err(refuse(
                id,
                "type",
                format!(
                    "Unknown message type {:?}: expected one of {TYPES}",
                    truncate(other, 64)
                ),
            )),
        }
    }
}

/// Validates the chat body as the HTTP routes do, naming fields under `data.`;
/// answers whether to stream (the default over WebSocket).
fn check_chat(data: &RawValue) -> Result<bool, ApiError> {
    let request = validate_chat_request(data.get().as_bytes()).map_err(|error| match error {
        ApiError::Validation { field, message } => ApiError::Validation {
            field: format!("data.{field}"),
            message,
        },
        other => other,
    })?;
    Ok(request.stream != Some(false))
}

/// 1000 (normal), or a code applications may use (3000-4999); anything else is 1000.
fn close_code(code: Option<&Value>) -> u16 {
    code.and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c == 1000 || (3000..=4999).contains(c))
        .unwrap_or(1000)
}

fn close_reason(reason: Option<&Value>) -> String {
    let reason = reason
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or("Client requested close");
    truncate_bytes(reason, MAX_CLOSE_REASON).to_owned()
}

/// At most `max` characters of `text`.
fn truncate(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(at, _)| &text[..at])
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `{"type":"inference_response","id","data"}`.
pub fn inference_response(id: &str, data: Map<String, Value>) -> String {
    json!({"type": "inference_response", "id": id, "data": data}).to_string()
}

/// `{"type":"heartbeat","timestamp"}`, Unix milliseconds.
pub fn heartbeat(now_ms: u64) -> String {
    json!({"type": "heartbeat", "timestamp": now_ms}).to_string()
}

/// `{"type":"error","id"?,"request_id","error"}` with the error object of
/// `docs/errors.md`; `request_id` names the client message in the proxy's logs, as
/// `X-Request-Id` does over HTTP.
pub fn error(id: Option<&str>, request_id: &str, error: Value) -> String {
    match id {
        Some(id) => json!({"type": "error", "id": id, "request_id": request_id, "error": error}),
        None => json!({"type": "error", "request_id": request_id, "error": error}),
    }
    .to_string()
}

/// `{"type":"close","reason","code"}`.
pub fn close(code: u16, reason: &str) -> String {
    json!({"type": "close", "reason": reason, "code": code}).to_string()
}

/// A message ready to send, in one frame or, when larger than [`FRAME_LIMIT`], as
/// ordered `part` messages: `{"type":"part","id","message","part","parts","chunk"}`,
/// where the `chunk`s of one `message` joined in `part` order are the whole message's
/// JSON text. `sequence` numbers the split messages of one request.
pub fn frames(message: String, id: Option<&str>, sequence: u64) -> Vec<String> {
    if message.len() <= FRAME_LIMIT {
        return vec![message];
    }
    // The envelope of a part, without its chunk, escaped id included, with room for
    // the numbers; the rest of the frame carries the chunk.
    let envelope = json!({"type": "part", "id": id, "message": u64::MAX, "part": u32::MAX,
                          "parts": u32::MAX, "chunk": ""})
    .to_string()
    .len();
    let budget = FRAME_LIMIT.saturating_sub(envelope).max(1024);
    let chunks = split_escaped(&message, budget);
    let parts = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(part, chunk)| {
            json!({"type": "part", "id": id, "message": sequence, "part": part,
                   "parts": parts, "chunk": chunk})
            .to_string()
        })
        .collect()
}

/// Cuts `text` into slices whose JSON-escaped length is at most `budget` bytes.
fn split_escaped(text: &str, budget: usize) -> Vec<&str> {
    let mut chunks = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (at, c) in text.char_indices() {
        let escaped = match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if size + escaped > budget && at > start {
            chunks.push(&text[start..at]);
            start = at;
            size = 0;
        }
        size += escaped;
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> (Option<String>, String) {
        match ClientMessage::parse(text) {
            Err(Refusal {
                id,
                error: ApiError::Validation { field, .. },
            }) => (id, field),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_three_messages_are_understood() {
        let text = r#"{"type":"inference_request","id":"req-123","data":{"model":"openai/gpt-4o",
                      "messages":[{"role":"user","content":"Hello, world!"}],"temperature":0.7}}"#;
        match ClientMessage::parse(text).unwrap() {
            ClientMessage::Inference { id, data, stream } => {
                assert_eq!(id, "req-123");
                assert!(stream, "streamed unless stream is false");
                assert!(data.get().starts_with("{\"model\""));
            }
            other => panic!("{other:?}"),
        }
        let text = r#"{"type":"inference_request","id":"a","data":{"model":"m","stream":false,
                      "messages":[{"role":"user","content":"x"}]}}"#;
        assert!(matches!(
            ClientMessage::parse(text).unwrap(),
            ClientMessage::Inference { stream: false, .. }
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"ping"}"#).unwrap(),
            ClientMessage::Ping
        ));
        match ClientMessage::parse(r#"{"type":"close","reason":"bye","code":4001}"#).unwrap() {
            ClientMessage::Close { code, reason } => {
                assert_eq!((code, reason.as_str()), (4001, "bye"))
            }
            other => panic!("{other:?}"),
        }
        match ClientMessage::parse(r#"{"type":"close","code":1006}"#).unwrap() {
            ClientMessage::Close { code, .. } => assert_eq!(code, 1000, "1006 is reserved"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_refusal_names_its_field_and_the_id_when_there_is_one() {
        assert_eq!(refused("not json"), (None, "message".into()));
        assert_eq!(refused("{\"type\":"), (None, "message".into()));
        assert_eq!(refused("[1,2]"), (None, "message".into()));
        assert_eq!(refused(r#"{"id":"x"}"#), (Some("x".into()), "type".into()));
        assert_eq!(
            refused(r#"{"type":"dance","id":"x"}"#),
            (Some("x".into()), "type".into())
        );
        assert_eq!(refused(r#"{"type":5}"#), (None, "type".into()));
        assert_eq!(
            refused(r#"{"type":"inference_request"}"#),
            (None, "id".into())
        );
        assert_eq!(refused(r#"{"type":"ping","id":""}"#), (None, "id".into()));
        let long = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(129));
        assert_eq!(refused(&long), (None, "id".into()));
        assert_eq!(
            refused(r#"{"type":"inference_request","id":"r"}"#),
            (Some("r".into()), "data".into())
        );
        assert_eq!(
            refused(r#"{"type":"inference_request","id":"r","data":{"model":"m"}}"#),
            (Some("r".into()), "data.messages".into())
        );
        assert_eq!(
            refused(
                r#"{"type":"inference_request","id":"r","data":{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":9}}"#
            ),
            (Some("r".into()), "data.temperature".into())
        );
    }

    #[test]
    fn a_large_message_is_split_into_parts_that_join_back() {
        let image = "A".repeat(2 * 1024 * 1024);
        let message = inference_response(
            "req-1",
            json!({"content": "say \"hi\"\n", "images": [{"image_url": {"url": image}}]})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let frames = frames(message.clone(), Some("req-1"), 7);
        assert!(frames.len() > 60, "{}", frames.len());
        let mut joined = String::new();
        for (i, frame) in frames.iter().enumerate() {
            assert!(
                frame.len() <= FRAME_LIMIT,
                "frame {i} is {} bytes",
                frame.len()
            );
            let part: Value = serde_json::from_str(frame).unwrap();
            assert_eq!(part["type"], "part");
            assert_eq!(part["id"], "req-1");
            assert_eq!(part["message"], 7);
            assert_eq!(part["part"], i);
            assert_eq!(part["parts"], frames.len());
            joined.push_str(part["chunk"].as_str().unwrap());
        }
        assert_eq!(joined, message);

        let small = heartbeat(1);
        assert_eq!(super::frames(small.clone(), None, 0), vec![small]);
    }

    #[test]
    fn escaping_never_pushes_a_part_over_the_frame() {
        // Every character of this text doubles when escaped.
        let quotes = "\"".repeat(100_000);
        let message = error(Some("q"), "GXLKYHIgliAFg_A=", json!({"message": quotes}));
        for frame in frames(message, Some("q"), 0) {
            assert!(frame.len() <= FRAME_LIMIT, "{}", frame.len());
        }
    }
}
