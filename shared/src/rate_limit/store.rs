//! Where counters live. A store only counts: "add one to each of these counters of
//! this item, unless one is already at its limit" — atomically, in one step. The
//! policies that decide what to count live above, in `RateLimiter`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::dynamo::DynamoStore;

/// One counter of an item and its ceiling.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    /// The attribute name, e.g. `req`.
    pub name: &'static str,
    pub limit: u32,
}

/// What a store did with one increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// Every counter was below its limit and now holds these counts (in order).
    Admitted(Vec<u32>),
    /// A counter was at its limit; nothing changed. The current counts when the
    /// store could tell them.
    Refused(Option<Vec<u32>>),
}

#[derive(Debug, thiserror::Error)]
#[error("rate-limit store failed: {0}")]
pub struct StoreError(pub String);

pub enum Store {
    Memory(MemoryStore),
    Dynamo(DynamoStore),
}

impl Store {
    pub async fn increment(
        &self,
        key: &str,
        counters: &[Counter],
        expires_at: u64,
        now: u64,
    ) -> Result<Counted, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.increment(key, counters, expires_at, now)),
            Self::Dynamo(store) => store.increment(key, counters, expires_at).await,
        }
    }
}

/// Counters in this process only: for the local gateway and tests.
#[derive(Default)]
pub struct MemoryStore {
    items: Mutex<HashMap<String, Item>>,
}

struct Item {
    counts: HashMap<&'static str, u32>,
    expires_at: u64,
}

/// Sweep expired items once the map holds this many, so memory stays bounded by the
/// number of clients active in one window.
const SWEEP_AT: usize = 10_000;

impl MemoryStore {
    fn increment(&self, key: &str, counters: &[Counter], expires_at: u64, now: u64) -> Counted {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        if items.len() >= SWEEP_AT {
            items.retain(|_, item| item.expires_at > now);
        }
        let item = items.entry(key.to_owned()).or_insert_with(|| Item {
            counts: HashMap::new(),
            expires_at,
        });
        let current: Vec<u32> = counters
            .iter()
            .map(|c| item.counts.get(c.name).copied().unwrap_or(0))
            .collect();
        if counters.iter().zip(&current).any(|(c, n)| *n >= c.limit) {
            return Counted::Refused(Some(current));
        }
        for counter in counters {
            *item.counts.entry(counter.name).or_insert(0) += 1;
        }
        Counted::Admitted(current.iter().map(|n| n + 1).collect())
    }
}
