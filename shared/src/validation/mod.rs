//! Request validation for every inference operation (`docs/http-api.md`, "Chat
//! requests" and "Inference operations"): the fields the spend guard reads, for all;
//! OpenRouter's chat body in depth (`messages`), for chat.
//!
//! The proxy checks only what it must understand and what would waste an upstream
//! call; every other field is OpenRouter's business and passes through untouched (the
//! caller's bytes are forwarded, not a re-serialisation of this view).
//!
//! The body is read once, as borrowed slices of the caller's bytes: the top level key
//! by key (a key given twice is refused, since what the proxy validates must be what
//! OpenRouter reads), the fields the proxy cares about as raw JSON, checked one by
//! one, and `messages` element by element. No tree of the body is built, so a request
//! costs memory in proportion to what it checks, not to the body.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{ApiError, quote};
use crate::relay::operation::BodyRules;

mod form;
mod messages;
pub use form::validate_form;
use messages::check_messages;

/// What the proxy learned from a valid request of an inference operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// `None` when the request names only a `models` list (its first entry answers
    /// first).
    pub model: Option<String>,
    /// `Some(true)` asks for SSE, `Some(false)` or `None` for one JSON answer.
    pub stream: Option<bool>,
    /// Where `stream`'s value sits in the body, when the key is there.
    pub stream_at: Option<Span>,
    /// The output-token fields given (`max_tokens`, ...), with their values.
    pub output_tokens: Vec<(&'static str, u64)>,
    /// Where the operation's first output-token field sits when given as `null` (the
    /// caller named the field but set no cap).
    pub output_null_at: Option<Span>,
    /// The `models` fallback list.
    pub fallbacks: Vec<String>,
    /// `reasoning.max_tokens`: the reasoning budget, which `max_tokens` must exceed.
    pub reasoning_max_tokens: Option<u64>,
    /// `n`: how many choices (or images) to generate.
    pub choices: Option<u64>,
    /// The field that asks for web search (`plugins` with the `web` plugin, or
    /// `web_search_options`), which OpenRouter bills as the `:online` variant does.
    pub web_search: Option<&'static str>,
    /// Whether the request names a preset (a `preset` field), whose settings the proxy
    /// cannot see.
    pub preset: bool,
    /// `user`, the caller's name for its end user, and where its value sits.
    pub user: Option<(Span, Option<String>)>,
}

/// A value's place in the body: bytes `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

/// The raw fields of the top level the proxy reads.
#[derive(Default)]
struct TopLevel<'a> {
    model: Option<&'a RawValue>,
    messages: Option<&'a RawValue>,
    stream: Option<&'a RawValue>,
    models: Option<&'a RawValue>,
    n: Option<&'a RawValue>,
    plugins: Option<&'a RawValue>,
    web_search_options: Option<&'a RawValue>,
    preset: Option<&'a RawValue>,
    reasoning: Option<&'a RawValue>,
    user: Option<&'a RawValue>,
    ranges: Vec<(&'static str, &'a RawValue)>,
    /// The operation's output-token fields and its required fields, as given.
    named: Vec<(&'static str, &'a RawValue)>,
}

/// Numeric fields and their allowed ranges.
const RANGES: [(&str, f64, f64); 5] = [
    ("temperature", 0.0, 2.0),
    ("top_p", 0.0, 1.0),
    ("frequency_penalty", -2.0, 2.0),
    ("presence_penalty", -2.0, 2.0),
    ("repetition_penalty", 0.0, 2.0),
];

/// Carries a validation problem out of a serde visitor, which can only say "error".
pub(crate) type Problem = Option<ApiError>;

