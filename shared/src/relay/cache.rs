//! OpenRouter's response cache (`docs/http-api.md`, "Response caching"): a repeated
//! request answered from OpenRouter's cache at no cost. `RESPONSE_CACHE` decides when
//! the caller's `X-OpenRouter-Cache` headers are passed on; a cached request is scoped
//! to its client by OpenRouter's `user` field (the client's hashed id), so one client's
//! cached answer is never another's.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::Operation;
use crate::config::ResponseCache;
use crate::error::ApiError;
use crate::header_names::{OPENROUTER_CACHE, OPENROUTER_CACHE_CLEAR, OPENROUTER_CACHE_TTL};

/// The longest a cached answer may be kept, in seconds (OpenRouter's bound).
const MAX_TTL: u64 = 86_400;

/// The cache headers to send OpenRouter for a request of `op` carrying the caller's
/// `headers`, or `None` when the cache is not to answer it. A cache header with a
/// value OpenRouter would not read is a 400 naming it.
pub fn headers(
    mode: ResponseCache,
    op: &Operation,
    headers: &HeaderMap,
) -> Result<Option<Vec<(HeaderName, HeaderValue)>>, ApiError> {
    // OpenRouter reads them nowhere else; nor does the proxy.
    if !op.cacheable || mode == ResponseCache::Off {
        return Ok(None);
    }
    let asked = flag(headers, &OPENROUTER_CACHE)?;
    let ttl = ttl(headers)?;
    let clear = flag(headers, &OPENROUTER_CACHE_CLEAR)?;
    let cached = match mode {
        ResponseCache::Off => false,
        ResponseCache::OnRequest => asked == Some(true),
        ResponseCache::Always => asked != Some(false),
    };
    if !cached {
        return Ok(None);
    }
    let mut sent = vec![(OPENROUTER_CACHE, HeaderValue::from_static("true"))];
    if let Some(ttl) = ttl {
        sent.push((OPENROUTER_CACHE_TTL, HeaderValue::from(ttl)));
    }
    if clear == Some(true) {
        sent.push((OPENROUTER_CACHE_CLEAR, HeaderValue::from_static("true")));
    }
    Ok(Some(sent))
}

fn value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h [u8]> {
    headers.get(name).map(|v| v.as_bytes().trim_ascii())
}

fn flag(headers: &HeaderMap, name: &HeaderName) -> Result<Option<bool>, ApiError> {
    match value(headers, name) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case(b"true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case(b"false") => Ok(Some(false)),
        Some(_) => Err(ApiError::validation(
            name.as_str(),
            format!("{name} must be true or false"),
        )),
    }
}

fn ttl(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(raw) = value(headers, &OPENROUTER_CACHE_TTL) else {
        return Ok(None);
    };
    std::str::from_utf8(raw)
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ttl| (1..=MAX_TTL).contains(ttl))
        .map(Some)
        .ok_or_else(|| {
            ApiError::validation(
                OPENROUTER_CACHE_TTL.as_str(),
                format!(
                    "{OPENROUTER_CACHE_TTL} must be a whole number of seconds from 1 to {MAX_TTL}"
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::OPERATIONS;

    fn op(name: &str) -> &'static Operation {
        OPERATIONS.iter().find(|op| op.name == name).unwrap()
    }

    fn asked(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn sent(mode: ResponseCache, name: &str, pairs: &[(&str, &str)]) -> Option<Vec<String>> {
        headers(mode, op(name), &asked(pairs)).unwrap().map(|h| {
            h.iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
                .collect()
        })
    }

    #[test]
    fn each_mode_decides_when_the_cache_answers() {
        let on = [
            ("x-openrouter-cache", "true"),
            ("x-openrouter-cache-ttl", "60"),
        ];
        let expected = Some(vec![
            "x-openrouter-cache: true".to_owned(),
            "x-openrouter-cache-ttl: 60".to_owned(),
        ]);
        assert_eq!(sent(ResponseCache::OnRequest, "chat", &on), expected);
        assert_eq!(sent(ResponseCache::OnRequest, "chat", &[]), None);
        assert_eq!(sent(ResponseCache::Off, "chat", &on), None);
        assert_eq!(
            sent(ResponseCache::OnRequest, "rerank", &on),
            None,
            "not cacheable"
        );
        assert_eq!(
            sent(ResponseCache::Always, "embeddings", &[]),
            Some(vec!["x-openrouter-cache: true".to_owned()])
        );
        assert_eq!(
            sent(
                ResponseCache::Always,
                "messages",
                &[("x-openrouter-cache", "FALSE")]
            ),
            None
        );
    }

    #[test]
    fn values_openrouter_would_not_read_are_refused() {
        for pairs in [
            [("x-openrouter-cache", "yes")],
            [("x-openrouter-cache-ttl", "0")],
            [("x-openrouter-cache-ttl", "86401")],
            [("x-openrouter-cache-clear", "1")],
            [("x-openrouter-cache-ttl", "+5")],
        ] {
            let error = headers(ResponseCache::OnRequest, op("chat"), &asked(&pairs)).unwrap_err();
            assert_eq!(error.error_object()["details"]["field"], pairs[0].0);
        }
    }
}
