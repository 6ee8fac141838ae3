//! Counters in DynamoDB: one conditional `UpdateItem` per limited request, no reads;
//! one write of each answer's cost; tallies (`ADD`, summed with one `BatchGetItem`) and
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
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

use super::counter::{BudgetState, Claim, Counted, Counter, DaySpend, StoreError};

/// The attribute of the day's spend item.
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

    /// Adds `amount` to a client's spend counters `names` and to the day's total, in
    /// one write (a transaction when both are to be written). The day's total is
    /// conditioned on being within its budget, so a failed condition tells that the
    /// budget was spent; the spend is then added without it (the money is gone).
    pub async fn spend(
        &self,
        key: &str,
        names: &[String],
        amount: u64,
        expires_at: u64,
        day: Option<&DaySpend>,
    ) -> Result<BudgetState, StoreError> {
        let client = (!names.is_empty()).then(|| Add::new(key, names, amount, expires_at));
        let Some(day) = day else {
            if let Some(add) = client {
                let (expression, attribute_names, values) = add.parts();
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
                    .update_expression(expression)
                    .set_expression_attribute_names(Some(attribute_names))
                    .set_expression_attribute_values(Some(values))
                    .send()
                    .await
                    .map_err(|e| StoreError::DynamoDb(Box::new(e.into())))?;
            }
            return Ok(BudgetState::Within);
        };
        let total = [TOTAL.to_owned()];
        for within in [Some(day.limit), None] {
            let mut request = self.client.transact_write_items();
            if let Some(add) = &client {
                request = request.transact_items(self.transact(add, None)?);
            }
            let day_add = Add::new(&day.key, &total, amount, day.expires_at);
            let result = request
                .transact_items(self.transact(&day_add, within)?)
                .send()
                .await;
            match result {
                Ok(_) if within.is_some() => return Ok(BudgetState::Within),
                Ok(_) => return Ok(BudgetState::Spent),
                Err(SdkError::ServiceError(e))
                    if within.is_some()
                        && matches!(
                            e.err(),
                            TransactWriteItemsError::TransactionCanceledException(cancelled)
                                if cancelled
                                    .cancellation_reasons()
                                    .iter()
                                    .any(|r| r.code() == Some("ConditionalCheckFailed"))
                        ) => {}
                Err(e) => return Err(StoreError::DynamoDb(Box::new(e.into()))),
            }
        }
        Ok(BudgetState::Spent)
    }

    /// `add` as one item of a transaction, conditioned on its first counter being
    /// below `within` when given.
    fn transact(
        &self,
        add: &Add<'_>,
        within: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let (expression, names, mut values) = add.parts();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(add.key.to_owned()))
            .update_expression(expression);
        if let Some(limit) = within {
            values.insert(":limit".into(), AttributeValue::N(limit.to_string()));
            update = update.condition_expression("attribute_not_exists(#a0) OR #a0 < :limit");
        }
        let update = update
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(StoreError::Request)?;
        Ok(TransactWriteItem::builder().update(update).build())
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
    /// no item counts 0.
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

/// An `ADD` of one amount to some attributes of one item.
struct Add<'a> {
    key: &'a str,
    names: &'a [String],
    amount: u64,
    expires_at: u64,
}

type Names = HashMap<String, String>;
type Values = HashMap<String, AttributeValue>;

impl<'a> Add<'a> {
    fn new(key: &'a str, names: &'a [String], amount: u64, expires_at: u64) -> Self {
        Self {
            key,
            names,
            amount,
            expires_at,
        }
    }

    /// The update expression and its attribute names and values.
    fn parts(&self) -> (String, Names, Values) {
        let mut names = HashMap::from([("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned())]);
        let values = HashMap::from([
            (
                ":amount".to_owned(),
                AttributeValue::N(self.amount.to_string()),
            ),
            (
                ":exp".to_owned(),
                AttributeValue::N(self.expires_at.to_string()),
            ),
        ]);
        let mut adds = Vec::with_capacity(self.names.len());
        for (i, name) in self.names.iter().enumerate() {
            names.insert(format!("#a{i}"), name.clone());
            adds.push(format!("#a{i} :amount"));
        }
        let expression = format!(
            "ADD {} SET #ttl = if_not_exists(#ttl, :exp)",
            adds.join(", ")
        );
        (expression, names, values)
    }
}

fn read_count(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}
