//! The local gateway: every llm-proxy route on one port, with the same handlers and
//! layers the Lambda functions use, and API Gateway's WebSocket API emulated at `/ws`.
//! `app` builds it, `serve` runs it on a listener; the binary (`main.rs`) and the
//! in-process end-to-end tests both use these two.

mod in_flight;
mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use llm_proxy_shared::{AppState, layers};
use tokio::net::TcpListener;

pub use in_flight::InFlightLimit;

/// Every route of every function, behind the shared layers and the in-flight cap
/// (`MAX_CONCURRENT_REQUESTS`; on Lambda, reserved concurrency plays that part), and the
/// WebSocket emulation, for a gateway listening on `local_addr`.
pub fn app(state: Arc<AppState>, local_addr: SocketAddr) -> Router {
    let in_flight = InFlightLimit::new(state.config.local.max_concurrent_requests);
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

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // SSE is many small writes: without TCP_NODELAY, Nagle's algorithm holds an event
    // back until the previous one is acknowledged.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
