//! Test support for llm-proxy: the mock OpenRouter, the local gateway in-process or as
//! its binary, a DynamoDB-compatible server, and `cargo lambda`. The end-to-end tests
//! themselves live in `tests/` (and the binary-level ones in `local/tests/`).

pub mod connections;
pub mod dynamo;
pub mod fixtures;
pub mod gateway;
pub mod lambda;
pub mod lambda_api;
pub mod limiter;
pub mod mock;
pub mod proc_status;
pub mod process;
pub mod python;
pub mod runtime_api;
pub mod template;
pub mod ws;

pub use gateway::{Gateway, GatewayProcess};
pub use mock::{Behaviour, MockOpenRouter, ModelsBehaviour};

/// A client whose requests come from `address` (any of 127.0.0.0/8), so that it has
/// rate-limit counters and budgets of its own.
#[expect(clippy::expect_used, reason = "a test helper fails its test loudly")]
pub fn client_at(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().expect("an IP address"))
        .build()
        .expect("a client")
}

/// A mock OpenRouter and a gateway pointed at it, with `vars` besides.
pub async fn gateway_with_mock(vars: &[(&str, &str)]) -> Result<(MockOpenRouter, Gateway), String> {
    let mock = MockOpenRouter::start().await.map_err(|e| e.to_string())?;
    let base = mock.base_url();
    let mut all = vec![("OPENROUTER_BASE_URL", base.as_str())];
    all.extend_from_slice(vars);
    let gateway = Gateway::start(&all).await.map_err(|e| e.to_string())?;
    Ok((mock, gateway))
}

/// Reads a streamed answer from a `LockStep` mock: after each complete event the
/// mock is let to send the next. If anything between them held events back, this
/// never finishes (callers put a timeout around it).
pub async fn read_lock_step(
    response: reqwest::Response,
    mock: &MockOpenRouter,
) -> Result<Vec<u8>, reqwest::Error> {
    read_lock_step_from(response.bytes_stream(), mock).await
}

/// `read_lock_step` over any stream of chunks (a Lambda response, say).
pub async fn read_lock_step_from<E>(
    body: impl futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    mock: &MockOpenRouter,
) -> Result<Vec<u8>, E> {
    use futures_util::StreamExt;
    let mut body = std::pin::pin!(body);
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
