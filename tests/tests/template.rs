//! template.yaml and the code agree on the counter table: the tests create the table
//! from the same constants, so a drift between the two would go unnoticed otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use llm_proxy_shared::rate_limit::{PARTITION_KEY, TTL_ATTRIBUTE};
use llm_proxy_tests::gateway::workspace_root;

#[test]
fn the_counter_table_is_defined_as_the_code_uses_it() {
    let template = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let table = template
        .split("RateLimitTable:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    for line in [
        "BillingMode: PAY_PER_REQUEST".to_owned(),
        format!("- AttributeName: {PARTITION_KEY}\n          AttributeType: S"),
        format!("- AttributeName: {PARTITION_KEY}\n          KeyType: HASH"),
        format!(
            "TimeToLiveSpecification:\n        AttributeName: {TTL_ATTRIBUTE}\n        Enabled: true"
        ),
    ] {
        assert!(
            table.contains(&line),
            "template.yaml's table lacks {line:?}:\n{table}"
        );
    }
    // Every function may update counters; none may read or scan the table, which
    // holds every client's (hashed) counters.
    let functions = template.matches("Type: AWS::Serverless::Function").count();
    assert_eq!(template.matches("dynamodb:UpdateItem").count(), functions);
    for forbidden in [
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:*",
    ] {
        assert!(!template.contains(forbidden), "{forbidden}");
    }
}
