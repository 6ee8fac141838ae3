//! What a counter store is asked and what it answers. A store only counts: "add one to
//! each of these counters of this item, unless one is already at its limit",
//! atomically, in one step; "add this to a tally"; "sum these tallies"; "claim this key
//! unless someone holds it". The policies that decide what to count live above it, in
//! `RateLimiter`.

use std::time::Duration;

/// One counter of an item and its ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What a store did with a claim on a key (a WebSocket request's `(connection, id)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody held it; now this owner does.
    New,
    /// This owner already held it: the same request delivered again.
    Repeat,
    /// Another owner holds it.
    Taken,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the counter store did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the DynamoDB request failed")]
    DynamoDb(#[source] Box<aws_sdk_dynamodb::Error>),
    #[error("the DynamoDB request could not be built")]
    Request(#[source] aws_sdk_dynamodb::error::BuildError),
}
