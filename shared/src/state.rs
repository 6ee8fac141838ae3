//! `AppState`: what a container builds once at init and every request reuses.

use std::sync::Arc;
use std::time::Instant;

use crate::catalog::ModelCatalog;
use crate::config::{Config, ConfigError};
use crate::journal::{DynamoJournal, Journal};
use crate::openrouter::{ClientBuildError, OpenRouterClient};
use crate::rate_limit::RateLimiter;
use crate::secrets::SecretError;

pub struct AppState {
    pub config: Config,
    pub openrouter: OpenRouterClient,
    pub catalog: Arc<ModelCatalog>,
    pub rate_limiter: Arc<RateLimiter>,
    /// The answers given under an `Idempotency-Key`, in the rate-limit table if there
    /// is one.
    pub journal: Arc<Journal>,
    /// When this container started, for `/health`'s `uptime`.
    pub started: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl AppState {
    /// A Lambda container's start: settings from the environment, logs, the secrets
    /// it names, clients, and the rate-limit store's connection opened before the
    /// first request.
    pub async fn from_env() -> Result<Arc<Self>, StartupError> {
        let config = Config::from_env()?;
        crate::telemetry::init(&config);
        let config = crate::secrets::resolve(config).await?;
        let state = Self::new(config).await?;
        state.rate_limiter.warm().await;
        Ok(state)
    }

    pub async fn new(config: Config) -> Result<Arc<Self>, ClientBuildError> {
        let rate_limiter = RateLimiter::from_config(&config.rate_limits).await;
        Self::with_rate_limiter(config, rate_limiter)
    }

    /// With a rate limiter built by the caller (tests hand in one over a DynamoDB
    /// client of their own).
    pub fn with_rate_limiter(
        config: Config,
        rate_limiter: RateLimiter,
    ) -> Result<Arc<Self>, ClientBuildError> {
        let openrouter = OpenRouterClient::new(&config.upstream)?;
        let catalog = ModelCatalog::new(openrouter.clone(), config.catalog.ttl);
        let journal = Arc::new(Journal::new(
            rate_limiter
                .dynamo()
                .map(|(client, table)| DynamoJournal::new(client, table)),
            config.upstream.idempotency_ttl,
        ));
        let rate_limiter = Arc::new(rate_limiter);
        Ok(Arc::new(Self {
            config,
            openrouter,
            catalog,
            rate_limiter,
            journal,
            started: Instant::now(),
        }))
    }
}
