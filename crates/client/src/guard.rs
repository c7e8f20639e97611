//! The lease guard: a lease renewed in the background (every third of its
//! TTL), its fence and token, and a loss the caller can `select!` on.

use crate::{Error, Ns, Retry};
use lockstep_api::leases::{AcquireBody, Lease};
use lockstep_api::Compare;
use std::future::Future;
use std::ops::Deref;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How to take a lease for [`Ns::acquire_with`] and [`Ns::with_lock`].
///
/// ```
/// use std::time::Duration;
/// let o = lockstep_client::LockOptions { wait: Duration::from_secs(5), ..Default::default() };
/// assert_eq!(o.ttl, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// How long the lease lives without a renewal (renewed every third of it).
    pub ttl: Duration,
    /// How long to wait in line when it is held (0: `lease_held` at once).
    pub wait: Duration,
    /// A label for people.
    pub holder: Option<String>,
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions {
            ttl: Duration::from_secs(30),
            wait: Duration::ZERO,
            holder: None,
        }
    }
}

/// What the keep-alive reports.
#[derive(Debug, Clone, Default)]
struct KeepAlive {
    renewals: u64,
    expires_at: String,
    /// Why the lease was lost, once it is.
    lost: Option<String>,
}

/// A held lease as seen by the work it protects: name, token, fence, and
/// its loss. Cheap to clone.
///
/// ```no_run
/// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
/// let guard = app.acquire("job", std::time::Duration::from_secs(9), std::time::Duration::ZERO).await?;
/// let held = guard.held();
/// tokio::select! {
///     e = held.lost() => eprintln!("{e}"),
///     _ = async { /* the work */ } => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Held {
    name: String,
    token: String,
    fence: u64,
    state: watch::Receiver<KeepAlive>,
}

impl Held {
    /// The lease name.
    ///
    /// ```no_run
    /// # fn f(g: lockstep_client::LeaseGuard) { println!("{}", g.name()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner token.
    ///
    /// ```no_run
    /// # fn f(g: lockstep_client::LeaseGuard) { println!("{}", g.token()) }
    /// ```
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The fencing token: strictly greater for every new holder.
    ///
    /// ```no_run
    /// # fn f(g: lockstep_client::LeaseGuard) { println!("{}", g.fence()) }
    /// ```
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Whether the lease is known lost.
    ///
    /// ```no_run
    /// # fn f(g: lockstep_client::LeaseGuard) { assert!(!g.is_lost()) }
    /// ```
    pub fn is_lost(&self) -> bool {
        self.state.borrow().lost.is_some()
    }

    /// How many renewals succeeded so far.
    ///
    /// ```no_run
    /// # fn f(g: lockstep_client::LeaseGuard) { println!("{}", g.renewals()) }
    /// ```
    pub fn renewals(&self) -> u64 {
        self.state.borrow().renewals
    }

    /// The last `expires_at` the server reported (RFC 3339).
    ///
    /// ```no_run
    /// # fn f(g: lockstep_client::LeaseGuard) { println!("{}", g.expires_at()) }
    /// ```
    pub fn expires_at(&self) -> String {
        self.state.borrow().expires_at.clone()
    }

