//! Gates, tickets and capabilities (SPEC §7).

use crate::http::{seg, Req};
use crate::paging::{pager, Pager};
use crate::{Error, Ns};
use lockstep_api::gates::{
    AdmitBody, Capability, FinalizeBody, Gate, GateTransitioned, MintBody, PutGateBody, Ticket,
    TicketAdmitted, Tickets, TicketsQuery,
};
use lockstep_api::Page;
use reqwest::Method;

/// A gate transition (`POST /gates/{id}/{transition}`) and a ticket operation
/// (`POST .../tickets/{ticket}/{op}`): the core's own enums, whose `as_str` is
/// the path segment.
///
/// ```
/// use lockstep_client::{TicketOp, Transition};
/// assert_eq!((Transition::Revoke.as_str(), TicketOp::Commit.as_str()), ("revoke", "commit"));
/// ```
pub use lockstep_api::{TicketOp, Transition};

impl Ns {
    fn gate_path(&self, id: &str, rest: &str) -> String {
        if rest.is_empty() {
            self.at(&format!("gates/{}", seg(id)))
        } else {
            self.at(&format!("gates/{}/{rest}", seg(id)))
        }
    }

    /// Creates a gate (open, epoch 1) or updates its policy and meta.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let g = app.put_gate("upload-1", &Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn put_gate(&self, id: &str, body: &PutGateBody) -> Result<Gate, Error> {
        let req = Req::write(Method::PUT, self.gate_path(id, "")).json(body)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// Reads a gate.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// println!("{:?}", app.gate("upload-1").await?.state);
    /// # Ok(()) }
    /// ```
    pub async fn gate(&self, id: &str) -> Result<Gate, Error> {
        Ok(self.t().send(&Req::get(self.gate_path(id, ""))).await?.body)
    }

    /// Moves a gate through its lifecycle.
    ///
    /// ```no_run
    /// use lockstep_client::Transition;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let t = app.transition("upload-1", Transition::Revoke).await?;
    /// println!("{} tickets voided", t.voided);
    /// # Ok(()) }
    /// ```
    pub async fn transition(&self, id: &str, t: Transition) -> Result<GateTransitioned, Error> {
        let req = Req::write(Method::POST, self.gate_path(id, t.as_str()));
        Ok(self.t().send(&req).await?.body)
    }

    /// Admits a ticket under the gate's current epoch.
    ///
    /// ```no_run
    /// use lockstep_client::api::gates::AdmitBody;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let t = app.admit("upload-1", &AdmitBody { ticket_id: Some("t1".into()), meta: None }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn admit(&self, id: &str, body: &AdmitBody) -> Result<TicketAdmitted, Error> {
        let req = Req::write(Method::POST, self.gate_path(id, "tickets")).json(body)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// Checks, commits, finalizes (optionally appending a feed entry in the
    /// same transaction) or aborts a ticket.
    ///
    /// ```no_run
    /// use lockstep_client::TicketOp;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// app.ticket("upload-1", "t1", TicketOp::Commit, &Default::default()).await?;
    /// let t = app.ticket("upload-1", "t1", TicketOp::Finalize, &Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn ticket(
        &self,
        gate: &str,
        ticket: &str,
        op: TicketOp,
        body: &FinalizeBody,
    ) -> Result<Ticket, Error> {
        let path = self.gate_path(gate, &format!("tickets/{}/{}", seg(ticket), op.as_str()));
        let req = Req::write(Method::POST, path).json(body)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// A gate's tickets by id (optionally only those in `q.state`).
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let open: Vec<_> = app.tickets("upload-1", Default::default()).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn tickets(&self, gate: &str, q: TicketsQuery) -> Pager<Ticket> {
        let (ns, path) = (self.clone(), self.gate_path(gate, "tickets"));
        pager(move |cursor| {
            let (ns, path, mut q) = (ns.clone(), path.clone(), q.clone());
            async move {
                q.cursor = cursor.or(q.cursor);
                let req = Req::get(path).query(&q)?;
                let p: Page<Tickets> = ns.t().send(&req).await?.body;
                Ok((p.items.tickets, p.next_cursor))
            }
        })
    }

    /// Signs a capability for this gate at its current epoch (a bearer for
    /// ticket operations only).
    ///
    /// ```no_run
    /// use lockstep_client::api::gates::MintBody;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let cap = app.mint_capability("upload-1", &MintBody { ttl_ms: 60_000, ops: None }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn mint_capability(&self, gate: &str, body: &MintBody) -> Result<Capability, Error> {
        let req = Req::write(Method::POST, self.gate_path(gate, "capabilities")).json(body)?;
        Ok(self.t().send(&req).await?.body)
    }
}
