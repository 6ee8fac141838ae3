use llm_proxy_shared::{AppState, Config, layers, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env()?;
    telemetry::init(&config);
    let state = AppState::new(config).await?;
    state.rate_limiter.warm().await;
    let app = layers::apply(stream::router(state.clone()), &state);
    // Response streaming: each SSE event leaves the function as it is relayed.
    lambda_http::run_with_streaming_response(app).await
}
