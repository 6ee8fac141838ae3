//! Turning OpenRouter's answer into `inference_response` messages: deltas of a stream
//! gathered into few messages (the first at once, later ones on a timer or a size), or
//! a whole completion as one message. Joining what the client receives gives what it
//! would have got by joining OpenRouter's chunks (`docs/websocket.md`).

use serde_json::{Map, Value, json};

use super::message::inference_response;

/// Delta fields whose text arrives in pieces and is joined.
const JOINED_TEXT: [&str; 3] = ["content", "reasoning", "refusal"];

/// What the worker should do after a streamed event.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Nothing is due; gathered deltas wait for the flush timer.
    Wait,
    /// Send what is gathered now: the request's first delta, or enough bytes.
    Flush,
    /// The stream is complete (`[DONE]`): send the final message.
    Done,
    /// OpenRouter reported an error mid-stream: send what is gathered, then this
    /// error object as the final message.
    Failed(Value),
}

/// The gathered state of one streamed answer (its first choice: OpenRouter answers
/// with one).
pub struct StreamAnswer {
    id: String,
    model: Value,
    created: Value,
    pending: Map<String, Value>,
    pending_bytes: usize,
    sent: bool,
    finish_reason: Value,
    usage: Value,
}

impl StreamAnswer {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: Value::Null,
            created: Value::Null,
            pending: Map::new(),
            pending_bytes: 0,
            sent: false,
            finish_reason: Value::Null,
            usage: Value::Null,
        }
    }

    /// Takes one event's data (a chunk, or `[DONE]`).
    pub fn push(&mut self, data: &[u8], flush_bytes: usize) -> Next {
        if data.trim_ascii() == b"[DONE]" {
            return Next::Done;
        }
        let Ok(Value::Object(mut chunk)) = serde_json::from_slice::<Value>(data) else {
            return Next::Wait;
        };
        if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
            return Next::Failed(upstream_error(error));
        }
        for (field, slot) in [("model", &mut self.model), ("created", &mut self.created)] {
            if slot.is_null()
                && let Some(value) = chunk.get(field)
            {
                *slot = value.clone();
            }
        }
        if let Some(usage) = chunk.remove("usage").filter(|u| !u.is_null()) {
            self.usage = usage;
        }
        let Some(Value::Array(choices)) = chunk.remove("choices") else {
            return Next::Wait;
        };
        let Some(mut choice) = choices
            .into_iter()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        else {
            return Next::Wait;
        };
        if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
            self.finish_reason = reason.clone();
        }
        if let Some(Value::Object(delta)) = choice.get_mut("delta").map(Value::take) {
            for (field, value) in delta {
                self.merge(field, value);
            }
        }
        if self.pending.is_empty() {
            Next::Wait
        } else if !self.sent || self.pending_bytes >= flush_bytes {
            Next::Flush
        } else {
            Next::Wait
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// What is gathered, as a message that is not the last; `None` if nothing is.
    pub fn flush(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let data = self.take(false);
        Some(inference_response(&self.id, data))
    }

    /// The final message: what is gathered, `finish_reason` and `usage`.
    pub fn finish(&mut self) -> String {
        let data = self.take(true);
        inference_response(&self.id, data)
    }

    fn take(&mut self, last: bool) -> Map<String, Value> {
        let mut data = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.sent = true;
        if !data.contains_key("content") {
            data.insert("content".into(), json!(""));
        }
        data.insert("model".into(), self.model.clone());
        data.insert("created".into(), self.created.clone());
        if last {
            data.insert("finish_reason".into(), self.finish_reason.clone());
            data.insert("usage".into(), self.usage.clone());
        }
        data
    }

    /// Joins one delta field into what is gathered.
    fn merge(&mut self, field: String, value: Value) {
        // The role is the same on every chunk; an empty piece adds nothing.
        if is_empty(&value) || field == "role" {
            return;
        }
        self.pending_bytes += approximate_size(&value);
        match (self.pending.get_mut(&field), value) {
            (Some(Value::String(gathered)), Value::String(piece))
                if JOINED_TEXT.contains(&field.as_str()) =>
            {
                gathered.push_str(&piece);
            }
            (Some(Value::Array(gathered)), Value::Array(pieces)) if field == "tool_calls" => {
                join_tool_calls(gathered, pieces);
            }
            (Some(Value::Array(gathered)), Value::Array(pieces)) => gathered.extend(pieces),
            (Some(Value::Object(gathered)), Value::Object(piece)) if field == "audio" => {
                for (key, value) in piece {
                    match (gathered.get_mut(&key), value) {
                        (Some(Value::String(text)), Value::String(more))
                            if key == "data" || key == "transcript" =>
                        {
                            text.push_str(&more);
                        }
                        (_, value) => {
                            gathered.insert(key, value);
                        }
                    }
                }
            }
            (_, value) => {
                self.pending.insert(field, value);
            }
        }
    }
}

