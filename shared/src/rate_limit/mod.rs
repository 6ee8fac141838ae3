//! `RateLimiter`: per-client fixed-window limits (SPEC §3).
//!
//! The policies decide what a request counts against; the store only counts. A
//! request under both the default and the inference limit (same window) costs one
//! store call that counts both and refuses if either is spent.

mod dynamo;
mod headers;
mod ip_key;
pub mod layer;
mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use dynamo::{DynamoStore, PARTITION_KEY, TTL_ATTRIBUTE};
pub use headers::Quota;
pub use ip_key::IpKeyer;
pub use store::{Counted, Counter, MemoryStore, Store, StoreError};

use crate::client_ip::ClientIp;
use crate::config::{Config, FailMode};
use crate::error::ApiError;

/// How long a counter call may take before the fail mode decides: a rate limiter
/// that makes every request slow is a failure of its own.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(150);

/// Expired items linger this long past their window for DynamoDB's TTL sweep.
const TTL_MARGIN_SECS: u64 = 60;

/// What a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any HTTP request but `/health` and `OPTIONS`.
    Http,
    /// REST, SSE and chat/completions inference (and WebSocket `inference_request`).
    Inference,
    /// Opening a WebSocket connection.
    WsConnect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub limit: u32,
    pub window: Duration,
}

/// The verdict for one request, with the state of every limit it counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub quotas: Vec<Quota>,
    /// Seconds until the spent limit resets (for `Retry-After`); 0 when allowed.
    pub retry_after: u64,
}

pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct RateLimiter {
    store: Store,
    keyer: IpKeyer,
    default: Policy,
    inference: Policy,
    ws: Policy,
    fail_mode: FailMode,
    budget: Duration,
    clock: Clock,
}

impl RateLimiter {
    pub fn new(store: Store, keyer: IpKeyer, config: &Config) -> Self {
        Self {
            store,
            keyer,
            default: Policy {
                name: "default",
                limit: config.rate_limit_max_requests,
                window: config.rate_limit_window,
            },
            inference: Policy {
                name: "inference",
                limit: config.rate_limit_inference_max_requests,
                window: config.rate_limit_window,
            },
            ws: Policy {
                name: "websocket",
                limit: config.ws_rate_limit_connections,
                window: config.ws_rate_limit_window,
            },
            fail_mode: config.rate_limit_fail_mode,
            budget: DEFAULT_BUDGET,
            clock: Arc::new(system_clock_ms),
        }
    }

    /// DynamoDB when `RATE_LIMIT_TABLE` is set, otherwise counters in memory.
    pub async fn from_config(config: &Config) -> Self {
        match (&config.rate_limit_table, &config.rate_limit_hash_key) {
            (Some(table), Some(secret)) => {
                let store = DynamoStore::from_env(table.clone(), DEFAULT_BUDGET).await;
                Self::new(
                    Store::Dynamo(store),
                    IpKeyer::new(secret.expose().as_bytes()),
                    config,
                )
            }
            _ => Self::new(
                Store::Memory(MemoryStore::default()),
                IpKeyer::random(),
                config,
            ),
        }
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
        let policies: &[Policy] = match scope {
            Scope::Http => &[self.default],
            Scope::Inference => &[self.default, self.inference],
            Scope::WsConnect => &[self.ws],
        };
        let (group, counters): (&str, &[Counter]) = match scope {
            Scope::Http => (
                "http",
                &[Counter {
                    name: "req",
                    limit: self.default.limit,
                }],
            ),
            Scope::Inference => (
                "http",
                &[
                    Counter {
                        name: "req",
                        limit: self.default.limit,
                    },
                    Counter {
                        name: "inf",
                        limit: self.inference.limit,
                    },
                ],
            ),
            Scope::WsConnect => (
                "ws",
                &[Counter {
                    name: "conn",
                    limit: self.ws.limit,
                }],
            ),
        };
        // Policies that share an item share a window (SPEC: one window for both).
        let window_ms = policies[0].window.as_millis().max(1) as u64;
        let now_ms = (self.clock)();
        let window_start = now_ms - now_ms % window_ms;
        let window_end = window_start + window_ms;
        let reset = window_end.div_ceil(1000);
        let key = format!("{group}#{}#{window_start}", self.keyer.key(ip));

        let counted = tokio::time::timeout(
            self.budget,
            self.store
                .increment(&key, counters, reset + TTL_MARGIN_SECS, now_ms / 1000),
        )
        .await
        .unwrap_or_else(|_| {
            Err(StoreError(format!(
                "no answer within {} ms",
                self.budget.as_millis()
            )))
        });

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
                    tracing::warn!(error = %error, "rate limiter unavailable; serving (RATE_LIMIT_FAIL_MODE=open)");
                    Ok(Decision {
                        allowed: true,
                        quotas: Vec::new(),
                        retry_after: 0,
                    })
                }
                FailMode::Closed => {
                    tracing::error!(error = %error, "rate limiter unavailable; refusing (RATE_LIMIT_FAIL_MODE=closed)");
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
                tracing::warn!(error = %error, "rate-limit store not reachable at init");
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
