//! `RateLimiter`: per-client fixed-window limits (`docs/rate-limits.md`).
//!
//! Layout, leaf first: `counter` (what a store is asked and answers), the stores
//! (`memory`, `dynamo`) and `store` (the one chosen at start-up); `policy` (what a
//! request counts against, the verdict and its headers); this module decides, and
//! `layer` applies it to HTTP requests.
//!
//! A request under both the default and the inference limit (same window) costs one
//! store call that counts both and reserves its worst-case cost against the client's
//! spend budget, refusing if any would be passed; the reservation is settled to the
//! answer's cost afterwards, in one more call (`spend`).

mod admission;
mod connections;
mod counter;
mod dynamo;
mod ip_key;
pub mod layer;
mod memory;
mod policy;
mod spend;
mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use admission::Admission;
pub use counter::{Claim, Counted, Counter, Lease, StoreError};
pub use dynamo::{DynamoStore, PARTITION_KEY, TTL_ATTRIBUTE};
pub use ip_key::{ClientKey, IpKeyer};
pub use memory::MemoryStore;
pub use policy::{Decision, Policy, Quota, Scope};
pub use spend::Reservation;
pub use store::Store;

use crate::client_ip::ClientIp;
use crate::config::{FailMode, RateLimitConfig};
use crate::error::{ApiError, Chain};

/// How long a counter call may take before the fail mode decides, unless
/// `RATE_LIMIT_STORE_TIMEOUT_MS` says otherwise: a rate limiter that makes every
/// request slow is a failure of its own.
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
    /// Counts in this container when the store fails and the fail mode is `local`.
    fallback: MemoryStore,
    keyer: IpKeyer,
    /// `[default]` and `[default, inference]`: one item, one window.
    http: [Policy; 2],
    /// The same limits for a whole IPv6 /48, eight times one client's.
    http_net: [Policy; 2],
    ws: Policy,
    ws_net: Policy,
    /// What one client may spend per window, in micro-dollars (0: no budget).
    client_budget: u64,
    /// What the proxy may spend per UTC day, in micro-dollars (0: no budget).
    day_budget: u64,
    /// This container's slice of the day's budget.
    day: spend::DaySlice,
    fail_mode: FailMode,
    budget: Duration,
    clock: Clock,
}

/// How many clients' worth of a limit one IPv6 /48 gets.
pub const NET_SHARE: u32 = 8;

/// What a counter of a request stands for.
#[derive(Clone, Copy)]
enum Meaning {
    Limit(Policy),
    /// The client's spend, checked against its budget.
    Budget,
}

/// What the counter store made of a request.
enum Counting {
    /// Counted in the store, or (`true`) in this container's memory after it failed.
    Counted(Counted, bool),
    /// The store failed and the fail mode serves anyway.
    Uncounted,
}

impl RateLimiter {
    pub fn new(store: Store, keyer: IpKeyer, config: &RateLimitConfig) -> Self {
        let policy = |name, counter, limit, window| Policy {
            name,
            counter,
            limit,
            window,
        };
        let net = |p: Policy, name| Policy {
            name,
            limit: p.limit.saturating_mul(NET_SHARE),
            ..p
        };
        let default = policy("default", "req", config.max_requests, config.window);
        let inference = policy(
            "inference",
            "inf",
            config.inference_max_requests,
            config.window,
        );
        let ws = policy("websocket", "conn", config.ws_connections, config.ws_window);
        Self {
            store,
            fallback: MemoryStore::default(),
            keyer,
            http: [default, inference],
            http_net: [net(default, "default-48"), net(inference, "inference-48")],
            ws,
            ws_net: net(ws, "websocket-48"),
            client_budget: micros(config.spend_limit_usd),
            day_budget: micros(config.spend_limit_global_usd_per_day),
            day: spend::DaySlice::default(),
            fail_mode: config.fail_mode,
            budget: config.store_timeout,
            clock: Arc::new(system_clock_ms),
        }
    }

