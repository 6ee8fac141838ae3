//! Test support for llm-proxy: the mock OpenRouter and a harness that runs the real
//! local gateway. The end-to-end tests themselves live in `tests/`.

pub mod dynamo;
pub mod fixtures;
pub mod gateway;
pub mod lambda;
pub mod mock;
pub mod process;

pub use gateway::Gateway;
pub use mock::{Behaviour, MockOpenRouter, ModelsBehaviour};

/// Reads a streamed answer from a `LockStep` mock: after each complete event the
/// mock is let to send the next. If anything between them held events back, this
/// never finishes (callers put a timeout around it).
pub async fn read_lock_step(
    response: reqwest::Response,
    mock: &MockOpenRouter,
) -> Result<Vec<u8>, reqwest::Error> {
    use futures_util::StreamExt;
    let mut body = response.bytes_stream();
    let (mut received, mut stepped) = (Vec::new(), 0);
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk?);
        let complete = fixtures::sse_events(&received)
            .iter()
            .filter(|e| e.ends_with(b"\n\n"))
            .count();
        while stepped < complete {
            stepped += 1;
            mock.step();
        }
    }
    Ok(received)
}
