//! A mock OpenRouter: a real HTTP server on 127.0.0.1 that speaks like the captures in
//! `fixtures/openrouter/` — the same bodies, whitespace padding, error shapes and SSE
//! framing — and can be told to fail in each way the real one does.
//!
//! A behaviour is chosen per request by the model name (`mock/status-429`,
//! `mock/stall-5000`, ...: usable from curl and across processes) or for every request
//! by [`MockOpenRouter::set_behaviour`]. Every request is recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::fixtures;

/// How the mock answers a chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer like the captures (the default).
    Replay,
    /// Answer this error status with OpenRouter's error body.
    Status(u16),
    /// Say nothing for this long, then answer normally.
    Stall(Duration),
    /// Send this many whitespace lines, one every `every`, before the answer.
    Pad { lines: usize, every: Duration },
    /// Send a 200 and part of the body, then break the connection.
    Reset,
    /// A 200 whose body, after padding, is an error object (the model failed late).
    ErrorInBody(u16),
    /// Streams only: send the captured text stream one event per `step()`, the first
    /// at once. A proxy that buffers never shows event k, and the test never steps.
    LockStep,
}

impl Behaviour {
    /// Reads a behaviour from a model name such as `mock/status-429`.
    fn from_model(model: &str) -> Option<Self> {
        let (name, numbers) = scenario(model)?;
        let first = numbers.first().copied();
        Some(match name.as_str() {
            "status" => Self::Status(u16::try_from(first?).ok()?),
            "stall" => Self::Stall(Duration::from_millis(first?)),
            "pad" => Self::Pad {
                lines: usize::try_from(first?).ok()?,
                every: Duration::from_millis(numbers.get(1).copied().unwrap_or(10)),
            },
            "reset" => Self::Reset,
            "late-error" => Self::ErrorInBody(u16::try_from(first.unwrap_or(502)).ok()?),
            _ => return None,
        })
    }
}

/// Splits a scenario model name, `mock/pad-6-150`, into its words (`pad`) and its
/// numbers (`[6, 150]`). `None` for a model that is not a scenario.
fn scenario(model: &str) -> Option<(String, Vec<u64>)> {
    let spec = model.strip_prefix("mock/")?;
    let (words, numbers): (Vec<&str>, Vec<&str>) = spec
        .split('-')
        .partition(|part| part.parse::<u64>().is_err());
    Some((
        words.join("-"),
        numbers.iter().filter_map(|n| n.parse().ok()).collect(),
    ))
}

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
struct Shared {
    behaviour: Mutex<Behaviour>,
    models_behaviour: Mutex<ModelsBehaviour>,
    models_body: Mutex<Option<Bytes>>,
    models_gate: tokio::sync::Semaphore,
    received: Mutex<Vec<Recorded>>,
    arrivals: tokio::sync::Notify,
    steps: tokio::sync::Semaphore,
    streams_closed: Mutex<Vec<std::time::Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
            behaviour: Mutex::new(Behaviour::Replay),
            models_behaviour: Mutex::new(ModelsBehaviour::Serve),
            models_body: Mutex::new(None),
            models_gate: tokio::sync::Semaphore::new(0),
            received: Mutex::new(Vec::new()),
            arrivals: tokio::sync::Notify::new(),
            steps: tokio::sync::Semaphore::new(0),
            streams_closed: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/api/v1/chat/completions", post(chat))
            .route("/api/v1/models", get(models))
            .fallback(not_found)
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

    pub fn received(&self) -> Vec<Recorded> {
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

async fn chat(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let recorded = record(&shared, request).await;
    if !recorded
        .headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "))
    {
        return openrouter_error(401, "No auth credentials found");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&recorded.body) else {
        return openrouter_error(400, "Invalid JSON in request body");
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let behaviour = Behaviour::from_model(model).unwrap_or_else(|| lock(&shared.behaviour).clone());
    if body.get("stream") == Some(&Value::Bool(true)) {
        return streamed(shared.clone(), model, behaviour).await;
    }
    match behaviour {
        Behaviour::Replay => completion(),
        Behaviour::Status(status) => error_for_status(status),
        Behaviour::Stall(delay) => {
            tokio::time::sleep(delay).await;
            completion()
        }
        Behaviour::Pad { lines, every } => padded(lines, every, fixtures::chat_completion_json()),
        Behaviour::Reset => {
            let parts: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"         \n")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "mock reset",
                )),
            ];
            json_response(Body::from_stream(stream::iter(parts)))
        }
        Behaviour::ErrorInBody(status) => {
            let body = json!({"error": {"code": status, "message": "Provider returned error",
                                        "metadata": {"provider_name": "Mock"}}});
            padded(2, Duration::from_millis(5), Bytes::from(body.to_string()))
        }
        Behaviour::LockStep => completion(),
    }
}