struct TopVisitor<'p> {
    problem: &'p mut Problem,
    /// Fields of the operation's own to keep (output-token and required fields).
    named: &'p [&'static str],
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut top = TopLevel::default();
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if seen.contains(&key) {
                *self.problem = Some(ApiError::validation(
                    quote(&key).into_owned(),
                    "This key is given twice; give each key once",
                ));
                return Err(de::Error::custom("duplicate key"));
            }
            let slot = match key.as_ref() {
                "model" => Some(&mut top.model),
                "messages" => Some(&mut top.messages),
                "stream" => Some(&mut top.stream),
                "models" => Some(&mut top.models),
                "n" => Some(&mut top.n),
                "plugins" => Some(&mut top.plugins),
                "web_search_options" => Some(&mut top.web_search_options),
                "preset" => Some(&mut top.preset),
                "reasoning" => Some(&mut top.reasoning),
                "user" => Some(&mut top.user),
                _ => None,
            };
            // The operation's own fields first: `messages` is a required field of
            // Messages, checked in depth only for chat.
            if let Some(name) = self.named.iter().find(|name| **name == key) {
                top.named.push((name, map.next_value::<&'de RawValue>()?));
            } else if let Some(slot) = slot {
                *slot = Some(map.next_value::<&'de RawValue>()?);
            } else if let Some((name, ..)) = RANGES.iter().find(|(name, ..)| *name == key) {
                top.ranges.push((name, map.next_value::<&'de RawValue>()?));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            seen.insert(key);
        }
        Ok(top)
    }
}

/// How deep arrays and objects may nest: as deep as serde_json itself reads, so that
/// what passes here is what a JSON reader upstream can read too.
const MAX_DEPTH: usize = 128;

/// The output-token fields of OpenRouter's chat body.
pub const CHAT_OUTPUT_TOKENS: &[&str] = &["max_tokens", "max_completion_tokens"];

/// Validates a chat-completions body, given as the caller's bytes.
pub fn validate_chat_request(body: &[u8]) -> Result<Request, ApiError> {
    validate(body, BodyRules::Chat, CHAT_OUTPUT_TOKENS)
}

/// Validates the body of an inference operation that follows `rules` and caps its
/// answer with `output_tokens`, given as the caller's bytes.
pub fn validate(
    body: &[u8],
    rules: BodyRules,
    output_tokens: &'static [&'static str],
) -> Result<Request, ApiError> {
    let required: &[&'static str] = match rules {
        BodyRules::Chat => &[],
        BodyRules::Requires(fields) => fields,
    };
    let named: Vec<&'static str> = output_tokens.iter().chain(required).copied().collect();
    if too_deep(body) {
        return Err(ApiError::validation(
            "body",
            format!("The request body nests arrays and objects more than {MAX_DEPTH} deep"),
        ));
    }
    let mut problem = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let top = deserializer
        .deserialize_map(TopVisitor {
            problem: &mut problem,
            named: &named,
        })
        .and_then(|top| deserializer.end().map(|()| top));
    let top = match top {
        Ok(top) => top,
        Err(error) => return Err(problem.unwrap_or_else(|| json_error(&error))),
    };

    let fallbacks = match top.models.map(RawValue::get) {
        None | Some("null") => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<String>>(raw)
            .map_err(|_| ApiError::validation("models", "models must be a list of model ids"))?
            .into_iter()
            .enumerate()
            .map(|(i, id)| check_model_id(&format!("models[{i}]"), Cow::Owned(id)))
            .collect::<Result<_, _>>()?,
    };
    // OpenRouter takes a fallback list alone: its first entry is then the model.
    let model = match top.model.map(RawValue::get) {
        None | Some("null") if !fallbacks.is_empty() => None,
        None | Some("null") => {
            return Err(ApiError::validation(
                "model",
                "Model is required (or a models list to try in turn)",
            ));
        }
        Some(raw) => match serde_json::from_str::<Cow<'_, str>>(raw) {
            Ok(model) if !model.trim().is_empty() => Some(check_model_id("model", model)?),
            _ => {
                return Err(ApiError::validation(
                    "model",
                    "Model must be a non-empty string such as openai/gpt-4o",
                ));
            }
        },
    };

    let given = |field: &str| {
        top.named
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, raw)| *raw)
    };
    if rules == BodyRules::Chat {
        match top.messages.map(RawValue::get) {
            None | Some("null") => {
                return Err(ApiError::validation("messages", "Messages are required"));
            }
            Some(raw) => check_messages(raw)?,
        }
        for (field, raw) in &top.ranges {
            let Some((_, min, max)) = RANGES.iter().find(|(name, ..)| name == field) else {
                continue;
            };
            check_range(raw.get(), field, *min, *max)?;
        }
    }
    for field in required {
        if given(field).is_none_or(|raw| raw.get() == "null") {
            return Err(ApiError::validation(*field, format!("{field} is required")));
        }
    }
    let mut output = Vec::new();
    for field in output_tokens {
        if let Some(value) = positive_integer(given(field), field)? {
            output.push((*field, value));
        }
    }

    let stream = match top.stream.map(RawValue::get) {
        None | Some("null") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::validation(
                "stream",
                "stream must be true or false",
            ));
        }
    };

    let reasoning_max_tokens = match top.reasoning.map(RawValue::get) {
        None | Some("null") => None,
        Some(raw) => {
            #[derive(serde::Deserialize)]
            struct Reasoning<'a> {
                #[serde(borrow, default)]
                max_tokens: Option<&'a RawValue>,
            }
            let reasoning: Reasoning<'_> = serde_json::from_str(raw)
                .map_err(|_| ApiError::validation("reasoning", "reasoning must be an object"))?;
            positive_integer(reasoning.max_tokens, "reasoning.max_tokens")?
        }
    };
    let choices = positive_integer(top.n, "n")?;
    let web_search = if top.plugins.is_some_and(|raw| names_web_plugin(raw.get())) {
        Some("plugins")
    } else if top
        .web_search_options
        .is_some_and(|raw| raw.get() != "null")
    {
        Some("web_search_options")
    } else {
        None
    };

    Ok(Request {
        model,
        stream,
        stream_at: top.stream.map(|raw| span(body, raw)),
        output_tokens: output,
        output_null_at: output_tokens
            .first()
            .and_then(|field| given(field))
            .filter(|raw| raw.get() == "null")
            .map(|raw| span(body, raw)),
        fallbacks,
        reasoning_max_tokens,
        choices,
        web_search,
        preset: top.preset.is_some_and(|raw| raw.get() != "null"),
        user: top
            .user
            .map(|raw| (span(body, raw), serde_json::from_str(raw.get()).ok())),
    })
}

