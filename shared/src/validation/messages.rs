//! Chat `messages` (`docs/http-api.md`, "Chat requests"): a non-empty array of message
//! objects, each read as borrowed slices and checked one at a time; a key given twice
//! in a message is refused, as at the top level.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::Problem;
use crate::error::{ApiError, quote};

const ROLES: [&str; 5] = ["system", "user", "assistant", "tool", "developer"];

/// `messages`: a non-empty array of message objects, checked one at a time.
pub(super) fn check_messages(raw: &str) -> Result<(), ApiError> {
    let not_an_array = || ApiError::validation("messages", "Messages must be an array");
    if !raw.starts_with('[') {
        return Err(not_an_array());
    }
    let mut problem = None;
    let count = serde_json::Deserializer::from_str(raw)
        .deserialize_seq(MessagesVisitor {
            problem: &mut problem,
        })
        .map_err(|_| problem.take().unwrap_or_else(not_an_array))?;
    if count == 0 {
        return Err(ApiError::validation(
            "messages",
            "Messages must contain at least one message",
        ));
    }
    Ok(())
}

struct MessagesVisitor<'p> {
    problem: &'p mut Problem,
}

impl<'de> Visitor<'de> for MessagesVisitor<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut i = 0;
        while let Some(message) = seq.next_element::<&'de RawValue>()? {
            if let Err(error) = check_message(i, message.get()) {
                *self.problem = Some(error);
                return Err(de::Error::custom("invalid message"));
            }
            i += 1;
        }
        Ok(i)
    }
}

/// The fields of a message the proxy reads, and the first key it gives twice (refused,
/// as at the top level: what the proxy checks must be what OpenRouter reads).
#[derive(Default)]
struct MessageView<'a> {
    role: Option<&'a RawValue>,
    content: Option<&'a RawValue>,
    tool_calls: Option<&'a RawValue>,
    repeated: Option<Cow<'a, str>>,
}

impl<'de> serde::Deserialize<'de> for MessageView<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = MessageView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut view = MessageView::default();
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if seen.contains(&key) {
                view.repeated.get_or_insert(key);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let slot = match key.as_ref() {
                "role" => Some(&mut view.role),
                "content" => Some(&mut view.content),
                "tool_calls" => Some(&mut view.tool_calls),
                _ => None,
            };
            match slot {
                Some(slot) => *slot = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            seen.insert(key);
        }
        Ok(view)
    }
}

#[derive(serde::Deserialize)]
struct PartView<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a RawValue>,
}

fn check_message(i: usize, raw: &str) -> Result<(), ApiError> {
    let message: MessageView<'_> = match raw.starts_with('{') {
        true => serde_json::from_str(raw).map_err(|_| {
            ApiError::validation(format!("messages[{i}]"), "Each message must be an object")
        })?,
        false => {
            return Err(ApiError::validation(
                format!("messages[{i}]"),
                "Each message must be an object",
            ));
        }
    };
    if let Some(key) = &message.repeated {
        return Err(ApiError::validation(
            format!("messages[{i}].{}", quote(key)),
            "This key is given twice in the message; give each key once",
        ));
    }
    let role = message
        .role
        .and_then(|r| serde_json::from_str::<Cow<'_, str>>(r.get()).ok());
    match role.as_deref() {
        Some(role) if ROLES.contains(&role) => {}
        Some(role) => {
            return Err(ApiError::validation(
                format!("messages[{i}].role"),
                format!(
                    "Unknown role {:?}: expected one of {}",
                    quote(role),
                    ROLES.join(", ")
                ),
            ));
        }
        None => {
            return Err(ApiError::validation(
                format!("messages[{i}].role"),
                format!("Role is required: one of {}", ROLES.join(", ")),
            ));
        }
    }
    let tool_calls = match message.tool_calls.map(RawValue::get) {
        None | Some("null") => false,
        Some(calls) if calls.starts_with('[') => true,
        Some(_) => {
            return Err(ApiError::validation(
                format!("messages[{i}].tool_calls"),
                "tool_calls must be an array",
            ));
        }
    };
    let content = message.content.map(RawValue::get);
    match content {
        Some(text) if text.starts_with('"') => Ok(()),
        Some(parts) if parts.starts_with('[') => {
            let parts: Vec<&RawValue> = serde_json::from_str(parts).unwrap_or_default();
            for (j, part) in parts.iter().enumerate() {
                let typed = part.get().starts_with('{')
                    && serde_json::from_str::<PartView<'_>>(part.get())
                        .ok()
                        .and_then(|p| p.kind)
                        .is_some_and(|k| k.get().starts_with('"'));
                if !typed {
                    return Err(ApiError::validation(
                        format!("messages[{i}].content[{j}]"),
                        "Each content part must be an object with a string type (text, image_url, input_audio, file, ...)",
                    ));
                }
            }
            Ok(())
        }
        // An assistant turn that only called tools carries no content.
        None | Some("null") if tool_calls || role.as_deref() == Some("assistant") => Ok(()),
        _ => Err(ApiError::validation(
            format!("messages[{i}].content"),
            "Content must be a string or an array of content parts",
        )),
    }
}
