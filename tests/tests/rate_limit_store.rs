//! The `RateLimiter` over each counter store (`docs/rate-limits.md`): the same cases
//! run against both, in memory and DynamoDB through the real SDK against moto on
//! 127.0.0.1. How a client meets the limits is in `rate_limit_gateway.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use llm_proxy_shared::ApiError;
use llm_proxy_shared::rate_limit::{
    DEFAULT_BUDGET, DynamoStore, IpKeyer, RateLimiter, Scope, Store,
};
use llm_proxy_tests::dynamo::{self, ProxyMode};
use llm_proxy_tests::limiter::{Fixture, Kind, START_MS, TABLE, config, fixture, fixture_via, ip};

llm_proxy_tests::for_both_stores!(
    exactly_n_are_admitted,
    concurrent_requests_never_overshoot,
    a_new_window_admits_again,
    default_and_inference_limits_together,
    websocket_connections_have_their_own_limit,
    one_ipv6_slash_64_shares_a_counter,
    one_ipv6_slash_48_gets_eight_clients_worth,
);

async fn exactly_n_are_admitted(kind: Kind) {
    let f = fixture(kind, &[("RATE_LIMIT_MAX_REQUESTS", "5")]).await;
    let client = ip("203.0.113.7");
    for expected_remaining in (0..5).rev() {
        let decision = f.limiter.check(client, Scope::Http).await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.tightest().unwrap().remaining, expected_remaining);
    }
    let refused = f.limiter.check(client, Scope::Http).await.unwrap();
    assert!(!refused.allowed);
    let quota = refused.tightest().unwrap();
    assert_eq!((quota.policy.limit, quota.remaining), (5, 0));
    // The default window is 900 s and the clock sits at a window boundary + 0.
    let window_end = (START_MS - START_MS % 900_000 + 900_000) / 1000;
    assert_eq!(quota.reset, window_end);
    assert_eq!(refused.retry_after, window_end - START_MS / 1000);
    // Someone else is not affected.
    assert!(
        f.limiter
            .check(ip("203.0.113.8"), Scope::Http)
            .await
            .unwrap()
            .allowed
    );
}

async fn concurrent_requests_never_overshoot(kind: Kind) {
    // Fail closed: a store error must show as an error here, not as an admission.
    let f = fixture(
        kind,
        &[
            ("RATE_LIMIT_MAX_REQUESTS", "1000"),
            ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "50"),
            ("RATE_LIMIT_FAIL_MODE", "closed"),
        ],
    )
    .await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let limiter = f.limiter.clone();
            tokio::spawn(async move {
                limiter
                    .check(ip("198.51.100.1"), Scope::Inference)
                    .await
                    .unwrap()
                    .allowed
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert_eq!(admitted, 50);
}

async fn a_new_window_admits_again(kind: Kind) {
    let f = fixture(
        kind,
        &[
            ("RATE_LIMIT_MAX_REQUESTS", "2"),
            ("RATE_LIMIT_WINDOW_MS", "1000"),
        ],
    )
    .await;
    let client = ip("192.0.2.10");
    assert!(f.limiter.check(client, Scope::Http).await.unwrap().allowed);
    assert!(f.limiter.check(client, Scope::Http).await.unwrap().allowed);
    assert!(!f.limiter.check(client, Scope::Http).await.unwrap().allowed);
    f.clock.fetch_add(999, Ordering::SeqCst);
    assert!(
        !f.limiter.check(client, Scope::Http).await.unwrap().allowed,
        "same window"
    );
    f.clock.fetch_add(1, Ordering::SeqCst);
    let decision = f.limiter.check(client, Scope::Http).await.unwrap();
    assert!(decision.allowed, "next window");
    assert_eq!(decision.tightest().unwrap().remaining, 1);
}

async fn default_and_inference_limits_together(kind: Kind) {
    let f = fixture(
        kind,
        &[
            ("RATE_LIMIT_MAX_REQUESTS", "5"),
            ("RATE_LIMIT_INFERENCE_MAX_REQUESTS", "3"),
        ],
    )
    .await;
    let client = ip("192.0.2.20");
    for _ in 0..3 {
        let decision = f.limiter.check(client, Scope::Inference).await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.quotas.len(), 2);
    }
    let refused = f.limiter.check(client, Scope::Inference).await.unwrap();
    assert!(!refused.allowed);
    let spent = refused.tightest().unwrap();
    assert_eq!((spent.policy.name, spent.remaining), ("inference", 0));
    // The refused inference did not count; 2 of the 5 default requests are left.
    let ok = f.limiter.check(client, Scope::Http).await.unwrap();
    assert!(ok.allowed);
    assert_eq!(ok.tightest().unwrap().remaining, 1);
    assert!(f.limiter.check(client, Scope::Http).await.unwrap().allowed);
    let refused = f.limiter.check(client, Scope::Http).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.tightest().unwrap().policy.name, "default");
}

