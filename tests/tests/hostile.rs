//! Hostile input a client can send beyond a bad JSON body (`inference.rs` has those):
//! request heads the HTTP parser refuses (answered in the error shape all the same),
//! bodies built to exhaust a parser, and
//! WebSocket frames that are binary or fragmented. Each is refused on its own, and the
//! gateway goes on serving everyone else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::io::{Read, Write};
use std::time::Duration;

use llm_proxy_tests::ws::WsClient;
use llm_proxy_tests::ws::tungstenite::Message;
use llm_proxy_tests::ws::tungstenite::protocol::frame::Frame;
use llm_proxy_tests::ws::tungstenite::protocol::frame::coding::{Data, OpCode};
use llm_proxy_tests::{Gateway, gateway_with_mock};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

/// Sends `request` as raw bytes on a new connection and returns the last answer on it:
/// its head, and its body as JSON.
fn raw_answer(gateway: &Gateway, request: &[u8]) -> (String, Value) {
    let addr = gateway.base_url.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    // The server may refuse before the whole of a large head is written.
    let _ = socket.write_all(request);
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let last = answer.rfind("HTTP/1.1 ").unwrap_or_default();
    let (head, body) = answer[last..]
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no whole answer: {answer:?}"));
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer:?}"));
    (head.to_owned(), body)
}

async fn healthy(gateway: &Gateway) {
    let response = reqwest::get(gateway.url("/health")).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_heads_the_parser_refuses_are_refused_and_nothing_else_is_affected() {
    let (_mock, gateway) = gateway_with_mock(&[]).await.unwrap();
    let big_header = [
        &b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "[..],
        &vec![b'a'; 1024 * 1024],
        b"\r\n\r\n",
    ]
    .concat();
    let long_path = [
        &b"GET /api/v1/models/"[..],
        &vec![b'a'; 70 * 1024],
        b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    .concat();
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        ("a 1 MB header", big_header, 431, "headers"),
        (
            "a CR inside a forwarded header",
            b"POST /api/v1/inference HTTP/1.1\r\nHost: x\r\nHTTP-Referer: a\rX-Injected: 1\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            400,
            "request",
        ),
        ("a request line that is not one", b"GARBAGE\r\n\r\n".to_vec(), 400, "request"),
        (
            "a path that is not UTF-8",
            b"GET /api/v1/models/\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "request",
        ),
        ("a 70 KB path", long_path, 414, "path"),
        (
            "garbage after a good request on the same connection",
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n".to_vec(),
            400,
            "request",
        ),
    ];
    for (what, request, status, field) in cases {
        let (head, body) = tokio::task::block_in_place(|| raw_answer(&gateway, &request));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {head}"
        );
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{what}: {head}"
        );
        assert!(head.contains("\r\nx-request-id: "), "{what}: {head}");
        assert_eq!(body["error"]["code"], status, "{what}: {body}");
        assert_eq!(body["error"]["type"], "validation", "{what}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{what}: {body}");
        healthy(&gateway).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_built_to_exhaust_a_parser_are_400s() {
    let (mock, gateway) = gateway_with_mock(&[]).await.unwrap();
    let client = reqwest::Client::new();
    let deep = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let huge_number =
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1e999}"#;
    for (what, body, field) in [
        ("nested 100,000 deep", deep, "body"),
        ("1e999", huge_number.to_owned(), "temperature"),
    ] {
        let response = client
            .post(gateway.url("/api/v1/inference"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{what}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["details"]["field"], field, "{what}: {error}");
    }
    assert!(mock.received().is_empty(), "nothing reached OpenRouter");
    healthy(&gateway).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_and_fragmented_websocket_frames() {
    let (_mock, gateway) = gateway_with_mock(&[("OPENROUTER_API_KEY", "sk-or-v1-ws")])
        .await
        .unwrap();
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();

    // A binary frame is not a message of the protocol: an error, and the socket stays.
    client
        .send_raw(Message::binary(b"\x00\x01binary".to_vec()))
        .await
        .unwrap();
    let error = client.message(WAIT).await;
    assert_eq!(error["type"], "error", "{error}");

    // A text message in three fragments is one message.
    let ping = json!({"type": "ping"}).to_string().into_bytes();
    let (a, rest) = ping.split_at(4);
    let (b, c) = rest.split_at(4);
    for (i, part) in [a, b, c].into_iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(part.to_vec(), opcode, i == 2);
        client.send_raw(Message::Frame(frame)).await.unwrap();
    }
    let heartbeat = client.message(WAIT).await;
    assert_eq!(heartbeat["type"], "heartbeat", "{heartbeat}");
}
