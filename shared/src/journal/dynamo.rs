//! The journal in the rate-limit table: an answer's record in `idem#<scope>` and its
//! pieces in `journal#<scope>#<n>`, chunks of at most about 96 KB (DynamoDB takes 400
//! KB an item), all under the table's TTL. A chunk is written before the record that
//! counts it, so a record that says the answer is done has every chunk behind it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use bytes::Bytes;

use std::time::Duration;

use super::{Follow, JournalError, Meta, Next, State, now_ms};
use crate::rate_limit::{PARTITION_KEY, TTL_ATTRIBUTE};

const META: &str = "meta";
const FIRST: &str = "first";
const PIECES: &str = "pieces";
/// A record not touched for this long while running was abandoned (its container
/// ended): a follower stops waiting for it.
const ABANDONED_MS: u64 = 20 * 60 * 1000;

/// The journal's DynamoDB writes (and reads) in this process, for the benchmark that
/// prices it (BENCHMARKS.md).
static WRITES: AtomicU64 = AtomicU64::new(0);
static READS: AtomicU64 = AtomicU64::new(0);

/// The journal's DynamoDB writes and reads so far in this process.
pub fn calls() -> (u64, u64) {
    (
        WRITES.load(Ordering::Relaxed),
        READS.load(Ordering::Relaxed),
    )
}

pub struct DynamoJournal {
    client: Client,
    table: String,
}

fn store_error(error: impl std::fmt::Display) -> JournalError {
    JournalError::Store(error.to_string())
}

fn record_key(scope: &str) -> AttributeValue {
    AttributeValue::S(format!("idem#{scope}"))
}

fn chunk_key(scope: &str, n: u64) -> AttributeValue {
    AttributeValue::S(format!("journal#{scope}#{n}"))
}

fn expires_at(keep: Duration) -> AttributeValue {
    AttributeValue::N((now_ms() / 1000 + keep.as_secs().max(1)).to_string())
}

fn meta_of(item: &HashMap<String, AttributeValue>) -> Option<Meta> {
    match item.get(META) {
        Some(AttributeValue::S(json)) => serde_json::from_str(json).ok(),
        _ => None,
    }
}

impl DynamoJournal {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn writing(&self) -> &Client {
        WRITES.fetch_add(1, Ordering::Relaxed);
        &self.client
    }

    fn reading(&self) -> &Client {
        READS.fetch_add(1, Ordering::Relaxed);
        &self.client
    }

    /// Writes `meta` under `scope` unless a live record is there; returns that record.
    /// One expired but not yet swept by TTL (which may lag by days) is replaced.
    pub async fn claim(
        &self,
        scope: &str,
        meta: &Meta,
        keep: Duration,
    ) -> Result<Option<Meta>, JournalError> {
        let json = serde_json::to_string(meta).map_err(store_error)?;
        let result = self
            .writing()
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, record_key(scope))
            .item(META, AttributeValue::S(json))
            .item(TTL_ATTRIBUTE, expires_at(keep))
            .condition_expression("attribute_not_exists(#pk) OR #ttl < :now")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", AttributeValue::N((now_ms() / 1000).to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    match failed.item().and_then(meta_of) {
                        Some(held) => Ok(Some(held)),
                        // A server that does not return the old item: read it.
                        None => self.record(scope).await?.map(Some).ok_or_else(|| {
                            JournalError::Store("a claimed key has no record".to_owned())
                        }),
                    }
                }
                _ => Err(store_error(aws_sdk_dynamodb::error::DisplayErrorContext(
                    SdkError::ServiceError(e),
                ))),
            },
            Err(e) => Err(store_error(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
        }
    }

    pub async fn release(&self, scope: &str) -> Result<(), JournalError> {
        self.writing()
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, record_key(scope))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(aws_sdk_dynamodb::error::DisplayErrorContext(e)))
    }

    async fn record(&self, scope: &str) -> Result<Option<Meta>, JournalError> {
        let item = self
            .reading()
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, record_key(scope))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        Ok(item.item().and_then(meta_of))
    }

    /// Writes `pieces` (numbered from `first`) as chunk `n`, then `meta`.
    pub async fn write(
        &self,
        keep: Duration,
        scope: &str,
        n: u64,
        first: u64,
        pieces: &[Bytes],
        meta: &Meta,
    ) -> Result<(), JournalError> {
        if !pieces.is_empty() {
            let list = pieces
                .iter()
                .map(|p| AttributeValue::B(Blob::new(p.to_vec())))
                .collect();
            self.writing()
                .put_item()
                .table_name(&self.table)
                .item(PARTITION_KEY, chunk_key(scope, n))
                .item(FIRST, AttributeValue::N(first.to_string()))
                .item(PIECES, AttributeValue::L(list))
                .item(TTL_ATTRIBUTE, expires_at(keep))
                .send()
                .await
                .map_err(|e| store_error(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        }
        let json = serde_json::to_string(meta).map_err(store_error)?;
        self.writing()
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, record_key(scope))
            .item(META, AttributeValue::S(json))
            .item(TTL_ATTRIBUTE, expires_at(keep))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(aws_sdk_dynamodb::error::DisplayErrorContext(e)))
    }

    /// A follower's next piece from the table.
    pub(super) async fn next(&self, scope: &str, state: &mut Follow) -> Result<Next, JournalError> {
        loop {
            if let Some(piece) = state.buffered.pop_front() {
                return Ok(Next::Piece(piece));
            }
            // The record first: if it says done, every chunk it counts is written.
            let Some(meta) = self.record(scope).await? else {
                return Ok(Next::End);
            };
            let chunk = self
                .reading()
                .get_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, chunk_key(scope, state.chunk))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| store_error(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
            let Some(item) = chunk.item() else {
                let abandoned = now_ms().saturating_sub(meta.updated_ms) > ABANDONED_MS;
                if meta.state != State::Running || abandoned {
                    state.ended = true;
                    return Ok(Next::End);
                }
                return Ok(Next::Wait);
            };
            state.chunk += 1;
            let first = match item.get(FIRST) {
                Some(AttributeValue::N(n)) => n.parse::<u64>().unwrap_or(0),
                _ => 0,
            };
            let Some(AttributeValue::L(pieces)) = item.get(PIECES) else {
                continue;
            };
            for (i, piece) in pieces.iter().enumerate() {
                let seq = first + i as u64 + 1;
                if seq > state.next
                    && let AttributeValue::B(blob) = piece
                {
                    state
                        .buffered
                        .push_back(Bytes::copy_from_slice(blob.as_ref()));
                    state.next = seq;
                }
            }
        }
    }
}
