//! Counters in this process only: for the local gateway and tests.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::counter::{Counted, Counter};

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
    pub fn increment(&self, key: &str, counters: &[Counter], expires_at: u64, now: u64) -> Counted {
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
