//! The demo answer: the model the caller asked for replies about the prompt (it says
//! back the last user message), in the exact shapes of OpenRouter's captured answers,
//! streamed or not, with usage and a cost, so the README's examples show a coherent
//! exchange without a key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};

/// Prices per token, as OpenRouter lists `openai/gpt-4o`'s.
const PROMPT_PRICE: f64 = 0.000_002_5;
const COMPLETION_PRICE: f64 = 0.000_01;

pub struct Echo {
    /// Whether usage reports a cost, as OpenRouter's does today.
    pub with_cost: bool,
    id: String,
    model: String,
    created: u64,
    words: Vec<String>,
    finish_reason: &'static str,
    prompt_tokens: u64,
}

impl Echo {
    pub fn new(request: &Value) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let prompt = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .unwrap_or_default();
        let reply = if prompt.trim().is_empty() {
            "You said nothing I could read.".to_owned()
        } else {
            format!("You said: {}", prompt.trim())
        };
        let mut words: Vec<String> = reply.split_whitespace().map(str::to_owned).collect();
        let limit = request["max_tokens"]
            .as_u64()
            .or_else(|| request["max_completion_tokens"].as_u64())
            .and_then(|n| usize::try_from(n).ok());
        let finish_reason = match limit {
            Some(limit) if limit < words.len() => {
                words.truncate(limit);
                "length"
            }
            _ => "stop",
        };
        let prompt_tokens = messages
            .iter()
            .map(|m| text_of(&m["content"]).split_whitespace().count() as u64 + 4)
            .sum();
        Self {
            with_cost: true,
            id: format!(
                "gen-{created}-mockecho{:06}",
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            model: request["model"].as_str().unwrap_or("mock/echo").to_owned(),
            created,
            words,
            finish_reason,
            prompt_tokens,
        }
    }

    /// Answers as a dated version of the model asked for.
    pub fn dated(&mut self) {
        self.model.push_str("-2025-03-19");
    }

    pub fn generation_id(&self) -> &str {
        &self.id
    }

    /// The non-streamed answer, after one line of the whitespace OpenRouter sends
    /// while a model works.
    pub fn completion(&self) -> Bytes {
        let answer = json!({
            "id": self.id, "provider": "Mock", "model": self.model,
            "object": "chat.completion", "created": self.created,
            "choices": [{"logprobs": null, "finish_reason": self.finish_reason,
                         "native_finish_reason": self.finish_reason, "index": 0,
                         "message": {"role": "assistant", "content": self.words.join(" "),
                                     "refusal": null, "reasoning": null}}],
            "usage": self.usage(),
        });
        Bytes::from(format!("         \n{answer}"))
    }

    /// The streamed answer as SSE events: a processing comment, a role chunk, one
    /// chunk per word, the finish chunk, the usage chunk, `[DONE]`.
    pub fn events(&self) -> Vec<Bytes> {
        let chunk = |delta: Value, finish: Option<&str>, usage: Option<Value>| {
            let mut chunk = json!({
                "id": self.id, "provider": "Mock", "model": self.model,
                "object": "chat.completion.chunk", "created": self.created,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                             "native_finish_reason": finish, "logprobs": null}],
            });
            if let Some(usage) = usage {
                chunk["usage"] = usage;
            }
            Bytes::from(format!("data: {chunk}\n\n"))
        };
        let mut events = vec![
            Bytes::from_static(b": OPENROUTER PROCESSING\n\n"),
            chunk(json!({"role": "assistant", "content": ""}), None, None),
        ];
        for (i, word) in self.words.iter().enumerate() {
            let text = if i == 0 {
                word.clone()
            } else {
                format!(" {word}")
            };
            events.push(chunk(
                json!({"role": "assistant", "content": text}),
                None,
                None,
            ));
        }
        events.push(chunk(
            json!({"role": "assistant", "content": ""}),
            Some(self.finish_reason),
            None,
        ));
        events.push(chunk(
            json!({"role": "assistant", "content": ""}),
            None,
            Some(self.usage()),
        ));
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    fn usage(&self) -> Value {
        let completion_tokens = self.words.len() as u64;
        let cost =
            self.prompt_tokens as f64 * PROMPT_PRICE + completion_tokens as f64 * COMPLETION_PRICE;
        let mut usage = json!({
            "prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
            "cost": (cost * 1e9).round() / 1e9, "is_byok": false,
            "prompt_tokens_details": {"cached_tokens": 0},
            "cost_details": {"upstream_inference_cost": null},
            "completion_tokens_details": {"reasoning_tokens": 0},
        });
        if !self.with_cost
            && let Some(usage) = usage.as_object_mut()
        {
            usage.remove("cost");
            usage.remove("cost_details");
        }
        usage
    }
}

/// A message's text: the string, or its text parts joined.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_is_about_the_prompt_and_from_the_asked_model() {
        let request = json!({"model": "anthropic/claude-sonnet-4",
                             "messages": [{"role": "user", "content": "Hello, world!"}]});
        let echo = Echo::new(&request);
        let answer: Value = serde_json::from_slice(echo.completion().trim_ascii()).unwrap();
        assert_eq!(answer["model"], "anthropic/claude-sonnet-4");
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            "You said: Hello, world!"
        );
        let streamed: String = echo
            .events()
            .iter()
            .filter_map(|e| e.strip_prefix(b"data: "))
            .filter_map(|d| serde_json::from_slice::<Value>(d).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(streamed, "You said: Hello, world!");
    }

    #[test]
    fn max_tokens_cuts_the_reply() {
        let request = json!({"model": "m", "max_tokens": 2,
                             "messages": [{"role": "user", "content": "one two three"}]});
        let answer: Value =
            serde_json::from_slice(Echo::new(&request).completion().trim_ascii()).unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "You said:");
        assert_eq!(answer["choices"][0]["finish_reason"], "length");
        assert_eq!(answer["usage"]["completion_tokens"], 2);
    }
}
