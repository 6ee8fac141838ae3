//! Serving the app on a listener with a timeout or a cap on every edge a client could
//! hold open (`docs/configuration.md`, "Local gateway"): at most `MAX_CONNECTIONS`
//! connections (more wait in the listen queue), of which one client holds at most
//! `MAX_CONNECTIONS_PER_CLIENT` (more are answered 503 at once), a request head within
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
use llm_proxy_shared::{ApiError, ClientIp};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

use crate::fair_share::FairShare;
use crate::refusals::{ParseRefusals, answer};

/// How long an over-share connection gets to send its request head, and to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

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
    let shares = FairShare::new(edges.max_connections_per_client);
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
        let Some(share) = shares.take(ClientIp::from_socket(peer)) else {
            drop(slot);
            tokio::spawn(refuse_over_share(stream, shares.per_client()));
            continue;
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
            drop((slot, share));
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

/// A connection beyond its client's share: a 503 in the error shape after its request
/// head (HTTP clients take no answer before they have asked), or after
/// [`REFUSAL_TIME`] if the head never comes, then closed. It holds no slot meanwhile.
async fn refuse_over_share(mut stream: tokio::net::TcpStream, per_client: u32) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let error = ApiError::Unavailable {
        message: format!(
            "You hold {per_client} connections to this proxy, your share; close one and retry"
        ),
    };
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let refusal = answer(&error, date.as_bytes());
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(&refusal).await?;
        stream.shutdown().await?;
        // Read what else the client sent until it closes: closing with data unread
        // would reset the connection, and the client might never see the answer.
        while stream.read(&mut buffer).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
