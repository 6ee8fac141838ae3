//! Every edge a slow, stalled or hostile client could hold has a timeout or a cap
//! (`docs/configuration.md`, "Local gateway"), and nothing it sends is answered outside
//! the error shape: half-sent heads, trickled or lying bodies, oversized ones, a
//! reader that stops reading, paths that do not decode.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::{Duration, Instant};

use llm_proxy_tests::{Gateway, MockOpenRouter, gateway_with_mock};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn setup(extra: &[(&str, &str)]) -> (MockOpenRouter, Gateway) {
    let mut vars = vec![("OPENROUTER_API_KEY", "sk-or-v1-edges")];
    vars.extend_from_slice(extra);
    gateway_with_mock(&vars).await.unwrap()
}

async fn connect(gateway: &Gateway) -> TcpStream {
    TcpStream::connect(gateway.base_url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads what the server sends until it closes, or `within` passes (then `None`).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_half_sent_request_head_is_cut_off() {
    let (_mock, gateway) = setup(&[("HEADER_READ_TIMEOUT_MS", "300")]).await;
    let mut stream = connect(&gateway).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.is_some(), "the connection was held open");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_crowd_of_half_sent_heads_does_not_keep_others_out() {
    let (_mock, gateway) =
        setup(&[("MAX_CONNECTIONS", "50"), ("HEADER_READ_TIMEOUT_MS", "500")]).await;
    let mut crowd = Vec::new();
    for _ in 0..300 {
        let mut stream = connect(&gateway).await;
        stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        crowd.push(stream);
    }
    // Beyond the cap they wait in the listen queue, and beyond their address's share
    // of it they are answered 503; the header timeout frees places. Another address
    // is served.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let health = tokio::time::timeout(
        Duration::from_secs(20),
        other.get(gateway.url("/health")).send(),
    )
    .await
    .expect("/health was kept waiting")
    .unwrap();
    assert_eq!(health.status(), 200);
    // And the crowd itself is let go.
    for stream in crowd.iter_mut().take(5) {
        assert!(
            read_until_closed(stream, Duration::from_secs(10))
                .await
                .is_some(),
            "a half-sent head held its connection"
        );
    }
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_or_too_slow_gets_a_408() {
    let (mock, gateway) = setup(&[("BODY_READ_TIMEOUT_MS", "300")]).await;
    let mut stream = connect(&gateway).await;
    stream
        .write_all(
            b"POST /api/v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"model\":\"m\"",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("the connection was held open");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"type\":\"validation\""), "{answer}");
    assert!(mock.received().is_empty());
}

#[tokio::test]
async fn trickling_bodies_do_not_take_the_places_of_ready_requests() {
    let (_mock, gateway) = setup(&[
        ("MAX_CONCURRENT_REQUESTS", "10"),
        ("BODY_READ_TIMEOUT_MS", "30000"),
    ])
    .await;
    let mut tricklers = Vec::new();
    for _ in 0..30 {
        let mut stream = connect(&gateway).await;
        stream
            .write_all(
                b"POST /api/v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100000\r\n\r\n{",
            )
            .await
            .unwrap();
        tricklers.push(stream);
    }
    for path in ["/api/v1/models/providers", "/health"] {
        let response = reqwest::get(gateway.url(path)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_body_announced_too_large_is_refused_before_it_is_sent() {
    let (_mock, gateway) = setup(&[]).await;
    let mut stream = connect(&gateway).await;
    stream
        .write_all(
            b"POST /api/v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000000000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = vec![0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .expect("no answer without the body")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_at_the_stream_deadline() {
    let (mock, gateway) = setup(&[("STREAM_MAX_DURATION_MS", "500")]).await;
    // 100 MB, as fast as it is taken: the client's buffers fill within milliseconds.
    let body = json!({"model": "mock/stream-volume-100", "stream": true,
                      "messages": [{"role": "user", "content": "x"}]});
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/inference/stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The client holds the answer and reads nothing more.
    assert!(
        mock.wait_for_streams_closed(1, Duration::from_secs(10))
            .await,
        "the upstream stream outlived the deadline"
    );
    drop(response);
}

#[tokio::test]
async fn over_the_in_flight_cap_a_503_says_when_to_come_back() {
    let (_mock, gateway) = setup(&[("MAX_CONCURRENT_REQUESTS", "1")]).await;
    let body = json!({"model": "mock/stream-endless-50", "stream": true,
                      "messages": [{"role": "user", "content": "x"}]});
    let held = reqwest::Client::new()
        .post(gateway.url("/api/v1/inference/stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    let refused = reqwest::get(gateway.url("/api/v1/models/providers"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "unavailable");
}

#[tokio::test]
async fn a_path_that_does_not_decode_gets_the_error_shape() {
    let (_mock, gateway) = setup(&[]).await;
    for path in ["/api/v1/models/%ff", "/api/v1/models/providers/%c3%28"] {
        let response = reqwest::get(gateway.url(path)).await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "validation", "{path}");
    }
}

#[tokio::test]
async fn an_upstream_answer_too_large_for_one_body_is_a_502() {
    let (_mock, gateway) = setup(&[]).await;
    let body = json!({"model": "mock/big-7000000", "messages": [{"role": "user", "content": "x"}]});
    let response = reqwest::Client::new()
        .post(gateway.url("/api/v1/inference"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("streamed"),
        "{error}"
    );
}
