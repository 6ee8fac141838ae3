//! Non-streamed answers: the captured completion (whitespace padding and all), the
//! echo, padding while a model works, a broken connection, a late error.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::echo::Echo;
use super::errors;
use super::scenario::Behaviour;
use crate::fixtures;

pub async fn answer(request: &Value, behaviour: Behaviour) -> Response {
    match behaviour {
        Behaviour::Replay | Behaviour::LockStep => with_id(
            json(Body::from(fixtures::chat_completion())),
            fixtures::CHAT_COMPLETION_ID,
        ),
        Behaviour::Status(status) => errors::for_status(status),
        Behaviour::Html(status, padding) => errors::html_page(status, padding),
        Behaviour::InvalidJson => errors::invalid_json(),
        Behaviour::Stall(delay) => {
            tokio::time::sleep(delay).await;
            echo(request)
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
            json(Body::from_stream(stream::iter(parts)))
        }
        Behaviour::ErrorInBody(status) => {
            let body = json!({"error": {"code": status, "message": "Provider returned error",
                                        "metadata": {"provider_name": "Mock"}}});
            padded(2, Duration::from_millis(5), Bytes::from(body.to_string()))
        }
        Behaviour::EchoWithoutCost | Behaviour::EchoDated => {
            let mut echo = Echo::new(request);
            echo.with_cost = false;
            if behaviour == Behaviour::EchoDated {
                echo.dated();
            }
            with_id(json(Body::from(echo.completion())), echo.generation_id())
        }
        Behaviour::Big(bytes) => json(Body::from(big(bytes))),
        Behaviour::BigChunked(bytes) => {
            let answer = Bytes::from(big(bytes));
            let chunks: Vec<Result<Bytes, std::convert::Infallible>> = (0..answer.len())
                .step_by(64 * 1024)
                .map(|at| Ok(answer.slice(at..answer.len().min(at + 64 * 1024))))
                .collect();
            json(Body::from_stream(stream::iter(chunks)))
        }
        // Stream-only scenarios asked for a JSON answer get the ordinary one.
        _ => echo(request),
    }
}

fn big(bytes: usize) -> String {
    json!({"id": "gen-mock-big", "object": "chat.completion", "model": "mock/big",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "A".repeat(bytes)}}]})
    .to_string()
}

fn echo(request: &Value) -> Response {
    let echo = Echo::new(request);
    with_id(json(Body::from(echo.completion())), echo.generation_id())
}

/// `lines` of whitespace, one every `every`, then `answer`.
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
    with_id(json(Body::from_stream(body)), fixtures::CHAT_COMPLETION_ID)
}

pub fn json(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

pub fn with_id(mut response: Response, id: &str) -> Response {
    if let Ok(id) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-generation-id", id);
    }
    response
}