/// A model id is printable ASCII without spaces: OpenRouter's ids are, and anything
/// else (a space, a newline, a zero-width character) could slip past the model lists
/// while OpenRouter reads the same model.
pub(crate) fn check_model_id(field: &str, id: Cow<'_, str>) -> Result<String, ApiError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(id.into_owned());
    }
    Err(ApiError::validation(
        field,
        format!(
            "{:?} is not a model id: ids are ASCII letters, digits and punctuation, without spaces or control characters",
            quote(&id)
        ),
    ))
}

/// Whether `plugins` (a list of `{"id": ...}`) names the `web` plugin.
fn names_web_plugin(raw: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Plugin<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Vec<Plugin<'_>>>(raw).is_ok_and(|plugins| {
        plugins.iter().any(|p| {
            p.id.as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case("web"))
        })
    })
}

/// Whether brackets nest deeper than [`MAX_DEPTH`] anywhere in `body`, strings aside.
/// Fields the proxy does not read are skipped without a depth limit of their own, so
/// this one pass keeps them within it too.
fn too_deep(body: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Where `raw`, a slice borrowed from `body`, sits in it.
fn span(body: &[u8], raw: &RawValue) -> Span {
    let start = (raw.get().as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    Span {
        start,
        len: raw.get().len(),
    }
}

fn json_error(error: &serde_json::Error) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Data => {
            ApiError::validation("body", "The request body must be a JSON object")
        }
        _ => ApiError::validation(
            "body",
            format!("The request body is not valid JSON: {error}"),
        ),
    }
}

fn check_range(raw: &str, field: &str, min: f64, max: f64) -> Result<(), ApiError> {
    if raw == "null" {
        return Ok(());
    }
    match serde_json::from_str::<f64>(raw) {
        Ok(x) if (min..=max).contains(&x) => Ok(()),
        _ => Err(ApiError::validation(
            field,
            format!("{field} must be a number between {min} and {max}"),
        )),
    }
}

