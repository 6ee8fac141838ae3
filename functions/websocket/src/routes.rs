//! API Gateway's three routes. Each answers well inside API Gateway's 29 s: `$default`
//! validates, answers `ping`, `close` and every error itself, counts the request, and
//! hands an inference to the worker.

use bytes::Bytes;
use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use llm_proxy_shared::ClientIp;
use llm_proxy_shared::error::{ApiError, InternalError};
use llm_proxy_shared::rate_limit::{Admission, Scope};
use llm_proxy_shared::relay::{self, Call, Operation, Reserved};
use llm_proxy_shared::websocket::message::{self, ClientMessage, Refusal};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::invoker::Job;
use crate::outbox::Outbox;
use crate::{WebSocketApp, now_ms};

const ACCEPTED: fn() -> Value = || json!({"statusCode": 200});

fn client_ip(request: &ApiGatewayWebsocketProxyRequest) -> Result<ClientIp, ApiError> {
    request
        .request_context
        .identity
        .source_ip
        .as_deref()
        .and_then(ClientIp::from_source_ip)
        .ok_or(ApiError::Internal(InternalError::NoClientAddress))
}

/// API Gateway's id of this event (made here when it has none, as locally it always has).
pub fn request_id(request: &ApiGatewayWebsocketProxyRequest) -> String {
    match &request.request_context.request_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => llm_proxy_shared::request_id::fresh(),
    }
}

/// The answer refusing a connection: the error's status (429 or 503), its body, and
/// `Retry-After` when it has one.
fn refuse(error: &ApiError, request_id: &str) -> Value {
    refused(error);
    let mut headers = json!({"Content-Type": "application/json", "X-Request-Id": request_id});
    if let ApiError::RateLimited {
        retry_after_secs, ..
    } = error
    {
        headers["Retry-After"] = json!(retry_after_secs.to_string());
    }
    json!({"statusCode": error.status().as_u16(), "headers": headers,
           "body": error.body().to_string()})
}

/// `$connect`: the client's connection limit, then the cap on open connections.
pub async fn connect(
    app: &WebSocketApp,
    request: &ApiGatewayWebsocketProxyRequest,
    request_id: &str,
) -> Value {
    let ip = match client_ip(request) {
        Ok(ip) => ip,
        Err(error) => return refuse(&error, request_id),
    };
    let limiter = &app.state.rate_limiter;
    match limiter.check(ip, Scope::WsConnect).await {
        Ok(decision) if decision.allowed => {}
        Ok(decision) => {
            let error = decision.refusal();
            tracing::info!(route = "$connect", status = 429, "connection refused");
            return refuse(&error, request_id);
        }
        Err(error) => return refuse(&error, request_id),
    }
    let max = app.state.config.websocket.max_connections;
    let connected_at = u64::try_from(request.request_context.connected_at).unwrap_or_default();
    match limiter.open_connection(connected_at, max).await {
        Ok(true) => {
            tracing::info!(route = "$connect", status = 200, "connection accepted");
            ACCEPTED()
        }
        Ok(false) => {
            tracing::warn!(
                route = "$connect",
                status = 503,
                max,
                "connection refused: the service is full"
            );
            refuse(
                &ApiError::Unavailable {
                    message: format!(
                        "The proxy holds its maximum of {max} open WebSocket connections; retry later"
                    ),
                },
                request_id,
            )
        }
        Err(error) => refuse(&error, request_id),
    }
}

/// `$disconnect`: the connection no longer counts as open.
pub async fn disconnect(app: &WebSocketApp, request: &ApiGatewayWebsocketProxyRequest) -> Value {
    let connected_at = u64::try_from(request.request_context.connected_at).unwrap_or_default();
    app.state.rate_limiter.close_connection(connected_at).await;
    tracing::info!(
        route = "$disconnect",
        code = request.request_context.disconnect_status_code,
        "connection closed"
    );
    ACCEPTED()
}