async fn websocket_connections_have_their_own_limit(kind: Kind) {
    let f = fixture(
        kind,
        &[
            ("WS_RATE_LIMIT_CONNECTIONS", "2"),
            ("RATE_LIMIT_MAX_REQUESTS", "2"),
        ],
    )
    .await;
    let client = ip("192.0.2.30");
    assert!(
        f.limiter
            .check(client, Scope::WsConnect)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        f.limiter
            .check(client, Scope::WsConnect)
            .await
            .unwrap()
            .allowed
    );
    let refused = f.limiter.check(client, Scope::WsConnect).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.tightest().unwrap().policy.name, "websocket");
    assert!(refused.retry_after <= 60);
    assert!(
        f.limiter.check(client, Scope::Http).await.unwrap().allowed,
        "HTTP counts separately"
    );
}

async fn one_ipv6_slash_64_shares_a_counter(kind: Kind) {
    let f = fixture(kind, &[("RATE_LIMIT_MAX_REQUESTS", "2")]).await;
    assert!(
        f.limiter
            .check(ip("2001:db8:aa:bb::1"), Scope::Http)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        f.limiter
            .check(ip("2001:db8:aa:bb:ffff::2"), Scope::Http)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !f.limiter
            .check(ip("2001:db8:aa:bb:1234::3"), Scope::Http)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        f.limiter
            .check(ip("2001:db8:aa:bc::1"), Scope::Http)
            .await
            .unwrap()
            .allowed,
        "another /64"
    );
}

