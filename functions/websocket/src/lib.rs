//! The WebSocket API's function (`docs/websocket.md`): API Gateway's `$connect`,
//! `$default` and `$disconnect` events, and the worker events `$default` makes. The
//! same `WebSocketApp` runs under the Lambda runtime (`main.rs`) and behind the local
//! gateway's emulation; what differs is handed in: where replies go (`Connections`)
//! and how the worker is started (`Invoker`).
//!
//! Layout: `routes` (the three API Gateway routes), `worker` (one inference, streamed
//! to the connection), `outbox` (sending to one connection), `connections` (the
//! Management API), `invoker` (starting the worker).

mod connections;
mod invoker;
mod outbox;
mod routes;
mod worker;

use std::sync::Arc;

use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use llm_proxy_shared::AppState;
use serde_json::{Value, json};
use tracing::Instrument;

pub use connections::{Connections, PostError};
pub use invoker::{InvokeError, Invoker, JOB_KEY, Job};

pub struct WebSocketApp {
    state: Arc<AppState>,
    connections: Connections,
    invoker: Invoker,
    /// The Management API endpoint in place of the event's (`WS_MANAGEMENT_ENDPOINT`,
    /// or the local gateway's own).
    endpoint: Option<String>,
}

impl WebSocketApp {
    pub fn new(
        state: Arc<AppState>,
        connections: Connections,
        invoker: Invoker,
        endpoint: Option<String>,
    ) -> Self {
        Self {
            state,
            connections,
            invoker,
            endpoint,
        }
    }

    /// Handles one event and returns what the integration answers API Gateway
    /// (`{"statusCode": ...}`; only `$connect`'s status reaches the client).
    /// Every log line of an event carries the client message's `request_id` (the id its
    /// error messages carry) in its span.
    pub async fn handle(&self, event: Value) -> Value {
        if let Some(job) = event.get(JOB_KEY) {
            match serde_json::from_value::<Job>(job.clone()) {
                Ok(job) => {
                    let span = tracing::info_span!("request", request_id = %job.request_id);
                    worker::run(self, job).instrument(span).await;
                }
                Err(error) => tracing::error!(%error, "unreadable worker event"),
            }
            return json!({});
        }
        let request = match serde_json::from_value::<ApiGatewayWebsocketProxyRequest>(event) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(%error, "unreadable WebSocket event");
                return json!({"statusCode": 400});
            }
        };
        let request_id = routes::request_id(&request);
        let span = tracing::info_span!("request", request_id = %request_id);
        async {
            match request.request_context.route_key.as_deref() {
                Some("$connect") => routes::connect(self, &request, &request_id).await,
                Some("$disconnect") => routes::disconnect(self, &request).await,
                _ => routes::message(self, &request, &request_id).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Where to send a job's replies: the configured endpoint, else the one `$default`
    /// put in the job.
    fn job_endpoint<'a>(&'a self, job: &'a Job) -> &'a str {
        self.endpoint.as_deref().unwrap_or(&job.endpoint)
    }

    /// Where the Management API of this event's API and stage is:
    /// `https://{domainName}/{stage}`, unless configured otherwise.
    fn endpoint(&self, request: &ApiGatewayWebsocketProxyRequest) -> String {
        if let Some(endpoint) = &self.endpoint {
            return endpoint.clone();
        }
        let context = &request.request_context;
        format!(
            "https://{}/{}",
            context.domain_name.as_deref().unwrap_or_default(),
            context.stage.as_deref().unwrap_or_default()
        )
    }
}

/// Unix milliseconds, as heartbeats carry them.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
