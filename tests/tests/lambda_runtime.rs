//! The functions through the real Lambda runtime: `cargo lambda watch` runs the
//! binaries, `cargo lambda invoke` sends the REST API events kept in `events/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]
use llm_proxy_tests::connections::RecordingConnections;
use llm_proxy_tests::lambda::{LambdaWatch, response_header};
use llm_proxy_tests::lambda_api::RecordingLambdaApi;
use std::time::Duration;

use llm_proxy_tests::gateway::workspace_root;
use llm_proxy_tests::{Behaviour, MockOpenRouter, fixtures, read_lock_step};
use serde_json::Value;

const KEY: &str = "sk-or-v1-lambda-test-key";

/// `cargo lambda watch` with the mock, and the WebSocket function's AWS calls pointed at
/// recorders: replies to a recording Management API, its worker's invocation to a
/// recording Lambda API. Nothing leaves 127.0.0.1.
struct Recorders {
    mock: MockOpenRouter,
    recorded: RecordingConnections,
    lambda_api: RecordingLambdaApi,
    watch: LambdaWatch,
}

async fn with_recorders(extra: &[(&str, &str)]) -> Recorders {
    let mock = MockOpenRouter::start().await.unwrap();
    let recorded = RecordingConnections::start().await.unwrap();
    let lambda_api = RecordingLambdaApi::start().await.unwrap();
    let base = mock.base_url();
    let mut vars = vec![
        ("OPENROUTER_API_KEY", KEY),
        ("OPENROUTER_BASE_URL", base.as_str()),
        ("WS_MANAGEMENT_ENDPOINT", recorded.endpoint.as_str()),
        ("AWS_ENDPOINT_URL_LAMBDA", lambda_api.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    vars.extend_from_slice(extra);
    let watch = LambdaWatch::start(&vars).unwrap();
    Recorders {
        mock,
        recorded,
        lambda_api,
        watch,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn inference_and_health_answer_api_gateway_events() {
    let mock = MockOpenRouter::start().await.unwrap();
    mock.set_behaviour(Behaviour::Replay);
    let base = mock.base_url();
    let watch = LambdaWatch::start(&[
        ("OPENROUTER_API_KEY", KEY),
        ("OPENROUTER_BASE_URL", &base),
        ("ENVIRONMENT", "test"),
        // As template.yaml sets it: REST API paths arrive without the stage prefix.
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
    ])
    .unwrap();

    // invoke blocks on a child process; keep the runtime free to serve the mock.
    let health =
        tokio::task::block_in_place(|| watch.invoke("models", "models-health.json")).unwrap();
    assert_eq!(health["statusCode"], 200, "{health}");
    let body: Value = serde_json::from_str(health["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["environment"], "test");
    assert_eq!(
        response_header(&health, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    // API Gateway's own request id, as in its logs.
    assert_eq!(
        response_header(&health, "x-request-id").as_deref(),
        Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    );

    let answer =
        tokio::task::block_in_place(|| watch.invoke("inference", "inference-chat.json")).unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(
        answer["body"].as_str().unwrap().as_bytes(),
        &fixtures::chat_completion()[..]
    );
    assert_eq!(
        response_header(&answer, "x-generation-id").as_deref(),
        Some(fixtures::CHAT_COMPLETION_ID)
    );
    let chats = |mock: &MockOpenRouter| -> Vec<_> {
        mock.received()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .collect()
    };
    let received = chats(&mock);
    assert_eq!(received.len(), 1);
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(sent["model"], "openai/gpt-4o");
    assert_eq!(
        received[0].headers["authorization"],
        format!("Bearer {KEY}")
    );

    let invalid =
        tokio::task::block_in_place(|| watch.invoke("inference", "inference-invalid.json"))
            .unwrap();
    assert_eq!(invalid["statusCode"], 400, "{invalid}");
    let body: Value = serde_json::from_str(invalid["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "validation");
    assert_eq!(body["error"]["details"]["field"], "model");
    assert_eq!(
        chats(&mock).len(),
        1,
        "an invalid request costs no upstream call"
    );

    // A multipart upload arrives base64-encoded (BinaryMediaTypes */*) and reaches
    // OpenRouter as the client sent it.
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/inference-transcriptions.json"))
            .unwrap(),
    )
    .unwrap();
    let transcribed =
        tokio::task::block_in_place(|| watch.invoke("inference", "inference-transcriptions.json"))
            .unwrap();
    assert_eq!(transcribed["statusCode"], 200, "{transcribed}");
    assert_eq!(
        transcribed["body"].as_str().unwrap().as_bytes(),
        &fixtures::op("audio-transcriptions.json").unwrap()[..]
    );
    let upload = mock.received().pop().unwrap();
    assert_eq!(upload.path, "/api/v1/audio/transcriptions");
    let sent = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        event["body"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(upload.body, sent);
    assert_eq!(
        upload.headers["content-type"],
        event["headers"]["Content-Type"].as_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalogue_answers_api_gateway_events() {
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let watch = LambdaWatch::start(&[
        ("OPENROUTER_BASE_URL", &base),
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
    ])
    .unwrap();

    let list = tokio::task::block_in_place(|| watch.invoke("models", "models-list.json")).unwrap();
    assert_eq!(list["statusCode"], 200, "{list}");
    let body: Value = serde_json::from_str(list["body"].as_str().unwrap()).unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(
        ids.iter().all(|id| id.starts_with("meta-llama/")),
        "{ids:?}"
    );
    assert!(response_header(&list, "etag").is_some());

    let one = tokio::task::block_in_place(|| watch.invoke("models", "models-one.json")).unwrap();
    assert_eq!(one["statusCode"], 200, "{one}");
    let body: Value = serde_json::from_str(one["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["id"], "liquid/lfm-2.5-2.6b:free");

    // Fetched once, during the function's init, and served from memory after.
    let fetches = mock
        .received_all()
        .iter()
        .filter(|r| r.path == "/api/v1/models")
        .count();
    assert_eq!(fetches, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_function_streams_under_the_lambda_runtime() {
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let watch = LambdaWatch::start(&[
        ("OPENROUTER_API_KEY", KEY),
        ("OPENROUTER_BASE_URL", &base),
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
    ])
    .unwrap();
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                                  "stream": true});

    // Through cargo lambda's Function URL emulation (the runtime is the same whatever
    // the trigger). Lock-step: the mock sends event k+1 only once the client holds
    // event k, so the stream completes only if the runtime forwards each event as it
    // is written.
    mock.set_behaviour(Behaviour::LockStep);
    let run = async {
        let url = watch.function_url("stream", "/api/v1/inference/stream");
        let response = client.post(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        read_lock_step(response, &mock).await.unwrap()
    };
    // The first invocation may compile the function.
    let received = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("events held back");
    assert_eq!(received, fixtures::stream("text").unwrap());

    // A buffered JSON answer under the streaming runtime must not come back empty
    // (aws-lambda-rust-runtime issue 805).
    mock.set_behaviour(Behaviour::Replay);
    let mut plain = body.clone();
    plain["stream"] = serde_json::json!(false);
    let response = client
        .post(watch.function_url("stream", "/api/v1/chat/completions"))
        .json(&plain)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.bytes().await.unwrap(), fixtures::chat_completion());

    // The REST API's streaming events in events/, through `cargo lambda invoke` (which
    // prints the streamed body; lambda_stream_prelude.rs checks the bytes before it).
    let streamed =
        tokio::task::block_in_place(|| watch.invoke_raw("stream", "stream-chat-completions.json"))
            .unwrap();
    // (invoke adds one newline of its own after the body)
    let expected = String::from_utf8(fixtures::stream("text").unwrap().to_vec()).unwrap();
    assert!(
        streamed == expected || streamed == format!("{expected}\n"),
        "{streamed}"
    );
    let answer = tokio::task::block_in_place(|| {
        watch.invoke_raw("stream", "stream-chat-completions-json.json")
    })
    .unwrap();
    assert_eq!(
        answer.trim().as_bytes(),
        fixtures::chat_completion().trim_ascii()
    );

    // Speech: OpenRouter's audio bytes, with its Content-Type, through the streaming
    // runtime.
    let speech = client
        .post(watch.function_url("stream", "/api/v1/audio/speech"))
        .json(&serde_json::json!({"model": "hexgrad/kokoro-82m", "input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(speech.status(), 200);
    assert_eq!(speech.headers()["content-type"], "audio/mpeg");
    assert_eq!(
        speech.bytes().await.unwrap(),
        fixtures::op("audio-speech.bin").unwrap()
    );

    // And an error before the first byte keeps its status and JSON shape.
    let mut limited = body.clone();
    limited["model"] = serde_json::json!("mock/status-429");
    let response = client
        .post(watch.function_url("stream", "/api/v1/chat/completions"))
        .json(&limited)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "openrouter");
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_functions_count_in_dynamodb_by_the_request_context_ip() {
    use llm_proxy_tests::dynamo::{self, DynamoServer};
    let server = DynamoServer::start().unwrap();
    let table_client = dynamo::client(&server.endpoint).await;
    dynamo::create_table(&table_client, "lambda-limits")
        .await
        .unwrap();
    // Both keys in Secrets Manager, as the template keeps them: read at init.
    let secrets = dynamo::secrets_client(&server.endpoint);
    for (name, value) in [("or-key", KEY), ("hash-key", "lambda-secret")] {
        dynamo::create_secret(&secrets, name, value).await.unwrap();
    }
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let env = dynamo::sdk_env(&server.endpoint);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", server.endpoint.as_str()),
        ("OPENROUTER_API_KEY_SECRET", "or-key"),
        ("OPENROUTER_BASE_URL", base.as_str()),
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
        ("RATE_LIMIT_TABLE", "lambda-limits"),
        ("RATE_LIMIT_HASH_KEY_SECRET", "hash-key"),
        ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "1"),
    ]);
    let watch = LambdaWatch::start(&vars).unwrap();

    let first =
        tokio::task::block_in_place(|| watch.invoke("inference", "inference-chat.json")).unwrap();
    assert_eq!(first["statusCode"], 200, "{first}");
    assert_eq!(
        mock.received()[0].headers["authorization"],
        format!("Bearer {KEY}"),
        "the key read from Secrets Manager"
    );
    assert_eq!(
        response_header(&first, "x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    let second =
        tokio::task::block_in_place(|| watch.invoke("inference", "inference-chat.json")).unwrap();
    assert_eq!(second["statusCode"], 429, "{second}");
    assert!(response_header(&second, "retry-after").is_some());

    // The connection was opened during init (a write to the warm-up item), and the
    // client's counter is keyed by a hash of the request context's source IP: the
    // event's X-Forwarded-For and sourceIp appear nowhere.
    let items = table_client
        .scan()
        .table_name("lambda-limits")
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = items
        .items()
        .iter()
        .map(|i| i["pk"].as_s().unwrap().clone())
        .collect();
    assert!(keys.iter().any(|k| k == "init#warm"), "{keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("http#")).count(),
        1,
        "{keys:?}"
    );
    let text = format!("{:?}", items.items());
    for raw in ["203.0.113.7", "198.51.100.99"] {
        assert!(!text.contains(raw), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_websocket_function_answers_api_gateway_events() {
    let Recorders {
        mock,
        recorded,
        lambda_api,
        watch,
    } = with_recorders(&[]).await;
    let invoke =
        |event: &str| tokio::task::block_in_place(|| watch.invoke("websocket", event)).unwrap();
    const CONNECTION: &str = "GXLJvc8VFiAFhgw=";
    let answered = |id: &'static str| {
        move |posts: &[(String, Value)]| {
            posts.iter().any(|(c, m)| {
                c == CONNECTION && m["id"] == id && m["data"].get("finish_reason").is_some()
            })
        }
    };
    let content = |id: &str| -> String {
        recorded
            .posts()
            .iter()
            .filter(|(_, m)| m["id"] == id)
            .filter_map(|(_, m)| m["data"]["content"].as_str().map(str::to_owned))
            .collect()
    };

    assert_eq!(invoke("websocket-connect.json")["statusCode"], 200);

    assert_eq!(invoke("websocket-default-ping.json")["statusCode"], 200);
    let posts = recorded.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, CONNECTION);
    assert_eq!(posts[0].1["type"], "heartbeat");

    assert_eq!(invoke("websocket-default-invalid.json")["statusCode"], 200);
    let error = recorded.posts().last().unwrap().1.clone();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "req-9");
    assert_eq!(error["error"]["details"]["field"], "data.messages");

    // $default hands the inference to an asynchronous invocation of the function
    // itself, and answers at once.
    assert_eq!(
        invoke("websocket-default-inference.json")["statusCode"],
        200
    );
    let invocations = lambda_api.invocations();
    assert_eq!(invocations.len(), 1, "{invocations:?}");
    assert_eq!(invocations[0].function, "websocket");
    assert_eq!(invocations[0].invocation_type.as_deref(), Some("Event"));
    // Lambda's queue delivers it: the worker answers the client.
    let job = String::from_utf8(invocations[0].payload.to_vec()).unwrap();
    tokio::task::block_in_place(|| watch.invoke_payload("websocket", &job)).unwrap();
    assert!(
        recorded
            .wait_for(Duration::from_secs(30), answered("req-123"))
            .await
    );
    assert_eq!(content("req-123"), "You said: Hello, world!");
    // Delivered again, as an asynchronous invocation may be: not answered twice.
    let posted = recorded.posts().len();
    tokio::task::block_in_place(|| watch.invoke_payload("websocket", &job)).unwrap();
    assert_eq!(recorded.posts().len(), posted);

    // The worker event in events/ (another connection's request) is answered too.
    invoke("websocket-worker.json");
    assert!(
        recorded
            .wait_for(Duration::from_secs(30), answered("req-456"))
            .await
    );
    assert_eq!(mock.received().len(), 2);

    assert_eq!(invoke("websocket-disconnect.json")["statusCode"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_in_events_is_answered_by_its_function() {
    use llm_proxy_tests::gateway::workspace_root;

    let Recorders {
        mock,
        recorded,
        watch,
        ..
    } = with_recorders(&[
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
        ("CORS_ORIGINS", "https://app.example.com"),
    ])
    .await;
    mock.set_behaviour(Behaviour::Replay);

    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    let mut answered = std::collections::BTreeSet::new();
    for name in &names {
        // Named <function>-<what>.json.
        let function = name.split('-').next().unwrap();
        answered.insert(function.to_owned());
        if function == "stream" {
            let body = tokio::task::block_in_place(|| watch.invoke_raw(function, name)).unwrap();
            let body = body.trim();
            if name.contains("preflight") {
                assert!(body.is_empty(), "{name}: {body}");
            } else if name.contains("speech") {
                // MP3 bytes, printed as text by invoke: the ID3 tag they start with.
                assert!(body.starts_with("ID3"), "{name}");
            } else if name.ends_with("-json.json") {
                let answer: Value = serde_json::from_str(body).unwrap();
                assert!(answer["choices"].is_array(), "{name}: {body}");
            } else {
                assert!(body.contains("\ndata: {"), "{name}: {body}");
                // Anthropic's Messages stream ends at message_stop; the others at [DONE].
                assert!(
                    body.ends_with("data: [DONE]") || body.ends_with(r#"{"type":"message_stop"}"#),
                    "{name}: {body}"
                );
            }
            continue;
        }
        let response = tokio::task::block_in_place(|| watch.invoke(function, name)).unwrap();
        if name == "websocket-worker.json" {
            // The worker answers over the Management API, not in its response.
            let id = "req-456";
            let done = |posts: &[(String, Value)]| {
                posts
                    .iter()
                    .any(|(_, m)| m["id"] == id && m["data"].get("finish_reason").is_some())
            };
            assert!(
                recorded.wait_for(Duration::from_secs(30), done).await,
                "{name}"
            );
            continue;
        }
        let status = response["statusCode"].as_u64().unwrap_or_default();
        if function == "websocket" {
            assert_eq!(status, 200, "{name}: {response}");
        } else if name.contains("invalid") {
            assert_eq!(status, 400, "{name}: {response}");
        } else if name.contains("preflight") {
            assert!((200..300).contains(&status), "{name}: {response}");
            assert_eq!(
                response_header(&response, "access-control-allow-origin").as_deref(),
                Some("https://app.example.com"),
                "{name}"
            );
        } else {
            assert_eq!(status, 200, "{name}: {response}");
            let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{name}: {e}: {response}"));
            assert!(body.get("error").is_none(), "{name}: {body}");
        }
    }
    // Every function has its events.
    assert_eq!(
        answered,
        ["inference", "models", "stream", "websocket"]
            .map(str::to_owned)
            .into()
    );
}
