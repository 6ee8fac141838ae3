//! Spend budgets (`docs/rate-limits.md`, "Reserve, then settle"): before a request goes
//! upstream its worst case is reserved against the client's budget (in the same
//! conditional write that counts the request) and against the day's (from this
//! container's lease on it); after the answer the reservation is settled to what it
//! cost, in one more write. A reservation never settled (the client left a JSON
//! request, the future was dropped) stays charged in full: OpenRouter bills a
//! generation whether or not anyone reads it.
//!
//! The day's budget is one item, but no request writes it: each container leases a
//! slice of it (a conditional write that keeps the leased total within the budget),
//! reserves from its slice in memory, and gets settled money back into it. So the day's
//! total can never pass the budget, and what containers hold unused (at most one slice
//! each) is what the day may fall short of it.

use std::sync::{Mutex, PoisonError};

use super::counter::Lease;
use super::{FailMode, RateLimiter, SPEND, TTL_MARGIN_SECS, micros, own};
use crate::error::{ApiError, Chain};
use crate::metrics;

pub(super) const DAY_MS: u64 = 86_400_000;

/// A container leases this share of the day's budget at a time (or what one request
/// needs, if more): few writes to the day's item, little held unused by each container.
const LEASE_SHARE: u64 = 256;

/// Leases one request may take before it is refused: more than one only when requests
/// of this container took the slice it leased first.
const LEASE_TRIES: usize = 4;

/// What one admitted request holds of the budgets until it is settled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[must_use = "a reservation not settled stays charged in full"]
pub struct Reservation {
    /// The client's counter item and its spend counters (its own, and its /48's).
    pub(super) key: String,
    pub(super) names: Vec<String>,
    pub(super) expires_at: u64,
    /// Micro-dollars reserved against the client's budget (0: no budget).
    pub(super) client: u64,
    /// Micro-dollars taken from this container's slice of the day (0: no budget).
    pub(super) day: u64,
    /// The UTC day (days since the epoch) the slice belongs to.
    pub(super) day_index: u64,
    /// Reserved in this container's memory because the store had failed.
    pub(super) local: bool,
}

/// This container's slice of the day's budget.
#[derive(Default)]
pub(super) struct DaySlice {
    inner: Mutex<SliceState>,
}

#[derive(Default)]
struct SliceState {
    day_index: u64,
    /// Micro-dollars leased and not yet reserved; below 0 when answers cost more than
    /// was reserved for them.
    left: i64,
    /// What the store had left of the day's budget when a lease last did not fit: it
    /// only shrinks during a day, so a request needing more is refused without asking.
    store_left: Option<u64>,
}

/// The outcome of reserving against the day.
pub(super) enum DayTake {
    Taken { micros: u64 },
    Spent { retry_after: u64 },
}

impl RateLimiter {
    /// Takes `amount` micro-dollars of the day's budget for one request, leasing a new
    /// slice from the store when this container's is short. What a request takes comes
    /// out of the slice under its lock, so the slice never goes below zero on its
    /// account: leased money another request took first only means leasing again.
    pub(super) async fn take_from_day(
        &self,
        amount: u64,
        now_ms: u64,
    ) -> Result<DayTake, ApiError> {
        let day_index = now_ms / DAY_MS;
        let day_end = (day_index + 1) * DAY_MS / 1000;
        let spent = DayTake::Spent {
            retry_after: day_end.saturating_sub(now_ms / 1000).max(1),
        };
        if self.day_budget == 0 || amount == 0 {
            return Ok(DayTake::Taken { micros: 0 });
        }
        let wanted = i64::try_from(amount).unwrap_or(i64::MAX);
        for _ in 0..LEASE_TRIES {
            let need = {
                let mut slice = self.day.lock();
                if slice.day_index != day_index {
                    *slice = SliceState {
                        day_index,
                        ..SliceState::default()
                    };
                }
                if slice.left >= wanted {
                    slice.left -= wanted;
                    return Ok(DayTake::Taken { micros: amount });
                }
                let need = (wanted - slice.left).unsigned_abs();
                if slice.store_left.is_some_and(|left| left < need) {
                    return Ok(spent);
                }
                need
            };
            match self.lease(day_index, need).await? {
                Some(leased) => {
                    let mut slice = self.day.lock();
                    if slice.day_index == day_index {
                        slice.left += i64::try_from(leased).unwrap_or(i64::MAX);
                    }
                }
                None => break,
            }
        }
        tracing::warn!(
            "the proxy's spend budget for the day cannot cover this request; refused (UTC day)"
        );
        Ok(spent)
    }

