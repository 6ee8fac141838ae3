//! Starts the real `local-gateway` binary as a user would, on 127.0.0.1 and a free
//! port, and keeps everything it prints so tests can read its logs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::process::start_and_wait;

/// Where cargo put this workspace's binaries (the test runner lives in `deps/` below).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The workspace root, for `events/` and `cargo lambda`.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub struct Gateway {
    pub base_url: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "local-gateway binary not found at {0}: build the workspace first (cargo build --workspace)"
    )]
    Missing(PathBuf),
    #[error("could not start local-gateway: {0}")]
    Spawn(std::io::Error),
    #[error("local-gateway exited or did not say where it listens; it printed:\n{0}")]
    NotListening(String),
}

impl Gateway {
    /// Starts the gateway with only these variables (plus `PORT=0`, `HOST=127.0.0.1`
    /// unless given), in an empty folder so no developer `.env` leaks in.
    pub fn start(vars: &[(&str, &str)]) -> Result<Self, GatewayError> {
        let mut command = gateway_command(vars)?;
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
        let (child, output) = (started.child, started.output);
        Ok(Self {
            base_url,
            child,
            output,
        })
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
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a binary to completion and returns its exit status and output, for
/// start-up checks that expect it to refuse.
pub fn run_gateway_expecting_exit(
    vars: &[(&str, &str)],
) -> Result<(Option<i32>, String), GatewayError> {
    let mut command = gateway_command(vars)?;
    command.stdin(Stdio::null());
    let out = command.output().map_err(GatewayError::Spawn)?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.code(), text))
}

/// The gateway with only `vars` (after `PORT=0`, `HOST=127.0.0.1`, `ENVIRONMENT=test`),
/// run from an empty folder so no developer `.env` leaks in.
fn gateway_command(vars: &[(&str, &str)]) -> Result<Command, GatewayError> {
    let binary = bin_dir().join("local-gateway");
    if !binary.exists() {
        return Err(GatewayError::Missing(binary));
    }
    let mut command = Command::new(&binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("ENVIRONMENT", "test")
        .current_dir(std::env::temp_dir());
    for (k, v) in vars {
        command.env(k, v);
    }
    Ok(command)
}
