//! The local gateway: every llm-proxy route on one port, with the same handlers and
//! layers the Lambda functions use.

mod in_flight;

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::serve::ListenerExt;
use llm_proxy_shared::{AppState, Config, layers, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            #[expect(clippy::print_stderr, reason = "start-up failures go to the terminal")]
            {
                eprintln!("local-gateway: {message}");
            }
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => return Err(format!("could not read .env: {e}")),
    }
    let config = Config::from_env().map_err(|e| e.to_string())?;
    telemetry::init(&config);
    let state = AppState::new(config).await.map_err(|e| e.to_string())?;
    let config = &state.config;

    let routes = inference::router(state.clone())
        .merge(models::router(state.clone()))
        .merge(stream::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            in_flight::InFlightLimit::new(config.max_concurrent_requests),
            in_flight::limit,
        ));
    let app = layers::apply(routes, &state);

    let listener = tokio::net::TcpListener::bind((config.host, config.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    #[expect(
        clippy::print_stdout,
        reason = "tells the person who started it where to go"
    )]
    {
        println!(
            "llm-proxy local gateway listening on http://{addr} (upstream {}, API key {})",
            state.openrouter.base_url(),
            if state.openrouter.has_key() {
                "set"
            } else {
                "missing: inference answers 503"
            },
        );
    }
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
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
