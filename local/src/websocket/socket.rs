//! One client connection at `/ws`, with API Gateway's semantics: `$connect` decides
//! before the upgrade (a refusal is an HTTP answer), each message is a `$default`
//! event of its own, the connection ends with `$disconnect`; a frame over 32 KB or a
//! message over 128 KB closes it with 1009, and so do 10 minutes of silence (1001)
//! and 2 hours (1001).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Extension;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, StatusCode};
use llm_proxy_shared::request_id::RequestId;
use llm_proxy_shared::websocket::message::{FRAME_LIMIT, MESSAGE_LIMIT};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep_until};

use super::events::{self, Connection as Facts};
use super::registry::{Connection, Outgoing};
use super::{Emulation, now_ms, random_id};

/// Messages the Management API may queue for one socket before a sender waits.
const QUEUE: usize = 64;
/// `$default` invocations one connection may have running at once; while they run,
/// its next messages wait unread (a flood from a client that does not read its
/// replies backs up into its own socket, not into the gateway's memory).
const RUNNING: usize = 16;
const READ_BUFFER: usize = 4 * 1024;

pub async fn upgrade(
    State(emulation): State<Arc<Emulation>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = random_id(15);
    let facts = Facts {
        id: &id,
        connected_at: now_ms(),
        source_ip: peer.ip(),
    };
    let answer = emulation
        .app
        .handle(events::connect(
            &emulation.api,
            &facts,
            &headers,
            request_id
                .as_ref()
                .and_then(|Extension(RequestId(id))| id.to_str().ok()),
        ))
        .await;
    if let Some(refusal) = refusal(&answer) {
        return refusal;
    }
    let connected_at = facts.connected_at;
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    upgrade
        .max_frame_size(FRAME_LIMIT)
        .max_message_size(MESSAGE_LIMIT)
        // tungstenite allocates its read buffer up front (128 KiB by default): small,
        // so that a thousand idle connections cost little; messages still reach 128 KB.
        .read_buffer_size(READ_BUFFER)
        // Each message is written as it is sent; nothing gathers in a write buffer.
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let (sender, queue) = mpsc::channel(QUEUE);
            let connection = Connection {
                sender,
                connected_at,
                source_ip: peer.ip(),
                user_agent,
                last_active: Arc::new(AtomicU64::new(connected_at)),
            };
            serve(emulation, id, connection, socket, queue).await;
        })
}

/// A `$connect` answer other than 200, as the HTTP answer API Gateway gives the client.
fn refusal(answer: &Value) -> Option<Response> {
    let status = answer["statusCode"].as_u64().unwrap_or(500);
    if status == 200 {
        return None;
    }
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(
        answer["body"].as_str().unwrap_or_default().to_owned(),
    ));
    *response.status_mut() = status;
    if let Some(headers) = answer["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(http::HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    Some(response.into_response())
}

async fn serve(
    emulation: Arc<Emulation>,
    id: String,
    connection: Connection,
    mut socket: WebSocket,
    mut queue: mpsc::Receiver<Outgoing>,
) {
    let facts = Facts {
        id: &id,
        connected_at: connection.connected_at,
        source_ip: connection.source_ip,
    };
    let last_active = connection.last_active.clone();
    emulation.registry.insert(id.clone(), connection);
    let touch = |now: u64| last_active.store(now, std::sync::atomic::Ordering::Relaxed);
    let lifetime_ends = Instant::now() + emulation.max_duration;
    let mut idle_ends = Instant::now() + emulation.idle_timeout;
    let running = Arc::new(Semaphore::new(RUNNING));
    let mut place: Option<OwnedSemaphorePermit> = None;
    let (code, reason): (u16, String) = loop {
        tokio::select! {
            taken = running.clone().acquire_owned(), if place.is_none() => {
                place = taken.ok();
            }
            incoming = socket.recv(), if place.is_some() => {
                idle_ends = Instant::now() + emulation.idle_timeout;
                touch(now_ms());
                let (body, binary) = match incoming {
                    Some(Ok(Message::Text(text))) => (text.to_string(), false),
                    Some(Ok(Message::Binary(bytes))) => (BASE64.encode(&bytes), true),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        break frame.map_or((1005, "Client-side close frame status not set".into()),
                                           |f| (f.code, f.reason.to_string()));
                    }
                    Some(Err(error)) if too_big(&error) => {
                        close(&mut socket, close_code::SIZE, "Message too big").await;
                        break (close_code::SIZE, "Message too big".into());
                    }
                    Some(Err(_)) | None => break (1006, "Connection lost".into()),
                };
                let event = events::message(&emulation.api, &facts, body, binary);
                let app = emulation.app.clone();
                let held = place.take();
                // API Gateway invokes $default once per message, concurrently.
                tokio::spawn(async move {
                    app.handle(event).await;
                    drop(held);
                });
            }
            outgoing = queue.recv() => match outgoing {
                Some(Outgoing::Text(text)) => {
                    idle_ends = Instant::now() + emulation.idle_timeout;
                    touch(now_ms());
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break (1006, "Connection lost".into());
                    }
                }
                Some(Outgoing::Binary(bytes)) => {
                    idle_ends = Instant::now() + emulation.idle_timeout;
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        break (1006, "Connection lost".into());
                    }
                }
                Some(Outgoing::Close) | None => {
                    close(&mut socket, close_code::NORMAL, "").await;
                    break (close_code::NORMAL, "Connection deleted".into());
                }
            },
            () = sleep_until(idle_ends) => {
                close(&mut socket, close_code::AWAY, "Going away").await;
                break (close_code::AWAY, "Idle timeout".into());
            }
            () = sleep_until(lifetime_ends) => {
                close(&mut socket, close_code::AWAY, "Going away").await;
                break (close_code::AWAY, "Connection reached its maximum duration".into());
            }
        }
    };
    emulation.registry.remove(&id);
    let event = events::disconnect(&emulation.api, &facts, code, &reason);
    emulation.app.handle(event).await;
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Whether reading failed because a frame or message was over the limit.
fn too_big(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|cause| cause.downcast_ref::<tungstenite::Error>())
        .is_some_and(|cause| matches!(cause, tungstenite::Error::Capacity(_)))
}
