//! The emulation's Management API: `POST`, `GET` and `DELETE /@connections/{id}` (also
//! under a stage prefix), answered as API Gateway answers them, errors included
//! (`GoneException` 410 for an unknown or closed connection), so the real
//! `aws-sdk-apigatewaymanagement` client works against it unchanged. On AWS the API sits
//! behind IAM; here only callers on this host are served.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use llm_proxy_shared::websocket::message::MESSAGE_LIMIT;
use serde_json::json;

use super::Emulation;
use super::registry::{Connection, Outgoing};

/// An error as API Gateway's Management API writes it: the type in
/// `x-amzn-ErrorType` (which the SDK reads), a message in the body.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", kind),
            ("content-type", "application/json"),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn gone() -> Response {
    error(StatusCode::GONE, "GoneException", "Gone")
}

/// Only this host may call: loopback, or the gateway's own address.
fn allowed(emulation: &Emulation, peer: SocketAddr) -> bool {
    peer.ip().is_loopback() || peer.ip() == emulation.own_ip
}

fn forbidden() -> Response {
    error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden")
}

type Params = Path<HashMap<String, String>>;

/// The connection a call names, or the answer that refuses the call.
fn find(
    emulation: &Emulation,
    peer: SocketAddr,
    params: &HashMap<String, String>,
) -> Result<Arc<Connection>, Box<Response>> {
    if !allowed(emulation, peer) {
        return Err(Box::new(forbidden()));
    }
    let id = params.get("id").map_or("", String::as_str);
    emulation.registry.get(id).ok_or_else(|| Box::new(gone()))
}

/// `PostToConnection`: the body, as one message. The caller is checked before its body
/// is read, and the body is read within `BODY_READ_TIMEOUT_MS` and the message limit.
pub async fn post(
    State(emulation): State<Arc<Emulation>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(params): Params,
    body: Body,
) -> Response {
    let connection = match find(&emulation, peer, &params) {
        Ok(connection) => connection,
        Err(refusal) => return *refusal,
    };
    let read = tokio::time::timeout(
        emulation.body_read_timeout,
        axum::body::to_bytes(body, MESSAGE_LIMIT),
    )
    .await;
    let body = match read {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeException",
                "Message too long",
            );
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                "Request timed out",
            );
        }
    };
    let outgoing = match String::from_utf8(body.to_vec()) {
        Ok(text) => Outgoing::Text(text),
        Err(bytes) => Outgoing::Binary(bytes.into_bytes()),
    };
    // A slow reader slows its sender, up to a point: a post answers within
    // QUEUE_WAIT, delivered or throttled, never after the sender has given up on it
    // (which would make it send the message again).
    match tokio::time::timeout(QUEUE_WAIT, connection.sender.send(outgoing)).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(_)) => gone(),
        Err(_) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "The client is not reading its messages",
        ),
    }
}

/// How long a post waits for room in a socket's queue.
const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// `GetConnection`: when it opened, who it is, when it was last active.
pub async fn get(
    State(emulation): State<Arc<Emulation>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(params): Params,
) -> Response {
    let connection = match find(&emulation, peer, &params) {
        Ok(connection) => connection,
        Err(refusal) => return *refusal,
    };
    let iso = |ms: u64| {
        humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
            .to_string()
    };
    let mut identity = json!({ "sourceIp": connection.source_ip.to_string() });
    if let Some(agent) = &connection.user_agent {
        identity["userAgent"] = json!(agent);
    }
    let last_active = connection
        .last_active
        .load(std::sync::atomic::Ordering::Relaxed);
    (
        [("content-type", "application/json")],
        json!({"connectedAt": iso(connection.connected_at), "identity": identity,
               "lastActiveAt": iso(last_active)})
        .to_string(),
    )
        .into_response()
}

/// `DeleteConnection`: close it.
pub async fn delete(
    State(emulation): State<Arc<Emulation>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(params): Params,
) -> Response {
    let connection = match find(&emulation, peer, &params) {
        Ok(connection) => connection,
        Err(refusal) => return *refusal,
    };
    match connection.sender.send(Outgoing::Close).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => gone(),
    }
}
