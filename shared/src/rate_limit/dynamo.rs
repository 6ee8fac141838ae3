//! Counters in DynamoDB: one conditional `UpdateItem` per limited request (which also
//! reserves its spend), no reads; one write settling each reservation; leases on the
//! day's budget; tallies (`ADD`, summed with one `BatchGetItem`) and
//! claims (a conditional `PutItem`) for WebSocket connections and requests.
//!
//! The item key holds the window's start, so a counter is never reused after its
//! window whatever DynamoDB's TTL does (expired items linger for up to days); the TTL
//! attribute only lets DynamoDB collect them.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
};

use super::counter::{Claim, Counted, Counter, Lease, StoreError};

/// The attribute of the day's budget item: what containers have leased of it.
const TOTAL: &str = "total";
/// The attribute of a tally item.
const TALLY: &str = "n";
/// The attribute of a claim item.
const OWNER: &str = "owner";

/// The table's partition key (a string), as `template.yaml` defines it.
pub const PARTITION_KEY: &str = "pk";
/// The table's TTL attribute (Unix seconds), as `template.yaml` defines it.
pub const TTL_ATTRIBUTE: &str = "expires_at";

pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The client and table, for the journal kept in the same table.
    pub fn parts(&self) -> (Client, String) {
        (self.client.clone(), self.table.clone())
    }

    /// Builds the SDK client from the environment (credentials, region, and
    /// `AWS_ENDPOINT_URL_DYNAMODB` for a local server).
    pub async fn from_env(table: impl Into<String>, budget: Duration) -> Self {
        let sdk = crate::aws::sdk_config().await;
        Self::new(Self::tuned((&sdk).into(), budget), table)
    }

    /// A client whose timeouts sit inside the limiter's budget, without retries: a
    /// slow DynamoDB must not hold a request, and a retried increment whose first
    /// attempt landed would count one request twice.
    pub fn tuned(builder: aws_sdk_dynamodb::config::Builder, budget: Duration) -> Client {
        let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .connect_timeout(budget)
            .operation_attempt_timeout(budget)
            .operation_timeout(budget)
            .build();
        let config = builder
            .timeout_config(timeouts)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        Client::from_conf(config)
    }

    pub async fn increment(
        &self,
        key: &str,
        counters: &[Counter],
        expires_at: u64,
    ) -> Result<Counted, StoreError> {
        let mut names = HashMap::from([("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned())]);
        let mut values =
            HashMap::from([(":exp".to_owned(), AttributeValue::N(expires_at.to_string()))]);
        let mut adds = Vec::with_capacity(counters.len());
        let mut conditions = Vec::with_capacity(counters.len());
        for (i, counter) in counters.iter().enumerate() {
            names.insert(format!("#c{i}"), counter.name.clone());
            values.insert(
                format!(":max{i}"),
                AttributeValue::N(counter.limit.to_string()),
            );
            if counter.step > 0 {
                values.insert(
                    format!(":s{i}"),
                    AttributeValue::N(counter.step.to_string()),
                );
                adds.push(format!("#c{i} :s{i}"));
            }
            conditions.push(format!("(attribute_not_exists(#c{i}) OR #c{i} < :max{i})"));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .update_expression(format!(
                "ADD {} SET #ttl = if_not_exists(#ttl, :exp)",
                adds.join(", ")
            ))
            .condition_expression(conditions.join(" AND "))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let attributes = output.attributes.unwrap_or_default();
                // Read only the counters: some servers add or omit other attributes.
                // A counter only checked (step 0) is not among the updated ones.
                let counts = counters
                    .iter()
                    .map(|c| read_count(&attributes, &c.name).unwrap_or(c.step))
                    .collect();
                Ok(Counted::Admitted(counts))
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                let counts = match e.err() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => {
                        failed.item().map(|item| {
                            counters
                                .iter()
                                .map(|c| read_count(item, &c.name).unwrap_or(0))
                                .collect()
                        })
                    }
                    _ => None,
                };
                Ok(Counted::Refused(counts))
            }
            Err(e) => Err(StoreError::DynamoDb(Box::new(e.into()))),
        }
    }

    /// Adds `delta` (negative to give back) to the counters `names` of one item: a
    /// reservation settled to what the answer cost.
    pub async fn adjust(
        &self,
        key: &str,
        names: &[String],
        delta: i64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let mut attribute_names = HashMap::from([("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned())]);
        let mut adds = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            attribute_names.insert(format!("#a{i}"), name.clone());
            adds.push(format!("#a{i} :d"));
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .update_expression(format!(
                "ADD {} SET #ttl = if_not_exists(#ttl, :exp)",
                adds.join(", ")
            ))
            .set_expression_attribute_names(Some(attribute_names))
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
            .send()
            .await
            .map_err(|e| StoreError::DynamoDb(Box::new(e.into())))?;
        Ok(())
    }

    /// Adds `amount` to the day's total if it stays within `limit`: one conditional
    /// write, on an item each container writes once per lease, not once per request.
    pub async fn lease(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        expires_at: u64,
    ) -> Result<Lease, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .update_expression("ADD #t :amount SET #ttl = if_not_exists(#ttl, :exp)")
            .condition_expression("attribute_not_exists(#t) OR #t <= :room")
            .expression_attribute_names("#t", TOTAL)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":amount", AttributeValue::N(amount.to_string()))
            .expression_attribute_values(
                ":room",
                AttributeValue::N(limit.saturating_sub(amount).to_string()),
            )
            .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Lease::Granted(
                output
                    .attributes
                    .as_ref()
                    .and_then(|item| read_count(item, TOTAL)),
            )),
            Err(SdkError::ServiceError(e)) => match e.err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => Ok(Lease::Refused(
                    failed.item().and_then(|item| read_count(item, TOTAL)),
                )),
                _ => Err(StoreError::DynamoDb(Box::new(
                    SdkError::ServiceError(e).into(),
                ))),
            },
            Err(e) => Err(StoreError::DynamoDb(Box::new(e.into()))),
        }
    }

    pub async fn add(&self, key: &str, delta: i64, expires_at: u64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .update_expression("ADD #n :d SET #ttl = if_not_exists(#ttl, :exp)")
            .expression_attribute_names("#n", TALLY)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
            .send()
            .await
            .map_err(|e| StoreError::DynamoDb(Box::new(e.into())))?;
        Ok(())
    }

    /// The sum of the tallies of `keys` (at most 100: one `BatchGetItem`); a key with
    /// no item counts 0, a key DynamoDB left unprocessed fails the sum.
    pub async fn sum(&self, keys: &[String]) -> Result<i64, StoreError> {
        let mut wanted = KeysAndAttributes::builder()
            .projection_expression("#n")
            .expression_attribute_names("#n", TALLY);
        for key in keys {
            wanted = wanted.keys(HashMap::from([(
                PARTITION_KEY.to_owned(),
                AttributeValue::S(key.clone()),
            )]));
        }
        let wanted = wanted.build().map_err(StoreError::Request)?;
        let output = self
            .client
            .batch_get_item()
            .request_items(&self.table, wanted)
            .send()
            .await
            .map_err(|e| StoreError::DynamoDb(Box::new(e.into())))?;
        let unread = output
            .unprocessed_keys
            .as_ref()
            .and_then(|tables| tables.get(&self.table))
            .map_or(0, |left| left.keys().len());
        if unread > 0 {
            return Err(StoreError::Unread(unread));
        }
        let items = output
            .responses
            .and_then(|mut tables| tables.remove(&self.table))
            .unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|item| match item.get(TALLY) {
                Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
                _ => None,
            })
            .sum())
    }

    pub async fn claim(
        &self,
        key: &str,
        owner: &str,
        expires_at: u64,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .item(OWNER, AttributeValue::S(owner.to_owned()))
            .item(TTL_ATTRIBUTE, AttributeValue::N(expires_at.to_string()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::New),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let held = failed.item().and_then(|item| match item.get(OWNER) {
                        Some(AttributeValue::S(held)) => Some(held.as_str()),
                        _ => None,
                    });
                    // A server that does not return the old item cannot tell a repeat
                    // from a reuse; a repeat is the safe reading (nothing is sent twice).
                    Ok(if held.is_none_or(|held| held == owner) {
                        Claim::Repeat
                    } else {
                        Claim::Taken
                    })
                }
                _ => Err(StoreError::DynamoDb(Box::new(
                    SdkError::ServiceError(e).into(),
                ))),
            },
            Err(e) => Err(StoreError::DynamoDb(Box::new(e.into()))),
        }
    }
}

fn read_count(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}
