use std::time::Duration;

use llm_proxy_shared::{AppState, Config, layers, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env()?;
    telemetry::init(&config);
    let state = AppState::new(config).await?;
    state.rate_limiter.warm().await;
    // Fetched during init (which is not billed for its first 10 s and warms the
    // TLS connection), so the first request after a cold start does not wait for it.
    // Lambda allows 10 s of init; a slow upstream must not use them all.
    match tokio::time::timeout(Duration::from_secs(5), state.catalog.prefetch()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(error = %error, "model catalogue not fetched at init"),
        Err(_) => tracing::warn!("model catalogue not fetched at init: upstream too slow"),
    }
    let app = layers::apply(models::router(state.clone()), &state);
    lambda_http::run(app).await
}
