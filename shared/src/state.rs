//! `AppState`: what a container builds once at init and every request reuses.

use std::sync::Arc;
use std::time::Instant;

use crate::catalog::ModelCatalog;
use crate::config::Config;
use crate::openrouter::{ClientBuildError, OpenRouterClient};
use crate::rate_limit::RateLimiter;

pub struct AppState {
    pub config: Config,
    pub openrouter: OpenRouterClient,
    pub catalog: Arc<ModelCatalog>,
    pub rate_limiter: Arc<RateLimiter>,
    /// When this container started, for `/health`'s `uptime`.
    pub started: Instant,
}

impl AppState {
    pub async fn new(config: Config) -> Result<Arc<Self>, ClientBuildError> {
        let openrouter = OpenRouterClient::new(&config)?;
        let catalog = ModelCatalog::new(openrouter.clone(), config.models_cache_ttl);
        let rate_limiter = Arc::new(RateLimiter::from_config(&config).await);
        Ok(Arc::new(Self {
            config,
            openrouter,
            catalog,
            rate_limiter,
            started: Instant::now(),
        }))
    }
}
