//! An answer in bytes of a media type (speech), relayed as OpenRouter sends them with
//! its `Content-Type`: no events to read, so nothing is added and nothing is counted.
//! The same bounds as a stream hold: a silence of `REQUEST_TIMEOUT_MS` or a total of
//! `STREAM_MAX_DURATION_MS` ends it (cut short, since bytes have no in-band error),
//! and a caller who leaves drops it, which closes the upstream request.

use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, header};
use tokio::time::Instant;

use crate::openrouter::passed_back;

pub struct Media {
    pub content_type: HeaderValue,
    /// OpenRouter's headers the caller gets too.
    pub headers: HeaderMap,
    pub body: Body,
}

type Chunks = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Relays `upstream`'s body as it arrives, within `idle` silences and `max` in all.
pub fn relay(upstream: reqwest::Response, idle: Duration, max: Duration) -> Media {
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let headers = passed_back(upstream.headers());
    let deadline = Instant::now() + max;
    let chunks: Chunks = Box::pin(upstream.bytes_stream());
    let body = futures_util::stream::unfold(Some(chunks), move |chunks| async move {
        let mut chunks = chunks?;
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        let cut = match tokio::time::timeout(wait, chunks.next()).await {
            Ok(Some(Ok(bytes))) => return Some((Ok(bytes), Some(chunks))),
            Ok(None) => return None,
            Ok(Some(Err(_))) => "OpenRouter's answer broke off",
            Err(_) if Instant::now() >= deadline => "the answer reached STREAM_MAX_DURATION_MS",
            Err(_) => "OpenRouter fell silent for REQUEST_TIMEOUT_MS",
        };
        tracing::warn!(cause = cut, "media answer cut short");
        Some((Err(std::io::Error::other(cut)), None))
    })
    // The compression layer polls once more after the end.
    .fuse();
    Media {
        content_type,
        headers,
        body: Body::from_stream(body),
    }
}