async fn one_ipv6_slash_48_gets_eight_clients_worth(kind: Kind) {
    let f = fixture(kind, &[("RATE_LIMIT_MAX_REQUESTS", "2")]).await;
    // 65,536 /64s in one /48: each counts alone, and all together at most 8 × 2.
    let mut admitted = 0;
    for n in 0..20u16 {
        let client = ip(&format!("2001:db8:77:{n:x}::1"));
        for _ in 0..2 {
            admitted += usize::from(f.limiter.check(client, Scope::Http).await.unwrap().allowed);
        }
    }
    assert_eq!(admitted, 16);
    assert!(
        f.limiter
            .check(ip("2001:db8:78::1"), Scope::Http)
            .await
            .unwrap()
            .allowed,
        "another /48 is not affected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limited_request_is_one_update_item() {
    let f = fixture_via(Kind::Dynamo, &[], true).await;
    let proxy = f.proxy.as_ref().unwrap();
    for i in 0..12 {
        let scope = if i % 3 == 0 {
            Scope::Inference
        } else {
            Scope::Http
        };
        f.limiter.check(ip("192.0.2.40"), scope).await.unwrap();
    }
    assert_eq!(proxy.operations(), vec!["UpdateItem".to_owned(); 12]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_holds_no_raw_address_and_every_item_expires() {
    let f = fixture(Kind::Dynamo, &[]).await;
    for address in ["203.0.113.77", "2001:db8:77::1"] {
        f.limiter
            .check(ip(address), Scope::Inference)
            .await
            .unwrap();
        f.limiter
            .check(ip(address), Scope::WsConnect)
            .await
            .unwrap();
    }
    let scan = f
        .table_client
        .as_ref()
        .unwrap()
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let items = scan.items();
    assert_eq!(items.len(), 4);
    let text = format!("{items:?}");
    for raw in ["203.0.113.77", "2001:db8", "203-0-113"] {
        assert!(!text.contains(raw), "raw address {raw} in {text}");
    }
    for item in items {
        let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        assert!(expires > START_MS / 1000, "{item:?}");
    }
}

/// A limiter with the production budget in front of a DynamoDB that can be made to
/// fail, with `vars` as its settings.
async fn failing(vars: &[(&str, &str)]) -> (Fixture, Arc<RateLimiter>) {
    let f = fixture_via(Kind::Dynamo, vars, true).await;
    let config = config(vars);
    let client = DynamoStore::tuned(
        dynamo::config_for(&f.proxy.as_ref().unwrap().endpoint),
        DEFAULT_BUDGET,
    );
    let store = DynamoStore::new(client, TABLE);
    let limiter = Arc::new(RateLimiter::new(
        Store::Dynamo(store),
        IpKeyer::new(b"k"),
        &config.rate_limits,
    ));
    (f, limiter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_dead_dynamodb_never_holds_a_request() {
    for mode in ["local", "open", "closed"] {
        let (mut f, limiter) = failing(&[("RATE_LIMIT_FAIL_MODE", mode)]).await;
        assert!(
            limiter
                .check(ip("192.0.2.50"), Scope::Http)
                .await
                .unwrap()
                .allowed,
            "healthy first"
        );

        // Slower than the budget.
        f.proxy.as_ref().unwrap().set_mode(ProxyMode::Hang);
        let started = Instant::now();
        let result = limiter.check(ip("192.0.2.50"), Scope::Http).await;
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(1000),
            "{mode}: waited {waited:?}"
        );
        check_fail_mode(mode, result);

        // Gone altogether.
        f.proxy.as_ref().unwrap().set_mode(ProxyMode::Forward);
        f.server.as_mut().unwrap().stop();
        let started = Instant::now();
        let result = limiter.check(ip("192.0.2.50"), Scope::Http).await;
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(1000),
            "{mode}: waited {waited:?}"
        );
        check_fail_mode(mode, result);
    }
}

fn check_fail_mode(mode: &str, result: Result<llm_proxy_shared::rate_limit::Decision, ApiError>) {
    match (mode, result) {
        ("open" | "local", Ok(decision)) => assert!(decision.allowed),
        ("closed", Err(error)) => {
            assert_eq!(error.status(), 503);
            assert_eq!(error.body()["error"]["type"], "unavailable");
        }
        (mode, other) => panic!("{mode}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_mode_local_keeps_the_limits_while_dynamodb_hangs() {
    let (f, limiter) = failing(&[
        ("RATE_LIMIT_FAIL_MODE", "local"),
        ("RATE_LIMIT_MAX_REQUESTS", "2"),
    ])
    .await;
    // DynamoDB accepts the connection and never answers.
    f.proxy.as_ref().unwrap().set_mode(ProxyMode::Hang);
    let who = ip("192.0.2.60");
    let first = limiter.check(who, Scope::Http).await.unwrap();
    assert!(first.allowed);
    assert_eq!(first.tightest().unwrap().remaining, 1, "counted, in memory");
    assert!(limiter.check(who, Scope::Http).await.unwrap().allowed);
    let third = limiter.check(who, Scope::Http).await.unwrap();
    assert!(!third.allowed, "the limit still holds");
    assert_eq!(third.tightest().unwrap().remaining, 0);
}
