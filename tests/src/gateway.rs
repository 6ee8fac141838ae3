//! The local gateway under test, two ways:
//!
//! - [`Gateway`]: in this process, as `local_gateway::app` and `serve` on 127.0.0.1 and
//!   a free port, over real sockets. What nearly every end-to-end test uses: no binary
//!   to build first, no process to start.
//! - [`GatewayProcess`]: the real `local-gateway` binary, started as a user would, for
//!   what only a process shows: start-up, `.env`, and what it writes to its logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm_proxy_shared::rate_limit::{DynamoStore, RateLimiter, Store};
use llm_proxy_shared::{AppState, Config};

use crate::process::start_and_wait;

/// The workspace root, for `events/`, `template.yaml` and `.venv`.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the settings were refused: {0}")]
    Config(#[from] llm_proxy_shared::config::ConfigError),
    #[error("could not build the gateway: {0}")]
    Build(#[from] llm_proxy_shared::openrouter::ClientBuildError),
    #[error("{0}")]
    Secret(#[from] llm_proxy_shared::secrets::SecretError),
    #[error("could not listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    #[error("could not start local-gateway: {0}")]
    Spawn(std::io::Error),
    #[error("local-gateway exited or did not say where it listens; it printed:\n{0}")]
    NotListening(String),
}

/// The settings every gateway under test starts from; `vars` come after and win.
const TEST_DEFAULTS: [(&str, &str); 3] = [
    ("PORT", "0"),
    ("HOST", "127.0.0.1"),
    ("ENVIRONMENT", "test"),
];

/// A gateway serving in this process until dropped.
pub struct Gateway {
    pub base_url: String,
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Gateway {
    /// Starts with only these settings (after `PORT=0`, `HOST=127.0.0.1`,
    /// `ENVIRONMENT=test`): nothing is read from this process's environment or a
    /// `.env`. With `RATE_LIMIT_TABLE` and `AWS_ENDPOINT_URL_DYNAMODB` among them, the
    /// counters go to that DynamoDB-compatible server.
    pub async fn start(vars: &[(&str, &str)]) -> Result<Self, GatewayError> {
        let lookup = |name: &str| {
            vars.iter()
                .rev()
                .chain(TEST_DEFAULTS.iter())
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut config = Config::from_lookup(lookup)?;
        if let Some(endpoint) = lookup("AWS_ENDPOINT_URL_SECRETS_MANAGER") {
            let client = crate::dynamo::secrets_client(&endpoint);
            config = llm_proxy_shared::secrets::resolve_with(config, &client).await?;
        }
        let limits = &config.rate_limits;
        let rate_limiter = match (&limits.table, lookup("AWS_ENDPOINT_URL_DYNAMODB")) {
            (Some(table), Some(endpoint)) => {
                let client =
                    DynamoStore::tuned(crate::dynamo::config_for(&endpoint), limits.store_timeout);
                RateLimiter::with_store(Store::Dynamo(DynamoStore::new(client, table)), limits)
            }
            _ => RateLimiter::from_config(limits).await,
        };
        let state = AppState::with_rate_limiter(config, rate_limiter)?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(GatewayError::Listen)?;
        let addr = listener.local_addr().map_err(GatewayError::Listen)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = local_gateway::app(state.clone(), addr);
        let edges = state.config.local.clone();
        tokio::spawn(async move {
            local_gateway::serve(listener, app, &edges, async move {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Self {
            base_url: format!("http://{addr}"),
            state,
            stop: Some(stop),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The WebSocket endpoint, `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        ws_url(&self.base_url)
    }
}

/// The WebSocket endpoint of a gateway served at `base_url`.
fn ws_url(base_url: &str) -> String {
    format!("{}/ws", base_url.replacen("http://", "ws://", 1))
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The `local-gateway` binary, running until dropped, with everything it prints kept.
pub struct GatewayProcess {
    pub base_url: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl GatewayProcess {
    /// Starts `binary` (a test finds it as `env!("CARGO_BIN_EXE_local-gateway")`) with
    /// only these variables, in an empty folder so no developer `.env` leaks in.
    pub fn start(binary: &Path, vars: &[(&str, &str)]) -> Result<Self, GatewayError> {
        Self::start_in(binary, &std::env::temp_dir(), vars)
    }

    /// As [`start`](Self::start), run from `folder` (to test that it reads `.env` there).
    pub fn start_in(
        binary: &Path,
        folder: &Path,
        vars: &[(&str, &str)],
    ) -> Result<Self, GatewayError> {
        let mut command = command(binary, folder, vars);
        // The gateway prints its address once it is bound: no polling, no sleeping.
        let started = start_and_wait(&mut command, "listening on ", Duration::from_secs(30))
            .map_err(GatewayError::NotListening)?;
        let base_url = started
            .ready_line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            base_url,
            child: started.child,
            output: started.output,
        })
    }

    /// Runs `binary` to completion, for start-up checks that expect it to refuse:
    /// its exit code and everything it printed.
    pub fn run_expecting_exit(
        binary: &Path,
        vars: &[(&str, &str)],
    ) -> Result<(Option<i32>, String), GatewayError> {
        let out = command(binary, &std::env::temp_dir(), vars)
            .stdin(Stdio::null())
            .output()
            .map_err(GatewayError::Spawn)?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code(), text))
    }

    /// Everything the gateway printed so far (logs included).
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The gateway's process id, for reading its memory from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn ws_url(&self) -> String {
        ws_url(&self.base_url)
    }

    /// Asks the gateway to stop (SIGTERM, as a service manager would) and waits up to
    /// `within` for it to exit; true if it did.
    pub fn stop(&mut self, within: Duration) -> bool {
        let asked = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = std::time::Instant::now() + within;
        while asked && std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(binary: &Path, folder: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(folder);
    for (k, v) in TEST_DEFAULTS.iter().chain(vars) {
        command.env(k, v);
    }
    command
}
