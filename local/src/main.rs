//! `local-gateway`: reads `.env` and the environment, then serves every route on
//! `HOST:PORT` until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use llm_proxy_shared::config::ConfigError;
use llm_proxy_shared::openrouter::ClientBuildError;
use llm_proxy_shared::{AppState, Config, telemetry};

/// Why the gateway could not start (or stopped serving).
#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error("could not read .env: {0}")]
    DotEnv(#[from] dotenvy::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error(transparent)]
    Secret(#[from] llm_proxy_shared::secrets::SecretError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "start-up failures go to the terminal")]
            {
                eprintln!("local-gateway: {error}");
            }
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), StartupError> {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let config = Config::from_env()?;
    telemetry::init(&config);
    let config = llm_proxy_shared::secrets::resolve(config).await?;
    let state = AppState::new(config).await?;
    let wanted = SocketAddr::new(state.config.local.host, state.config.local.port);
    let listener = tokio::net::TcpListener::bind(wanted)
        .await
        .map_err(|source| StartupError::Bind {
            addr: wanted,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
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
    let edges = state.config.local.clone();
    let app = local_gateway::app(state, addr);
    local_gateway::serve(listener, app, &edges, shutdown_signal())
        .await
        .map_err(StartupError::Serve)
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
