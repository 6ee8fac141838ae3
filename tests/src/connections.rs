//! A stand-in for API Gateway's Management API that records what the proxy posts to
//! each connection, for tests of the WebSocket function without a socket (the
//! Lambda path, repeated deliveries). It answers as API Gateway does, and can be told
//! to answer `GoneException` (410) or `LimitExceededException` (429).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

/// How the stand-in answers posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    /// Every connection is gone.
    Gone,
    /// Throttle this many posts, then accept.
    Throttle(u32),
}

#[derive(Default)]
struct Recorded {
    posts: Mutex<Vec<(String, String)>>,
    deletes: Mutex<Vec<String>>,
    answer: Mutex<Option<Answer>>,
    arrivals: tokio::sync::Notify,
}

pub struct RecordingConnections {
    /// What to set `WS_MANAGEMENT_ENDPOINT` to.
    pub endpoint: String,
    recorded: Arc<Recorded>,
    server: tokio::task::JoinHandle<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RecordingConnections {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let recorded = Arc::new(Recorded::default());
        let app = Router::new()
            .route("/@connections/{id}", post(posted).delete(deleted))
            .route(
                "/{stage}/@connections/{id}",
                post(posted_staged).delete(deleted_staged),
            )
            .with_state(recorded.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            endpoint: format!("http://{addr}/test"),
            recorded,
            server,
        })
    }

    pub fn set_answer(&self, answer: Answer) {
        *lock(&self.recorded.answer) = Some(answer);
    }

    /// `(connection id, message)` of every accepted post, in order.
    pub fn posts(&self) -> Vec<(String, Value)> {
        lock(&self.recorded.posts)
            .iter()
            .map(|(id, body)| {
                let message = serde_json::from_str(body).unwrap_or(Value::String(body.clone()));
                (id.clone(), message)
            })
            .collect()
    }

    pub fn deletes(&self) -> Vec<String> {
        lock(&self.recorded.deletes).clone()
    }

    /// Waits until `done` holds of the posts so far; false if `within` passes first.
    pub async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&[(String, Value)]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.recorded.arrivals.notified();
            if done(&self.posts()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return done(&self.posts());
            }
        }
    }
}

impl Drop for RecordingConnections {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, kind: &'static str) -> Response {
    (status, [("x-amzn-errortype", kind)], "{\"message\":null}").into_response()
}

/// The answer this post gets, counting down a throttle.
fn answer(recorded: &Recorded) -> Answer {
    let mut answer = lock(&recorded.answer);
    match *answer {
        Some(Answer::Throttle(n)) if n > 0 => {
            *answer = Some(Answer::Throttle(n - 1));
            Answer::Throttle(n)
        }
        Some(Answer::Gone) => Answer::Gone,
        _ => Answer::Accept,
    }
}

async fn posted(
    State(recorded): State<Arc<Recorded>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let response = match answer(&recorded) {
        Answer::Gone => error(StatusCode::GONE, "GoneException"),
        Answer::Throttle(_) => error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException"),
        Answer::Accept => {
            lock(&recorded.posts).push((id, String::from_utf8_lossy(&body).into_owned()));
            StatusCode::OK.into_response()
        }
    };
    recorded.arrivals.notify_waiters();
    response
}

async fn posted_staged(
    state: State<Arc<Recorded>>,
    Path((_stage, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    posted(state, Path(id), body).await
}

async fn deleted(State(recorded): State<Arc<Recorded>>, Path(id): Path<String>) -> Response {
    lock(&recorded.deletes).push(id);
    recorded.arrivals.notify_waiters();
    StatusCode::NO_CONTENT.into_response()
}

async fn deleted_staged(
    state: State<Arc<Recorded>>,
    Path((_stage, id)): Path<(String, String)>,
) -> Response {
    deleted(state, Path(id)).await
}
