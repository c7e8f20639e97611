//! Leases and locks (SPEC §6): owner tokens, compare-and-clear release, TTL,
//! fencing tokens and a first-come-first-served queue of waiters.
//!
//! A lease name has one stored row that outlives its holders (it remembers the
//! last fence and the last waiter id handed out), and a queue of waiters. A lease is *held* while its row has a
//! token and `now < expires_at`: an expired lease is free for the next acquirer
//! at once, with no sweeper involved.

use crate::{Error, Limits, Millis};

/// The stored state of one lease name.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The lease name.
    pub name: String,
    /// The holder's owner token; `None` once released, broken or expired-and-swept.
    pub token: Option<String>,
    /// The holder's label.
    pub holder: Option<String>,
    /// The fence of the latest acquisition (its revision).
    pub fence: u64,
    /// When the latest acquisition happened.
    pub acquired_at: Millis,
    /// When the latest holder's lease runs out.
    pub expires_at: Millis,
    /// The last waiter id handed out for this name (0: none yet). The row
    /// outlives its queue, so an id is never handed out twice.
    pub last_waiter: u64,
}

impl Lease {
    /// The live holder's token at `now`, if any.
    pub fn live_token(&self, now: Millis) -> Option<&str> {
        self.token.as_deref().filter(|_| self.expires_at > now)
    }
}

/// One waiting acquire, in arrival order of `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    /// Position in the queue: larger ids arrived later.
    pub id: u64,
    /// The waiter counts while `now < alive_until`; it refreshes this while it
    /// waits, so a crashed or disconnected waiter stops blocking the queue.
    pub alive_until: Millis,
}

/// How long a waiter counts without refreshing itself.
pub const WAITER_ALIVE_MS: u64 = 3_000;
/// A waiter refreshes itself once less than this remains.
pub const WAITER_REFRESH_MS: u64 = 2_000;

/// The live waiters of a queue, in arrival order.
pub fn live_waiters(waiters: &[Waiter], now: Millis) -> Vec<&Waiter> {
    let mut live: Vec<&Waiter> = waiters.iter().filter(|w| w.alive_until > now).collect();
    live.sort_by_key(|w| w.id);
    live
}

/// `acquire` request.
#[derive(Debug, Clone, PartialEq)]
pub struct AcquireReq {
    /// Lease duration.
    pub ttl_ms: u64,
    /// Holder label.
    pub holder: Option<String>,
    /// The fresh random owner token (made by the shell).
    pub token: String,
    /// How the caller waits: `None` = no waiting; `Some(None)` = join the queue
    /// if the lease is not free for it; `Some(Some(id))` = it is waiter `id`.
    pub wait: Option<Option<u64>>,
}

/// Checks a lease TTL: 100 ms ..= 24 h by default.
pub fn check_ttl(ttl_ms: u64, limits: &Limits) -> Result<(), Error> {
    if (limits.lease_ttl_ms_min..=limits.lease_ttl_ms_max).contains(&ttl_ms) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "ttl_ms must be within {}..={}",
            limits.lease_ttl_ms_min, limits.lease_ttl_ms_max
        )))
    }
}

/// Checks an owner token: a non-empty string of at most 256 bytes.
pub fn check_token(token: &str) -> Result<(), Error> {
    if token.is_empty() || token.len() > 256 {
        return Err(Error::invalid(
            "token must be a non-empty string of at most 256 bytes",
        ));
    }
    crate::names::validate_text("token", token)
}

/// Checks an `acquire` request before anything is loaded.
pub fn check_acquire(req: &AcquireReq, limits: &Limits) -> Result<(), Error> {
    check_ttl(req.ttl_ms, limits)?;
    check_token(&req.token)?;
    if req
        .holder
        .as_ref()
        .is_some_and(|h| h.len() > limits.lease_holder_bytes_max)
    {
        return Err(Error::invalid(format!(
            "holder is over {} bytes",
            limits.lease_holder_bytes_max
        )));
    }
    if let Some(h) = &req.holder {
        crate::names::validate_text("holder", h)?;
    }
    Ok(())
}

