//! `Admission`: an inference request's count, made once its worst-case cost is known.
//! The HTTP middleware cannot price a request (that needs its body), so for inference
//! routes it hands one of these to the handler, which counts and reserves in one store
//! call once the body is read; the middleware then writes the verdict's headers. A
//! request refused before that (a body too large, not JSON) is still counted, by the
//! middleware, after the fact.

use std::sync::{Arc, Mutex, PoisonError};

use super::{Decision, RateLimiter, Reservation};
use crate::client_ip::ClientIp;
use crate::error::ApiError;

#[derive(Clone)]
pub struct Admission {
    limiter: Arc<RateLimiter>,
    ip: ClientIp,
    decision: Arc<Mutex<Option<Decision>>>,
}

impl Admission {
    pub fn new(limiter: Arc<RateLimiter>, ip: ClientIp) -> Self {
        Self {
            limiter,
            ip,
            decision: Arc::default(),
        }
    }

    pub fn client(&self) -> ClientIp {
        self.ip
    }

    /// Counts the request and reserves `reserve_usd` against the spend budgets. A
    /// refusal is the error to answer with (429, or 503 when the store is down and the
    /// fail mode is `closed`).
    pub async fn admit(&self, reserve_usd: f64) -> Result<Option<Reservation>, ApiError> {
        let (decision, reservation) = self.limiter.admit(self.ip, reserve_usd).await?;
        let refusal = (!decision.allowed).then(|| decision.refusal());
        *self.lock() = Some(decision);
        match refusal {
            Some(refusal) => Err(refusal),
            None => Ok(reservation),
        }
    }

    /// The verdict, once the request was counted.
    pub fn decision(&self) -> Option<Decision> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Decision>> {
        self.decision.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
