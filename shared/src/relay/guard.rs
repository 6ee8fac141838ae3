//! The spend guard (`docs/http-api.md`, "Spend guard") and the few edits the proxy
//! makes to a caller's body: a request validated, checked against the model lists and
//! the `max_tokens` cap, and given `"stream":true` or the cap where it must have them.
//! Every other byte goes upstream as the caller wrote it.

use bytes::{Bytes, BytesMut};

use super::Call;
use super::operation::{Answering, Operation, Output};
use crate::catalog::base_id;
use crate::config::{GuardConfig, ModelPattern};
use crate::error::{ApiError, quote};
use crate::validation::{Request, Span, validate};

/// Validates a JSON body for `op` and prepares it.
pub fn prepare(raw: Bytes, op: &'static Operation, guard: &GuardConfig) -> Result<Call, ApiError> {
    let request = validate(&raw, op.body, op.output.fields())?;
    prepare_request(raw, request, op, guard, &Extras::default())
}

/// What the relay adds to a request besides the spend guard's edits.
#[derive(Debug, Default)]
pub struct Extras {
    /// The `Content-Type` of a form body (validated by `validate_form`); `None` for
    /// JSON, which may be edited.
    pub form: Option<http::HeaderValue>,
    /// The `user` OpenRouter's response cache is scoped by (`docs/http-api.md`,
    /// "Response caching"): set when this request may be answered from the cache.
    pub cache_user: Option<String>,
}

