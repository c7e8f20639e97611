//! Leases (SPEC §6): the raw calls. [`LeaseGuard`](crate::LeaseGuard) keeps one alive.

use crate::http::{seg, Req};
use crate::{Error, Ns};
use lockstep_api::leases::{
    AcquireBody, Lease, LeaseBroken, LeaseReleased, LeaseState, ReleaseBody, RenewBody,
};
use reqwest::Method;
use std::time::Duration;

impl Ns {
    pub(crate) fn lease_path(&self, name: &str, op: &str) -> String {
        if op.is_empty() {
            self.at(&format!("leases/{}", seg(name)))
        } else {
            self.at(&format!("leases/{}/{op}", seg(name)))
        }
    }

    /// Acquires lease `name` once, without a keep-alive (see [`Ns::acquire`]
    /// for a guard). Held by another: 409 `lease_held` after `wait_ms`.
    ///
    /// ```no_run
    /// use lockstep_client::api::leases::AcquireBody;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let l = app.acquire_lease("job", &AcquireBody { ttl_ms: 10_000, holder: None, wait_ms: 0 }).await?;
    /// println!("fence {}", l.fence);
    /// # Ok(()) }
    /// ```
    pub async fn acquire_lease(&self, name: &str, body: &AcquireBody) -> Result<Lease, Error> {
        let mut req = Req::write(Method::POST, self.lease_path(name, "acquire")).json(body)?;
        // A waiting acquire answers after up to `wait_ms`: not a timeout.
        req.extra_time = Duration::from_millis(body.wait_ms);
        Ok(self.t().send(&req).await?.body)
    }

    /// Extends a held lease by `ttl_ms`; 409 `lease_lost` when `token` no
    /// longer holds it.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns, token: String) -> Result<(), lockstep_client::Error> {
    /// let l = app.renew_lease("job", &token, 10_000).await?;
    /// # Ok(()) }
    /// ```
    pub async fn renew_lease(&self, name: &str, token: &str, ttl_ms: u64) -> Result<Lease, Error> {
        self.renew_with(name, token, ttl_ms, None).await
    }

    /// A renewal with its own retry policy (the keep-alive retries itself).
    pub(crate) async fn renew_with(
        &self,
        name: &str,
        token: &str,
        ttl_ms: u64,
        retry: Option<crate::Retry>,
    ) -> Result<Lease, Error> {
        let body = RenewBody {
            token: token.to_owned(),
            ttl_ms,
        };
        let mut req = Req::write(Method::POST, self.lease_path(name, "renew")).json(&body)?;
        req.retry = retry;
        Ok(self.t().send(&req).await?.body)
    }

    /// Releases a lease if `token` holds it (compare-and-clear).
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns, token: String) -> Result<(), lockstep_client::Error> {
    /// let r = app.release_lease("job", &token).await?;
    /// println!("released: {}", r.released);
    /// # Ok(()) }
    /// ```
    pub async fn release_lease(&self, name: &str, token: &str) -> Result<LeaseReleased, Error> {
        let body = ReleaseBody {
            token: token.to_owned(),
        };
        let req = Req::write(Method::POST, self.lease_path(name, "release")).json(&body)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// Clears a live lease whatever its token (admin).
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let b = app.break_lease("job").await?;
    /// # Ok(()) }
    /// ```
    pub async fn break_lease(&self, name: &str) -> Result<LeaseBroken, Error> {
        let req = Req::write(Method::POST, self.lease_path(name, "break"));
        Ok(self.t().send(&req).await?.body)
    }

    /// Who holds a lease, until when, and its last fence.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let s = app.lease("job").await?;
    /// if s.held { println!("held by {:?}", s.holder) }
    /// # Ok(()) }
    /// ```
    pub async fn lease(&self, name: &str) -> Result<LeaseState, Error> {
        Ok(self.t().send(&Req::get(self.lease_path(name, ""))).await?.body)
    }
}