    /// Resolves with [`Error::LeaseLost`] once the lease is lost (a renewal
    /// was refused, or none succeeded before it expired), or once the
    /// keep-alive stopped (released or dropped). Select on it beside the work.
    ///
    /// ```no_run
    /// # async fn f(g: lockstep_client::LeaseGuard) {
    /// let e = g.lost().await;
    /// # }
    /// ```
    pub fn lost(&self) -> impl Future<Output = Error> + Send + 'static {
        let mut rx = self.state.clone();
        let name = self.name.clone();
        async move {
            let reason = match rx.wait_for(|s| s.lost.is_some()).await {
                Ok(s) => s.lost.clone().unwrap_or_default(),
                Err(_) => "the keep-alive stopped".to_owned(),
            };
            Error::LeaseLost { name, reason }
        }
    }

    /// The transaction compare "this token holds the lease now".
    ///
    /// ```no_run
    /// use lockstep_client::api::{Op, Txn};
    /// # async fn f(app: lockstep_client::Ns, g: lockstep_client::LeaseGuard) -> Result<(), lockstep_client::Error> {
    /// let txn = Txn { compare: vec![g.compare()], success: vec![Op::incr("runs", 1)], ..Txn::default() };
    /// assert!(app.txn(&txn).await?.succeeded, "still the holder");
    /// # Ok(()) }
    /// ```
    pub fn compare(&self) -> Compare {
        Compare::Lease {
            name: self.name.clone(),
            token: self.token.clone(),
        }
    }

    /// The transaction compare that fences writes of `resource` with this
    /// lease's fence.
    ///
    /// ```no_run
    /// use lockstep_client::api::{Op, Txn};
    /// # async fn f(app: lockstep_client::Ns, g: lockstep_client::LeaseGuard) -> Result<(), lockstep_client::Error> {
    /// let txn = Txn {
    ///     compare: vec![g.fence_compare("ledger")],
    ///     success: vec![Op::put("ledger", serde_json::json!({"by": g.fence()}))],
    ///     ..Txn::default()
    /// };
    /// app.txn(&txn).await?;
    /// # Ok(()) }
    /// ```
    pub fn fence_compare(&self, resource: &str) -> Compare {
        Compare::Fence {
            resource: resource.to_owned(),
            token: self.fence,
        }
    }
}

/// A held lease renewed in the background until released or dropped. It
/// derefs to [`Held`] (`fence()`, `token()`, `lost()`…). Dropping it stops
/// the renewals and releases the lease in the background (best effort).
///
/// ```no_run
/// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
/// let guard = app.acquire("job", std::time::Duration::from_secs(9), std::time::Duration::ZERO).await?;
/// println!("fence {}", guard.fence());
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaseGuard {
    held: Held,
    ns: Ns,
    lease: Lease,
    task: Option<JoinHandle<()>>,
}

impl Deref for LeaseGuard {
    type Target = Held;
    fn deref(&self) -> &Held {
        &self.held
    }
}

impl LeaseGuard {
    /// The answer of the acquisition.
    ///
    /// ```no_run
    /// # fn f(g: lockstep_client::LeaseGuard) { println!("{}", g.lease().acquired_at) }
    /// ```
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// A handle for the work the lease protects (cheap to clone, `'static`).
    ///
    /// ```no_run
    /// # fn f(g: lockstep_client::LeaseGuard) { let h = g.held(); tokio::spawn(async move { h.lost().await }); }
    /// ```
    pub fn held(&self) -> Held {
        self.held.clone()
    }

    /// Stops the renewals and releases the lease (compare-and-clear: never
    /// another holder's); whether this token still held it.
    ///
    /// ```no_run
    /// # async fn f(g: lockstep_client::LeaseGuard) -> Result<(), lockstep_client::Error> {
    /// let still_held = g.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<bool, Error> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let r = self.ns.release_lease(&self.held.name, &self.held.token).await;
        Ok(r?.released)
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (ns, name, token) = (self.ns.clone(), self.held.name.clone(), self.held.token.clone());
                rt.spawn(async move {
                    let _ = ns.release_lease(&name, &token).await;
                });
            }
        }
    }
}

