//! What the mock's handlers share with the test that drives it: the chosen
//! behaviours, what arrived, and the signals a test waits on.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use http::HeaderMap;

use super::scenario::Behaviour;

/// How the mock answers `GET /models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelsBehaviour {
    /// The captured catalogue (or the body given with `set_models_body`).
    Serve,
    /// This error status with OpenRouter's error body.
    Status(u16),
    /// Record the request, then wait for `release_models` before serving.
    Hold,
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: http::Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug)]
pub struct Shared {
    pub behaviour: Mutex<Behaviour>,
    pub models_behaviour: Mutex<ModelsBehaviour>,
    pub models_body: Mutex<Option<Bytes>>,
    pub models_gate: tokio::sync::Semaphore,
    pub received: Mutex<Vec<Recorded>>,
    pub arrivals: tokio::sync::Notify,
    pub steps: tokio::sync::Semaphore,
    pub streams_closed: Mutex<Vec<std::time::Instant>>,
    /// When JSON answers ended (sent, or dropped by the proxy).
    pub answers_closed: Mutex<Vec<std::time::Instant>>,
    /// When each streamed chunk was handed to the server to write (for benchmarks).
    pub sent: Mutex<Vec<std::time::Instant>>,
    /// The response cache's answers, by path and body.
    pub cache: Mutex<std::collections::HashMap<(String, Bytes), super::cache::Entry>>,
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