/// The captured non-streamed answer, whitespace padding and all.
fn completion() -> Response {
    let mut response = json_response(Body::from(fixtures::chat_completion()));
    response.headers_mut().insert(
        "x-generation-id",
        HeaderValue::from_static(fixtures::CHAT_COMPLETION_ID),
    );
    response
}

fn padded(lines: usize, every: Duration, answer: Bytes) -> Response {
    let pads = stream::unfold(0usize, move |sent| async move {
        if sent == lines {
            return None;
        }
        tokio::time::sleep(every).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from_static(b"         \n")),
            sent + 1,
        ))
    });
    let body = futures_util::StreamExt::chain(pads, stream::iter([Ok(answer)]));
    let mut response = json_response(Body::from_stream(body));
    response.headers_mut().insert(
        "x-generation-id",
        HeaderValue::from_static(fixtures::CHAT_COMPLETION_ID),
    );
    response
}

fn json_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// One step of a streamed answer.
enum Step {
    Send(Bytes),
    Sleep(Duration),
    /// Wait for the test's `step()`.
    WaitForTest,
    /// Break the connection.
    Reset,
    /// Send this every so often, for ever.
    Forever {
        every: Duration,
        event: Bytes,
    },
    /// Send this many times, as fast as the reader takes it.
    Repeat {
        times: u64,
        event: Bytes,
    },
}

/// Notes when a streamed answer ends, however it ends.
struct CloseGuard(Arc<Shared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        lock(&self.0.streams_closed).push(std::time::Instant::now());
        self.0.arrivals.notify_waiters();
    }
}

const KEEP_ALIVE: &[u8] = b": OPENROUTER PROCESSING\n\n";

/// A streamed answer, chosen by model name (`mock/stream-<fixture>`, `mock/stream-error`,
/// `mock/stream-reset`, `mock/stream-garbage`, `mock/stream-stall-MS`,
/// `mock/stream-big-BYTES`, `mock/stream-endless-MS`, `mock/stream-keepalive-MS`) or by
/// the programmatic behaviour; otherwise the captured text stream.
async fn streamed(shared: Arc<Shared>, model: &str, behaviour: Behaviour) -> Response {
    match behaviour {
        Behaviour::Status(status) => return error_for_status(status),
        Behaviour::Stall(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let text = fixtures::sse_events(&fixtures::stream("text").unwrap_or_default());
    let half = text.len() / 2;
    let (name, numbers) = scenario(model).unwrap_or_default();
    let name = name.strip_prefix("stream-").unwrap_or("");
    let number = numbers.first().copied().unwrap_or(0);
    let mut steps: Vec<Step> = match (name, &behaviour) {
        (_, Behaviour::LockStep) => {
            let mut steps = Vec::new();
            for (i, event) in text.iter().enumerate() {
                if i > 0 {
                    steps.push(Step::WaitForTest);
                }
                steps.push(Step::Send(event.clone()));
            }
            steps
        }
        ("error", _) => {
            let mut steps: Vec<Step> = text[..half].iter().cloned().map(Step::Send).collect();
            let error = json!({"id": "gen-mock", "object": "chat.completion.chunk", "created": 1_754_441_342,
                "model": "openai/gpt-4o", "provider": "OpenAI",
                "error": {"code": 502, "message": "Provider disconnected unexpectedly",
                          "metadata": {"provider_name": "OpenAI"}},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]});
            steps.push(Step::Send(Bytes::from(format!("data: {error}\n\n"))));
            steps.push(Step::Send(Bytes::from_static(b"data: [DONE]\n\n")));
            steps
        }
        ("reset", _) => {
            let mut steps: Vec<Step> = text[..half].iter().cloned().map(Step::Send).collect();
            // Half an event, then the connection breaks (a moment later, so that what
            // came before has gone out).
            steps.push(Step::Send(Bytes::from_static(
                b"data: {\"id\":\"gen-mock\",\"choi",
            )));
            steps.push(Step::Sleep(Duration::from_millis(50)));
            steps.push(Step::Reset);
            steps
        }
        ("garbage", _) => {
            let mut steps: Vec<Step> = text[..half].iter().cloned().map(Step::Send).collect();
            steps.push(Step::Send(Bytes::from_static(
                b"<html>502 Bad Gateway</html>\n\n",
            )));
            steps.extend(text[half..].iter().cloned().map(Step::Send));
            steps
        }
        ("stall", _) => {
            let mut steps: Vec<Step> = text[..half].iter().cloned().map(Step::Send).collect();
            steps.push(Step::Sleep(Duration::from_millis(number)));
            steps.extend(text[half..].iter().cloned().map(Step::Send));
            steps
        }
        ("big", _) => {
            let image = format!(
                "data:image/png;base64,{}",
                "A".repeat(usize::try_from(number).unwrap_or(0))
            );
            let chunk = json!({"id": "gen-mock-image", "object": "chat.completion.chunk", "created": 1_754_441_342,
                "model": "google/gemini-2.5-flash-image", "provider": "Google",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "",
                    "images": [{"type": "image_url", "image_url": {"url": image}}]},
                    "finish_reason": null}]});
            vec![
                Step::Send(Bytes::from_static(KEEP_ALIVE)),
                Step::Send(Bytes::from(format!("data: {chunk}\n\n"))),
                Step::Send(Bytes::from_static(b"data: [DONE]\n\n")),
            ]
        }
        ("endless", _) => vec![
            Step::Send(text[1].clone()),
            Step::Forever {
                every: Duration::from_millis(number.max(1)),
                event: text[2].clone(),
            },
        ],
        ("volume", _) => {
            // About `number` MB of 8 KiB content deltas, for throughput and memory.
            let delta = json!({"id": "gen-mock-volume", "object": "chat.completion.chunk", "created": 1_754_441_342,
                "model": "openai/gpt-4o", "provider": "OpenAI",
                "choices": [{"index": 0, "delta": {"content": "x".repeat(8 * 1024)}, "finish_reason": null}]});
            let event = Bytes::from(format!("data: {delta}\n\n"));
            let times = (number * 1024 * 1024).div_ceil(event.len() as u64);
            vec![
                Step::Send(text[0].clone()),
                Step::Repeat { times, event },
                Step::Send(Bytes::from_static(b"data: [DONE]\n\n")),
            ]
        }
        ("keepalive", _) => vec![
            Step::Send(text[1].clone()),
            Step::Forever {
                every: Duration::from_millis(number.max(1)),
                event: Bytes::from_static(KEEP_ALIVE),
            },
        ],
        (fixture, _) => fixtures::sse_events(
            &fixtures::stream(fixture)
                .unwrap_or_else(|| fixtures::stream("text").unwrap_or_default()),
        )
        .into_iter()
        .map(Step::Send)
        .collect(),
    };
    steps.reverse();
    let guard = CloseGuard(shared.clone());
    let body = stream::unfold((steps, guard), |(mut steps, guard)| async move {
        loop {
            match steps.pop()? {
                Step::Send(bytes) => return Some((Ok(bytes), (steps, guard))),
                Step::Sleep(delay) => tokio::time::sleep(delay).await,
                Step::WaitForTest => {
                    if let Ok(permit) = guard.0.steps.acquire().await {
                        permit.forget();
                    }
                }
                Step::Reset => {
                    let error =
                        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock reset");
                    return Some((Err(error), (Vec::new(), guard)));
                }
                Step::Repeat { times, event } => {
                    if times > 1 {
                        steps.push(Step::Repeat {
                            times: times - 1,
                            event: event.clone(),
                        });
                    }
                    return Some((Ok(event), (steps, guard)));
                }
                Step::Forever { every, event } => {
                    tokio::time::sleep(every).await;
                    steps.push(Step::Forever {
                        every,
                        event: event.clone(),
                    });
                    return Some((Ok(event), (steps, guard)));
                }
            }
        }
    });
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response();
    response.headers_mut().insert(
        "x-generation-id",
        HeaderValue::from_static("gen-1754441342-hIkMo7SMi0ZecQw3oR4d"),
    );
    response
}

