//! The local gateway: every llm-proxy route on one port, with the same handlers and
//! layers the Lambda functions use, and API Gateway's WebSocket API emulated at `/ws`.
//! `app` builds it, `serve` runs it on a listener with every edge bounded; the binary
//! (`main.rs`) and the in-process end-to-end tests both use these two.

mod fair_share;
mod in_flight;
mod refusals;
mod serve;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use llm_proxy_shared::{AppState, layers};

pub use in_flight::InFlightLimit;

/// Every route of every function, behind the shared layers and the in-flight cap
/// (`MAX_CONCURRENT_REQUESTS`; on Lambda, reserved concurrency plays that part), and the
/// WebSocket emulation, for a gateway listening on `local_addr`.
pub fn app(state: Arc<AppState>, local_addr: SocketAddr) -> Router {
    let local = &state.config.local;
    let in_flight = InFlightLimit::new(
        local.max_concurrent_requests,
        local.max_concurrent_requests_per_client,
        local.body_read_timeout,
    );
    let routes = inference::router(state.clone())
        .merge(models::router(state.clone()))
        .merge(stream::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            in_flight,
            in_flight::limit,
        ))
        .merge(websocket::routes(&state, local_addr));
    layers::apply(routes, &state)
}

pub use serve::serve;
