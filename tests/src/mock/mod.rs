//! A mock OpenRouter: a real HTTP server on 127.0.0.1 that speaks like the captures in
//! `fixtures/openrouter/` (the same bodies, whitespace padding, error shapes and SSE
//! framing) and can be told to fail in each way the real one does.
//!
//! By default it answers as the model asked for, about the prompt ([`echo`]). A
//! [`Behaviour`] is chosen per request by the model name (`mock/status-429`,
//! `mock/stall-5000`, ...: usable from curl and across processes, see [`scenario`]) or
//! for every request by [`MockOpenRouter::set_behaviour`]. Every request is recorded.
//!
//! Layout: `scenario` (what to do), `chat` and `stream` (answers), `ops` and `audio`
//! (the other operations), `cache` (the response cache), `catalogue` (the endpoints
//! answer), `echo` (the demo answer), `errors` (OpenRouter's error bodies), `shared`
//! (what handlers and tests share); this module is the server.

mod audio;
mod cache;
mod catalogue;
mod chat;
mod echo;
mod errors;
mod ops;
mod scenario;
mod shared;
mod stream;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderValue, header};
use serde_json::Value;

pub use echo::Echo;
pub use scenario::Behaviour;
pub use shared::{ModelsBehaviour, Recorded};
use shared::{Shared, lock};

use crate::fixtures;

/// A running mock. It serves until it is dropped or its runtime ends.
pub struct MockOpenRouter {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl MockOpenRouter {
    /// Starts on 127.0.0.1 and a free port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour::Echo),
            models_behaviour: Mutex::new(ModelsBehaviour::Serve),
            models_body: Mutex::new(None),
            models_gate: tokio::sync::Semaphore::new(0),
            received: Mutex::new(Vec::new()),
            arrivals: tokio::sync::Notify::new(),
            steps: tokio::sync::Semaphore::new(0),
            streams_closed: Mutex::new(Vec::new()),
            answers_closed: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
            cache: Mutex::new(std::collections::HashMap::new()),
        });
        let app = Router::new()
            .route("/api/v1/chat/completions", post(chat))
            .route("/api/v1/responses", post(ops::answer))
            .route("/api/v1/messages", post(ops::answer))
            .route("/api/v1/completions", post(ops::answer))
            .route("/api/v1/embeddings", post(ops::answer))
            .route("/api/v1/rerank", post(ops::answer))
            .route("/api/v1/images", post(ops::answer))
            .route("/api/v1/audio/speech", post(audio::speech))
            .route("/api/v1/audio/transcriptions", post(audio::transcriptions))
            .route("/api/v1/embeddings/models", get(audio::embedding_models))
            .route("/api/v1/models", get(models))
            .route("/api/v1/models/{author}/{slug}/endpoints", get(endpoints))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                cache::layer,
            ))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            // OpenRouter flushes each event as it goes; so does the mock.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What to set `OPENROUTER_BASE_URL` to.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// The inference requests that reached the mock, in order (the catalogue fetches
    /// the proxy makes to price requests are left out: see `received_all`).
    pub fn received(&self) -> Vec<Recorded> {
        lock(&self.shared.received)
            .iter()
            .filter(|r| !r.path.starts_with("/api/v1/models"))
            .cloned()
            .collect()
    }

    /// Every request that reached the mock, catalogue fetches included.
    pub fn received_all(&self) -> Vec<Recorded> {
        lock(&self.shared.received).clone()
    }

    pub fn set_models_behaviour(&self, behaviour: ModelsBehaviour) {
        *lock(&self.shared.models_behaviour) = behaviour;
    }

    /// Serves this catalogue instead of the captured one.
    pub fn set_models_body(&self, body: Bytes) {
        *lock(&self.shared.models_body) = Some(body);
    }

    /// Lets `n` held catalogue requests answer.
    pub fn release_models(&self, n: usize) {
        self.shared.models_gate.add_permits(n);
    }

    /// Lets a `LockStep` stream send its next event.
    pub fn step(&self) {
        self.shared.steps.add_permits(1);
    }

    /// When each streamed chunk since the last call was handed to the server to write:
    /// a benchmark pairs them with when its events arrived.
    pub fn take_sent(&self) -> Vec<std::time::Instant> {
        std::mem::take(&mut *lock(&self.shared.sent))
    }

    /// When streamed answers ended, for whatever reason (finished, or the proxy went).
    pub fn streams_closed(&self) -> Vec<std::time::Instant> {
        lock(&self.shared.streams_closed).clone()
    }

    /// Waits until `n` streamed answers have ended; false if `within` passes first.
    pub async fn wait_for_streams_closed(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.arrivals.notified();
            if self.streams_closed().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.streams_closed().len() >= n;
            }
        }
    }

    /// Waits until `n` JSON answers have ended (sent whole, or dropped by the proxy);
    /// false if `within` passes first.
    pub async fn wait_for_answers_closed(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.arrivals.notified();
            if lock(&self.shared.answers_closed).len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return lock(&self.shared.answers_closed).len() >= n;
            }
        }
    }

    /// How many catalogue fetches have arrived (answered or not).
    pub fn models_fetches(&self) -> usize {
        lock(&self.shared.received)
            .iter()
            .filter(|r| r.path == "/api/v1/models")
            .count()
    }

    /// Waits until `n` catalogue fetches have arrived; false if `within` passes first.
    pub async fn wait_for_models_fetches(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.arrivals.notified();
            if self.models_fetches() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.models_fetches() >= n;
            }
        }
    }
}

