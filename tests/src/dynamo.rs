//! A real DynamoDB-compatible server for the tests: moto (PyPI `moto[server]`,
//! installed into `.venv` by scripts/test) on 127.0.0.1 and a free port, started per
//! test and stopped when dropped — through `tests/dynamodb_server.py`, which serves one
//! request at a time as DynamoDB's per-item atomicity needs. Also a counting proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use llm_proxy_shared::rate_limit::{PARTITION_KEY, TTL_ATTRIBUTE};

use crate::gateway::workspace_root;
use crate::process::start_and_wait;

#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    #[error("moto is not installed in .venv: run the tests with scripts/test, which installs it")]
    NotInstalled,
    #[error("moto_server did not start: {0}")]
    NotStarted(String),
    #[error("{0}")]
    Sdk(String),
}

/// A fresh table `table` on `server`, and the variables that point a gateway's counters
/// at it: the SDK's (`sdk_env`) and `RATE_LIMIT_TABLE` (a hash key is the caller's).
pub async fn table_env(
    server: &DynamoServer,
    table: &str,
) -> Result<Vec<(&'static str, String)>, DynamoError> {
    create_table(&client(&server.endpoint).await, table).await?;
    let mut env = sdk_env(&server.endpoint);
    env.push(("RATE_LIMIT_TABLE", table.to_owned()));
    Ok(env)
}

/// The variables that point the AWS SDK (and the gateway) at a local server.
pub fn sdk_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        // No profile files or instance metadata: a test must not look beyond loopback.
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", "/dev/null".to_owned()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_owned()),
    ]
}

pub struct DynamoServer {
    pub endpoint: String,
    child: Child,
}

impl DynamoServer {
    pub fn start() -> Result<Self, DynamoError> {
        let python = workspace_root().join(".venv/bin/python");
        if !python.is_file() {
            return Err(DynamoError::NotInstalled);
        }
        let script = workspace_root().join("tests/dynamodb_server.py");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| DynamoError::NotStarted(e.to_string()))?;
        let mut command = Command::new(python);
        command.arg(script).args(["127.0.0.1", &port.to_string()]);
        // Werkzeug says "Running on http://127.0.0.1:PORT" once it is bound.
        let child = start_and_wait(&mut command, "Running on", Duration::from_secs(60))
            .map_err(DynamoError::NotStarted)?
            .child;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        })
    }

    /// Stops the server now (to test what happens when DynamoDB goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DynamoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SDK settings for `endpoint`, taken only from the arguments (never from the
/// environment, profile files or instance metadata).
pub fn config_for(endpoint: &str) -> aws_sdk_dynamodb::config::Builder {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests");
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .http_client(llm_proxy_shared::aws::http_client())
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
}

/// A Secrets Manager client for `endpoint` (moto serves Secrets Manager too), set up
/// as the proxy sets up its own.
pub fn secrets_client(endpoint: &str) -> llm_proxy_shared::secrets::aws_sdk_secretsmanager::Client {
    use llm_proxy_shared::secrets::aws_sdk_secretsmanager::config;
    let credentials = config::Credentials::new("test", "test", None, None, "tests");
    llm_proxy_shared::secrets::tuned(
        config::Builder::new()
            .behavior_version(config::BehaviorVersion::latest())
            .region(config::Region::new("us-east-1"))
            .http_client(llm_proxy_shared::aws::http_client())
            .credentials_provider(credentials)
            .endpoint_url(endpoint),
    )
}

/// Creates the secret `name` holding `value` on the server behind `client`; its ARN.
pub async fn create_secret(
    client: &llm_proxy_shared::secrets::aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<String, DynamoError> {
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| DynamoError::Sdk(e.to_string()))?;
    created
        .arn
        .ok_or_else(|| DynamoError::Sdk(format!("no ARN for the secret {name}")))
}

/// An SDK client for `endpoint` with the SDK's default timeouts and retries.
pub async fn client(endpoint: &str) -> Client {
    Client::from_conf(config_for(endpoint).build())
}

/// Creates the counter table as template.yaml defines it: string partition key,
/// on-demand billing, TTL on the expiry attribute.
pub async fn create_table(client: &Client, name: &str) -> Result<(), DynamoError> {
    let sdk = |e: &dyn std::fmt::Display| DynamoError::Sdk(e.to_string());
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PARTITION_KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| sdk(&e))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PARTITION_KEY)
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| sdk(&e))?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| sdk(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| sdk(&e))?,
        )
        .send()
        .await
        .map_err(|e| sdk(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    Ok(())
}

/// How the counting proxy treats requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Forward,
    /// Accept, then never answer: a DynamoDB slower than any budget.
    Hang,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    counts: Mutex<Vec<String>>,
    /// Writes (`UpdateItem`, `PutItem`, `DeleteItem`) per partition key.
    writes: Mutex<HashMap<String, usize>>,
    mode: Mutex<ProxyMode>,
    total: AtomicUsize,
}

/// An HTTP proxy in front of the server that counts DynamoDB operations by their
/// `X-Amz-Target` header.
pub struct CountingProxy {
    pub endpoint: String,
    state: Arc<ProxyState>,
    server: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            counts: Mutex::new(Vec::new()),
            writes: Mutex::new(HashMap::new()),
            mode: Mutex::new(ProxyMode::Forward),
            total: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            state,
            server,
        })
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        if let Ok(mut m) = self.state.mode.lock() {
            *m = mode;
        }
    }

    /// Operations seen so far, e.g. `["UpdateItem", "UpdateItem"]`.
    pub fn operations(&self) -> Vec<String> {
        self.state
            .counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub fn total(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Writes so far per item (its partition key).
    pub fn writes_per_item(&self) -> HashMap<String, usize> {
        self.state
            .writes
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }
}

/// The partition key a single-item write names (`Key` or `Item`).
fn written_item(operation: &str, body: &[u8]) -> Option<String> {
    let field = match operation {
        "UpdateItem" | "DeleteItem" => "Key",
        "PutItem" => "Item",
        _ => return None,
    };
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body[field][PARTITION_KEY]["S"].as_str().map(str::to_owned)
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    state.total.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("?")
        .to_owned();
    if let Ok(mut counts) = state.counts.lock() {
        counts.push(operation.clone());
    }
    let mode = state.mode.lock().map(|m| *m).unwrap_or(ProxyMode::Forward);
    if mode == ProxyMode::Hang {
        std::future::pending::<()>().await;
    }
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if let Some(item) = written_item(&operation, &body)
        && let Ok(mut writes) = state.writes.lock()
    {
        *writes.entry(item).or_default() += 1;
    }
    let url = format!(
        "{}{}",
        state.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = state.http.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            let mut out = Response::new(Body::from(body));
            *out.status_mut() = status;
            for (name, value) in &headers {
                if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
                    out.headers_mut().insert(name, value.clone());
                }
            }
            out
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
