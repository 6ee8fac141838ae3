use llm_proxy_shared::{AppState, layers};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = AppState::from_env().await?;
    let app = layers::apply(inference::router(state.clone()), &state);
    lambda_http::run(app).await
}
