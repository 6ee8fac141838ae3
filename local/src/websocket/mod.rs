//! API Gateway's WebSocket API, emulated on the local gateway: `ws://HOST:PORT/ws`
//! hands the same events to the same `WebSocketApp` the Lambda function runs, starts
//! its worker asynchronously as Lambda would, and serves the Management API the
//! worker posts replies to (`docs/websocket.md`).
//!
//! Layout: `socket` (one client connection), `events` (API Gateway's event shapes),
//! `registry` (the open connections), `management` (`@connections`).

mod events;
mod management;
mod registry;
mod socket;

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use llm_proxy_shared::{AppState, routes};
use websocket::{Connections, Invoker, WebSocketApp};

/// The stage name the emulation uses where API Gateway names its stage.
const STAGE: &str = "local";

pub struct Emulation {
    app: Arc<WebSocketApp>,
    registry: registry::Registry,
    api: events::Api,
    idle_timeout: Duration,
    max_duration: Duration,
    /// How long a `@connections` caller may take to send its body.
    body_read_timeout: Duration,
    /// Besides loopback, the one address allowed to call `@connections`.
    own_ip: IpAddr,
}

/// The `/ws` and `@connections` routes for a gateway listening on `local_addr`.
pub fn routes(state: &Arc<AppState>, local_addr: SocketAddr) -> Router {
    // Replies reach this gateway over loopback when it listens on every interface.
    let reachable = match local_addr.ip() {
        ip if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), local_addr.port())
        }
        _ => local_addr,
    };
    let endpoint = state
        .config
        .websocket
        .management_endpoint
        .clone()
        .unwrap_or_else(|| format!("http://{reachable}/{STAGE}"));
    // The Management API client signs its requests; the emulation never checks the
    // signature, and nothing here reaches AWS.
    let base = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
        .region(aws_sdk_apigatewaymanagement::config::Region::new("local"))
        .http_client(llm_proxy_shared::aws::http_client())
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "local-gateway",
        ));
    let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let app = Arc::new(WebSocketApp::new(
        state.clone(),
        Connections::new(base),
        Invoker::Queue(jobs),
        Some(endpoint),
    ));
    // Lambda's asynchronous invocation: each job runs on its own, the way a worker
    // invocation would, and reads its event from JSON as Lambda delivers it.
    let worker = app.clone();
    tokio::spawn(async move {
        while let Some(job) = queue.recv().await {
            let app = worker.clone();
            tokio::spawn(async move {
                match serde_json::from_slice(&job) {
                    Ok(event) => {
                        app.handle(event).await;
                    }
                    Err(error) => tracing::error!(%error, "unreadable worker event"),
                }
            });
        }
    });
    let emulation = Arc::new(Emulation {
        app,
        registry: registry::Registry::default(),
        api: events::Api {
            domain: reachable.to_string(),
            stage: STAGE,
        },
        idle_timeout: state.config.local.ws_idle_timeout,
        max_duration: state.config.local.ws_max_duration,
        body_read_timeout: state.config.local.body_read_timeout,
        own_ip: local_addr.ip(),
    });
    let connections = format!("/{}/{{id}}", routes::CONNECTIONS);
    let staged = format!("/{{stage}}/{}/{{id}}", routes::CONNECTIONS);
    let management = post(management::post)
        .get(management::get)
        .delete(management::delete);
    Router::new()
        .route(routes::WEBSOCKET, get(socket::upgrade))
        .route(&connections, management.clone())
        .route(&staged, management)
        .with_state(emulation)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An id in API Gateway's style (`GXLKJfX4FiACG1w=`): `len` letters and digits and a
/// trailing `=`. Unique per process; unguessable enough for ids that only loopback
/// callers can use.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut id = String::with_capacity(len + 1);
    let mut bits = 0u64;
    for i in 0..len {
        if i % 10 == 0 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
            bits = hasher.finish();
        }
        id.push(char::from(ALPHABET[(bits % 62) as usize]));
        bits /= 62;
    }
    id.push('=');
    id
}
