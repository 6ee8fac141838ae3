//! The WebSocket function's handler without a socket, as Lambda runs it: API Gateway
//! events and worker events handed to `WebSocketApp::handle`, replies recorded by a
//! stand-in Management API. What only shows here: a repeated asynchronous delivery is
//! answered once, a reused id is refused, throttled posts are retried without losing a
//! delta, and a client that has gone drops the upstream request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::time::Duration;

use llm_proxy_shared::{AppState, Config};
use llm_proxy_tests::MockOpenRouter;
use llm_proxy_tests::connections::{Answer, RecordingConnections};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use websocket::{Connections, Invoker, JOB_KEY, WebSocketApp};

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    app: WebSocketApp,
    jobs: mpsc::UnboundedReceiver<Vec<u8>>,
    recorded: RecordingConnections,
    mock: MockOpenRouter,
}

async fn harness(extra: &[(&str, &str)]) -> Harness {
    let mock = MockOpenRouter::start().await.unwrap();
    let recorded = RecordingConnections::start().await.unwrap();
    let base = mock.base_url();
    let mut vars = vec![
        ("OPENROUTER_API_KEY", "sk-or-v1-worker"),
        ("OPENROUTER_BASE_URL", base.as_str()),
    ];
    vars.extend_from_slice(extra);
    let config = Config::from_lookup(|name| {
        vars.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let state = AppState::new(config).await.unwrap();
    let sdk = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
        .region(aws_sdk_apigatewaymanagement::config::Region::new(
            "us-east-1",
        ))
        .http_client(llm_proxy_shared::aws::http_client())
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "t", "t", None, None, "test",
        ));
    let (queue, jobs) = mpsc::unbounded_channel();
    let app = WebSocketApp::new(
        state,
        Connections::new(sdk),
        Invoker::Queue(queue),
        Some(recorded.endpoint.clone()),
    );
    Harness {
        app,
        jobs,
        recorded,
        mock,
    }
}

impl Harness {
    /// A worker event as `$default` makes it.
    fn job(&self, message_id: &str, id: &str, model: &str) -> Value {
        job(&self.recorded.endpoint, message_id, id, model)
    }
}

fn job(endpoint: &str, message_id: &str, id: &str, model: &str) -> Value {
    json!({ JOB_KEY: {
        "connection_id": "Conn1=", "endpoint": endpoint, "id": id, "message_id": message_id,
        "stream": true, "source_ip": "192.0.2.10",
        "data": {"model": model, "messages": [{"role": "user", "content": "Hello, world!"}]},
        "reserved": {"estimate": {"prices": {"prompt": 2.5, "completion": 10.0},
                                  "input_tokens": 40, "max_output": 4096},
                     "reservation": null}
    }})
}

fn finals(posts: &[(String, Value)], id: &str) -> usize {
    posts
        .iter()
        .filter(|(_, m)| m["id"] == id)
        .filter(|(_, m)| m["type"] == "error" || m["data"].get("finish_reason").is_some())
        .count()
}

fn content(posts: &[(String, Value)], id: &str) -> String {
    posts
        .iter()
        .filter(|(_, m)| m["id"] == id && m["type"] == "inference_response")
        .filter_map(|(_, m)| m["data"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn a_repeated_delivery_is_answered_once() {
    let h = harness(&[]).await;
    h.app.handle(h.job("msg-1", "req-1", "openai/gpt-4o")).await;
    h.app.handle(h.job("msg-1", "req-1", "openai/gpt-4o")).await;
    let posts = h.recorded.posts();
    assert_eq!(finals(&posts, "req-1"), 1, "{posts:?}");
    assert_eq!(content(&posts, "req-1"), "You said: Hello, world!");
    assert_eq!(h.mock.received().len(), 1, "one upstream call");
    assert!(posts.iter().all(|(connection, _)| connection == "Conn1="));
}

#[tokio::test]
async fn a_reused_id_is_refused() {
    let h = harness(&[]).await;
    h.app.handle(h.job("msg-1", "req-1", "openai/gpt-4o")).await;
    h.app.handle(h.job("msg-2", "req-1", "openai/gpt-4o")).await;
    let posts = h.recorded.posts();
    let error = &posts.last().unwrap().1;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "req-1");
    assert_eq!(error["error"]["details"]["field"], "id");
    assert_eq!(h.mock.received().len(), 1);
}

#[tokio::test]
async fn throttled_posts_are_retried_and_no_delta_is_lost() {
    let h = harness(&[]).await;
    h.recorded.set_answer(Answer::Throttle(4));
    h.app.handle(h.job("m", "req", "mock/stream-text")).await;
    let posts = h.recorded.posts();
    assert_eq!(content(&posts, "req"), "Pebbles and Skipper.");
    assert_eq!(finals(&posts, "req"), 1);
}

#[tokio::test]
async fn a_gone_client_drops_the_upstream_request() {
    let h = harness(&[]).await;
    h.recorded.set_answer(Answer::Gone);
    let worker = h.app.handle(h.job("m", "req", "mock/stream-endless-10"));
    // The worker ends (the stream is endless: only the client's absence ends it)...
    tokio::time::timeout(WAIT, worker)
        .await
        .expect("the worker went on for a gone client");
    // ...and the upstream stream with it.
    assert!(h.mock.wait_for_streams_closed(1, WAIT).await);
}

#[tokio::test]
async fn default_hands_an_inference_to_the_worker_with_the_message_id() {
    let mut h = harness(&[]).await;
    let event: Value = serde_json::from_str(include_str!(
        "../../events/websocket-default-inference.json"
    ))
    .unwrap();
    let answer = h.app.handle(event.clone()).await;
    assert_eq!(answer["statusCode"], 200);
    let job: Value = serde_json::from_slice(&h.jobs.recv().await.unwrap()).unwrap();
    let job = &job[JOB_KEY];
    assert_eq!(
        job["connection_id"],
        event["requestContext"]["connectionId"]
    );
    assert_eq!(job["message_id"], event["requestContext"]["messageId"]);
    assert_eq!(job["id"], "req-123");
    assert_eq!(job["stream"], true);
    assert_eq!(job["endpoint"], h.recorded.endpoint);
    assert!(
        h.recorded.posts().is_empty(),
        "nothing is posted until the worker runs"
    );

    // The worker answers the same request, once, to the same connection.
    let job_event = json!({ JOB_KEY: job });
    h.app.handle(job_event).await;
    let posts = h.recorded.posts();
    assert_eq!(finals(&posts, "req-123"), 1);
    assert!(
        posts
            .iter()
            .all(|(c, _)| c == event["requestContext"]["connectionId"].as_str().unwrap())
    );
}
