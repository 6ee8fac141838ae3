//! `RateLimiter`: per-client fixed-window limits (`docs/rate-limits.md`).
//!
//! Layout, leaf first: `counter` (what a store is asked and answers), the stores
//! (`memory`, `dynamo`) and `store` (the one chosen at start-up); `policy` (what a
//! request counts against, the verdict and its headers); this module decides, and
//! `layer` applies it to HTTP requests.
//!
//! A request under both the default and the inference limit (same window) costs one
//! store call that counts both and refuses if either is spent.

mod connections;
mod counter;
mod dynamo;
mod ip_key;
pub mod layer;
mod memory;
mod policy;
mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use counter::{Claim, Counted, Counter, StoreError};
pub use dynamo::{DynamoStore, PARTITION_KEY, TTL_ATTRIBUTE};
pub use ip_key::IpKeyer;
pub use memory::MemoryStore;
pub use policy::{Decision, Policy, Quota, Scope};
pub use store::Store;

use crate::client_ip::ClientIp;
use crate::config::{FailMode, RateLimitConfig};
use crate::error::{ApiError, Chain};

/// How long a counter call may take before the fail mode decides: a rate limiter
/// that makes every request slow is a failure of its own.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(150);

/// Expired items linger this long past their window for DynamoDB's TTL sweep.
const TTL_MARGIN_SECS: u64 = 60;

pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct RateLimiter {
    store: Store,
    keyer: IpKeyer,
    /// `[default]` and `[default, inference]`: one item, one window.
    http: [Policy; 2],
    ws: Policy,
    fail_mode: FailMode,
    budget: Duration,
    clock: Clock,
}

impl RateLimiter {
    pub fn new(store: Store, keyer: IpKeyer, config: &RateLimitConfig) -> Self {
        Self {
            store,
            keyer,
            http: [
                Policy {
                    name: "default",
                    counter: "req",
                    limit: config.max_requests,
                    window: config.window,
                },
                Policy {
                    name: "inference",
                    counter: "inf",
                    limit: config.inference_max_requests,
                    window: config.window,
                },
            ],
            ws: Policy {
                name: "websocket",
                counter: "conn",
                limit: config.ws_connections,
                window: config.ws_window,
            },
            fail_mode: config.fail_mode,
            budget: DEFAULT_BUDGET,
            clock: Arc::new(system_clock_ms),
        }
    }

    /// DynamoDB when `RATE_LIMIT_TABLE` is set (the SDK configured from the
    /// environment), otherwise counters in memory.
    pub async fn from_config(config: &RateLimitConfig) -> Self {
        match &config.table {
            Some(table) => {
                let store = DynamoStore::from_env(table.clone(), DEFAULT_BUDGET).await;
                Self::with_store(Store::Dynamo(store), config)
            }
            None => Self::with_store(Store::Memory(MemoryStore::default()), config),
        }
    }

    /// Counters in `store`. Addresses are hashed with `RATE_LIMIT_HASH_KEY` when one is
    /// set (counters others can read), with a secret of this process's otherwise.
    pub fn with_store(store: Store, config: &RateLimitConfig) -> Self {
        let keyer = match &config.hash_key {
            Some(secret) => IpKeyer::new(secret.expose().as_bytes()),
            None => IpKeyer::random(),
        };
        Self::new(store, keyer, config)
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Counts one request of `scope` from `ip`. `Err` only when the store failed and
    /// the fail mode is `closed`.
    pub async fn check(&self, ip: ClientIp, scope: Scope) -> Result<Decision, ApiError> {
        let (group, policies): (&str, &[Policy]) = match scope {
            Scope::Http => ("http", &self.http[..1]),
            Scope::Inference => ("http", &self.http),
            Scope::WsConnect => ("ws", std::slice::from_ref(&self.ws)),
        };
        let counters: Vec<Counter> = policies.iter().map(Policy::counter).collect();
        // Policies that share an item share a window (the default and inference
        // limits have one window by design).
        let window_ms = policies[0].window.as_millis().max(1) as u64;
        let now_ms = (self.clock)();
        let window_start = now_ms - now_ms % window_ms;
        let window_end = window_start + window_ms;
        let reset = window_end.div_ceil(1000);
        let key = format!("{group}#{}#{window_start}", self.keyer.key(ip));

        let counted = tokio::time::timeout(
            self.budget,
            self.store
                .increment(&key, &counters, reset + TTL_MARGIN_SECS, now_ms / 1000),
        )
        .await
        .unwrap_or(Err(StoreError::Timeout(self.budget)));

        let seconds_left = (window_end - now_ms).div_ceil(1000).max(1);
        match counted {
            Ok(Counted::Admitted(counts)) => Ok(Decision {
                allowed: true,
                quotas: quotas(policies, Some(&counts), reset, seconds_left),
                retry_after: 0,
            }),
            Ok(Counted::Refused(counts)) => {
                let mut quotas = quotas(policies, counts.as_deref(), reset, seconds_left);
                if counts.is_none() {
                    // The store did not say which limit is spent: the tightest one is.
                    if let Some(tightest) = quotas.iter_mut().min_by_key(|q| q.policy.limit) {
                        tightest.remaining = 0;
                    }
                }
                Ok(Decision {
                    allowed: false,
                    quotas,
                    retry_after: seconds_left,
                })
            }
            Err(error) => match self.fail_mode {
                FailMode::Open => {
                    tracing::warn!(error = %Chain(&error), "rate limiter unavailable; serving (RATE_LIMIT_FAIL_MODE=open)");
                    Ok(Decision {
                        allowed: true,
                        quotas: Vec::new(),
                        retry_after: 0,
                    })
                }
                FailMode::Closed => {
                    tracing::error!(error = %Chain(&error), "rate limiter unavailable; refusing (RATE_LIMIT_FAIL_MODE=closed)");
                    Err(ApiError::Unavailable {
                        message: "The rate limiter is unavailable; retry shortly".into(),
                    })
                }
            },
        }
    }

    /// Opens the store's connection during Lambda init, so the first request does not
    /// pay for the TLS handshake. Costs one write to a counter nobody uses.
    pub async fn warm(&self) {
        if let Store::Dynamo(store) = &self.store {
            let expires = (self.clock)() / 1000 + TTL_MARGIN_SECS;
            let counter = [Counter {
                name: "warm",
                limit: u32::MAX,
            }];
            if let Err(error) = store.increment("init#warm", &counter, expires).await {
                tracing::warn!(error = %Chain(&error), "rate-limit store not reachable at init");
            }
        }
    }
}

fn quotas(
    policies: &[Policy],
    counts: Option<&[u32]>,
    reset: u64,
    seconds_left: u64,
) -> Vec<Quota> {
    policies
        .iter()
        .enumerate()
        .map(|(i, policy)| {
            let used = counts.and_then(|c| c.get(i)).copied().unwrap_or(0);
            Quota {
                policy: *policy,
                remaining: policy.limit.saturating_sub(used),
                reset,
                seconds_left,
            }
        })
        .collect()
}