/// OpenRouter's error body for each status, as the real service words them.
fn error_for_status(status: u16) -> Response {
    match status {
        400 => raw_error(400, fixtures::error_400()),
        401 => openrouter_error(401, "User not found."),
        402 => openrouter_error(402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits"),
        403 => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": {"code": 403, "message": "Input was flagged by moderation",
                             "metadata": {"reasons": ["harassment"], "flagged_input": "...",
                                          "provider_name": "OpenAI", "model_slug": "openai/gpt-4o"}}})
            .to_string(),
        )
            .into_response(),
        404 => openrouter_error(404, "No endpoints found for mock/model."),
        429 => {
            let mut response = openrouter_error(429, "Rate limit exceeded: free-models-per-min.");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
            response
        }
        500 => openrouter_error(500, "Internal Server Error"),
        502 => raw_error(502, fixtures::error_provider().replace("\"code\":400", "\"code\":502").into()),
        503 => openrouter_error(503, "No available model provider that meets your routing requirements"),
        other => openrouter_error(other, "Mock error"),
    }
}

fn openrouter_error(status: u16, message: &str) -> Response {
    let body = json!({"error": {"message": message, "code": status}});
    raw_error(status, Bytes::from(body.to_string()))
}

fn raw_error(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn models(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    record(&shared, request).await;
    let behaviour = lock(&shared.models_behaviour).clone();
    match behaviour {
        ModelsBehaviour::Serve => {}
        ModelsBehaviour::Status(status) => return error_for_status(status),
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
    let mut response = json_response(Body::from(body));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn not_found(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    record(&shared, request).await;
    openrouter_error(404, "Not Found")
}