/// `$default`: one client message.
pub async fn message(
    app: &WebSocketApp,
    request: &ApiGatewayWebsocketProxyRequest,
    request_id: &str,
) -> Value {
    let context = &request.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else {
        tracing::error!("a WebSocket message without a connection id");
        return json!({"statusCode": 400});
    };
    let endpoint = app.endpoint(request);
    let mut outbox = Outbox::new(&app.connections, &endpoint, connection_id, None, request_id);
    let reply = match understand(request) {
        Err(Refusal { id, error }) => {
            // A refused message costs an invocation and a post like any other: counted.
            let error = match count(app, request, Scope::Http).await {
                Ok(()) => error,
                Err(limited) => limited,
            };
            tracing::info!(route = "$default", error = %error, "message refused");
            reject(id.as_deref(), request_id, &error)
        }
        Ok(ClientMessage::Ping) => match count(app, request, Scope::Http).await {
            Ok(()) => message::heartbeat(now_ms()),
            Err(error) => reject(None, request_id, &error),
        },
        Ok(ClientMessage::Close { code, reason }) => {
            // The close message first, then the end of the connection.
            let _ = outbox.send(message::close(code, &reason)).await;
            outbox.close().await;
            tracing::info!(route = "$default", "close requested");
            return ACCEPTED();
        }
        Ok(ClientMessage::Inference { id, data, stream }) => {
            match admit(app, request, &data, stream).await {
                Err(error) => {
                    tracing::info!(
                        route = "$default",
                        status = error.status().as_u16(),
                        "inference refused"
                    );
                    reject(Some(&id), request_id, &error)
                }
                Ok(reserved) => {
                    let job = Job {
                        connection_id: connection_id.to_owned(),
                        endpoint: endpoint.clone(),
                        message_id: context
                            .message_id
                            .clone()
                            .or_else(|| context.request_id.clone())
                            .unwrap_or_else(|| id.clone()),
                        id,
                        stream,
                        source_ip: context.identity.source_ip.clone().unwrap_or_default(),
                        data,
                        reserved,
                        request_id: request_id.to_owned(),
                    };
                    match app.invoker.invoke(&job).await {
                        Ok(()) => {
                            tracing::info!(route = "$default", "inference handed to the worker");
                            return ACCEPTED();
                        }
                        Err(error) => {
                            tracing::error!(error = %llm_proxy_shared::error::Chain(&error), "the worker could not be started");
                            if let Some(reservation) = job.reserved.reservation {
                                app.state.rate_limiter.settle(reservation, 0.0).await;
                            }
                            let error = ApiError::Unavailable {
                                message: "The proxy could not start the inference; retry shortly"
                                    .into(),
                            };
                            message::error(Some(&job.id), &job.request_id, error.error_object())
                        }
                    }
                }
            }
        }
    };
    let _ = outbox.send(reply).await;
    ACCEPTED()
}

/// The client message, read: API Gateway delivers a binary frame base64-encoded, and
/// the protocol is JSON text frames.
fn understand(request: &ApiGatewayWebsocketProxyRequest) -> Result<ClientMessage, Refusal> {
    if request.is_base64_encoded {
        return Err(Refusal {
            id: None,
            error: ApiError::validation("message", "Messages must be JSON text frames, not binary"),
        });
    }
    ClientMessage::parse(request.body.as_deref().unwrap_or_default())
}

/// Validates an inference request, then counts it and reserves its worst case, as
/// the HTTP routes do; a request refused as invalid is counted too.
async fn admit(
    app: &WebSocketApp,
    request: &ApiGatewayWebsocketProxyRequest,
    data: &RawValue,
    stream: bool,
) -> Result<Reserved, ApiError> {
    let admission = Admission::new(app.state.rate_limiter.clone(), client_ip(request)?);
    let raw = Bytes::copy_from_slice(data.get().as_bytes());
    match Call::new(raw, chat_operation(stream), &app.state.config.guard) {
        Ok(call) => relay::reserve(&app.state, &call, &admission).await,
        Err(invalid) => {
            let _unreserved = admission.admit(0.0).await?;
            Err(invalid)
        }
    }
}

/// The chat operation a WebSocket request is: streamed when it asks to be.
pub fn chat_operation(stream: bool) -> &'static Operation {
    let path = if stream {
        llm_proxy_shared::routes::INFERENCE_STREAM
    } else {
        llm_proxy_shared::routes::CHAT_COMPLETIONS
    };
    Operation::at(path).unwrap_or(&relay::OPERATIONS[0])
}

/// A refusal, in the `Refusals` metric as an HTTP refusal is.
fn refused(error: &ApiError) {
    if let Some(refusal) = error.refusal() {
        llm_proxy_shared::metrics::refused(refusal);
    }
}

/// The `error` message refusing a client message, counted as a refusal.
fn reject(id: Option<&str>, request_id: &str, error: &ApiError) -> String {
    refused(error);
    message::error(id, request_id, error.error_object())
}

/// Counts one message against the client's limits.
async fn count(
    app: &WebSocketApp,
    request: &ApiGatewayWebsocketProxyRequest,
    scope: Scope,
) -> Result<(), ApiError> {
    let ip = client_ip(request)?;
    let decision = app.state.rate_limiter.check(ip, scope).await?;
    if decision.allowed {
        Ok(())
    } else {
        Err(decision.refusal())
    }
}
