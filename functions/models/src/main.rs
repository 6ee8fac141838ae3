use llm_proxy_shared::{AppState, Config, layers, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env()?;
    telemetry::init(&config);
    let state = AppState::new(config)?;
    let app = layers::apply(models::router(state.clone()), &state.config);
    lambda_http::run(app).await
}
