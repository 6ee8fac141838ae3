//! OpenRouter's response cache, as its documentation describes it (no capture of it
//! exists): `X-OpenRouter-Cache: true` keeps a JSON answer for
//! `X-OpenRouter-Cache-TTL` seconds (300 by default) under the request's path and
//! exact body; a repeat within that time is a HIT: the same answer with its token
//! counts and cost zeroed under a new generation id, `X-OpenRouter-Cache-Status: HIT`,
//! the TTL left, `-Age` and `-Source-Id`. A MISS says so with the full TTL.
//! `X-OpenRouter-Cache-Clear: true` drops the entry first. Streams pass uncached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};
use serde_json::Value;

use super::shared::{Shared, lock};

const DEFAULT_TTL: u64 = 300;

/// A kept answer.
#[derive(Debug, Clone)]
pub struct Entry {
    body: Bytes,
    at: Instant,
    ttl: Duration,
    source: Option<HeaderValue>,
}

fn asks(request: &Request, name: &str) -> bool {
    request
        .headers()
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

pub async fn layer(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if !asks(&request, "x-openrouter-cache") {
        return next.run(request).await;
    }
    let clear = asks(&request, "x-openrouter-cache-clear");
    let ttl = request
        .headers()
        .get("x-openrouter-cache-ttl")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(DEFAULT_TTL);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let key = (parts.uri.path().to_owned(), body.clone());
    if clear {
        lock(&shared.cache).remove(&key);
    }
    let kept = lock(&shared.cache)
        .get(&key)
        .filter(|entry| entry.at.elapsed() < entry.ttl)
        .cloned();
    let request = Request::from_parts(parts, Body::from(body));
    if let Some(entry) = kept {
        // It reached OpenRouter all the same.
        super::record(&shared, request).await;
        return hit(&entry);
    }
    let response = next.run(request).await;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !response.status().is_success() || !json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let entry = Entry {
        body: body.clone(),
        at: Instant::now(),
        ttl: Duration::from_secs(ttl),
        source: parts.headers.get("x-generation-id").cloned(),
    };
    lock(&shared.cache).insert(key, entry);
    parts.headers.insert(
        "x-openrouter-cache-status",
        HeaderValue::from_static("MISS"),
    );
    parts
        .headers
        .insert("x-openrouter-cache-ttl", HeaderValue::from(ttl));
    Response::from_parts(parts, Body::from(body))
}

fn hit(entry: &Entry) -> Response {
    let mut answer: Value = serde_json::from_slice(&entry.body).unwrap_or_default();
    if let Some(usage) = answer.get_mut("usage") {
        zero(usage);
    }
    let age = entry.at.elapsed();
    let mut response = super::chat::json(Body::from(answer.to_string()));
    let headers = response.headers_mut();
    headers.insert(
        "x-generation-id",
        HeaderValue::from_static("gen-1786400001-mockcachehit00000000"),
    );
    headers.insert("x-openrouter-cache-status", HeaderValue::from_static("HIT"));
    headers.insert(
        "x-openrouter-cache-ttl",
        HeaderValue::from(entry.ttl.saturating_sub(age).as_secs()),
    );
    headers.insert("x-openrouter-cache-age", HeaderValue::from(age.as_secs()));
    if let Some(source) = &entry.source {
        headers.insert("x-openrouter-cache-source-id", source.clone());
    }
    response
}

/// Every number in `usage` (token counts, cost, its details) to 0.
fn zero(value: &mut Value) {
    match value {
        Value::Number(_) => *value = Value::from(0),
        Value::Object(map) => map.values_mut().for_each(zero),
        Value::Array(items) => items.iter_mut().for_each(zero),
        _ => {}
    }
}
