use std::time::Duration;

use llm_proxy_shared::error::Chain;
use llm_proxy_shared::{AppState, layers};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = AppState::from_env().await?;
    // Fetched during init (which also warms the TLS connection), so the first request
    // after a cold start does not wait for it. Lambda allows 10 s of init; a slow
    // upstream must not use them all.
    match tokio::time::timeout(Duration::from_secs(5), state.catalog.prefetch()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(error = %Chain(&error), "model catalogue not fetched at init")
        }
        Err(_) => tracing::warn!("model catalogue not fetched at init: upstream too slow"),
    }
    let app = layers::apply(models::router(state.clone()), &state);
    lambda_http::run(app).await
}
