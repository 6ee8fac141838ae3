//! Several gateways sharing one table, many clients at once (`docs/operations.md`,
//! "No hot item"; `docs/rate-limits.md`, "The day's budget without a hot item"): no
//! item takes more than a tenth of the writes, each request costs the store calls the
//! docs promise, and the day's budget stops inference within its documented bound.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use futures_util::future::join_all;
use llm_proxy_tests::dynamo::{self, CountingProxy, DynamoServer};
use llm_proxy_tests::{Gateway, MockOpenRouter, client_at};
use serde_json::{Value, json};

const TABLE: &str = "llm-proxy-rate-limits";
const GATEWAYS: usize = 4;
const CLIENTS: usize = 16;
const BUDGET_USD: f64 = 0.5;

/// A chat request of `words` words, whose answer (the mock's echo) is about as long,
/// so that what it reserves is close to what it costs.
fn chat(words: usize) -> Value {
    json!({
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": vec!["word"; words].join(" ")}],
        "max_tokens": words + 2,
    })
}

/// What each request of one round answered: its cost when served, or the budget that
/// refused it.
enum Answer {
    Served(f64),
    Refused(String),
}

/// Every client sends `body` once, at the same time, each to the gateway its turn gives
/// it, so every gateway takes a share of every round.
async fn round(
    clients: &[reqwest::Client],
    gateways: &[Gateway],
    turn: usize,
    body: &Value,
) -> Vec<Answer> {
    join_all(clients.iter().enumerate().map(|(n, client)| {
        let gateway = &gateways[(n + turn) % gateways.len()];
        async move {
            let response = client
                .post(gateway.url("/api/v1/chat/completions"))
                .json(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let answer: Value = response.json().await.unwrap();
            match status.as_u16() {
                200 => Answer::Served(answer["usage"]["cost"].as_f64().unwrap()),
                429 => Answer::Refused(answer["error"]["details"]["budget"].to_string()),
                other => panic!("{other}: {answer}"),
            }
        }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_sharing_a_table_hold_the_days_budget_with_no_hot_item() {
    let server = DynamoServer::start().unwrap();
    dynamo::create_table(&dynamo::client(&server.endpoint).await, TABLE)
        .await
        .unwrap();
    let proxy = CountingProxy::start(&server.endpoint).await.unwrap();
    let mock = MockOpenRouter::start().await.unwrap();
    let base = mock.base_url();
    let budget = BUDGET_USD.to_string();
    let env = dynamo::sdk_env(&proxy.endpoint);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("OPENROUTER_BASE_URL", base.as_str()),
        ("OPENROUTER_API_KEY", "sk-or-v1-scale"),
        ("RATE_LIMIT_TABLE", TABLE),
        ("RATE_LIMIT_HASH_KEY", "scale-test"),
        ("RATE_LIMIT_MAX_REQUESTS", "100000"),
        ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "100000"),
        // Clients' budgets on, far from spent: each answer settles its reservation.
        ("SPEND_LIMIT_USD", "100"),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", &budget),
        // A store failure would be counted in memory and hide from this count; moto
        // serving one call at a time may be slower than production's 150 ms.
        ("RATE_LIMIT_FAIL_MODE", "closed"),
        ("RATE_LIMIT_STORE_TIMEOUT_MS", "10000"),
    ]);
    let mut gateways = Vec::new();
    for _ in 0..GATEWAYS {
        gateways.push(Gateway::start(&vars).await.unwrap());
    }
    let clients: Vec<reqwest::Client> = (0..CLIENTS)
        .map(|n| client_at(&format!("127.0.2.{}", n + 1)))
        .collect();

    // Steady traffic: small answers from every client through every gateway.
    let mut spent = 0.0;
    let rounds = 20;
    for turn in 0..rounds {
        for answer in round(&clients, &gateways, turn, &chat(8)).await {
            match answer {
                Answer::Served(cost) => spent += cost,
                Answer::Refused(budget) => panic!("refused early by the {budget} budget"),
            }
        }
    }
    let requests = rounds * CLIENTS;
    let writes = proxy.writes_per_item();
    let total: usize = writes.values().sum();
    let (busiest, most) = writes.iter().max_by_key(|(_, n)| **n).unwrap();
    assert!(
        most * 10 <= total,
        "{busiest} took {most} of {total} writes"
    );
    let day_writes: usize = writes
        .iter()
        .filter(|(key, _)| key.starts_with("spend-day#"))
        .map(|(_, n)| n)
        .sum();
    // One counting write and at most one settling write a request, and leases on the
    // day now and then: a slice (1/256 of the budget) covers many of these answers.
    assert!(
        total <= 2 * requests + day_writes,
        "{total} writes for {requests} requests"
    );
    assert!(
        day_writes <= requests / 10,
        "{day_writes} leases for {requests} requests"
    );
    let operations = proxy.operations();
    assert!(
        operations.iter().all(|op| op == "UpdateItem"),
        "no reads, no transactions: {operations:?}"
    );

    // Then spend the day: larger answers until every gateway refuses every client.
    let big = chat(400);
    let mut turn = 0;
    loop {
        let answers = round(&clients, &gateways, turn, &big).await;
        turn += 1;
        let mut served = 0;
        for answer in answers {
            match answer {
                Answer::Served(cost) => {
                    spent += cost;
                    served += 1;
                }
                Answer::Refused(budget) => assert_eq!(budget, "\"global\""),
            }
        }
        if served == 0 {
            break;
        }
        assert!(turn < 200, "the day's budget never stopped inference");
    }
    // What a large request reserves: its input at about 1 token per 3 bytes and its
    // output at max_tokens, both at the catalogue's gpt-4o prices.
    let body = serde_json::to_vec(&big).unwrap().len() as f64;
    let reservation = body / 3.0 * 0.000_002_5 + 402.0 * 0.000_01;
    // Never more than the budget (answers here cost less than they reserve); short of
    // it by at most what the store and each gateway hold unleased or unused, which is
    // less than one request's reservation each.
    let short = reservation * (GATEWAYS as f64 + 1.0);
    eprintln!(
        "steady: {total} writes for {requests} requests, busiest {busiest} {most}, {day_writes} leases; \
         spent ${spent:.6} of ${BUDGET_USD} in {turn} rounds of large answers (bound ${short:.6})"
    );
    assert!(
        spent <= BUDGET_USD + 1e-6,
        "${spent} spent of ${BUDGET_USD}"
    );
    assert!(
        spent >= BUDGET_USD - short,
        "${spent} spent of ${BUDGET_USD}: more than ${short} short"
    );
}
