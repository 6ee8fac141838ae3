//! WebSocket bookkeeping in the counter store: the open-connection cap
//! (`WS_MAX_CONNECTIONS`) and the claim that answers each request once.
//!
//! `$disconnect` is delivered on a best-effort basis, so a plain count of open
//! connections would only ever grow. Instead each connection is counted in the slot of
//! 10 minutes in which it opened, and the open count is the sum of the slots of the
//! last 2 h 10 min: no connection lives longer than API Gateway's 2 h, so a lost
//! `$disconnect` inflates the count for at most that long.
//!
//! A slot is itself spread over `SHARDS` items, chosen by the millisecond the
//! connection opened at (which `$disconnect` carries too, so it uncounts the same
//! item): every `$connect` writing one item would make that item the ceiling of the
//! service's connection rate (`docs/operations.md`).

use super::RateLimiter;
use super::counter::{Claim, StoreError};
use crate::config::FailMode;
use crate::error::{ApiError, Chain};

const SLOT_MS: u64 = 10 * 60 * 1000;
/// The current slot and the twelve before it: 2 h 10 min.
const SLOTS_SUMMED: u64 = 13;
/// Items per slot. The open count reads every shard of every slot in one
/// `BatchGetItem` (at most 100 keys), so `SLOTS_SUMMED * SHARDS` stays under 100.
pub const SHARDS: u64 = 4;
/// Claims outlive the longest connection.
const CLAIM_SECS: u64 = 3 * 60 * 60;

fn item_key(slot: u64, shard: u64) -> String {
    format!("ws-open#{slot}#{shard}")
}

/// The item counting connections that opened at `connected_at_ms`.
fn shard_key(connected_at_ms: u64) -> String {
    item_key(connected_at_ms / SLOT_MS, connected_at_ms % SHARDS)
}

/// Every item the open count sums at `now_ms`.
fn summed_keys(now_ms: u64) -> Vec<String> {
    let current = now_ms / SLOT_MS;
    (current.saturating_sub(SLOTS_SUMMED - 1)..=current)
        .flat_map(|slot| (0..SHARDS).map(move |shard| item_key(slot, shard)))
        .collect()
}

/// When the item counting a connection opened at `connected_at_ms` may go.
fn shard_expires(connected_at_ms: u64) -> u64 {
    (connected_at_ms / SLOT_MS + SLOTS_SUMMED + 1) * SLOT_MS / 1000
}

impl RateLimiter {
    /// Counts a connection that opened at `connected_at_ms` unless `max` are open
    /// already. `Ok(false)`: the service is full.
    pub async fn open_connection(&self, connected_at_ms: u64, max: u32) -> Result<bool, ApiError> {
        let now_ms = (self.clock)();
        let now = now_ms / 1000;
        let keys = summed_keys(now_ms);
        let key = shard_key(connected_at_ms);
        let expires = shard_expires(connected_at_ms);
        let counted = async {
            let open = self.store.sum(&keys, now).await?;
            if open >= i64::from(max) {
                return Ok(false);
            }
            self.store.add(&key, 1, expires, now).await?;
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
                self.fallback.add(&key, 1, expires, now);
                Ok(true)
            }
        }
    }

    /// Uncounts a connection that opened at `connected_at_ms`. Best effort, as
    /// `$disconnect` itself is.
    pub async fn close_connection(&self, connected_at_ms: u64) {
        let now = (self.clock)() / 1000;
        let key = shard_key(connected_at_ms);
        let expires = shard_expires(connected_at_ms);
        if let Err(error) = self
            .within_budget(self.store.add(&key, -1, expires, now))
            .await
        {
            tracing::warn!(error = %Chain(&error), "an open WebSocket connection was not uncounted");
            if self.fail_mode == FailMode::Local {
                self.fallback.add(&key, -1, expires, now);
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
    async fn the_cap_holds_across_shards_and_a_close_uncounts_its_own_shard() {
        let clock = Arc::new(AtomicU64::new(1_800_000_000_000));
        let limiter = limiter(clock.clone());
        let at = clock.load(Ordering::SeqCst);
        let keys: std::collections::HashSet<String> = (at..at + SHARDS).map(shard_key).collect();
        assert_eq!(keys.len(), usize::try_from(SHARDS).unwrap());
        assert!(keys.iter().all(|key| summed_keys(at).contains(key)));
        assert!(limiter.open_connection(at, 2).await.unwrap());
        assert!(limiter.open_connection(at + 1, 2).await.unwrap());
        assert!(!limiter.open_connection(at + 2, 2).await.unwrap(), "full");
        limiter.close_connection(at + 1).await;
        assert!(limiter.open_connection(at + 3, 2).await.unwrap());
        assert!(!limiter.open_connection(at + 4, 2).await.unwrap(), "full");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_opens_and_closes_leave_an_exact_count() {
        let clock = Arc::new(AtomicU64::new(1_800_000_000_000));
        let limiter = Arc::new(limiter(clock.clone()));
        let at = clock.load(Ordering::SeqCst);
        let opened: Vec<_> = (0..64)
            .map(|n| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.open_connection(at + n, 1000).await.unwrap() })
            })
            .collect();
        for task in opened {
            assert!(task.await.unwrap());
        }
        let now = at / 1000;
        assert_eq!(limiter.store.sum(&summed_keys(at), now).await.unwrap(), 64);
        let closed: Vec<_> = (0..40)
            .map(|n| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.close_connection(at + n).await })
            })
            .collect();
        for task in closed {
            task.await.unwrap();
        }
        assert_eq!(limiter.store.sum(&summed_keys(at), now).await.unwrap(), 24);
        // No shard went below zero: each close found its own connection's shard.
        for shard in 0..SHARDS {
            let one = limiter
                .store
                .sum(&[shard_key(at + shard)], now)
                .await
                .unwrap();
            assert!(one >= 0, "shard {shard}: {one}");
        }
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