impl Drop for MockOpenRouter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(shared: &Shared, request: Request) -> Recorded {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    lock(&shared.received).push(recorded.clone());
    shared.arrivals.notify_waiters();
    recorded
}

/// OpenRouter's answer to an inference request without a key.
fn authorized(recorded: &Recorded) -> Result<(), Box<Response>> {
    if recorded
        .headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "))
    {
        return Ok(());
    }
    Err(Box::new(errors::openrouter(
        401,
        "No auth credentials found",
    )))
}

/// An inference request's JSON body, if it carries a key and parses; otherwise
/// OpenRouter's answer to it.
fn authorized_json(recorded: &Recorded) -> Result<Value, Box<Response>> {
    authorized(recorded)?;
    serde_json::from_slice::<Value>(&recorded.body)
        .map_err(|_| Box::new(errors::openrouter(400, "Invalid JSON in request body")))
}

async fn chat(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let recorded = record(&shared, request).await;
    let body = match authorized_json(&recorded) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let behaviour = Behaviour::from_model(model).unwrap_or_else(|| lock(&shared.behaviour).clone());
    if body.get("stream") == Some(&Value::Bool(true)) {
        let authorization = recorded
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        stream::answer(shared.clone(), &body, behaviour, authorization).await
    } else {
        let response = chat::answer(&body, behaviour).await;
        // Note when the answer ends, sent or abandoned by the proxy.
        let guard = AnswerClosed(shared.clone());
        let (mut parts, body) = response.into_parts();
        // A body of known size keeps its Content-Length (a proxy refuses a declared
        // oversize answer unread); wrapping it in a stream would lose it.
        if let Some(length) = axum::body::HttpBody::size_hint(&body).exact() {
            parts.headers.insert(header::CONTENT_LENGTH, length.into());
        }
        let body = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
            let _ = &guard;
            chunk
        });
        Response::from_parts(parts, axum::body::Body::from_stream(body))
    }
}

/// Notes when a JSON answer's body is dropped.
struct AnswerClosed(Arc<Shared>);

impl Drop for AnswerClosed {
    fn drop(&mut self) {
        lock(&self.0.answers_closed).push(std::time::Instant::now());
        self.0.arrivals.notify_waiters();
    }
}

async fn models(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    record(&shared, request).await;
    let behaviour = lock(&shared.models_behaviour).clone();
    match behaviour {
        ModelsBehaviour::Serve => {}
        ModelsBehaviour::Status(status) => return errors::for_status(status),
        ModelsBehaviour::Hold => {
            if let Ok(permit) = shared.models_gate.acquire().await {
                permit.forget();
            }
        }
    }
    let body = lock(&shared.models_body)
        .clone()
        .unwrap_or_else(fixtures::models);
    // OpenRouter's CDN caches the catalogue for 300 s.
    let mut response = chat::json(Body::from(body));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn endpoints(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path((author, slug)): axum::extract::Path<(String, String)>,
    request: Request,
) -> Response {
    record(&shared, request).await;
    let body = lock(&shared.models_body)
        .clone()
        .unwrap_or_else(fixtures::models);
    match catalogue::endpoints(&body, &format!("{author}/{slug}")) {
        Some(answer) => chat::json(Body::from(answer.to_string())),
        None => errors::openrouter(404, "Model not found"),
    }
}

async fn not_found(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    record(&shared, request).await;
    errors::openrouter(404, "Not Found")
}
