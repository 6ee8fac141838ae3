//! Chat request validation (`docs/http-api.md`, "Chat requests").
//!
//! The proxy checks only what it must understand and what would waste an upstream
//! call; every other field is OpenRouter's business and passes through untouched
//! (the caller's bytes are forwarded, not a re-serialisation of this view).

use serde_json::Value;

use crate::error::ApiError;

const ROLES: [&str; 5] = ["system", "user", "assistant", "tool", "developer"];

/// What the proxy learned from a valid chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    /// `Some(true)` asks for SSE, `Some(false)` or `None` for one JSON answer.
    pub stream: Option<bool>,
}

/// Validates a parsed chat-completions body.
pub fn validate_chat_request(body: &Value) -> Result<ChatRequest, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::validation(
            "body",
            "The request body must be a JSON object",
        ));
    };

    let model = match object.get("model") {
        None | Some(Value::Null) => return Err(ApiError::validation("model", "Model is required")),
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(_) => {
            return Err(ApiError::validation(
                "model",
                "Model must be a non-empty string such as openai/gpt-4o",
            ));
        }
    };

    match object.get("messages") {
        None | Some(Value::Null) => {
            return Err(ApiError::validation("messages", "Messages are required"));
        }
        Some(Value::Array(messages)) if messages.is_empty() => {
            return Err(ApiError::validation(
                "messages",
                "Messages must contain at least one message",
            ));
        }
        Some(Value::Array(messages)) => {
            for (i, message) in messages.iter().enumerate() {
                validate_message(i, message)?;
            }
        }
        Some(_) => {
            return Err(ApiError::validation(
                "messages",
                "Messages must be an array",
            ));
        }
    }

    check_range(object.get("temperature"), "temperature", 0.0, 2.0)?;
    check_range(object.get("top_p"), "top_p", 0.0, 1.0)?;
    check_range(
        object.get("frequency_penalty"),
        "frequency_penalty",
        -2.0,
        2.0,
    )?;
    check_range(
        object.get("presence_penalty"),
        "presence_penalty",
        -2.0,
        2.0,
    )?;
    check_range(
        object.get("repetition_penalty"),
        "repetition_penalty",
        0.0,
        2.0,
    )?;
    check_positive_integer(object.get("max_tokens"), "max_tokens")?;
    check_positive_integer(object.get("max_completion_tokens"), "max_completion_tokens")?;

    let stream = match object.get("stream") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::validation(
                "stream",
                "stream must be true or false",
            ));
        }
    };

    Ok(ChatRequest { model, stream })
}

fn validate_message(i: usize, message: &Value) -> Result<(), ApiError> {
    let Some(message) = message.as_object() else {
        return Err(ApiError::validation(
            format!("messages[{i}]"),
            "Each message must be an object",
        ));
    };
    match message.get("role") {
        Some(Value::String(role)) if ROLES.contains(&role.as_str()) => {}
        Some(Value::String(role)) => {
            return Err(ApiError::validation(
                format!("messages[{i}].role"),
                format!(
                    "Unknown role {role:?}: expected one of {}",
                    ROLES.join(", ")
                ),
            ));
        }
        _ => {
            return Err(ApiError::validation(
                format!("messages[{i}].role"),
                format!("Role is required: one of {}", ROLES.join(", ")),
            ));
        }
    }
    match message.get("content") {
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                if !part.get("type").is_some_and(Value::is_string) {
                    return Err(ApiError::validation(
                        format!("messages[{i}].content[{j}]"),
                        "Each content part must be an object with a string type (text, image_url, input_audio, file, ...)",
                    ));
                }
            }
            Ok(())
        }
        // An assistant turn that only called tools carries no content.
        None | Some(Value::Null)
            if message.contains_key("tool_calls")
                || message.get("role") == Some(&Value::from("assistant")) =>
        {
            Ok(())
        }
        _ => Err(ApiError::validation(
            format!("messages[{i}].content"),
            "Content must be a string or an array of content parts",
        )),
    }
}

fn check_range(value: Option<&Value>, field: &str, min: f64, max: f64) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|x| (min..=max).contains(&x)) => Ok(()),
        Some(_) => Err(ApiError::validation(
            field,
            format!("{field} must be a number between {min} and {max}"),
        )),
    }
}

fn check_positive_integer(value: Option<&Value>, field: &str) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|x| x >= 1) => Ok(()),
        Some(_) => Err(ApiError::validation(
            field,
            format!("{field} must be a whole number of at least 1"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(body: Value) -> String {
        match validate_chat_request(&body) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn ok(extra: Value) -> Value {
        let mut body =
            json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    #[test]
    fn the_documented_example_is_valid() {
        let body = json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hello, world!"}],
                          "temperature": 0.7, "max_tokens": 100, "stream": false});
        assert_eq!(
            validate_chat_request(&body).unwrap(),
            ChatRequest {
                model: "openai/gpt-4o".into(),
                stream: Some(false)
            }
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(field_of(json!([])), "body");
        assert_eq!(
            field_of(json!({"messages": [{"role": "user", "content": "x"}]})),
            "model"
        );
        assert_eq!(field_of(ok(json!({"model": ""}))), "model");
        assert_eq!(field_of(ok(json!({"model": 5}))), "model");
        assert_eq!(field_of(json!({"model": "m"})), "messages");
        assert_eq!(field_of(ok(json!({"messages": []}))), "messages");
        assert_eq!(field_of(ok(json!({"messages": "hi"}))), "messages");
        assert_eq!(field_of(ok(json!({"messages": ["hi"]}))), "messages[0]");
        assert_eq!(
            field_of(ok(
                json!({"messages": [{"role": "wizard", "content": "x"}]})
            )),
            "messages[0].role"
        );
        assert_eq!(
            field_of(ok(json!({"messages": [{"content": "x"}]}))),
            "messages[0].role"
        );
        assert_eq!(
            field_of(ok(json!({"messages": [{"role": "user", "content": 5}]}))),
            "messages[0].content"
        );
        assert_eq!(
            field_of(ok(json!({"messages": [{"role": "user"}]}))),
            "messages[0].content"
        );
        assert_eq!(
            field_of(ok(
                json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]})
            )),
            "messages[0].content[0]"
        );
        assert_eq!(field_of(ok(json!({"temperature": 3}))), "temperature");
        assert_eq!(field_of(ok(json!({"temperature": "hot"}))), "temperature");
        assert_eq!(field_of(ok(json!({"top_p": 1.5}))), "top_p");
        assert_eq!(field_of(ok(json!({"max_tokens": 0}))), "max_tokens");
        assert_eq!(field_of(ok(json!({"max_tokens": 1.5}))), "max_tokens");
        assert_eq!(field_of(ok(json!({"stream": "yes"}))), "stream");
    }

    #[test]
    fn rich_requests_pass() {
        let body = ok(json!({
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "tools": [], "provider": {"order": ["openai"]}, "temperature": 0, "top_p": 1,
            "max_tokens": 1, "future_field": {"x": 1}
        }));
        assert!(validate_chat_request(&body).is_ok());
    }
}