    /// Leases a slice of the day's budget of at least `need`: the usual size, else
    /// whatever the day has left if that is enough. `None` when the day cannot spare
    /// `need`; what the store then had left is remembered.
    async fn lease(&self, day_index: u64, need: u64) -> Result<Option<u64>, ApiError> {
        let key = format!("spend-day#{day_index}");
        let expires_at = (day_index + 1) * DAY_MS / 1000 + TTL_MARGIN_SECS;
        let now = (self.clock)() / 1000;
        let mut want = need.max(self.day_budget / LEASE_SHARE);
        for _ in 0..2 {
            let leased = match self
                .within_budget(
                    self.store
                        .lease(&key, want, self.day_budget, expires_at, now),
                )
                .await
            {
                Ok(lease) => lease,
                Err(error) => {
                    self.store_failed(&error)?;
                    match self.fail_mode {
                        FailMode::Local => {
                            self.fallback
                                .lease(&key, want, self.day_budget, expires_at, now)
                        }
                        // Uncounted, as the fail mode says: the request goes on.
                        FailMode::Open | FailMode::Closed => Lease::Granted(None),
                    }
                }
            };
            if let Some(total) = leased.total() {
                // What the store holds leased of the day: an alarm's early warning.
                metrics::day_budget_used(total as f64 * 100.0 / self.day_budget as f64);
            }
            match leased {
                Lease::Granted(_) => return Ok(Some(want)),
                Lease::Refused(total) => {
                    let left = total.map(|total| self.day_budget.saturating_sub(total));
                    let mut slice = self.day.lock();
                    if slice.day_index == day_index {
                        slice.store_left = Some(left.unwrap_or(0));
                    }
                    match left {
                        Some(left) if left >= need && left < want => want = left,
                        _ => return Ok(None),
                    }
                }
            }
        }
        Ok(None)
    }

    /// Gives an unused day reservation back to this container's slice.
    pub(super) fn return_to_day(&self, micros: u64, day_index: u64) {
        self.settle_day(micros, 0, day_index);
    }

    fn settle_day(&self, reserved: u64, cost: u64, day_index: u64) {
        if reserved == 0 {
            return;
        }
        let mut slice = self.day.lock();
        if slice.day_index == day_index {
            slice.left += i64::try_from(reserved).unwrap_or(i64::MAX)
                - i64::try_from(cost).unwrap_or(i64::MAX);
        }
    }

    /// Settles `reservation` to `cost_usd`, what the answer cost: the difference goes
    /// back to (or is added to) the client's spend and this container's day slice. One
    /// write, or none when the reservation was exact or held nothing.
    pub async fn settle(&self, reservation: Reservation, cost_usd: f64) {
        let cost = micros(cost_usd);
        self.settle_day(reservation.day, cost, reservation.day_index);
        if reservation.client == 0 || cost == reservation.client {
            return;
        }
        let delta = i64::try_from(cost)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(reservation.client).unwrap_or(i64::MAX));
        let now = (self.clock)() / 1000;
        let Reservation {
            key,
            names,
            expires_at,
            local,
            ..
        } = &reservation;
        if *local {
            self.fallback.adjust(key, names, delta, *expires_at, now);
            return;
        }
        let adjusted = self
            .within_budget(self.store.adjust(key, names, delta, *expires_at, now))
            .await;
        if let Err(error) = adjusted {
            tracing::warn!(error = %Chain(&error), micros = delta, "spend not settled in the store");
            // A cost above the reservation still counts, here at least.
            if delta > 0 && self.fail_mode == FailMode::Local {
                self.fallback.adjust(key, names, delta, *expires_at, now);
            }
        }
    }

    /// The spend counters of `ip`'s item: its own, and its /48's.
    pub(super) fn spend_counters(&self, sub: Option<&str>) -> Vec<String> {
        let mut names = vec![own(SPEND, sub)];
        if sub.is_some() {
            names.push(SPEND.to_owned());
        }
        names
    }
}

impl DaySlice {
    fn lock(&self) -> std::sync::MutexGuard<'_, SliceState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