impl Ns {
    /// Acquires lease `name` for `ttl` (waiting in line up to `wait`) and
    /// renews it in the background every `ttl / 3`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let guard = app.acquire("job", Duration::from_secs(30), Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<LeaseGuard, Error> {
        let o = LockOptions {
            ttl,
            wait,
            holder: None,
        };
        self.acquire_with(name, &o).await
    }

    /// [`Ns::acquire`] with a holder label.
    ///
    /// ```no_run
    /// use lockstep_client::LockOptions;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let o = LockOptions { holder: Some("worker-a".into()), ..Default::default() };
    /// let guard = app.acquire_with("job", &o).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_with(&self, name: &str, o: &LockOptions) -> Result<LeaseGuard, Error> {
        let ttl_ms = u64::try_from(o.ttl.as_millis()).unwrap_or(u64::MAX);
        let body = AcquireBody {
            ttl_ms,
            holder: o.holder.clone(),
            wait_ms: u64::try_from(o.wait.as_millis()).unwrap_or(u64::MAX),
        };
        // Measured before the request: never later than the storage's expiry.
        let sent = Instant::now();
        let lease = self.acquire_lease(name, &body).await?;
        let token = lease
            .token
            .clone()
            .ok_or_else(|| Error::Decode("the acquisition answered no token".into()))?;
        let (tx, rx) = watch::channel(KeepAlive {
            renewals: 0,
            expires_at: lease.expires_at.clone(),
            lost: None,
        });
        let held = Held {
            name: name.to_owned(),
            token: token.clone(),
            fence: lease.fence,
            state: rx,
        };
        let task = tokio::spawn(keep_alive(
            self.clone(),
            held.name.clone(),
            token,
            o.ttl,
            sent + o.ttl,
            tx,
        ));
        Ok(LeaseGuard {
            held,
            ns: self.clone(),
            lease,
            task: Some(task),
        })
    }

    /// Runs `work` while holding lease `name` and releases it whatever
    /// happens (also when `work` fails or panics: the guard's drop releases).
    /// `work` gets the [`Held`] lease: guard its writes with
    /// `held.fence_compare(..)` and select on `held.lost()`. A lease lost
    /// while `work` ran turns its success into [`Error::LeaseLost`].
    ///
    /// ```no_run
    /// use lockstep_client::LockOptions;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let fence = app.with_lock("settle", &LockOptions::default(), |held| async move {
    ///     Ok(held.fence())
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn with_lock<T, F, Fut>(&self, name: &str, o: &LockOptions, work: F) -> Result<T, Error>
    where
        F: FnOnce(Held) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let guard = self.acquire_with(name, o).await?;
        let held = guard.held();
        let result = work(held.clone()).await;
        let lost = held.state.borrow().lost.clone();
        // A failed release only leaves the lease to expire by itself.
        let _ = guard.release().await;
        match (result, lost) {
            (Ok(_), Some(reason)) => Err(Error::LeaseLost {
                name: name.to_owned(),
                reason,
            }),
            (r, _) => r,
        }
    }
}

/// The background renewals: every `ttl / 3` (sooner when less than twice
/// that is left), each retried until the local deadline passes.
async fn keep_alive(
    ns: Ns,
    name: String,
    token: String,
    ttl: Duration,
    mut deadline: Instant,
    tx: watch::Sender<KeepAlive>,
) {
    let every = (ttl / 3).max(Duration::from_millis(10));
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let lose = |reason: String| {
        tx.send_modify(|s| s.lost = Some(reason));
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(every.min(left / 2)).await;
        let mut n: u32 = 0;
        loop {
            let sent = Instant::now();
            let mut left = deadline.saturating_duration_since(sent);
            if left.is_zero() {
                if n > 0 {
                    lose(format!("lease {name} expired before a renewal succeeded"));
                    return;
                }
                // Past the local deadline already (e.g. a long wait in line):
                // the server decides.
                left = every.max(Duration::from_millis(100));
            }
            let r =
                tokio::time::timeout(left, ns.renew_with(&name, &token, ttl_ms, Some(Retry::none()))).await;
            match r {
                Ok(Ok(lease)) => {
                    deadline = deadline.max(sent + ttl);
                    tx.send_modify(|s| {
                        s.renewals += 1;
                        s.expires_at = lease.expires_at;
                    });
                    break;
                }
                Ok(Err(e)) if !e.is_retryable() => {
                    lose(e.to_string());
                    return;
                }
                _ => {
                    n += 1;
                    let backoff = Retry::default().delay(n.min(6), None);
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(backoff.min(left)).await;
                }
            }
        }
    }
}
