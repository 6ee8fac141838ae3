//! Runs one of the Python checks in `tests/` (official SDKs, client code unchanged)
//! with the project's `.venv`, which `scripts/test` installs.

use crate::gateway::workspace_root;

/// Runs `tests/{script}` with `args` and asserts it succeeded and printed `done`;
/// returns what it printed.
#[expect(clippy::panic, reason = "a test helper fails its test loudly")]
pub async fn run_check(script: &str, args: Vec<String>, done: &str) -> String {
    let python = workspace_root().join(".venv/bin/python");
    if !python.is_file() {
        panic!("the Python SDKs are installed into .venv by scripts/test; run that");
    }
    let script = workspace_root().join("tests").join(script);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(args)
            .env("NO_PROXY", "*")
            .output()
    })
    .await;
    let output = match output {
        Ok(Ok(output)) => output,
        other => panic!("the check did not run: {other:?}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stdout.contains(done) {
        panic!("{stdout}\n{stderr}");
    }
    stdout
}
