//! A Lambda Runtime API of the tests' own, on 127.0.0.1, serving a function binary one
//! event at a time and handing back the response exactly as the function wrote it,
//! chunk by chunk as it arrives. `cargo lambda` turns a streamed response back into
//! HTTP; this shows the bytes themselves: for a streaming function, the metadata
//! prelude, eight NUL bytes, then the body, which is what API Gateway's response
//! streaming reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use tokio::sync::{Mutex, mpsc};

use crate::gateway::workspace_root;

/// The delimiter between a streamed response's metadata and its body.
pub const PRELUDE_DELIMITER: [u8; 8] = [0; 8];

/// One response a function posted: its headers, and its body as it arrives.
pub struct Response {
    /// `Lambda-Runtime-Function-Response-Mode` (`streaming` for a streamed response).
    pub mode: Option<String>,
    pub content_type: Option<String>,
    /// Whether it went to `/error` (a failed invocation) rather than `/response`.
    pub error: bool,
    pub chunks: mpsc::UnboundedReceiver<Bytes>,
}

impl Response {
    /// The whole body, once the function has finished writing it.
    pub async fn body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunks.recv().await {
            body.extend_from_slice(&chunk);
        }
        body
    }
}

/// Splits a streamed body into its metadata prelude (parsed) and the payload after it.
pub fn split_prelude(body: &[u8]) -> Option<(serde_json::Value, &[u8])> {
    let at = body
        .windows(PRELUDE_DELIMITER.len())
        .position(|w| w == PRELUDE_DELIMITER)?;
    let prelude = serde_json::from_slice(&body[..at]).ok()?;
    Some((prelude, &body[at + PRELUDE_DELIMITER.len()..]))
}

struct Shared {
    events: Mutex<mpsc::UnboundedReceiver<(String, String)>>,
    responses: mpsc::UnboundedSender<Response>,
    /// When the function first asked for an event: its init was over.
    first_poll: std::sync::OnceLock<std::time::Instant>,
    polled: tokio::sync::Notify,
}

pub struct RuntimeApi {
    /// What to set `AWS_LAMBDA_RUNTIME_API` to.
    pub address: String,
    events: mpsc::UnboundedSender<(String, String)>,
    responses: mpsc::UnboundedReceiver<Response>,
    next_id: u64,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let address = listener.local_addr()?.to_string();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (responses_tx, responses_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events: Mutex::new(events_rx),
            responses: responses_tx,
            first_poll: std::sync::OnceLock::new(),
            polled: tokio::sync::Notify::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(|s, h, b| posted(s, h, b, false)),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(|s, h, b| posted(s, h, b, true)),
            )
            .route(
                "/2018-06-01/runtime/init/error",
                post(|s, h, b| posted(s, h, b, true)),
            )
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            events: events_tx,
            responses: responses_rx,
            next_id: 0,
            shared,
            server,
        })
    }

    /// Hands the function `event` and returns its response as it starts to arrive
    /// (None if the function posted nothing within `within`).
    pub async fn invoke(&mut self, event: String, within: Duration) -> Option<Response> {
        self.next_id += 1;
        let id = format!("test-invocation-{}", self.next_id);
        self.events.send((id, event)).ok()?;
        tokio::time::timeout(within, self.responses.recv())
            .await
            .ok()
            .flatten()
    }

    /// When the function first asked for an event (its init over), waiting up to `within`.
    pub async fn first_poll(&self, within: Duration) -> Option<std::time::Instant> {
        let polled = self.shared.polled.notified();
        if let Some(at) = self.shared.first_poll.get() {
            return Some(*at);
        }
        let _ = tokio::time::timeout(within, polled).await;
        self.shared.first_poll.get().copied()
    }

    /// The environment Lambda gives a function, pointed at this API.
    pub fn function_env(&self, function: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", function),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.first_poll.set(std::time::Instant::now()).is_ok() {
        shared.polled.notify_waiters();
    }
    // Long-polls, as Lambda's does: the function waits here between invocations.
    let Some((id, event)) = shared.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 900_000;
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:test".to_owned(),
            ),
        ],
        event,
    )
        .into_response()
}

async fn posted(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
    error: bool,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (tx, chunks) = mpsc::unbounded_channel();
    let _ = shared.responses.send(Response {
        mode: header("lambda-runtime-function-response-mode"),
        content_type: header("content-type"),
        error,
        chunks,
    });
    let mut stream = body.into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        if tx.send(chunk).is_err() {
            break;
        }
    }
    StatusCode::ACCEPTED
}

/// Builds `binary` (a function crate's binary) in the debug profile and returns its
/// path: the same build `cargo lambda watch` makes, so usually already done.
pub fn build_function(binary: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", binary, "--bin", binary])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    Ok(target.join("debug").join(binary))
}
