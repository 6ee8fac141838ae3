//! Spend budgets (`docs/rate-limits.md`, "Spend"): after each answer its cost is added
//! to the client's spend for the window and to the proxy's for the UTC day, in one
//! write. Over the client's budget, the next counting write refuses; over the day's,
//! this container refuses inference until the day ends (it learns it from that
//! write's condition, so no request pays for a read).

use std::sync::atomic::Ordering;

use super::counter::{BudgetState, DaySpend};
use super::{FailMode, RateLimiter, SPEND, TTL_MARGIN_SECS, micros, own};
use crate::client_ip::ClientIp;
use crate::error::Chain;

const DAY_MS: u64 = 86_400_000;

impl RateLimiter {
    /// Adds `cost_usd` to what `ip` spent in this window, and to the proxy's spend
    /// today. One write, or none when both budgets are off or nothing was spent.
    pub async fn record_spend(&self, ip: ClientIp, cost_usd: f64) {
        let amount = micros(cost_usd);
        if amount == 0 || (self.client_budget == 0 && self.day_budget == 0) {
            return;
        }
        let now_ms = (self.clock)();
        let client = self.keyer.key(ip);
        let names: Vec<String> = if self.client_budget == 0 {
            Vec::new()
        } else {
            let mut names = vec![own(SPEND, client.sub.as_deref())];
            if client.sub.is_some() {
                names.push(SPEND.to_owned());
            }
            names
        };
        let window_ms = self.http[0].window.as_millis().max(1) as u64;
        let window_start = now_ms - now_ms % window_ms;
        let key = format!("http#{}#{window_start}", client.item);
        let expires_at = (window_start + window_ms).div_ceil(1000) + TTL_MARGIN_SECS;
        let day_index = now_ms / DAY_MS;
        let day = (self.day_budget > 0).then(|| DaySpend {
            key: format!("spend-day#{day_index}"),
            limit: self.day_budget,
            expires_at: (day_index + 1) * DAY_MS / 1000 + TTL_MARGIN_SECS,
        });
        let now = now_ms / 1000;
        let written = self
            .within_budget(
                self.store
                    .spend(&key, &names, amount, expires_at, day.as_ref(), now),
            )
            .await;
        let state = match written {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(error = %Chain(&error), micros = amount, "spend not recorded in the store");
                match self.fail_mode {
                    FailMode::Local => {
                        self.fallback
                            .spend(&key, &names, amount, expires_at, day.as_ref(), now)
                    }
                    FailMode::Open | FailMode::Closed => return,
                }
            }
        };
        if state == BudgetState::Spent {
            tracing::warn!(
                "the proxy's spend budget for the day is spent; inference is refused until the day ends (UTC)"
            );
            self.day_spent_until
                .store((day_index + 1) * DAY_MS / 1000, Ordering::Release);
        }
    }

    /// Seconds until the day's budget comes back, if this container knows it spent.
    pub(super) fn day_spent(&self, now_ms: u64) -> Option<u64> {
        let until = self.day_spent_until.load(Ordering::Acquire);
        let now = now_ms / 1000;
        (until > now).then(|| until - now)
    }
}
