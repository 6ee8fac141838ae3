//! Child processes the tests start (the gateway, cargo lambda, moto): output kept,
//! readiness taken from what the process prints rather than guessed with sleeps.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Started {
    pub child: Child,
    /// The line that said the process is ready.
    pub ready_line: String,
    /// Everything the process printed, stdout and stderr, as it goes.
    pub output: Arc<Mutex<String>>,
}

/// Starts `command` with its output piped and waits, up to `within`, for a line that
/// contains `ready`. On failure the process is killed and its output returned.
pub fn start_and_wait(
    command: &mut Command,
    ready: &str,
    within: Duration,
) -> Result<Started, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("could not start {command:?}: {e}"))?;
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let streams: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        let (tx, output) = (tx.clone(), output.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(mut out) = output.lock() {
                    out.push_str(&line);
                    out.push('\n');
                }
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => {
                return Ok(Started {
                    child,
                    ready_line: line,
                    output,
                });
            }
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let printed = output.lock().map(|o| o.clone()).unwrap_or_default();
                return Err(format!(
                    "{command:?} did not print {ready:?}; it printed:\n{printed}"
                ));
            }
        }
    }
}
