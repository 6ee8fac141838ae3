//! `ModelCatalog`: OpenRouter's model catalogue, cached per warm container.
//!
//! Fresh for `MODELS_CACHE_TTL_MS`. After that the stale copy is served while one
//! background refresh runs (stale-while-revalidate); if the refresh fails the copy is
//! still served and the answer says so (stale-if-error). With no copy at all,
//! concurrent requests share one upstream fetch (single flight).

mod index;
mod model;
mod query;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

pub use index::{IndexError, ModelIndex, Prices};
pub use model::{Facts, Model, base_id, provider_of};
pub use query::{ModelQuery, Range, Sort};

use bytes::Bytes;

use crate::error::{ApiError, Chain, UpstreamError};
use crate::openrouter::{OpenRouterClient, OpenRouterError};

/// After a failed refresh, wait this long before trying again, so a down upstream
/// is not asked once per request.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// How the answer relates to the cache, told to the client in `X-Models-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Fetched for this request.
    Miss,
    Fresh,
    /// Past its freshness; a refresh is under way.
    Stale,
    /// Past its freshness, and the last refresh failed.
    StaleIfError,
}

impl CacheState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Miss => "miss",
            Self::Fresh => "hit",
            Self::Stale => "stale",
            Self::StaleIfError => "stale-if-error",
        }
    }
}

/// Why the catalogue could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Upstream(#[from] OpenRouterError),
    #[error("OpenRouter's model catalogue could not be read")]
    Unreadable(#[from] IndexError),
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::Upstream(error) => error.into(),
            CatalogError::Unreadable(cause) => UpstreamError {
                cause: Some(Arc::new(cause)),
                ..UpstreamError::bad_gateway("OpenRouter's model catalogue could not be read")
            }
            .into(),
        }
    }
}

pub struct CatalogView {
    pub index: Arc<ModelIndex>,
    pub state: CacheState,
    /// Freshness left, for `Cache-Control: max-age`.
    pub fresh_for: Duration,
}

#[derive(Clone)]
struct Snapshot {
    index: Arc<ModelIndex>,
    fetched_at: Instant,
}

pub struct ModelCatalog {
    client: OpenRouterClient,
    ttl: Duration,
    /// OpenRouter's other listings by path (a model's endpoints, the embeddings
    /// models), fetched on demand, kept as long as the catalogue is; endpoints only for
    /// models the catalogue lists, so it holds at most one entry per model and one more.
    endpoints: Mutex<HashMap<String, (Instant, Bytes)>>,
    current: RwLock<Option<Snapshot>>,
    /// Held by whoever is fetching: one upstream fetch at a time.
    fetch_lock: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    last_failure: Mutex<Option<(Instant, ApiError)>>,
}

impl ModelCatalog {
    pub fn new(client: OpenRouterClient, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            client,
            ttl,
            endpoints: Mutex::new(HashMap::new()),
            current: RwLock::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            last_failure: Mutex::new(None),
        })
    }

    /// Fetches now if there is no copy; for Lambda's init phase, so the first request
    /// after a cold start does not pay for it.
    pub async fn prefetch(self: &Arc<Self>) -> Result<(), ApiError> {
        self.get().await.map(|_| ())
    }

    pub async fn get(self: &Arc<Self>) -> Result<CatalogView, ApiError> {
        if let Some(snapshot) = self.snapshot() {
            return Ok(self.view_of(snapshot));
        }
        let arrived = Instant::now();
        let _fetching = self.fetch_lock.lock().await;
        // Whoever held the lock before us may have fetched, or failed, meanwhile.
        if let Some(snapshot) = self.snapshot() {
            return Ok(self.view_of(snapshot));
        }
        // A fetch that failed while we queued answers us too: fifty waiters must not
        // each wait out their own timeout against a down upstream.
        if let Some((at, error)) = self.last_failure()
            && at >= arrived
        {
            return Err(error);
        }
        match self.fetch().await {
            Ok(index) => Ok(CatalogView {
                index,
                state: CacheState::Miss,
                fresh_for: self.ttl,
            }),
            Err(error) => {
                self.set_failure(Some(error.clone()));
                Err(error)
            }
        }
    }

    /// OpenRouter's answer for a model's provider endpoints (`model` is an id the
    /// catalogue lists), cached like the catalogue; a stale copy is served when a
    /// refresh fails.
    pub async fn endpoints(&self, model: &str) -> Result<(Bytes, CacheState), ApiError> {
        self.listing(format!("/models/{model}/endpoints")).await
    }

    /// OpenRouter's list of embeddings models (`GET /embeddings/models`), whole, cached
    /// like the catalogue.
    pub async fn embedding_models(&self) -> Result<(Bytes, CacheState), ApiError> {
        self.listing("/embeddings/models".to_owned()).await
    }

    /// OpenRouter's answer at `path`, cached for the catalogue's TTL; a stale copy is
    /// served when a refresh fails.
    async fn listing(&self, path: String) -> Result<(Bytes, CacheState), ApiError> {
        let cached = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&path)
            .cloned();
        if let Some((at, body)) = &cached
            && at.elapsed() < self.ttl
        {
            return Ok((body.clone(), CacheState::Fresh));
        }
        match self.client.listing(&path).await {
            Ok(body) => {
                self.endpoints
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(path, (Instant::now(), body.clone()));
                Ok((body, CacheState::Miss))
            }
            Err(error) => match cached {
                Some((_, body)) => {
                    tracing::warn!(error = %Chain(&error), "listing refresh failed; serving the stale copy");
                    Ok((body, CacheState::StaleIfError))
                }
                None => Err(error.into()),
            },
        }
    }

    fn view_of(self: &Arc<Self>, snapshot: Snapshot) -> CatalogView {
        let age = snapshot.fetched_at.elapsed();
        if age < self.ttl {
            return CatalogView {
                index: snapshot.index,
                state: CacheState::Fresh,
                fresh_for: self.ttl - age,
            };
        }
        self.spawn_refresh();
        let state = if self.last_failure().is_some() {
            CacheState::StaleIfError
        } else {
            CacheState::Stale
        };
        CatalogView {
            index: snapshot.index,
            state,
            fresh_for: Duration::ZERO,
        }
    }

    fn spawn_refresh(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        if self
            .last_failure()
            .is_some_and(|(at, _)| at.elapsed() < RETRY_AFTER_FAILURE)
        {
            self.refreshing.store(false, Ordering::Release);
            return;
        }
        let catalog = self.clone();
        tokio::spawn(async move {
            let _fetching = catalog.fetch_lock.lock().await;
            if let Err(error) = catalog.fetch().await {
                tracing::warn!(error = %Chain(&error), "model catalogue refresh failed; serving the stale copy");
                catalog.set_failure(Some(error));
            }
            catalog.refreshing.store(false, Ordering::Release);
        });
    }

    async fn fetch(&self) -> Result<Arc<ModelIndex>, ApiError> {
        let started = Instant::now();
        let body = self.client.models().await.map_err(CatalogError::from)?;
        let index = ModelIndex::parse(&body).map_err(CatalogError::from)?;
        let index = Arc::new(index);
        tracing::info!(
            models = index.len(),
            ms = started.elapsed().as_millis() as u64,
            "model catalogue fetched"
        );
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Snapshot {
            index: index.clone(),
            fetched_at: Instant::now(),
        });
        self.set_failure(None);
        Ok(index)
    }

    fn snapshot(&self) -> Option<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn last_failure(&self) -> Option<(Instant, ApiError)> {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_failure(&self, error: Option<ApiError>) {
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error.map(|e| (Instant::now(), e));
    }
}
