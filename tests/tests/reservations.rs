//! Reserve, then settle (`docs/rate-limits.md`): the `RateLimiter`'s reservations over
//! each counter store, and the day's budget leased by several containers sharing one
//! DynamoDB table. What a client sees of it is in `spend_bypasses.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use llm_proxy_shared::rate_limit::{DynamoStore, IpKeyer, RateLimiter, Scope, Store};
use llm_proxy_tests::dynamo;
use llm_proxy_tests::limiter::{Kind, TABLE, config, fixture, fixture_via, ip};

llm_proxy_tests::for_both_stores!(
    concurrent_reservations_never_pass_the_client_budget,
    settling_gives_back_what_was_not_spent,
    the_day_budget_spent_refuses_everyone,
);

async fn concurrent_reservations_never_pass_the_client_budget(kind: Kind) {
    let f = fixture(
        kind,
        &[
            ("SPEND_LIMIT_USD", "0.08"),
            ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0"),
        ],
    )
    .await;
    let client = ip("203.0.113.40");
    let tries: Vec<_> = (0..30)
        .map(|_| {
            let limiter = f.limiter.clone();
            tokio::spawn(async move { limiter.admit(client, 0.01).await.unwrap() })
        })
        .collect();
    let mut admitted = Vec::new();
    for task in tries {
        let (decision, reservation) = task.await.unwrap();
        if decision.allowed {
            admitted.push(reservation.unwrap());
        } else {
            assert_eq!(decision.budget, Some("client"));
            assert!(reservation.is_none());
        }
    }
    assert_eq!(admitted.len(), 8, "eight reservations of 0.01 fit in 0.08");
    // The budget holds inference only; the same client may still read the catalogue,
    // and another client has a budget of its own.
    assert!(f.limiter.check(client, Scope::Http).await.unwrap().allowed);
    assert!(
        f.limiter
            .admit(ip("203.0.113.41"), 0.01)
            .await
            .unwrap()
            .0
            .allowed
    );
    // A reservation larger than the whole budget is refused without a store call.
    let (refused, _) = f.limiter.admit(ip("203.0.113.42"), 0.09).await.unwrap();
    assert_eq!(refused.budget, Some("client"));
    // A new window, a new budget.
    f.clock.fetch_add(900_000, Ordering::SeqCst);
    assert!(f.limiter.admit(client, 0.01).await.unwrap().0.allowed);
}

async fn settling_gives_back_what_was_not_spent(kind: Kind) {
    let f = fixture(
        kind,
        &[
            ("SPEND_LIMIT_USD", "0.05"),
            ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0"),
        ],
    )
    .await;
    let client = ip("203.0.113.50");
    let admit = || async { f.limiter.admit(client, 0.02).await.unwrap() };
    let (first, one) = admit().await;
    let (second, two) = admit().await;
    assert!(first.allowed && second.allowed);
    assert!(
        !admit().await.0.allowed,
        "0.04 reserved, 0.02 more does not fit"
    );
    // The first answer cost 0.005: 0.015 comes back, and 0.02 fits again.
    f.limiter.settle(one.unwrap(), 0.005).await;
    let (third, three) = admit().await;
    assert!(third.allowed);
    // An answer that cost more than was reserved is charged in full: 0.005 + 0.045
    // + 0.02 spent, so nothing fits.
    f.limiter.settle(two.unwrap(), 0.045).await;
    f.limiter.settle(three.unwrap(), 0.02).await;
    let (refused, _) = f.limiter.admit(client, 0.001).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.budget, Some("client"));
}

