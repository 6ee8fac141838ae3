//! Serving the app on a listener with a timeout or a cap on every edge a client could
//! hold open (`docs/configuration.md`, "Local gateway"): at most `MAX_CONNECTIONS`
//! connections (more wait in the listen queue), a request head within
//! `HEADER_READ_TIMEOUT_MS`, and no answer left unread for longer than
//! `WRITE_TIMEOUT_MS`. The body's deadline is the chat routes' own (`JsonBody`); a
//! stream's is the relay's, which runs whether or not the client reads.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use llm_proxy_shared::config::LocalConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

use crate::refusals::ParseRefusals;

/// How long in-flight connections get to finish once shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    edges: &LocalConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = edges.max_connections;
    let slots = Arc::new(Semaphore::new(max as usize));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(edges.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // A free slot first: beyond the cap, new clients wait in the kernel's queue
        // rather than in the proxy's memory.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, or a connection reset before it was taken:
                // the listener itself is fine.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // SSE is many small writes: without TCP_NODELAY, Nagle's algorithm holds an
        // event back until the previous one is acknowledged.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(edges.write_timeout));
        let io = TokioIo::new(ParseRefusals::new(Box::pin(stream)));
        let service = app
            .clone()
            .map_request(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = http
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stopping.changed() => {
                    // Finish the request in progress, take no more.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    let _ = stop.send(true);
    // Every slot back means every connection has ended.
    if tokio::time::timeout(DRAIN, slots.acquire_many(max))
        .await
        .is_err()
    {
        tracing::info!("connections still open after {DRAIN:?}; stopping anyway");
    }
    Ok(())
}
