use llm_proxy_shared::{AppState, Config, layers, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env()?;
    telemetry::init(&config);
    let state = AppState::new(config).await?;
    state.rate_limiter.warm().await;
    let app = layers::apply(inference::router(state.clone()), &state);
    lambda_http::run(app).await
}