async fn the_day_budget_spent_refuses_everyone(kind: Kind) {
    let f = fixture(
        kind,
        &[
            ("SPEND_LIMIT_USD", "0"),
            ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "0.01"),
        ],
    )
    .await;
    let (first, held) = f.limiter.admit(ip("203.0.113.60"), 0.008).await.unwrap();
    assert!(first.allowed);
    let refused = f.limiter.admit(ip("203.0.113.61"), 0.008).await.unwrap().0;
    assert!(!refused.allowed, "0.008 of 0.01 is reserved");
    assert_eq!(refused.budget, Some("global"));
    assert!(refused.retry_after > 0 && refused.retry_after <= 86_400);
    assert!(
        f.limiter
            .check(ip("203.0.113.61"), Scope::Http)
            .await
            .unwrap()
            .allowed,
        "only inference costs money"
    );
    // The answer cost 0.001: the rest comes back to this container.
    f.limiter.settle(held.unwrap(), 0.001).await;
    assert!(
        f.limiter
            .admit(ip("203.0.113.61"), 0.008)
            .await
            .unwrap()
            .0
            .allowed
    );
    // A new UTC day.
    f.clock.fetch_add(86_400_000, Ordering::SeqCst);
    assert!(
        f.limiter
            .admit(ip("203.0.113.62"), 0.009)
            .await
            .unwrap()
            .0
            .allowed
    );
}

/// Several containers, one table: the day's budget is leased out, never passed, and
/// its item is written once per lease, not once per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_sharing_a_table_never_pass_the_days_budget() {
    let vars = [
        ("SPEND_LIMIT_USD", "0"),
        ("SPEND_LIMIT_GLOBAL_USD_PER_DAY", "25"),
        // A store failure would count in memory; here it must show.
        ("RATE_LIMIT_FAIL_MODE", "closed"),
    ];
    let f = fixture_via(Kind::Dynamo, &vars, true).await;
    let proxy = f.proxy.as_ref().unwrap();
    let config = config(&vars);
    let clock = f.clock.clone();
    let containers: Vec<Arc<RateLimiter>> = (0..3)
        .map(|_| {
            let client =
                DynamoStore::tuned(dynamo::config_for(&proxy.endpoint), Duration::from_secs(10));
            let ticks = clock.clone();
            Arc::new(
                RateLimiter::new(
                    Store::Dynamo(DynamoStore::new(client, TABLE)),
                    IpKeyer::new(b"test-secret"),
                    &config.rate_limits,
                )
                .with_clock(Arc::new(move || ticks.load(Ordering::SeqCst)))
                .with_budget(Duration::from_secs(10)),
            )
        })
        .collect();

    // Cheap requests: 90 of them, each settled at what it reserved.
    let before = proxy.total();
    for n in 0..90u32 {
        let limiter = &containers[n as usize % 3];
        let (decision, reservation) = limiter
            .admit(ip(&format!("198.51.100.{}", n % 50)), 0.01)
            .await
            .unwrap();
        assert!(decision.allowed);
        limiter.settle(reservation.unwrap(), 0.01).await;
    }
    let writes = proxy.total() - before;
    // One counting write each, and a lease of 25/256 (~0.098) per container now and
    // then: 0.30 a container, four leases.
    assert!((90..=90 + 3 * 4).contains(&writes), "{writes} writes");

    // Then the whole budget, asked for by every container at once: what is admitted
    // never passes it, and what the day's item records never does either.
    let tasks: Vec<_> = (0..60u32)
        .map(|n| {
            let limiter = containers[n as usize % 3].clone();
            tokio::spawn(async move {
                let who = ip(&format!("198.51.100.{}", n % 200));
                limiter.admit(who, 1.0).await.unwrap().0.allowed
            })
        })
        .collect();
    let mut admitted = 0u32;
    for task in tasks {
        admitted += u32::from(task.await.unwrap());
    }
    let items = f
        .table_client
        .as_ref()
        .unwrap()
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let leased: u64 = items
        .items()
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("spend-day#"))
        .map(|i| i["total"].as_n().unwrap().parse::<u64>().unwrap())
        .sum();
    let spent_before = 0.9;
    let ceiling = ((25.0f64 - spent_before) / 1.0).floor() as u32;
    assert!(
        admitted <= ceiling,
        "{admitted} admitted of at most {ceiling}; {leased} leased"
    );
    // What containers may hold unused: less than a request's worth each.
    assert!(
        admitted + 3 >= ceiling,
        "{admitted} admitted; at least {}",
        ceiling - 3
    );
    assert!(leased <= 25_000_000, "{leased} micro-dollars leased");
}
