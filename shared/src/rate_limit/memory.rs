//! Counters in this process only: for the local gateway and tests.
//!
//! Items expire by time: an index of expiry times is swept from its oldest end on
//! each call, so a call costs the same whether the store holds ten clients or a
//! million, and memory holds only the clients of the current windows.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use super::counter::{Claim, Counted, Counter, Lease};

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    items: HashMap<String, Item>,
    /// Expiry time (Unix seconds) → the keys created to expire then.
    expiry: BTreeMap<u64, Vec<String>>,
}

#[derive(Default)]
struct Item {
    counts: Vec<(String, u64)>,
    tally: i64,
    owner: Option<String>,
    expires_at: u64,
}

impl Inner {
    /// Drops every item whose time has come.
    fn sweep(&mut self, now: u64) {
        while let Some(entry) = self.expiry.first_entry() {
            if *entry.key() > now {
                break;
            }
            for key in entry.remove() {
                if self
                    .items
                    .get(&key)
                    .is_some_and(|item| item.expires_at <= now)
                {
                    self.items.remove(&key);
                }
            }
        }
    }

    fn item(&mut self, key: &str, expires_at: u64, now: u64) -> &mut Item {
        self.sweep(now);
        match self.items.entry(key.to_owned()) {
            Entry::Occupied(item) => item.into_mut(),
            Entry::Vacant(slot) => {
                self.expiry
                    .entry(expires_at)
                    .or_default()
                    .push(key.to_owned());
                slot.insert(Item {
                    expires_at,
                    ..Item::default()
                })
            }
        }
    }
}

fn add(item: &mut Item, name: &str, amount: u64) {
    match item.counts.iter_mut().find(|(n, _)| n == name) {
        Some((_, value)) => *value += amount,
        None => item.counts.push((name.to_owned(), amount)),
    }
}

impl MemoryStore {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn increment(&self, key: &str, counters: &[Counter], expires_at: u64, now: u64) -> Counted {
        let mut inner = self.inner();
        let item = inner.item(key, expires_at, now);
        let count = |name: &str| {
            item.counts
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, c)| *c)
        };
        let current: Vec<u64> = counters.iter().map(|c| count(&c.name)).collect();
        if counters.iter().zip(&current).any(|(c, n)| *n >= c.limit) {
            return Counted::Refused(Some(current));
        }
        for counter in counters {
            add(item, &counter.name, counter.step);
        }
        Counted::Admitted(
            counters
                .iter()
                .zip(current)
                .map(|(c, n)| n + c.step)
                .collect(),
        )
    }

    /// Adds `delta` (negative to give back, never below 0) to the counters `names`.
    pub fn adjust(&self, key: &str, names: &[String], delta: i64, expires_at: u64, now: u64) {
        let mut inner = self.inner();
        let item = inner.item(key, expires_at, now);
        for name in names {
            match item.counts.iter_mut().find(|(n, _)| n == name) {
                Some((_, value)) => *value = value.saturating_add_signed(delta),
                None => item
                    .counts
                    .push((name.clone(), 0u64.saturating_add_signed(delta))),
            }
        }
    }

    /// Adds `amount` to the day's total at `key` if it stays within `limit`.
    pub fn lease(&self, key: &str, amount: u64, limit: u64, expires_at: u64, now: u64) -> Lease {
        let mut inner = self.inner();
        let item = inner.item(key, expires_at, now);
        let total = item
            .counts
            .iter()
            .find(|(n, _)| n == "total")
            .map_or(0, |(_, v)| *v);
        if total.saturating_add(amount) > limit {
            return Lease::Refused(Some(total));
        }
        add(item, "total", amount);
        Lease::Granted(Some(total.saturating_add(amount)))
    }

    pub fn add(&self, key: &str, delta: i64, expires_at: u64, now: u64) {
        self.inner().item(key, expires_at, now).tally += delta;
    }

    pub fn sum(&self, keys: &[String], now: u64) -> i64 {
        let mut inner = self.inner();
        inner.sweep(now);
        keys.iter()
            .filter_map(|key| inner.items.get(key))
            .map(|item| item.tally)
            .sum()
    }

    pub fn claim(&self, key: &str, owner: &str, expires_at: u64, now: u64) -> Claim {
        let item = &mut *self.inner();
        let item = item.item(key, expires_at, now);
        match &item.owner {
            None => {
                item.owner = Some(owner.to_owned());
                Claim::New
            }
            Some(held) if held == owner => Claim::Repeat,
            Some(_) => Claim::Taken,
        }
    }

    /// How many items the store holds (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.inner().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> [Counter; 1] {
        [Counter {
            name: "req".into(),
            limit: 2,
            step: 1,
        }]
    }

    #[test]
    fn counts_up_to_the_limit() {
        let store = MemoryStore::default();
        assert_eq!(
            store.increment("k", &one(), 100, 0),
            Counted::Admitted(vec![1])
        );
        assert_eq!(
            store.increment("k", &one(), 100, 0),
            Counted::Admitted(vec![2])
        );
        assert_eq!(
            store.increment("k", &one(), 100, 0),
            Counted::Refused(Some(vec![2]))
        );
    }

    #[test]
    fn expired_items_are_swept_as_time_passes() {
        let store = MemoryStore::default();
        for client in 0..10_000 {
            store.increment(&format!("old{client}"), &one(), 100, 0);
        }
        assert_eq!(store.len(), 10_000);
        store.increment("new", &one(), 200, 100);
        assert_eq!(store.len(), 1, "every item of the old window is gone");
    }

    #[test]
    fn tallies_sum_and_claims_hold() {
        let store = MemoryStore::default();
        store.add("a", 1, 100, 0);
        store.add("a", 1, 100, 0);
        store.add("b", 1, 100, 0);
        store.add("a", -1, 100, 0);
        assert_eq!(store.sum(&["a".into(), "b".into(), "c".into()], 0), 2);
        assert_eq!(store.claim("r", "m1", 100, 0), Claim::New);
        assert_eq!(store.claim("r", "m1", 100, 0), Claim::Repeat);
        assert_eq!(store.claim("r", "m2", 100, 0), Claim::Taken);
        assert_eq!(store.sum(&["a".into()], 100), 0, "expired with its window");
    }
}
