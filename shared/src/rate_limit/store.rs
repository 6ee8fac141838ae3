//! `Store`: where counters live, chosen once at start-up.

use super::counter::{Counted, Counter, StoreError};
use super::dynamo::DynamoStore;
use super::memory::MemoryStore;

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
