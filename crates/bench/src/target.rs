//! What a target must do for the workloads: one connection per client, one
//! attempt of each operation, and a tally of its state for the invariant check.

use crate::error::Error;
use crate::workload::Workload;
use std::future::Future;

/// The shape of one cell: which workload and its tag (unique per cell, e.g.
/// `cas_spread-c32`), so lockstep can use a fresh namespace for it.
pub struct Cell {
    /// The workload.
    pub workload: Workload,
    /// Closed-loop clients.
    pub clients: usize,
    /// Unique per cell of a run.
    pub tag: String,
}

/// One page of a feed as `feed_page` reads it.
pub struct PageRead {
    /// The ids of its entries, in order.
    pub ids: Vec<String>,
    /// Where the next page starts; None after the last page.
    pub next: Option<String>,
}

/// One client's connection to a target.
pub trait Client: Send + 'static {
    /// One compare-and-set attempt: read `key`'s counter, write counter+1 only
    /// if it is still the version read. False: a conflict (the caller retries).
    fn cas(&mut self, key: &str) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Acquire lease `name` for `owner`: the token to release with, or None
    /// when someone else holds it.
    fn acquire(
        &mut self,
        name: &str,
        owner: &str,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Compare-and-clear: release `name` only if `token` holds it. False: it
    /// did not (never expected in the workload).
    fn release(&mut self, name: &str, token: &str) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Append entry `id` to `feed`: true if it was created.
    fn append(
        &mut self,
        feed: &str,
        id: &str,
        data: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Admit ticket `ticket` on gate `gate`, commit it, finalize it with an
    /// append of its id to `feed`: true once finalized.
    fn gate_cycle(
        &mut self,
        _gate: &str,
        _ticket: &str,
        _feed: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        async { Err(Error::Unsupported("gate_cycle")) }
    }

    /// Read one page of `feed` (newest first) after `cursor` (None: the first
    /// page).
    fn page(
        &mut self,
        _feed: &str,
        _cursor: Option<&str>,
    ) -> impl Future<Output = Result<PageRead, Error>> + Send {
        async { Err(Error::Unsupported("feed_page")) }
    }

    /// Write record `key` with `Idempotency-Key: idem`: true once created.
    fn keyed_write(&mut self, _key: &str, _idem: &str) -> impl Future<Output = Result<bool, Error>> + Send {
        async { Err(Error::Unsupported("keyed_write")) }
    }

    /// One no-op request.
    fn noop(&mut self) -> impl Future<Output = Result<bool, Error>> + Send {
        async { Err(Error::Unsupported("noop")) }
    }
}

/// A server under test.
pub trait Target: Send + Sync + 'static {
    /// Its per-client connection.
    type Client: Client;

    /// Whether `w` is defined for this target.
    fn supports(&self, w: Workload) -> bool;

    /// Makes the state of a fresh cell (empty tables, a new namespace, the
    /// gates of `gate_cycle`).
    fn prepare(&self, cell: &Cell) -> impl Future<Output = Result<(), Error>> + Send;

    /// Opens client `index`'s own connection for `cell`.
    fn connect(&self, cell: &Cell, index: usize) -> impl Future<Output = Result<Self::Client, Error>> + Send;

    /// The number the invariant compares with the client-side count of
    /// successes: the sum of the counters (CAS), the entries (feeds, gates),
    /// the records written (keyed writes), the leases still held (0), the
    /// entries of the paged feeds.
    fn tally(&self, cell: &Cell) -> impl Future<Output = Result<u64, Error>> + Send;
}