fn positive_integer(raw: Option<&RawValue>, field: &str) -> Result<Option<u64>, ApiError> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(raw) => whole_number(raw)
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| {
                ApiError::validation(
                    field,
                    format!("{field} must be a whole number of at least 1"),
                )
            }),
    }
}

/// `5`, and also `5.0` or `5e0`: JSON has one number type, and a whole number written
/// with a fraction or an exponent is still whole (JSON Schema's `integer` agrees).
/// Beyond `u64`, it saturates, which any cap refuses.
fn whole_number(raw: &str) -> Option<u64> {
    if let Ok(n) = raw.parse::<u64>() {
        return Some(n);
    }
    let x = raw.parse::<f64>().ok()?;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a finite whole number of at least 0, saturating above u64::MAX"
    )]
    (x.is_finite() && x >= 0.0 && x.fract() == 0.0).then_some(x as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn chat(body: &Value) -> Result<Request, ApiError> {
        validate_chat_request(body.to_string().as_bytes())
    }

    fn field_of(body: Value) -> String {
        match chat(&body) {
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
        let request = chat(&body).unwrap();
        assert_eq!(request.model.as_deref(), Some("openai/gpt-4o"));
        assert_eq!(request.stream, Some(false));
        assert_eq!(request.output_tokens, vec![("max_tokens", 100)]);
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
        assert_eq!(field_of(ok(json!({"models": "a/b"}))), "models");
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
            "max_tokens": 1, "future_field": {"x": 1}, "models": ["a/b", "c/d"]
        }));
        let request = chat(&body).unwrap();
        assert_eq!(request.fallbacks, ["a/b", "c/d"]);
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_fraction_or_an_exponent() {
        for (raw, n) in [
            ("5", Some(5)),
            ("5.0", Some(5)),
            ("1e2", Some(100)),
            ("5.5", None),
            ("-1", None),
            ("\"5\"", None),
        ] {
            assert_eq!(whole_number(raw), n, "{raw}");
        }
        assert_eq!(whole_number("1e300"), Some(u64::MAX));
    }

    #[test]
    fn tool_calls_are_an_array_or_nothing() {
        let with = |calls: Value| json!({"model": "m", "messages": [{"role": "tool", "content": null, "tool_calls": calls}]});
        assert!(chat(&with(json!([{"id": "c1"}]))).is_ok());
        assert_eq!(field_of(with(json!({}))), "messages[0].tool_calls");
        let assistant =
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": "x"}]});
        assert_eq!(field_of(assistant), "messages[0].tool_calls");
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let body = br#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"model":"c/d"}"#;
        match validate_chat_request(body) {
            Err(ApiError::Validation { field, .. }) => assert_eq!(field, "model"),
            other => panic!("{other:?}"),
        }
        let body = br#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"x":1,"x":2}"#;
        assert!(validate_chat_request(body).is_err());
    }

    #[test]
    fn hostile_bodies_are_400s() {
        for body in [
            &b"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": 1e999}"[..],
            b"\xff\xfe",
            b"{\"model\":",
            b"{} trailing",
        ] {
            assert_eq!(validate_chat_request(body).unwrap_err().status(), 400);
        }
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let body =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x":{deep}}}"#);
        assert_eq!(
            validate_chat_request(body.as_bytes()).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn a_long_role_is_quoted_short() {
        let role = "r".repeat(4 * 1024 * 1024);
        let body = json!({"model": "m", "messages": [{"role": role, "content": "x"}]});
        let error = chat(&body).unwrap_err();
        assert!(
            error.body().to_string().len() < 1024,
            "the role is echoed in full"
        );
    }

    #[test]
    fn spans_point_at_the_values() {
        let body = br#"{"model":"m","stream":null,"max_tokens":null,"messages":[{"role":"user","content":"x"}]}"#;
        let request = validate_chat_request(body).unwrap();
        let at = request.stream_at.unwrap();
        assert_eq!(&body[at.start..at.start + at.len], b"null");
        let at = request.output_null_at.unwrap();
        assert_eq!(&body[at.start..at.start + at.len], b"null");
    }
}
