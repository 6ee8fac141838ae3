//! WebSocket bookkeeping in the counter store: the open-connection cap
//! (`WS_MAX_CONNECTIONS`) and the claim that answers each request once.
//!
//! `$disconnect` is delivered on a best-effort basis, so a plain count of open
//! connections would only ever grow. Instead each connection is counted in the slot of
//! 10 minutes in which it opened, and the open count is the sum of the slots of the
//! last 2 h 10 min: no connection lives longer than API Gateway's 2 h, so a lost
//! `$disconnect` inflates the count for at most that long.

use super::RateLimiter;
use super::counter::{Claim, StoreError};
use crate::config::FailMode;
use crate::error::{ApiError, Chain};

const SLOT_MS: u64 = 10 * 60 * 1000;
/// The current slot and the twelve before it: 2 h 10 min.
const SLOTS_SUMMED: u64 = 13;
/// Claims outlive the longest connection.
const CLAIM_SECS: u64 = 3 * 60 * 60;

fn slot_key(slot: u64) -> String {
    format!("ws-open#{slot}")
}

impl RateLimiter {
    /// Counts a connection that opened at `connected_at_ms` unless `max` are open
    /// already. `Ok(false)`: the service is full.
    pub async fn open_connection(&self, connected_at_ms: u64, max: u32) -> Result<bool, ApiError> {
        let now_ms = (self.clock)();
        let now = now_ms / 1000;
        let current = now_ms / SLOT_MS;
        let keys: Vec<String> = (current.saturating_sub(SLOTS_SUMMED - 1)..=current)
            .map(slot_key)
            .collect();
        let slot = connected_at_ms / SLOT_MS;
        let expires = (slot + SLOTS_SUMMED + 1) * SLOT_MS / 1000;
        let counted = async {
            let open = self.store.sum(&keys, now).await?;
            if open >= i64::from(max) {
                return Ok(false);
            }
            self.store.add(&slot_key(slot), 1, expires, now).await?;
            Ok(true)
        };
        match self.within_budget(counted).await {
            Ok(admitted) => Ok(admitted),
            Err(error) => {
                self.store_failed(&error)?;
                if self.fail_mode != FailMode::Local {
                    return Ok(true);
                }
                if self.fallback.sum(&keys, now) >= i64::from(max) {
                    return Ok(false);
                }
                self.fallback.add(&slot_key(slot), 1, expires, now);
                Ok(true)
            }
        }
    }

    /// Uncounts a connection that opened at `connected_at_ms`. Best effort, as
    /// `$disconnect` itself is.
    pub async fn close_connection(&self, connected_at_ms: u64) {
        let now = (self.clock)() / 1000;
        let slot = connected_at_ms / SLOT_MS;
        let expires = (slot + SLOTS_SUMMED + 1) * SLOT_MS / 1000;
        if let Err(error) = self
            .within_budget(self.store.add(&slot_key(slot), -1, expires, now))
            .await
        {
            tracing::warn!(error = %Chain(&error), "an open WebSocket connection was not uncounted");
            if self.fail_mode == FailMode::Local {
                self.fallback.add(&slot_key(slot), -1, expires, now);
            }
        }
    }

    /// Claims `key` for `owner`: the first delivery of a request gets `New`, a repeated
    /// delivery `Repeat`, another request under the same key `Taken`.
    pub async fn claim(&self, key: &str, owner: &str) -> Result<Claim, StoreError> {
        let now = (self.clock)() / 1000;
        let claimed = self
            .within_budget(self.store.claim(key, owner, now + CLAIM_SECS, now))
            .await;
        match claimed {
            Err(_) if self.fail_mode == FailMode::Local => {
                Ok(self.fallback.claim(key, owner, now + CLAIM_SECS, now))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::config::Config;
    use crate::rate_limit::{MemoryStore, Store};

    fn limiter(clock: Arc<AtomicU64>) -> RateLimiter {
        let config = Config::from_lookup(|_| None).unwrap();
        RateLimiter::with_store(Store::Memory(MemoryStore::default()), &config.rate_limits)
            .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
    }

    #[tokio::test]
    async fn the_cap_holds_and_a_close_frees_a_place() {
        let clock = Arc::new(AtomicU64::new(1_800_000_000_000));
        let limiter = limiter(clock.clone());
        let at = clock.load(Ordering::SeqCst);
        assert!(limiter.open_connection(at, 2).await.unwrap());
        assert!(limiter.open_connection(at, 2).await.unwrap());
        assert!(!limiter.open_connection(at, 2).await.unwrap(), "full");
        limiter.close_connection(at).await;
        assert!(limiter.open_connection(at, 2).await.unwrap());
    }

    #[tokio::test]
    async fn a_lost_disconnect_stops_counting_after_two_hours_and_ten_minutes() {
        let clock = Arc::new(AtomicU64::new(1_800_000_000_000));
        let limiter = limiter(clock.clone());
        let at = clock.load(Ordering::SeqCst);
        assert!(limiter.open_connection(at, 1).await.unwrap());
        // Its $disconnect never comes.
        clock.fetch_add(2 * 60 * 60 * 1000, Ordering::SeqCst);
        assert!(
            !limiter
                .open_connection(clock.load(Ordering::SeqCst), 1)
                .await
                .unwrap()
        );
        clock.fetch_add(11 * 60 * 1000, Ordering::SeqCst);
        assert!(
            limiter
                .open_connection(clock.load(Ordering::SeqCst), 1)
                .await
                .unwrap()
        );
    }
}
