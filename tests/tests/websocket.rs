//! The WebSocket API (`docs/websocket.md`) as a client meets it: a real WebSocket client
//! against the local gateway's emulation of API Gateway, the worker posting through the
//! real Management API client, the mock OpenRouter behind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::Duration;

use llm_proxy_tests::ws::{Event, WsClient, content, tungstenite};
use llm_proxy_tests::{Behaviour, Gateway, MockOpenRouter, gateway_with_mock};
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

const WAIT: Duration = Duration::from_secs(10);

async fn setup(extra: &[(&str, &str)]) -> (MockOpenRouter, Gateway) {
    let mut vars = vec![("OPENROUTER_API_KEY", "sk-or-v1-ws")];
    vars.extend_from_slice(extra);
    gateway_with_mock(&vars).await.unwrap()
}

fn request(id: &str, model: &str) -> Value {
    json!({"type": "inference_request", "id": id,
           "data": {"model": model, "messages": [{"role": "user", "content": "Hello, world!"}],
                    "temperature": 0.7, "max_tokens": 100}})
}

/// The final message of a request's messages, checked to be the only final one.
fn only_final(messages: &[Value]) -> &Value {
    let finals = messages
        .iter()
        .filter(|m| m["type"] == "error" || m["data"].get("finish_reason").is_some())
        .count();
    assert_eq!(finals, 1, "exactly one final message: {messages:?}");
    messages.last().unwrap()
}