/// What an acquire attempt decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquired {
    /// The caller holds the lease now.
    Granted(Lease),
    /// The caller is (still) waiter `id` in the queue; `waiters` is the queue's live
    /// length; `refresh` tells whether its row must be rewritten.
    Queued {
        /// The waiter's id.
        id: u64,
        /// Its refreshed row, when it must be written.
        refresh: Option<Waiter>,
        /// The lease row recording a newly handed-out id as the last one, when
        /// it must be written.
        lease: Option<Lease>,
        /// The refusal it would get if it stopped waiting now.
        held: Error,
    },
}

fn held(lease: Option<&Lease>, live_waiters: usize) -> Error {
    Error::LeaseHeld {
        holder: lease.and_then(|l| l.holder.clone()),
        expires_at: lease.map(|l| l.expires_at),
        waiters: live_waiters,
    }
}

/// Acquire semantics. A free lease goes to a caller without a queue position only
/// if nobody waits, and to a waiter only if it is the first live one.
pub fn acquire(
    name: &str,
    lease: Option<&Lease>,
    waiters: &[Waiter],
    req: &AcquireReq,
    revision: u64,
    now: Millis,
) -> Result<Acquired, Error> {
    let live = live_waiters(waiters, now);
    let is_held = lease.is_some_and(|l| l.live_token(now).is_some());
    let first_in_line = match req.wait {
        None | Some(None) => live.is_empty(),
        Some(Some(id)) => live.first().is_some_and(|w| w.id == id),
    };
    if !is_held && first_in_line {
        if let Some(prev) = lease {
            assert!(
                revision > prev.fence,
                "a fence handed out is larger than the last"
            );
        }
        return Ok(Acquired::Granted(Lease {
            name: name.to_owned(),
            token: Some(req.token.clone()),
            holder: req.holder.clone(),
            fence: revision,
            acquired_at: now,
            expires_at: now.plus_ms(req.ttl_ms),
            last_waiter: lease.map_or(0, |l| l.last_waiter),
        }));
    }
    let alive_until = now.plus_ms(WAITER_ALIVE_MS);
    // The refusal names the live holder only; a freed lease with a queue has none.
    let holder = lease.filter(|l| l.live_token(now).is_some());
    match req.wait {
        None => Err(held(holder, live.len())),
        Some(None) => {
            // Ids grow past the last one handed out (kept on the lease row,
            // which outlives its queue), every queued id and the storage clock,
            // so an id is never handed out twice, even after the queue emptied.
            let clock_id = u64::try_from(now.0).unwrap_or(0).saturating_mul(1000);
            let queued = waiters.iter().map(|w| w.id).max().unwrap_or(0);
            let last = lease.map_or(0, |l| l.last_waiter);
            let id = (last.max(queued) + 1).max(clock_id);
            Ok(Acquired::Queued {
                id,
                refresh: Some(Waiter { id, alive_until }),
                lease: lease.map(|l| Lease {
                    last_waiter: id,
                    ..l.clone()
                }),
                held: held(holder, live.len() + 1),
            })
        }
        Some(Some(id)) => {
            let mine = waiters.iter().find(|w| w.id == id);
            // A waiter whose row lapsed (it stalled past its window) rejoins at
            // its old position only if nobody else holds that spot; else it is
            // refreshed in place, which keeps its arrival order.
            let refresh = match mine {
                Some(w) if w.alive_until.0 - now.0 > i64::try_from(WAITER_REFRESH_MS).unwrap_or(0) => None,
                _ => Some(Waiter { id, alive_until }),
            };
            let queued = live.len() + usize::from(mine.is_none_or(|w| w.alive_until <= now));
            Ok(Acquired::Queued {
                id,
                refresh,
                lease: None,
                held: held(holder, queued),
            })
        }
    }
}

