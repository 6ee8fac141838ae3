//! The real Lambda runtime path: `cargo lambda watch` emulates the Lambda control
//! plane on 127.0.0.1 and runs the function binaries through `lambda_http`; `cargo
//! lambda invoke` sends them the API Gateway events kept in `events/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::gateway::workspace_root;
use crate::process::start_and_wait;

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error(
        "cargo-lambda is not installed: run the tests with the README's test command (scripts/test), \
         which installs it into .venv"
    )]
    NotInstalled,
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("cargo lambda watch did not start: {0}")]
    NotStarted(String),
    #[error("cargo lambda invoke failed: {0}")]
    Invoke(String),
}

/// The `cargo-lambda` executable: on PATH, or in the project's `.venv`.
fn cargo_lambda_dir() -> Option<PathBuf> {
    let venv = workspace_root().join(".venv/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(venv)
        .chain(std::env::split_paths(&path))
        .find(|dir| dir.join("cargo-lambda").is_file())
}

fn cargo_with_lambda() -> Result<Command, LambdaError> {
    let dir = cargo_lambda_dir().ok_or(LambdaError::NotInstalled)?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path)))
        .map_err(|e| LambdaError::NotStarted(e.to_string()))?;
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.env("PATH", joined).current_dir(workspace_root());
    Ok(command)
}

/// A running `cargo lambda watch`, stopped (with its functions) when dropped.
pub struct LambdaWatch {
    port: u16,
    child: Child,
}

impl LambdaWatch {
    pub fn start(env: &[(&str, &str)]) -> Result<Self, LambdaError> {
        Self::start_profile(env, false)
    }

    /// `release` runs the functions as release builds (for benchmarks).
    pub fn start_profile(env: &[(&str, &str)], release: bool) -> Result<Self, LambdaError> {
        Self::start_on(free_port()?, env, release)
    }

    /// On `port`, for functions that must know it (to invoke each other through the
    /// emulated Lambda API).
    pub fn start_on(port: u16, env: &[(&str, &str)], release: bool) -> Result<Self, LambdaError> {
        let mut command = cargo_with_lambda()?;

        command.args([
            "lambda",
            "watch",
            "--ignore-changes",
            "--quiet",
            "-A",
            "127.0.0.1",
            "-P",
        ]);
        command.arg(port.to_string());
        if release {
            command.arg("--release");
        }
        for (k, v) in env {
            command.arg("--env-var").arg(format!("{k}={v}"));
        }
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let started = start_and_wait(&mut command, "Runtime server", Duration::from_secs(60))
            .map_err(LambdaError::NotStarted)?;
        let child = started.child;
        Ok(Self { port, child })
    }

    /// Where `cargo lambda watch` serves `function` as a Function URL (the prefix is
    /// stripped before the function sees the path).
    pub fn function_url(&self, function: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{function}{path}", self.port)
    }

    /// Invokes `function` with an event file from `events/`; returns the function's
    /// API Gateway response (`statusCode`, `headers`, `body`, ...).
    pub fn invoke(&self, function: &str, event: &str) -> Result<Value, LambdaError> {
        parse(self.invoke_raw(function, event)?)
    }

    /// Invokes `function` with `payload` itself (an event that is no file, such as one
    /// a function made).
    pub fn invoke_payload(&self, function: &str, payload: &str) -> Result<Value, LambdaError> {
        parse(self.run_invoke(function, &["--data-ascii".as_ref(), payload.as_ref()])?)
    }

    /// Invokes `function` and returns what `cargo lambda invoke` printed: for a
    /// streaming function, the streamed body.
    pub fn invoke_raw(&self, function: &str, event: &str) -> Result<String, LambdaError> {
        let file = workspace_root().join("events").join(event);
        self.run_invoke(function, &["--data-file".as_ref(), file.as_os_str()])
    }

    fn run_invoke(&self, function: &str, data: &[&std::ffi::OsStr]) -> Result<String, LambdaError> {
        let mut command = cargo_with_lambda()?;
        let output = command
            .args([
                "lambda",
                "invoke",
                function,
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(self.port.to_string())
            .args(data)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LambdaError::Io("running cargo lambda invoke", e))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(LambdaError::Invoke(format!(
                "{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(stdout)
    }
}

fn parse(stdout: String) -> Result<Value, LambdaError> {
    serde_json::from_str(stdout.trim()).map_err(|e| LambdaError::Invoke(format!("{e}: {stdout}")))
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        // The watcher runs each function as a child; end the whole group.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> Result<u16, LambdaError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| LambdaError::Io("finding a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| LambdaError::Io("finding a free port", e))
}

/// The header of an API Gateway response, wherever the runtime put it.
pub fn response_header(response: &Value, name: &str) -> Option<String> {
    if let Some(v) = response["headers"][name].as_str() {
        return Some(v.to_owned());
    }
    response["multiValueHeaders"][name][0]
        .as_str()
        .map(str::to_owned)
}
