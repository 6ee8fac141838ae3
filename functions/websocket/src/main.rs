use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use llm_proxy_shared::AppState;
use serde_json::Value;
use websocket::{Connections, Invoker, WebSocketApp};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let state = AppState::from_env().await?;
    let sdk = llm_proxy_shared::aws::sdk_config().await;
    // The worker is this same function, invoked asynchronously with its own event.
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")?;
    let invoker = Invoker::Lambda {
        client: aws_sdk_lambda::Client::new(&sdk),
        function,
    };
    let connections = Connections::new((&sdk).into());
    let endpoint = state.config.websocket.management_endpoint.clone();
    let app = Arc::new(WebSocketApp::new(state, connections, invoker, endpoint));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        async move { Ok::<Value, lambda_runtime::Error>(app.handle(event.payload).await) }
    }))
    .await
}
