//! No client starves the rest (`docs/configuration.md`, "Local gateway"): one address
//! gets a share of the local gateway's connections and in-flight places, a WebSocket
//! flood from a client that never reads is paid for by that client alone, and refused
//! WebSocket messages count against the client's limit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::{Duration, Instant};

use llm_proxy_tests::proc_status::open_fds;
use llm_proxy_tests::ws::{Event, WsClient};
use llm_proxy_tests::{Behaviour, client_at, gateway_with_mock};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

fn chat() -> Value {
    json!({"model": "openai/gpt-4o", "max_tokens": 10,
           "messages": [{"role": "user", "content": "Hello"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holding_its_share_leaves_places_for_others() {
    let (mock, gateway) = gateway_with_mock(&[
        ("OPENROUTER_API_KEY", "sk-or-v1-fair"),
        ("MAX_CONCURRENT_REQUESTS", "4"),
    ])
    .await
    .unwrap();
    // Answers held long enough for the hog's requests to be in flight together.
    mock.set_behaviour(Behaviour::Stall(Duration::from_secs(2)));
    let url = gateway.url("/api/v1/inference");
    let hog: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                client_at("127.0.4.1")
                    .post(url)
                    .json(&chat())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // Once the hog's share is taken, another address is still served.
    while mock.received().is_empty() {
        tokio::task::yield_now().await;
    }
    let other = client_at("127.0.4.2")
        .post(&url)
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let mut statuses = Vec::new();
    for request in hog {
        statuses.push(request.await.unwrap());
    }
    statuses.sort_unstable();
    // A quarter of 4 places: one served, three told to wait for it.
    assert_eq!(statuses, vec![200, 503, 503, 503]);
}

#[tokio::test]
async fn connections_beyond_a_clients_share_are_answered_503_at_once() {
    let (_mock, gateway) = gateway_with_mock(&[("MAX_CONNECTIONS", "16")])
        .await
        .unwrap();
    let address = gateway.base_url.trim_start_matches("http://").to_owned();
    // Two half-sent heads take this address's share (16 / 8)...
    let mut held = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.4.3:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(address.parse().unwrap()).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    // ...so its third connection is refused in the error shape, without waiting...
    let started = Instant::now();
    let refused = client_at("127.0.4.3")
        .get(gateway.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "unavailable");
    assert!(started.elapsed() < Duration::from_secs(2));
    // ...while every other address is served as usual.
    let other = client_at("127.0.4.4")
        .get(gateway.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    drop(held);
}

#[tokio::test]
async fn refused_websocket_messages_count_against_the_limit() {
    let (_mock, gateway) = gateway_with_mock(&[("RATE_LIMIT_MAX_REQUESTS", "10")])
        .await
        .unwrap();
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    for _ in 0..30 {
        client.send_raw(tungstenite_text("not json")).await.unwrap();
    }
    let mut kinds = Vec::new();
    for _ in 0..30 {
        let message = client.message(Duration::from_secs(10)).await;
        kinds.push(message["error"]["type"].as_str().unwrap().to_owned());
    }
    let limited = kinds.iter().filter(|k| *k == "rate_limit").count();
    assert_eq!(limited, 20, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "validation").count(), 10);
}

fn tungstenite_text(text: &str) -> llm_proxy_tests::ws::tungstenite::Message {
    llm_proxy_tests::ws::tungstenite::Message::Text(text.into())
}

/// 3,000 messages from a client that reads none of its replies: the gateway stays
/// responsive, its descriptors stay bounded, and each reply that arrives, arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_a_client_that_never_reads_costs_only_that_client() {
    let (_mock, gateway) = gateway_with_mock(&[("RATE_LIMIT_MAX_REQUESTS", "100000")])
        .await
        .unwrap();
    let fds_before = open_fds(std::process::id());
    let mut flood = WsClient::connect(&gateway.ws_url()).await.unwrap();
    let sender = tokio::spawn(async move {
        for n in 0..3000 {
            // Pings, and messages of no known type, each with its own id: an error
            // reply delivered twice would show.
            let message = if n % 2 == 0 {
                json!({"type": "ping"}).to_string()
            } else {
                json!({"type": "nope", "id": format!("m{n}")}).to_string()
            };
            if flood.send_raw(tungstenite_text(&message)).await.is_err() {
                break;
            }
        }
        flood
    });
    // While the flood runs, the gateway answers everyone else promptly.
    let http = reqwest::Client::new();
    let mut worst = Duration::ZERO;
    let mut fds_peak = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let health = http.get(gateway.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        worst = worst.max(started.elapsed());
        fds_peak = fds_peak.max(open_fds(std::process::id()));
    }
    assert!(worst < Duration::from_secs(1), "/health took {worst:?}");
    assert!(
        fds_peak < fds_before + 120,
        "{fds_before} descriptors before, {fds_peak} during the flood"
    );
    // Now the client reads: no reply twice.
    let mut flood = tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .unwrap()
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut heartbeats = 0;
    while let Some(Event::Message(reply)) = flood.next(Duration::from_secs(3)).await {
        if reply["type"] == "heartbeat" {
            heartbeats += 1;
            continue;
        }
        let id = reply["id"].as_str().unwrap().to_owned();
        assert!(seen.insert(id.clone()), "{id} delivered twice");
    }
    assert!(!seen.is_empty() && heartbeats > 0);
    assert!(
        heartbeats <= 1500,
        "{heartbeats} heartbeats for 1,500 pings"
    );
}

/// `@connections` is for this host's worker: a call is checked before its body is
/// read, so a body that never arrives holds nothing.
#[tokio::test]
async fn the_management_api_answers_before_reading_a_body() {
    let (_mock, gateway) = gateway_with_mock(&[]).await.unwrap();
    let address = gateway.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // A megabyte announced, none sent, to a connection that does not exist.
    stream
        .write_all(
            b"POST /local/@connections/nobody%3D HTTP/1.1\r\nHost: x\r\n\
              Content-Length: 1000000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(2), async {
        use tokio::io::AsyncReadExt;
        stream.read(&mut answer).await
    })
    .await
    .expect("answered without the body")
    .unwrap();
    let head = String::from_utf8_lossy(&answer[..read]);
    assert!(head.starts_with("HTTP/1.1 410"), "{head}");
}