#[tokio::test]
async fn the_documented_exchange() {
    let (_mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send(&request("req-123", "openai/gpt-4o"))
        .await
        .unwrap();
    let messages = client.until_final("req-123", WAIT, &mut Vec::new()).await;
    assert!(
        messages.iter().all(|m| m["type"] == "inference_response"),
        "{messages:?}"
    );
    assert_eq!(content(&messages), "You said: Hello, world!");
    let last = only_final(&messages);
    assert_eq!(last["data"]["finish_reason"], "stop");
    assert_eq!(last["data"]["model"], "openai/gpt-4o");
    assert!(
        last["data"]["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "{last}"
    );
    assert!(last["data"]["created"].as_u64().is_some(), "{last}");
}

#[tokio::test]
async fn a_captured_stream_arrives_in_order_with_finish_reason_and_usage() {
    let (_mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send(&request("r", "mock/stream-text"))
        .await
        .unwrap();
    let messages = client.until_final("r", WAIT, &mut Vec::new()).await;
    assert_eq!(content(&messages), "Pebbles and Skipper.");
    let last = only_final(&messages);
    assert_eq!(last["data"]["finish_reason"], "stop");
    assert_eq!(last["data"]["usage"]["total_tokens"], 23);

    // Tool calls: a client joining the fragments by index, as it would OpenRouter's,
    // gets the whole call.
    client
        .send(&request("tools", "mock/stream-tool-calls"))
        .await
        .unwrap();
    let messages = client.until_final("tools", WAIT, &mut Vec::new()).await;
    let (mut id, mut name, mut arguments) = (String::new(), String::new(), String::new());
    for fragment in messages
        .iter()
        .filter_map(|m| m["data"]["tool_calls"].as_array())
        .flatten()
    {
        assert_eq!(fragment["index"], 0, "{messages:?}");
        id += fragment["id"].as_str().unwrap_or_default();
        name += fragment["function"]["name"].as_str().unwrap_or_default();
        arguments += fragment["function"]["arguments"]
            .as_str()
            .unwrap_or_default();
    }
    assert_eq!(
        (id.as_str(), name.as_str(), arguments.as_str()),
        ("call_o4OCgtJrNoZTmoCRvmlfoHfj", "llm_version", "{}")
    );
    assert_eq!(only_final(&messages)["data"]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn stream_false_is_one_message() {
    let (mock, gateway) = setup(&[]).await;
    mock.set_behaviour(Behaviour::Replay);
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    let mut body = request("one", "anthropic/claude-sonnet-4");
    body["data"]["stream"] = json!(false);
    client.send(&body).await.unwrap();
    let messages = client.until_final("one", WAIT, &mut Vec::new()).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let data = &messages[0]["data"];
    assert!(
        data["content"]
            .as_str()
            .unwrap()
            .starts_with("I'll check the delivery status")
    );
    assert_eq!(data["finish_reason"], "stop");
    assert_eq!(data["usage"]["total_tokens"], 986);
    assert_eq!(
        mock.received()[0].body,
        serde_json::to_vec(&body["data"]).unwrap()
    );
}

#[tokio::test]
async fn requests_in_flight_together_are_told_apart_by_id() {
    let (_mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    let mut first = request("a", "openai/gpt-4o");
    first["data"]["messages"][0]["content"] = json!("first question");
    let mut second = request("b", "openai/gpt-4o");
    second["data"]["messages"][0]["content"] = json!("second question");
    client.send(&first).await.unwrap();
    client.send(&second).await.unwrap();
    let mut others = Vec::new();
    let a = client.until_final("a", WAIT, &mut others).await;
    let mut rest = Vec::new();
    let b_after = client.until_final("b", WAIT, &mut rest).await;
    let b: Vec<Value> = others.into_iter().chain(b_after).collect();
    assert_eq!(content(&a), "You said: first question");
    assert_eq!(content(&b), "You said: second question");
    only_final(&a);
    only_final(&b);
}

#[tokio::test]
async fn ping_is_answered_with_a_heartbeat() {
    let (_mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client.send(&json!({"type": "ping"})).await.unwrap();
    let heartbeat = client.message(WAIT).await;
    assert_eq!(heartbeat["type"], "heartbeat");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = heartbeat["timestamp"].as_u64().unwrap();
    assert!(at <= now && now - at < 60_000, "{heartbeat}");
}

#[tokio::test]
async fn every_error_is_a_message_and_the_connection_stays_usable() {
    let (mock, gateway) = setup(&[("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "2")]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    let mut bad_data = request("bad", "m");
    bad_data["data"]["temperature"] = json!(9);
    // (what the client sends, the id the error names, its status, its type, the field)
    type Case<'a> = (Message, Option<&'a str>, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            Message::text("{not json"),
            None,
            400,
            "validation",
            Some("message"),
        ),
        (
            Message::text(r#"{"type":"dance","id":"d"}"#),
            Some("d"),
            400,
            "validation",
            Some("type"),
        ),
        (
            Message::text(r#"{"type":"inference_request","data":{}}"#),
            None,
            400,
            "validation",
            Some("id"),
        ),
        (
            Message::text(bad_data.to_string()),
            Some("bad"),
            400,
            "validation",
            Some("data.temperature"),
        ),
        (
            Message::binary(b"{\"type\":\"ping\"}".to_vec()),
            None,
            400,
            "validation",
            Some("message"),
        ),
        (
            Message::text(request("up", "mock/status-400").to_string()),
            Some("up"),
            400,
            "openrouter",
            None,
        ),
        (
            Message::text(request("ok", "openai/gpt-4o").to_string()),
            None,
            0,
            "",
            None,
        ),
        // The inference limit of 2 is spent by the two requests above.
        (
            Message::text(request("spent", "openai/gpt-4o").to_string()),
            Some("spent"),
            429,
            "rate_limit",
            None,
        ),
    ];
    let mut request_ids = std::collections::BTreeSet::new();
    for (sent, id, status, kind, field) in cases {
        client.send_raw(sent).await.unwrap();
        if status == 0 {
            let messages = client.until_final("ok", WAIT, &mut Vec::new()).await;
            assert_eq!(only_final(&messages)["type"], "inference_response");
            continue;
        }
        let error = client.message(WAIT).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error.get("id").and_then(Value::as_str), id, "{error}");
        assert_eq!(error["error"]["code"], status, "{error}");
        assert_eq!(error["error"]["type"], kind, "{error}");
        // Each error names its message for the logs, whether `$default` or the worker
        // (the `up` case: OpenRouter's refusal) sent it.
        let request_id = error["request_id"].as_str().unwrap_or_default().to_owned();
        assert!(!request_id.is_empty(), "{error}");
        assert!(request_ids.insert(request_id), "an id used twice: {error}");
        if let Some(field) = field {
            assert_eq!(error["error"]["details"]["field"], field, "{error}");
        }
        // Still open and answering.
        client.send(&json!({"type": "ping"})).await.unwrap();
        assert_eq!(client.message(WAIT).await["type"], "heartbeat");
    }
    assert_eq!(
        mock.received().len(),
        2,
        "refused requests never reach OpenRouter"
    );
}

#[tokio::test]
async fn close_is_answered_then_the_connection_ends() {
    let (_mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send(&json!({"type": "close", "reason": "done for today", "code": 1000}))
        .await
        .unwrap();
    let close = client.message(WAIT).await;
    assert_eq!(
        close,
        json!({"type": "close", "reason": "done for today", "code": 1000})
    );
    match client.next(WAIT).await {
        Some(Event::Closed(frame)) => {
            assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
        }
        other => panic!("expected the connection to close, got {other:?}"),
    }
}

#[tokio::test]
async fn the_sixth_connection_in_a_minute_is_refused() {
    let (_mock, gateway) = setup(&[]).await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(WsClient::connect(&gateway.ws_url()).await.unwrap());
    }
    match WsClient::connect(&gateway.ws_url()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().get("retry-after").is_some());
            assert!(response.headers().get("x-request-id").is_some());
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["type"], "rate_limit");
        }
        other => panic!("expected a 429, got {:?}", other.map(|_| "a connection")),
    }
}

#[tokio::test]
async fn the_open_connection_cap_refuses_with_503() {
    // The per-client connection limit out of the way: this is about the total.
    let (_mock, gateway) = setup(&[
        ("WS_MAX_CONNECTIONS", "2"),
        ("WS_RATE_LIMIT_CONNECTIONS", "1000"),
    ])
    .await;
    let first = WsClient::connect(&gateway.ws_url()).await.unwrap();
    let _second = WsClient::connect(&gateway.ws_url()).await.unwrap();
    match WsClient::connect(&gateway.ws_url()).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected a 503, got {:?}", other.map(|_| "a connection")),
    }
    // A closed connection frees its place (once its $disconnect has been handled).
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match WsClient::connect(&gateway.ws_url()).await {
            Ok(_) => break,
            Err(tungstenite::Error::Http(response)) if response.status() == 503 => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the place was never freed"
                );
                tokio::task::yield_now().await;
            }
            Err(other) => panic!("{other}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_drops_the_upstream_request() {
    let (mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send(&request("long", "mock/stream-endless-20"))
        .await
        .unwrap();
    let first = client.message(WAIT).await;
    assert_eq!(first["type"], "inference_response");
    drop(client);
    assert!(
        mock.wait_for_streams_closed(1, WAIT).await,
        "the upstream stream was still open after the client left"
    );
}

#[tokio::test]
async fn a_two_megabyte_image_arrives_whole_in_frames_of_at_most_32_kb() {
    let (_mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send(&request("img", "mock/stream-big-2000000"))
        .await
        .unwrap();
    let messages = client.until_final("img", WAIT, &mut Vec::new()).await;
    let url = messages
        .iter()
        .filter_map(|m| m["data"]["images"][0]["image_url"]["url"].as_str())
        .next()
        .unwrap();
    assert_eq!(url.len(), "data:image/png;base64,".len() + 2_000_000);
    assert!(url.ends_with(&"A".repeat(1000)));
    assert!(
        client.frame_sizes.len() > 60,
        "{} frames",
        client.frame_sizes.len()
    );
    let largest = client.frame_sizes.iter().max().unwrap();
    assert!(*largest <= 32 * 1024, "a frame of {largest} bytes");
}

#[tokio::test]
async fn a_frame_over_32_kb_or_a_message_over_128_kb_closes_with_1009() {
    let (_mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send_raw(Message::text(format!(
            "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
            "x".repeat(40 * 1024)
        )))
        .await
        .unwrap();
    assert_closed_with(&mut client, 1009).await;

    // 150 KB in frames of 30 KB: each frame is allowed, the message is not.
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    let chunk = vec![b'x'; 30 * 1024];
    for i in 0..5 {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(chunk.clone(), opcode, i == 4);
        if client.send_raw(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    assert_closed_with(&mut client, 1009).await;
}

async fn assert_closed_with(client: &mut WsClient, code: u16) {
    match client.next(WAIT).await {
        Some(Event::Closed(Some(frame))) => assert_eq!(u16::from(frame.code), code),
        other => panic!("expected a close with {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_burst_of_deltas_is_coalesced_into_few_messages() {
    let (_mock, gateway) = setup(&[]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send(&request("burst", "mock/stream-burst-200"))
        .await
        .unwrap();
    let messages = client.until_final("burst", WAIT, &mut Vec::new()).await;
    assert_eq!(content(&messages), "Peb".repeat(200));
    assert!(
        messages.len() <= 10,
        "200 deltas took {} messages",
        messages.len()
    );
}

#[tokio::test]
async fn the_first_delta_is_not_held_back() {
    // A flush interval of a minute: only a first delta sent at once arrives in time.
    let (mock, gateway) = setup(&[("WS_FLUSH_INTERVAL_MS", "60000")]).await;
    mock.set_behaviour(Behaviour::LockStep);
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send(&request("first", "openai/gpt-4o"))
        .await
        .unwrap();
    // The mock sends its comment at once; let the role chunk and the first delta go.
    mock.step();
    mock.step();
    let first = client.message(WAIT).await;
    assert_eq!(first["type"], "inference_response", "{first}");
    assert_eq!(first["data"]["content"], "Peb");
    // The rest arrives when the stream ends, gathered.
    for _ in 0..20 {
        mock.step();
    }
    let rest = client.until_final("first", WAIT, &mut Vec::new()).await;
    assert_eq!(format!("Peb{}", content(&rest)), "Pebbles and Skipper.");
}

#[tokio::test]
async fn a_silent_model_gets_heartbeats() {
    let (_mock, gateway) = setup(&[("WS_HEARTBEAT_INTERVAL", "100")]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    client
        .send(&request("slow", "mock/stream-stall-1000"))
        .await
        .unwrap();
    let mut others = Vec::new();
    let messages = client.until_final("slow", WAIT, &mut others).await;
    assert_eq!(content(&messages), "Pebbles and Skipper.");
    let heartbeats = others.iter().filter(|m| m["type"] == "heartbeat").count();
    assert!(
        heartbeats >= 3,
        "{heartbeats} heartbeats during a second of silence: {others:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_as_api_gateway_closes_it() {
    let (_mock, gateway) = setup(&[("WS_IDLE_TIMEOUT_MS", "300")]).await;
    let mut client = WsClient::connect(&gateway.ws_url()).await.unwrap();
    assert_closed_with(&mut client, 1001).await;
}

#[tokio::test]
async fn the_management_api_answers_the_real_sdk_as_aws_does() {
    use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
    use aws_sdk_apigatewaymanagement::primitives::Blob;

    let (_mock, gateway) = setup(&[]).await;
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .http_client(llm_proxy_shared::aws::http_client())
        .credentials_provider(Credentials::new("t", "t", None, None, "test"))
        .endpoint_url(gateway.url("/local"))
        .build();
    let sdk = aws_sdk_apigatewaymanagement::Client::from_conf(config);
    let error = sdk
        .post_to_connection()
        .connection_id("NoSuchConnection=")
        .data(Blob::new("hello"))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.as_service_error(),
            Some(PostToConnectionError::GoneException(_))
        ),
        "{error:?}"
    );

    let error = sdk
        .delete_connection()
        .connection_id("NoSuchConnection=")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(410));
}
