//! What a counter store is asked and what it answers. A store only counts: "add these
//! steps to these counters of this item, unless one would pass its limit",
//! atomically, in one step; "add this (maybe negative) amount to these counters"; "lease
//! this much of the day's budget if it fits"; "add this to a tally"; "sum these
//! tallies"; "claim this key unless someone holds it". The policies that decide what to count live above it, in
//! `RateLimiter`.

use std::time::Duration;

/// One counter of an item, its ceiling, and what a request adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The attribute name, e.g. `req`, or `req.1f2e…` for one /64 of an IPv6 /48.
    pub name: String,
    /// The request is refused unless the counter is below this.
    pub limit: u64,
    /// What an admitted request adds: 1 for a request count, the reservation (in
    /// micro-dollars) for a spend budget.
    pub step: u64,
}

/// What a store did with one increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// Every counter was below its limit and now holds these values (in order).
    Admitted(Vec<u64>),
    /// A counter was at its limit; nothing changed. The current values when the
    /// store could tell them.
    Refused(Option<Vec<u64>>),
}

/// What a store did with a lease on the day's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// The amount was added to the day's total, which stays within the budget. The new
    /// total, when the store could tell.
    Granted(Option<u64>),
    /// It would not fit; nothing changed. The day's total, when the store could tell.
    Refused(Option<u64>),
}

impl Lease {
    /// The day's total after the lease, granted or not, when the store could tell.
    pub fn total(self) -> Option<u64> {
        match self {
            Self::Granted(total) | Self::Refused(total) => total,
        }
    }
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
    /// A sum missing some of its items would count too few: taken as a failure.
    #[error("DynamoDB left {0} of the items to sum unread")]
    Unread(usize),
}
