//! A `RateLimiter` on a manual clock over either counter store: in memory, or DynamoDB
//! through the real SDK against moto on 127.0.0.1 (with a counting proxy between them
//! when a test counts calls or makes the store fail).
#![allow(
    clippy::unwrap_used,
    reason = "a fixture that cannot be built fails the test loudly"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use llm_proxy_shared::rate_limit::{DynamoStore, IpKeyer, MemoryStore, RateLimiter, Store};
use llm_proxy_shared::{ClientIp, Config};

use crate::dynamo::{self, CountingProxy, DynamoServer};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Memory,
    Dynamo,
}

/// A limiter on a manual clock, and the DynamoDB pieces behind it when it has them.
pub struct Fixture {
    pub limiter: Arc<RateLimiter>,
    pub clock: Arc<AtomicU64>,
    pub proxy: Option<CountingProxy>,
    pub server: Option<DynamoServer>,
    pub table_client: Option<aws_sdk_dynamodb::Client>,
}

pub const TABLE: &str = "llm-proxy-rate-limits";
pub const START_MS: u64 = 1_800_000_000_000;

pub fn config(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).unwrap()
}

pub async fn fixture(kind: Kind, vars: &[(&str, &str)]) -> Fixture {
    fixture_via(kind, vars, false).await
}

/// `via_proxy` puts the counting proxy between the limiter and the server.
pub async fn fixture_via(kind: Kind, vars: &[(&str, &str)], via_proxy: bool) -> Fixture {
    let config = config(vars);
    let clock = Arc::new(AtomicU64::new(START_MS));
    let (store, proxy, server, table_client) = match kind {
        Kind::Memory => (Store::Memory(MemoryStore::default()), None, None, None),
        Kind::Dynamo => {
            let server = DynamoServer::start().unwrap();
            let direct = dynamo::client(&server.endpoint).await;
            dynamo::create_table(&direct, TABLE).await.unwrap();
            let proxy = CountingProxy::start(&server.endpoint).await.unwrap();
            let endpoint = if via_proxy {
                &proxy.endpoint
            } else {
                &server.endpoint
            };
            let client = DynamoStore::tuned(dynamo::config_for(endpoint), Duration::from_secs(10));
            let store = DynamoStore::new(client, TABLE);
            (
                Store::Dynamo(store),
                Some(proxy),
                Some(server),
                Some(direct),
            )
        }
    };
    let ticks = clock.clone();
    let limiter = RateLimiter::new(store, IpKeyer::new(b"test-secret"), &config.rate_limits)
        .with_clock(Arc::new(move || ticks.load(Ordering::SeqCst)))
        // moto under 200 concurrent writes can be slower than the production budget;
        // these cases are about counting, the budget has its own test.
        .with_budget(Duration::from_secs(10));
    Fixture {
        limiter: Arc::new(limiter),
        clock,
        proxy,
        server,
        table_client,
    }
}

pub fn ip(s: &str) -> ClientIp {
    ClientIp(s.parse().unwrap())
}

/// Runs each named `async fn case(kind: Kind)` of the calling test file as two tests,
/// `case::memory` and `case::dynamodb` (the file imports `Kind`).
#[macro_export]
macro_rules! for_both_stores {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn memory() {
                    super::$case(super::Kind::Memory).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn dynamodb() {
                    super::$case(super::Kind::Dynamo).await;
                }
            }
        )*
    };
}