    /// DynamoDB when `RATE_LIMIT_TABLE` is set (the SDK configured from the
    /// environment), otherwise counters in memory.
    pub async fn from_config(config: &RateLimitConfig) -> Self {
        match &config.table {
            Some(table) => {
                let store = DynamoStore::from_env(table.clone(), config.store_timeout).await;
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

    /// The DynamoDB client and table of the counters, if they are in DynamoDB.
    pub fn dynamo(&self) -> Option<(aws_sdk_dynamodb::Client, String)> {
        match &self.store {
            Store::Dynamo(store) => Some(store.parts()),
            Store::Memory(_) => None,
        }
    }

    /// The client's id where others see it (OpenRouter's response cache scope): its
    /// counter key, a keyed hash of its address (of its /64 for IPv6), never the address.
    pub fn client_id(&self, ip: ClientIp) -> String {
        let key = self.keyer.key(ip);
        format!("llm-proxy-{}", key.sub.unwrap_or(key.item))
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
    /// the fail mode is `closed`. Inference that may cost money goes through
    /// [`RateLimiter::admit`] instead.
    pub async fn check(&self, ip: ClientIp, scope: Scope) -> Result<Decision, ApiError> {
        self.count_request(ip, scope, 0)
            .await
            .map(|(decision, _)| decision)
    }

    /// Counts one inference request from `ip` and reserves `reserve_usd`, its worst
    /// case, against the client's and the day's budgets, all of which it must fit. The
    /// reservation comes back with an admitted request, to be settled with
    /// [`RateLimiter::settle`] once the answer's cost is known.
    pub async fn admit(
        &self,
        ip: ClientIp,
        reserve_usd: f64,
    ) -> Result<(Decision, Option<Reservation>), ApiError> {
        self.count_request(ip, Scope::Inference, micros(reserve_usd))
            .await
    }

    async fn count_request(
        &self,
        ip: ClientIp,
        scope: Scope,
        reserve: u64,
    ) -> Result<(Decision, Option<Reservation>), ApiError> {
        let now_ms = (self.clock)();
        let inference = scope == Scope::Inference;
        let refused_by = |budget, retry_after| Decision {
            allowed: false,
            quotas: Vec::new(),
            retry_after,
            budget: Some(budget),
        };
        let client_reserve = if self.client_budget > 0 { reserve } else { 0 };
        if inference && client_reserve > self.client_budget {
            // Not even an empty window could hold it.
            let window_ms = self.http[0].window.as_millis().max(1) as u64;
            let left = (window_ms - now_ms % window_ms).div_ceil(1000).max(1);
            return Ok((refused_by("client", left), None));
        }
        let day_reserved = if inference {
            match self.take_from_day(reserve, now_ms).await? {
                spend::DayTake::Taken { micros } => micros,
                spend::DayTake::Spent { retry_after } => {
                    return Ok((refused_by("global", retry_after), None));
                }
            }
        } else {
            0
        };
        let day_index = now_ms / spend::DAY_MS;
        let (group, policies, nets): (&str, &[Policy], &[Policy]) = match scope {
            Scope::Http => ("http", &self.http[..1], &self.http_net[..1]),
            Scope::Inference => ("http", &self.http, &self.http_net),
            Scope::WsConnect => (
                "ws",
                std::slice::from_ref(&self.ws),
                std::slice::from_ref(&self.ws_net),
            ),
        };
        let client = self.keyer.key(ip);
        let mut counters = Vec::with_capacity(6);
        let mut meanings = Vec::with_capacity(6);
        let mut count = |counter: Counter, meaning: Meaning| {
            counters.push(counter);
            meanings.push(meaning);
        };
        for (policy, net) in policies.iter().zip(nets) {
            count(
                Counter {
                    name: own(policy.counter, client.sub.as_deref()),
                    limit: policy.limit.into(),
                    step: 1,
                },
                Meaning::Limit(*policy),
            );
            if client.sub.is_some() {
                let counter = Counter {
                    name: policy.counter.to_owned(),
                    limit: net.limit.into(),
                    step: 1,
                };
                count(counter, Meaning::Limit(*net));
            }
        }
        let spend_names = if inference && self.client_budget > 0 {
            self.spend_counters(client.sub.as_deref())
        } else {
            Vec::new()
        };
        for (i, name) in spend_names.iter().enumerate() {
            let budget = if i == 0 {
                self.client_budget
            } else {
                self.client_budget.saturating_mul(NET_SHARE.into())
            };
            // Admitted only if what was spent plus this reservation stays within.
            count(
                Counter {
                    name: name.clone(),
                    limit: budget.saturating_sub(client_reserve) + 1,
                    step: client_reserve,
                },
                Meaning::Budget,
            );
        }
        // Policies that share an item share a window (the default and inference
        // limits have one window by design).
        let window_ms = policies[0].window.as_millis().max(1) as u64;
        let window_start = now_ms - now_ms % window_ms;
        let window_end = window_start + window_ms;
        let reset = window_end.div_ceil(1000);
        let key = format!("{group}#{}#{window_start}", client.item);
        let seconds_left = (window_end - now_ms).div_ceil(1000).max(1);
        let expires_at = reset + TTL_MARGIN_SECS;
        let counted = match self.count(&key, &counters, expires_at, now_ms / 1000).await {
            Ok(counted) => counted,
            Err(error) => {
                self.return_to_day(day_reserved, day_index);
                return Err(error);
            }
        };
        let quotas_of = |values: Option<&[u64]>| -> Vec<Quota> {
            counters
                .iter()
                .zip(&meanings)
                .enumerate()
                .filter_map(|(i, (counter, meaning))| match meaning {
                    Meaning::Limit(policy) => {
                        let used = values.and_then(|v| v.get(i)).copied().unwrap_or(0);
                        Some(Quota {
                            policy: *policy,
                            remaining: u32::try_from(counter.limit.saturating_sub(used))
                                .unwrap_or(u32::MAX),
                            reset,
                            seconds_left,
                        })
                    }
                    Meaning::Budget => None,
                })
                .collect()
        };
        let reservation = |local| Reservation {
            key: key.clone(),
            names: spend_names.clone(),
            expires_at,
            client: client_reserve,
            day: day_reserved,
            day_index,
            local,
        };
        Ok(match counted {
            Counting::Uncounted => (
                Decision {
                    allowed: true,
                    quotas: Vec::new(),
                    retry_after: 0,
                    budget: None,
                },
                inference.then(|| Reservation {
                    client: 0,
                    ..reservation(false)
                }),
            ),
            Counting::Counted(Counted::Admitted(values), local) => (
                Decision {
                    allowed: true,
                    quotas: quotas_of(Some(&values)),
                    retry_after: 0,
                    budget: None,
                },
                inference.then(|| reservation(local)),
            ),
            Counting::Counted(Counted::Refused(values), _) => {
                self.return_to_day(day_reserved, day_index);
                let mut quotas = quotas_of(values.as_deref());
                let spent_at = values.as_ref().and_then(|values| {
                    counters
                        .iter()
                        .zip(values)
                        .position(|(counter, value)| *value >= counter.limit)
                });
                let budget = match spent_at.map(|i| meanings[i]) {
                    Some(Meaning::Budget) => Some("client"),
                    Some(Meaning::Limit(_)) => None,
                    None => {
                        // The store did not say which limit is spent: the tightest one is.
                        if let Some(tightest) = quotas.iter_mut().min_by_key(|q| q.policy.limit) {
                            tightest.remaining = 0;
                        }
                        None
                    }
                };
                (
                    Decision {
                        allowed: false,
                        quotas,
                        retry_after: seconds_left,
                        budget,
                    },
                    None,
                )
            }
        })
    }

    /// One counting call, within the budget; on failure, what the fail mode says.
    async fn count(
        &self,
        key: &str,
        counters: &[Counter],
        expires_at: u64,
        now: u64,
    ) -> Result<Counting, ApiError> {
        let counted = self
            .within_budget(self.store.increment(key, counters, expires_at, now))
            .await;
        match counted {
            Ok(counted) => Ok(Counting::Counted(counted, false)),
            Err(error) => {
                self.store_failed(&error)?;
                Ok(match self.fail_mode {
                    FailMode::Local => Counting::Counted(
                        self.fallback.increment(key, counters, expires_at, now),
                        true,
                    ),
                    FailMode::Open | FailMode::Closed => Counting::Uncounted,
                })
            }
        }
    }

    /// Every store call goes through here; each that fails or times out is counted in
    /// the `StoreFallbacks` metric, whatever its caller then does.
    async fn within_budget<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(self.budget, call)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.budget)));
        if result.is_err() {
            crate::metrics::store_fallback();
        }
        result
    }

