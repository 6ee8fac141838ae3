//! A stand-in for Lambda's Invoke API that records asynchronous invocations and
//! answers 202 as Lambda does, so a test can play the part of Lambda's event queue:
//! `cargo lambda watch` runs invocations one at a time and synchronously, so a
//! function invoking itself there would wait on itself.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// One recorded invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    /// `X-Amz-Invocation-Type`: `Event` for an asynchronous one.
    pub invocation_type: Option<String>,
    pub payload: Bytes,
}

#[derive(Default)]
struct Recorded {
    invocations: Mutex<Vec<Invocation>>,
}

pub struct RecordingLambdaApi {
    /// What to set `AWS_ENDPOINT_URL_LAMBDA` to.
    pub endpoint: String,
    recorded: Arc<Recorded>,
    server: tokio::task::JoinHandle<()>,
}

impl RecordingLambdaApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let recorded = Arc::new(Recorded::default());
        let app = Router::new()
            .route(
                "/2015-03-31/functions/{function}/invocations",
                post(invoked),
            )
            .with_state(recorded.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            recorded,
            server,
        })
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.recorded
            .invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for RecordingLambdaApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn invoked(
    State(recorded): State<Arc<Recorded>>,
    Path(function): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> impl IntoResponse {
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    recorded
        .invocations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Invocation {
            function,
            invocation_type,
            payload,
        });
    StatusCode::ACCEPTED
}
