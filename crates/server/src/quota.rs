//! One client cannot exhaust the server (SPEC §3, §11): per-token limits on the
//! request rate, on waiting acquires and on open watches, answered 429
//! `too_many_requests` with `Retry-After`; and a timeout on every request.
//! Limits count by token name (capabilities by their gate; open mode as one
//! caller, `anonymous`); each is configurable and 0 turns it off.

use crate::{ApiError, AppState};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What one token uses now.
#[derive(Debug)]
struct Use {
    /// Requests the token may still make at once (a token bucket).
    credit: f64,
    /// When `credit` was last topped up.
    at: Instant,
    /// Acquires of this token now waiting in a lease queue.
    waiting: usize,
    /// Watches of this token now open.
    watches: usize,
}

/// The use of every token, shared by the instance's requests.
#[derive(Debug, Default)]
pub struct Quotas {
    by_token: Mutex<HashMap<String, Use>>,
}

/// What a guard releases when dropped.
#[derive(Debug, Clone, Copy)]
enum Held {
    Waiting,
    Watch,
}

/// A waiting acquire or an open watch, counted until dropped.
#[derive(Debug)]
pub struct Slot {
    quotas: Arc<Quotas>,
    token: String,
    held: Held,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.quotas.with(&self.token, |u| match self.held {
            Held::Waiting => u.waiting = u.waiting.saturating_sub(1),
            Held::Watch => u.watches = u.watches.saturating_sub(1),
        });
    }
}

fn too_many(what: String) -> ApiError {
    ApiError::Core(lockstep_core::Error::TooManyRequests(what))
}

impl Quotas {
    fn with<T>(&self, token: &str, f: impl FnOnce(&mut Use) -> T) -> T {
        let mut map = match self.by_token.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let u = map.entry(token.to_owned()).or_insert_with(|| Use {
            credit: f64::MAX,
            at: Instant::now(),
            waiting: 0,
            watches: 0,
        });
        f(u)
    }

    /// Takes one request of `token`'s rate (`per_s` requests a second, with a
    /// burst of one second's worth); 429 when none is left.
    pub fn request(&self, token: &str, per_s: u64) -> Result<(), ApiError> {
        if per_s == 0 {
            return Ok(());
        }
        let rate = per_s as f64;
        self.with(token, |u| {
            let now = Instant::now();
            let earned = now.saturating_duration_since(u.at).as_secs_f64() * rate;
            u.credit = (u.credit.min(rate) + earned).min(rate);
            u.at = now;
            if u.credit < 1.0 {
                return Err(too_many(format!(
                    "token {token:?} is over its rate of {per_s} requests a second"
                )));
            }
            u.credit -= 1.0;
            Ok(())
        })
    }

    fn slot(self: &Arc<Self>, token: &str, held: Held, max: usize) -> Result<Slot, ApiError> {
        let taken = self.with(token, |u| {
            let n = match held {
                Held::Waiting => &mut u.waiting,
                Held::Watch => &mut u.watches,
            };
            if max != 0 && *n >= max {
                return false;
            }
            *n += 1;
            true
        });
        if !taken {
            let what = match held {
                Held::Waiting => "waiting acquires",
                Held::Watch => "open watches",
            };
            return Err(too_many(format!("token {token:?} has {max} {what}, its limit")));
        }
        Ok(Slot {
            quotas: self.clone(),
            token: token.to_owned(),
            held,
        })
    }

    /// Counts a waiting acquire of `token` until the slot drops; 429 over `max`.
    pub fn waiting(self: &Arc<Self>, token: &str, max: usize) -> Result<Slot, ApiError> {
        self.slot(token, Held::Waiting, max)
    }

    /// Counts an open watch of `token` until the slot drops; 429 over `max`.
    pub fn watch(self: &Arc<Self>, token: &str, max: usize) -> Result<Slot, ApiError> {
        self.slot(token, Held::Watch, max)
    }

    /// Waiting acquires and open watches of the instance, for `/metrics`.
    pub fn totals(&self) -> (usize, usize) {
        match self.by_token.lock() {
            Ok(m) => m
                .values()
                .fold((0, 0), |(w, o), u| (w + u.waiting, o + u.watches)),
            Err(_) => (0, 0),
        }
    }
}

/// The request time limit: every request is answered within
/// `request_timeout_ms` (until its answer starts: a watch's stream runs on).
/// Over it: 503 `unavailable`. Applied by [`crate::metrics::track`].
pub async fn within_timeout(st: &AppState, answer: impl std::future::Future<Output = Response>) -> Response {
    let limit = Duration::from_millis(st.limits.request_timeout_ms);
    match tokio::time::timeout(limit, answer).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Unavailable(format!(
            "the request took longer than {} ms",
            st.limits.request_timeout_ms
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_refills_with_time() {
        let q = Quotas::default();
        for _ in 0..10 {
            assert!(q.request("a", 10).is_ok());
        }
        assert!(q.request("a", 10).is_err(), "the burst is one second's worth");
        assert!(q.request("b", 10).is_ok(), "tokens are counted apart");
        tokio::time::advance(Duration::from_millis(300)).await;
        for _ in 0..3 {
            assert!(q.request("a", 10).is_ok());
        }
        assert!(q.request("a", 10).is_err());
        assert!(q.request("a", 0).is_ok(), "0 is no limit");
    }

    #[test]
    fn slots_are_released_on_drop() {
        let q = Arc::new(Quotas::default());
        let a = q.watch("t", 2).unwrap_or_else(|e| panic!("{e}"));
        let _b = q.watch("t", 2).unwrap_or_else(|e| panic!("{e}"));
        assert!(q.watch("t", 2).is_err());
        assert!(q.watch("u", 2).is_ok(), "another token is served");
        drop(a);
        assert!(q.watch("t", 2).is_ok());
        assert_eq!(q.totals().1, 1);
        let _w = q.waiting("t", 1).unwrap_or_else(|e| panic!("{e}"));
        assert!(q.waiting("t", 1).is_err());
    }
}