/// Tool-call fragments by `index`: `arguments` are concatenated, every other field
/// (`id`, `type`, the function's `name`) is kept from the first fragment that has it.
fn join_tool_calls(gathered: &mut Vec<Value>, pieces: Vec<Value>) {
    for piece in pieces {
        let index = piece.get("index").cloned();
        let at = gathered
            .iter()
            .position(|c| c.get("index").cloned() == index);
        match (at.and_then(|at| gathered.get_mut(at)), piece) {
            (Some(Value::Object(call)), Value::Object(piece)) => join_fields(call, piece),
            (_, piece) => gathered.push(piece),
        }
    }
}

fn join_fields(into: &mut Map<String, Value>, piece: Map<String, Value>) {
    for (key, value) in piece {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(inner)), Value::Object(more)) => join_fields(inner, more),
            (Some(Value::String(text)), Value::String(more)) if key == "arguments" => {
                text.push_str(&more);
            }
            (Some(existing), _) if !is_empty(existing) => {}
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn approximate_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(approximate_size).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + approximate_size(v)).sum(),
        _ => 8,
    }
}

/// OpenRouter's mid-stream error event (`{"error": {"code", "message", "metadata"}}`)
/// as the error object of `docs/errors.md`.
fn upstream_error(error: &Value) -> Value {
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| (400..600).contains(c))
        .unwrap_or(502);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("OpenRouter failed mid-stream");
    let mut details = json!({"status": code, "message": message});
    if let Some(metadata) = error.get("metadata").filter(|m| !m.is_null()) {
        details["metadata"] = metadata.clone();
    }
    json!({"code": 502, "message": "OpenRouter failed while answering", "type": "openrouter",
           "details": details})
}

