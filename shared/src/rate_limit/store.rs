//! `Store`: where counters live, chosen once at start-up.

use super::counter::{Claim, Counted, Counter, Lease, StoreError};
use super::dynamo::DynamoStore;
use super::memory::MemoryStore;

/// The DynamoDB calls are boxed: an SDK call's future is about 16 KB, and unboxed it
/// would make every counter check that large (moved through every layer of every
/// request) even when the counters are in memory.
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
            Self::Dynamo(store) => Box::pin(store.increment(key, counters, expires_at)).await,
        }
    }

    pub async fn adjust(
        &self,
        key: &str,
        names: &[String],
        delta: i64,
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => {
                store.adjust(key, names, delta, expires_at, now);
                Ok(())
            }
            Self::Dynamo(store) => Box::pin(store.adjust(key, names, delta, expires_at)).await,
        }
    }

    pub async fn lease(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        expires_at: u64,
        now: u64,
    ) -> Result<Lease, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.lease(key, amount, limit, expires_at, now)),
            Self::Dynamo(store) => Box::pin(store.lease(key, amount, limit, expires_at)).await,
        }
    }

    pub async fn add(
        &self,
        key: &str,
        delta: i64,
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => {
                store.add(key, delta, expires_at, now);
                Ok(())
            }
            Self::Dynamo(store) => Box::pin(store.add(key, delta, expires_at)).await,
        }
    }

    pub async fn sum(&self, keys: &[String], now: u64) -> Result<i64, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.sum(keys, now)),
            Self::Dynamo(store) => Box::pin(store.sum(keys)).await,
        }
    }

    pub async fn claim(
        &self,
        key: &str,
        owner: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<Claim, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.claim(key, owner, expires_at, now)),
            Self::Dynamo(store) => Box::pin(store.claim(key, owner, expires_at)).await,
        }
    }
}