/// Prepares `raw`, validated as `request`, for `op` under the spend guard.
pub fn prepare_request(
    raw: Bytes,
    request: Request,
    op: &'static Operation,
    guard: &GuardConfig,
    extras: &Extras,
) -> Result<Call, ApiError> {
    let caps = op.output.fields();
    if request.model.is_none() && !op.fallbacks {
        return Err(ApiError::validation(
            "model",
            "Model is required (this operation takes no models list)",
        ));
    }
    let stream = match (op.answering, request.stream) {
        (Answering::Json, Some(true)) => {
            return Err(ApiError::validation(
                "stream",
                "This endpoint answers with one JSON body; for Server-Sent Events use POST /api/v1/inference/stream \
                 (or POST /api/v1/chat/completions with \"stream\": true)",
            ));
        }
        (Answering::Sse, Some(false)) => {
            return Err(ApiError::validation(
                "stream",
                "This endpoint answers with Server-Sent Events; leave stream out or set it true, \
                 or use POST /api/v1/inference for one JSON answer",
            ));
        }
        (Answering::Sse, _) => true,
        (Answering::Json | Answering::AsAsked, asked) => asked == Some(true),
        // Bytes are relayed as they come whatever the body says.
        (Answering::Bytes, _) => false,
    };

    let web_search = request.web_search;
    if let Some(model) = &request.model {
        check_model("model", model, guard, web_search)?;
    }
    for (i, fallback) in request.fallbacks.iter().enumerate() {
        check_model(&format!("models[{i}]"), fallback, guard, web_search)?;
    }
    if request.preset && !guard.names_exactly("@preset") {
        return Err(ApiError::validation(
            "preset",
            "Presets are not available on this proxy: a preset's settings (its model, its \
             limits) are stored at OpenRouter, where the proxy cannot check them",
        ));
    }
    let choices = request.choices.unwrap_or(1);
    if choices > guard.max_choices {
        return Err(ApiError::validation(
            "n",
            format!(
                "n may be at most {} on this proxy (each is a generation of its own)",
                guard.max_choices
            ),
        ));
    }
    for (field, asked) in &request.output_tokens {
        if *asked > guard.max_tokens_cap {
            return Err(ApiError::validation(
                *field,
                format!(
                    "{field} may be at most {} on this proxy",
                    guard.max_tokens_cap
                ),
            ));
        }
    }
    // Given several, OpenRouter may honour any: the largest bounds the answer.
    let asked = request.output_tokens.iter().map(|(_, n)| *n).max();
    // The answer's tokens include its reasoning: a cap at or below the reasoning
    // budget breaks the request upstream, so it never goes there.
    if let Some(reasoning) = request.reasoning_max_tokens {
        let (limit, which) = match asked {
            Some(asked) => (asked, "max_tokens"),
            None => (guard.max_tokens_cap, "this proxy's max_tokens cap"),
        };
        if reasoning >= limit {
            return Err(ApiError::validation(
                "reasoning.max_tokens",
                format!(
                    "reasoning.max_tokens ({reasoning}) must be below {which} ({limit}): \
                     the answer's tokens include its reasoning"
                ),
            ));
        }
    }

    let mut edits = Edits::default();
    if stream && request.stream.is_none() {
        match request.stream_at {
            // `"stream": null` becomes `true`: adding a second `stream` key would be
            // read last-wins upstream.
            Some(at) => edits.replace(at, "true".into()),
            None => edits.insert("\"stream\":true,".into()),
        }
    }
    let inserted = caps.first().filter(|_| asked.is_none());
    if let Some(field) = inserted {
        let cap = guard.max_tokens_cap.to_string();
        match request.output_null_at {
            Some(at) => edits.replace(at, cap),
            None => edits.insert(format!("\"{field}\":{cap},")),
        }
    }
    let max_output = match op.output {
        Output::Capped(_) | Output::Uncapped => asked.unwrap_or(guard.max_tokens_cap),
        Output::InputOnly => 0,
    }
    .saturating_mul(choices);
    if let Some(scope) = extras.cache_user.as_deref().filter(|_| op.cacheable) {
        match &request.user {
            // The caller's own `user` still separates its end users, inside its scope.
            Some((at, theirs)) => {
                let user = theirs
                    .as_deref()
                    .map_or_else(|| scope.to_owned(), |t| format!("{scope}:{t}"));
                edits.replace(*at, json_string(&user));
            }
            None => edits.insert(format!("\"user\":{},", json_string(scope))),
        }
    }
    // A form is forwarded as it came: there is nothing in it to edit.
    let body = if extras.form.is_some() {
        raw
    } else {
        edits.apply(raw)
    };
    let input_tokens = super::price::input_tokens(body.len(), op.input_kind);
    if input_tokens > guard.max_input_tokens {
        return Err(ApiError::validation(
            op.input,
            format!(
                "This request carries about {input_tokens} tokens of input; at most {} are \
                 accepted on this proxy (estimated from the body's size)",
                guard.max_input_tokens
            ),
        ));
    }
    // The field to lower when the request would cost too much: the one given (the
    // larger, if several), else the one the proxy set.
    let output_field = request
        .output_tokens
        .iter()
        .max_by_key(|(_, n)| *n)
        .map(|(field, _)| *field)
        .or(caps.first().copied())
        .unwrap_or(op.input);
    Ok(Call {
        op,
        body,
        // Validation saw a model or a non-empty fallback list.
        model: request
            .model
            .or_else(|| request.fallbacks.first().cloned())
            .unwrap_or_default(),
        fallbacks: request.fallbacks,
        stream,
        max_output,
        output_field,
        input_tokens,
        form: extras.form.clone(),
    })
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A model must be on `MODEL_ALLOWLIST` (when there is one) and not on
/// `MODEL_DENYLIST`. A pattern that names no variant (`:nitro`, `:online`, ...) or
/// `~` alias matches the model whatever its variant; one that does matches only that
/// variant, and `:online` also matches a request asking for web search by its fields.
/// Routers (`openrouter/...`) and presets (`@preset/...`) pick a model the proxy cannot
/// see, so they need an allowlist entry naming them exactly.
fn check_model(
    field: &str,
    model: &str,
    guard: &GuardConfig,
    web_search: Option<&'static str>,
) -> Result<(), ApiError> {
    let full = model.to_ascii_lowercase();
    let base = base_id(&full);
    let online = web_search.map(|_| format!("{base}:online"));
    let matches = |pattern: &ModelPattern| {
        if pattern.names_variant() {
            pattern.matches(&full) || online.as_deref().is_some_and(|o| pattern.matches(o))
        } else {
            pattern.matches(base)
        }
    };
    let refuse = |why: &str| {
        Err(ApiError::validation(
            field,
            format!(
                "The model {:?}{why} is not available on this proxy",
                quote(model)
            ),
        ))
    };
    if (base.starts_with("openrouter/") || base.starts_with('@'))
        && !guard.names_exactly(&full)
        && !guard.names_exactly(base)
    {
        return refuse(" (a router or preset, which picks a model the proxy cannot check)");
    }
    let allowed = guard.model_allowlist.is_empty() || guard.model_allowlist.iter().any(matches);
    if !allowed {
        return refuse("");
    }
    let denied = guard.model_denylist.iter().find(|p| matches(p));
    match (denied, web_search) {
        (None, _) => Ok(()),
        (Some(pattern), Some(asks)) if !pattern.matches(&full) && !pattern.matches(base) => {
            Err(ApiError::validation(
                asks,
                format!(
                    "Web search ({asks}) with {:?} is not available on this proxy",
                    quote(model)
                ),
            ))
        }
        (Some(_), _) => refuse(""),
    }
}

/// Changes to the caller's bytes: text inserted after the opening brace, and values
/// replaced in place.
#[derive(Default)]
struct Edits {
    insert: String,
    replace: Vec<(Span, String)>,
}

impl Edits {
    fn insert(&mut self, text: String) {
        self.insert.push_str(&text);
    }

    fn replace(&mut self, at: Span, text: String) {
        self.replace.push((at, text));
    }

    fn apply(mut self, raw: Bytes) -> Bytes {
        if self.insert.is_empty() && self.replace.is_empty() {
            return raw;
        }
        self.replace.sort_by_key(|(at, _)| at.start);
        let brace = raw.iter().position(|b| *b == b'{').unwrap_or(0);
        let mut out = BytesMut::with_capacity(raw.len() + self.insert.len() + 16);
        out.extend_from_slice(&raw[..=brace]);
        out.extend_from_slice(self.insert.as_bytes());
        let mut from = brace + 1;
        for (at, text) in &self.replace {
            if at.start < from || at.start + at.len > raw.len() {
                continue;
            }
            out.extend_from_slice(&raw[from..at.start]);
            out.extend_from_slice(text.as_bytes());
            from = at.start + at.len;
        }
        out.extend_from_slice(&raw[from..]);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn guard(vars: &[(&str, &str)]) -> GuardConfig {
        Config::from_pairs(vars).unwrap().guard
    }

    const CHAT: &str = r#"  { "model" : "m", "messages":[{"role":"user","content":"hi"}] }"#;

    /// The chat route that answers as `answering`.
    fn chat(answering: Answering) -> &'static Operation {
        crate::relay::operation::OPERATIONS
            .iter()
            .find(|op| op.name == "chat" && op.answering == answering)
            .unwrap()
    }

    fn prepared(raw: &str, answering: Answering) -> Result<Call, ApiError> {
        prepare(
            Bytes::copy_from_slice(raw.as_bytes()),
            chat(answering),
            &guard(&[]),
        )
    }

    #[test]
    fn stream_and_the_cap_are_added_without_touching_the_rest() {
        let call = prepared(CHAT, Answering::Sse).unwrap();
        assert!(call.stream);
        assert_eq!(
            &call.body[..],
            br#"  {"stream":true,"max_tokens":4096, "model" : "m", "messages":[{"role":"user","content":"hi"}] }"#
        );
        let call = prepared(
            r#"{"model":"m","stream":null,"max_tokens":null,"messages":[{"role":"user","content":"x"}]}"#,
            Answering::Sse,
        )
        .unwrap();
        assert_eq!(
            &call.body[..],
            br#"{"model":"m","stream":true,"max_tokens":4096,"messages":[{"role":"user","content":"x"}]}"#
        );
    }

    #[test]
    fn each_route_answers_as_documented() {
        let body = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let json = prepared(body, Answering::Json).unwrap();
        assert!(!json.stream);
        assert_eq!(&json.body[..], body.as_bytes(), "nothing to add");
        assert!(!prepared(body, Answering::AsAsked).unwrap().stream);

        let streamed = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        assert!(prepared(streamed, Answering::AsAsked).unwrap().stream);
        assert_eq!(
            &prepared(streamed, Answering::Sse).unwrap().body[..],
            streamed.as_bytes()
        );
        assert!(prepared(streamed, Answering::Json).is_err());
        let not_streamed =
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#;
        assert!(prepared(not_streamed, Answering::Sse).is_err());
    }

    #[test]
    fn the_cap_and_the_model_lists_hold() {
        let g = guard(&[
            ("MAX_TOKENS_CAP", "100"),
            ("MODEL_DENYLIST", "*:online"),
            ("MODEL_ALLOWLIST", "openai/*,anthropic/*"),
        ]);
        let field = |raw: &str| match prepare(
            Bytes::copy_from_slice(raw.as_bytes()),
            chat(Answering::Json),
            &g,
        ) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let m = r#""messages":[{"role":"user","content":"x"}]"#;
        assert_eq!(
            field(&format!(
                r#"{{"model":"openai/gpt-4o","max_tokens":101,{m}}}"#
            )),
            "max_tokens"
        );
        assert_eq!(
            field(&format!(
                r#"{{"model":"openai/gpt-4o","max_completion_tokens":101,{m}}}"#
            )),
            "max_completion_tokens"
        );
        assert_eq!(
            field(&format!(r#"{{"model":"google/gemini",{m}}}"#)),
            "model"
        );
        assert_eq!(
            field(&format!(r#"{{"model":"openai/gpt-4o:online",{m}}}"#)),
            "model"
        );
        assert_eq!(
            field(&format!(
                r#"{{"model":"openai/gpt-4o","models":["anthropic/x","meta/y"],{m}}}"#
            )),
            "models[1]"
        );
        assert!(
            prepare(
                Bytes::from(format!(
                    r#"{{"model":"openai/gpt-4o","max_tokens":100,{m}}}"#
                )),
                chat(Answering::Json),
                &g
            )
            .is_ok()
        );
    }
}
