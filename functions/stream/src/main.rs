use llm_proxy_shared::{AppState, layers};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = AppState::from_env().await?;
    let app = layers::apply(stream::router(state.clone()), &state)
        .layer(axum::middleware::map_response(layers::one_value_per_header));
    // Response streaming: each SSE event leaves the function as it is relayed.
    lambda_http::run_with_streaming_response(app).await
}