/// Renew semantics: only the live holder's token renews.
pub fn renew(lease: Option<&Lease>, token: &str, ttl_ms: u64, now: Millis) -> Result<Lease, Error> {
    match lease {
        Some(l) if l.live_token(now) == Some(token) => Ok(Lease {
            expires_at: now.plus_ms(ttl_ms),
            ..l.clone()
        }),
        _ => Err(Error::LeaseLost("the token does not hold the lease".into())),
    }
}

/// Release semantics (compare-and-clear): the cleared lease, or `None` when the
/// token does not hold it (nothing changes).
pub fn release(lease: Option<&Lease>, token: &str, now: Millis) -> Option<Lease> {
    lease.filter(|l| l.live_token(now) == Some(token)).map(|l| Lease {
        token: None,
        expires_at: now,
        ..l.clone()
    })
}

/// Break semantics (admin): clears a live lease whatever its token.
pub fn break_lease(lease: Option<&Lease>, now: Millis) -> Option<Lease> {
    lease.filter(|l| l.live_token(now).is_some()).map(|l| Lease {
        token: None,
        expires_at: now,
        ..l.clone()
    })
}

/// Sweeper semantics: clears the token of an expired lease (reported as a change).
pub fn expire(lease: Option<&Lease>, now: Millis) -> Option<Lease> {
    lease
        .filter(|l| l.token.is_some() && l.expires_at <= now)
        .map(|l| Lease {
            token: None,
            ..l.clone()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(token: &str, wait: Option<Option<u64>>) -> AcquireReq {
        AcquireReq {
            ttl_ms: 1000,
            holder: Some("h".into()),
            token: token.into(),
            wait,
        }
    }

    fn granted(a: Result<Acquired, Error>) -> Lease {
        match a {
            Ok(Acquired::Granted(l)) => l,
            other => panic!("not granted: {other:?}"),
        }
    }

    #[test]
    fn owner_token_lifecycle() {
        let a = granted(acquire("n", None, &[], &req("A", None), 5, Millis(0)));
        assert_eq!((a.fence, a.expires_at), (5, Millis(1000)));
        // Held: B is refused, with the holder reported.
        let b = acquire("n", Some(&a), &[], &req("B", None), 6, Millis(10));
        assert!(matches!(b, Err(Error::LeaseHeld { waiters: 0, .. })));
        // A's TTL lapses: B acquires with a larger fence; A's late release is a no-op.
        let b = granted(acquire("n", Some(&a), &[], &req("B", None), 7, Millis(1000)));
        assert_eq!(b.fence, 7);
        assert_eq!(release(Some(&b), "A", Millis(1001)), None);
        assert!(renew(Some(&b), "A", 1000, Millis(1001)).is_err());
        let renewed = renew(Some(&b), "B", 5000, Millis(1001)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(renewed.expires_at, Millis(6001));
        let freed = release(Some(&renewed), "B", Millis(1002)).unwrap_or_else(|| panic!("B holds it"));
        assert_eq!((freed.token, freed.fence), (None, 7));
    }

    #[test]
    fn waiters_first_come_first_served() {
        let a = granted(acquire("n", None, &[], &req("A", None), 1, Millis(0)));
        let Ok(Acquired::Queued {
            id: w1,
            refresh: Some(r1),
            ..
        }) = acquire("n", Some(&a), &[], &req("W1", Some(None)), 2, Millis(1))
        else {
            panic!()
        };
        let Ok(Acquired::Queued {
            id: w2,
            refresh: Some(r2),
            held,
            ..
        }) = acquire(
            "n",
            Some(&a),
            std::slice::from_ref(&r1),
            &req("W2", Some(None)),
            2,
            Millis(2),
        )
        else {
            panic!()
        };
        assert!(w2 > w1);
        assert!(matches!(held, Error::LeaseHeld { waiters: 2, .. }));
        let queue = vec![r1, r2];
        let freed = release(Some(&a), "A", Millis(3));
        // A newcomer without a position is refused while anyone waits.
        assert!(acquire("n", freed.as_ref(), &queue, &req("X", None), 3, Millis(4)).is_err());
        // The second waiter cannot jump the queue; the first gets it.
        assert!(matches!(
            acquire(
                "n",
                freed.as_ref(),
                &queue,
                &req("W2", Some(Some(w2))),
                3,
                Millis(4)
            ),
            Ok(Acquired::Queued { .. })
        ));
        let got = granted(acquire(
            "n",
            freed.as_ref(),
            &queue,
            &req("W1", Some(Some(w1))),
            3,
            Millis(4),
        ));
        assert_eq!(got.token.as_deref(), Some("W1"));
        // A dead first waiter stops blocking the queue.
        let later = Millis(4 + WAITER_ALIVE_MS as i64);
        let only_w2 = vec![
            Waiter {
                id: w2,
                alive_until: later.plus_ms(1000),
            },
            queue[0].clone(),
        ];
        assert!(matches!(
            acquire(
                "n",
                freed.as_ref(),
                &only_w2,
                &req("W2", Some(Some(w2))),
                4,
                later
            ),
            Ok(Acquired::Granted(_))
        ));
    }

    #[test]
    fn waiter_ids_are_never_handed_out_twice() {
        let a = granted(acquire("n", None, &[], &req("A", None), 1, Millis(5)));
        assert_eq!(a.last_waiter, 0);
        let Ok(Acquired::Queued {
            id: w1,
            lease: Some(recorded),
            ..
        }) = acquire("n", Some(&a), &[], &req("W1", Some(None)), 2, Millis(5))
        else {
            panic!("W1 is not queued with its id recorded")
        };
        assert_eq!((w1, recorded.last_waiter), (5000, 5000));
        assert_eq!(
            Lease {
                last_waiter: 0,
                ..recorded.clone()
            },
            a
        );
        // W1 left: the queue is empty, in the same millisecond. The next id is
        // still new (it was 5000 again before the lease row kept the last one).
        let Ok(Acquired::Queued { id: w2, lease, .. }) =
            acquire("n", Some(&recorded), &[], &req("W2", Some(None)), 2, Millis(5))
        else {
            panic!("W2 is not queued")
        };
        assert_eq!(w2, 5001);
        let recorded = lease.unwrap_or_else(|| panic!("W2's id is not recorded"));
        // A refresh of a known waiter records nothing; the clock still moves ids on.
        let w2_row = Waiter {
            id: w2,
            alive_until: Millis(5 + WAITER_ALIVE_MS as i64),
        };
        let again = acquire(
            "n",
            Some(&recorded),
            &[w2_row],
            &req("W2", Some(Some(w2))),
            2,
            Millis(6),
        );
        assert!(matches!(again, Ok(Acquired::Queued { lease: None, .. })));
        let later = acquire("n", Some(&recorded), &[], &req("W3", Some(None)), 2, Millis(7));
        assert!(matches!(later, Ok(Acquired::Queued { id: 7000, .. })));
        // A grant and every later write of the row keep the last id.
        let freed = release(Some(&recorded), "A", Millis(8)).unwrap_or_else(|| panic!("A holds it"));
        let b = granted(acquire("n", Some(&freed), &[], &req("B", None), 3, Millis(8)));
        assert_eq!(b.last_waiter, 5001);
    }

    #[test]
    fn limits() {
        let l = Limits::default();
        assert!(check_ttl(99, &l).is_err());
        assert!(check_ttl(100, &l).is_ok());
        assert!(check_ttl(24 * 3600 * 1000, &l).is_ok());
        assert!(check_ttl(24 * 3600 * 1000 + 1, &l).is_err());
        assert!(check_token("").is_err());
        let long = AcquireReq {
            holder: Some("x".repeat(257)),
            ..req("t", None)
        };
        assert!(check_acquire(&long, &l).is_err());
    }
}