    /// Logs a store failure and says what the fail mode makes of it: go on (in this
    /// container's memory, or uncounted), or refuse with a 503.
    fn store_failed(&self, error: &StoreError) -> Result<(), ApiError> {
        match self.fail_mode {
            FailMode::Local => {
                tracing::warn!(error = %Chain(error), "counter store unavailable; counting in this container (RATE_LIMIT_FAIL_MODE=local)");
                Ok(())
            }
            FailMode::Open => {
                tracing::warn!(error = %Chain(error), "counter store unavailable; serving uncounted (RATE_LIMIT_FAIL_MODE=open)");
                Ok(())
            }
            FailMode::Closed => {
                tracing::error!(error = %Chain(error), "counter store unavailable; refusing (RATE_LIMIT_FAIL_MODE=closed)");
                Err(ApiError::Unavailable {
                    message: "The rate limiter is unavailable; retry shortly".into(),
                })
            }
        }
    }

    /// Opens the store's connection during Lambda init, so the first request does not
    /// pay for the TLS handshake. Costs one write to a counter nobody uses.
    pub async fn warm(&self) {
        if let Store::Dynamo(store) = &self.store {
            let expires = (self.clock)() / 1000 + TTL_MARGIN_SECS;
            let counter = [Counter {
                name: "warm".into(),
                limit: u64::MAX,
                step: 1,
            }];
            if let Err(error) = store.increment("init#warm", &counter, expires).await {
                tracing::warn!(error = %Chain(&error), "rate-limit store not reachable at init");
            }
        }
    }
}

/// The attribute of a client's spend (micro-dollars) in its counter item.
const SPEND: &str = "spend";

/// A counter's name for one client: its own in an IPv4 item, suffixed by its /64 in
/// the item of an IPv6 /48.
fn own(counter: &str, sub: Option<&str>) -> String {
    match sub {
        Some(sub) => format!("{counter}.{sub}"),
        None => counter.to_owned(),
    }
}

/// USD to micro-dollars, rounded up: a cost is never counted as less than it was.
fn micros(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e6).ceil() as u64
    } else {
        0
    }
}