/// A whole (non-streamed) completion as the one final message: the first choice's
/// message fields (`content`, `tool_calls`, `reasoning`, `images`, ...), `model`,
/// `created`, `finish_reason` and `usage`.
pub fn complete(id: &str, body: &[u8]) -> Option<String> {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body.trim_ascii()) else {
        return None;
    };
    let choice = answer
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .cloned()
        .unwrap_or(Value::Null);
    let mut data = match choice.get("message") {
        Some(Value::Object(message)) => message.clone(),
        _ => Map::new(),
    };
    data.remove("role");
    if data.get("content").is_none_or(Value::is_null) {
        data.insert("content".into(), json!(""));
    }
    for field in ["model", "created", "usage"] {
        data.insert(
            field.into(),
            answer.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    data.insert(
        "finish_reason".into(),
        choice.get("finish_reason").cloned().unwrap_or(Value::Null),
    );
    Some(inference_response(id, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_of(message: &str) -> Value {
        let message: Value = serde_json::from_str(message).unwrap();
        assert_eq!(message["type"], "inference_response");
        message["data"].clone()
    }

    fn chunk(delta: Value) -> Vec<u8> {
        json!({"id": "gen-1", "model": "openai/gpt-4o", "created": 7, "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_first_delta_goes_at_once_later_ones_are_gathered() {
        let mut answer = StreamAnswer::new("r");
        assert_eq!(
            answer.push(&chunk(json!({"role": "assistant", "content": ""})), 100),
            Next::Wait
        );
        assert_eq!(
            answer.push(&chunk(json!({"role": "assistant", "content": "Peb"})), 100),
            Next::Flush
        );
        assert_eq!(data_of(&answer.flush().unwrap())["content"], "Peb");
        assert_eq!(
            answer.push(&chunk(json!({"content": "bles"})), 100),
            Next::Wait
        );
        assert_eq!(
            answer.push(&chunk(json!({"content": " and"})), 100),
            Next::Wait
        );
        let data = data_of(&answer.flush().unwrap());
        assert_eq!(data["content"], "bles and");
        assert_eq!(data["model"], "openai/gpt-4o");
        assert!(data.get("finish_reason").is_none());
        assert!(answer.flush().is_none());
        // Enough bytes flush at once.
        assert_eq!(
            answer.push(&chunk(json!({"content": "x".repeat(100)})), 100),
            Next::Flush
        );
    }

    #[test]
    fn the_final_message_carries_finish_reason_and_usage() {
        let mut answer = StreamAnswer::new("r");
        answer.push(&chunk(json!({"content": "Hi"})), 100);
        answer.flush();
        let finish = json!({"id": "gen-1", "model": "m", "created": 7,
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]});
        answer.push(finish.to_string().as_bytes(), 100);
        let usage =
            json!({"id": "gen-1", "choices": [], "usage": {"total_tokens": 23, "cost": 0.0001}});
        answer.push(usage.to_string().as_bytes(), 100);
        assert_eq!(answer.push(b"[DONE]", 100), Next::Done);
        let data = data_of(&answer.finish());
        assert_eq!(data["finish_reason"], "stop");
        assert_eq!(data["usage"]["total_tokens"], 23);
        assert_eq!(data["content"], "");
    }

    #[test]
    fn tool_call_fragments_join_by_index() {
        let mut answer = StreamAnswer::new("r");
        answer.sent = true;
        answer.push(&chunk(json!({"content": null, "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "llm_version", "arguments": ""}}]})), 1 << 20);
        answer.push(
            &chunk(json!({"tool_calls": [{"index": 0, "type": "function",
            "function": {"arguments": "{\"a\":"}}]})),
            1 << 20,
        );
        answer.push(
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}},
            {"index": 1, "id": "call_2", "function": {"name": "f", "arguments": "{}"}}]}),
            ),
            1 << 20,
        );
        let data = data_of(&answer.flush().unwrap());
        assert_eq!(
            data["tool_calls"],
            json!([{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "llm_version", "arguments": "{\"a\":1}"}},
                   {"index": 1, "id": "call_2", "function": {"name": "f", "arguments": "{}"}}])
        );
    }

    #[test]
    fn an_upstream_error_event_ends_the_request_with_an_error() {
        let mut answer = StreamAnswer::new("r");
        let event = json!({"id": "g", "error": {"code": 502, "message": "Provider disconnected",
                                               "metadata": {"provider_name": "OpenAI"}},
                           "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]});
        let Next::Failed(error) = answer.push(event.to_string().as_bytes(), 100) else {
            panic!("an error event fails the request");
        };
        assert_eq!(error["type"], "openrouter");
        assert_eq!(error["details"]["message"], "Provider disconnected");
        assert_eq!(error["details"]["metadata"]["provider_name"], "OpenAI");
    }

    #[test]
    fn a_completion_is_one_message() {
        let body = br#"   
{"id":"gen-1","model":"openai/gpt-4o","created":9,"object":"chat.completion",
 "choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello!","refusal":null}}],
 "usage":{"total_tokens":12}}"#;
        let data = data_of(&complete("r", body).unwrap());
        assert_eq!(data["content"], "Hello!");
        assert_eq!(data["finish_reason"], "stop");
        assert_eq!(data["usage"]["total_tokens"], 12);
        assert_eq!(data["model"], "openai/gpt-4o");
        assert!(data.get("role").is_none());
    }
}
