//! Counters in DynamoDB: one conditional `UpdateItem` per limited request, no reads.
//!
//! The item key holds the window's start, so a counter is never reused after its
//! window whatever DynamoDB's TTL does (expired items linger for up to days); the TTL
//! attribute only lets DynamoDB collect them.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::counter::{Counted, Counter, StoreError};

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

    /// Builds the SDK client from the environment (credentials, region, and
    /// `AWS_ENDPOINT_URL_DYNAMODB` for a local server).
    pub async fn from_env(table: impl Into<String>, budget: Duration) -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
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
        let mut values = HashMap::from([
            (":one".to_owned(), AttributeValue::N("1".into())),
            (":exp".to_owned(), AttributeValue::N(expires_at.to_string())),
        ]);
        let mut adds = Vec::with_capacity(counters.len());
        let mut conditions = Vec::with_capacity(counters.len());
        for (i, counter) in counters.iter().enumerate() {
            names.insert(format!("#c{i}"), counter.name.to_owned());
            values.insert(
                format!(":max{i}"),
                AttributeValue::N(counter.limit.to_string()),
            );
            adds.push(format!("#c{i} :one"));
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
                let counts = counters
                    .iter()
                    .map(|c| read_count(&attributes, c.name).unwrap_or(1))
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
                                .map(|c| read_count(item, c.name).unwrap_or(0))
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
}

fn read_count(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u32> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}
