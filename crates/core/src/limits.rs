//! Every limit of the service in one place. Names carry their unit last.

/// Configurable limits; [`Limits::default`] gives the values of SPEC §3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body.
    pub body_bytes_max: usize,
    /// Largest serialized JSON value of a record.
    pub value_bytes_max: usize,
    /// Longest key, name or id, in UTF-8 bytes.
    pub key_bytes_max: usize,
    /// Most compares plus operations in one transaction.
    pub txn_items_max: usize,
    /// Largest page of a listing.
    pub page_size_max: usize,
    /// Page size when the caller gives none.
    pub page_size_default: usize,
    /// Deepest accepted JSON nesting.
    pub json_depth_max: usize,
    /// Longest record TTL (ten years: keeps `now + ttl` far from overflow).
    pub record_ttl_ms_max: u64,
    /// Shortest lease TTL.
    pub lease_ttl_ms_min: u64,
    /// Longest lease TTL.
    pub lease_ttl_ms_max: u64,
    /// Longest wait of a waiting acquire.
    pub lease_wait_ms_max: u64,
    /// Longest holder label.
    pub lease_holder_bytes_max: usize,
    /// Most waiters queued on one lease.
    pub lease_waiters_max: usize,
    /// How long idempotency entries (and their stored responses) are kept.
    pub idempotency_ttl_ms: u64,
    /// How long a request with an `Idempotency-Key` owns the key before a
    /// retry may take over (it covers the longest waiting acquire).
    pub idempotency_lock_ms: u64,
    /// Longest `fingerprint` of a key of the application's idempotency store.
    pub idempotency_fingerprint_bytes_max: usize,
    /// Change-log retention: entries older than this are compacted away.
    pub changes_keep_ms: u64,
    /// Change-log retention: at most this many entries are kept (whole revisions).
    pub changes_keep_count: u64,
    /// Most elements of one legacy feed import.
    pub import_entries_max: usize,
    /// Most changes a watch reads from the log at once (a larger revision
    /// comes whole).
    pub watch_read_changes_max: usize,
    /// Longest lifetime of a capability.
    pub capability_ttl_ms_max: u64,
    /// Requests a second one token may make (a burst of one second's worth); 0: no limit.
    pub token_requests_per_s: u64,
    /// Acquires of one token waiting in lease queues at once; 0: no limit.
    pub token_waiting_acquires_max: usize,
    /// Watches one token may hold open at once; 0: no limit.
    pub token_watches_max: usize,
    /// Longest time to answer a request (a watch's stream runs on after).
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: 2 * 1024 * 1024,
            value_bytes_max: 1024 * 1024,
            key_bytes_max: 512,
            txn_items_max: 64,
            page_size_max: 1000,
            page_size_default: 100,
            json_depth_max: 128,
            record_ttl_ms_max: 10 * 365 * 24 * 3600 * 1000,
            lease_ttl_ms_min: 100,
            lease_ttl_ms_max: 24 * 3600 * 1000,
            lease_wait_ms_max: 60_000,
            lease_holder_bytes_max: 256,
            lease_waiters_max: 1_000,
            idempotency_ttl_ms: 24 * 3600 * 1000,
            idempotency_lock_ms: 90_000,
            idempotency_fingerprint_bytes_max: 1024,
            changes_keep_ms: 7 * 24 * 3600 * 1000,
            changes_keep_count: 1_000_000,
            import_entries_max: 1_000,
            watch_read_changes_max: 1_000,
            capability_ttl_ms_max: 30 * 24 * 3600 * 1000,
            token_requests_per_s: 0,
            token_waiting_acquires_max: 256,
            token_watches_max: 64,
            request_timeout_ms: 120_000,
        }
    }
}

impl Limits {
    /// Resolves a requested page size: default when absent, 400 outside 1..=max.
    pub fn page_size(&self, requested: Option<usize>) -> Result<usize, crate::Error> {
        match requested {
            None => Ok(self.page_size_default),
            Some(n) if (1..=self.page_size_max).contains(&n) => Ok(n),
            Some(n) => Err(crate::Error::invalid(format!(
                "limit {n} is outside 1..={}",
                self.page_size_max
            ))),
        }
    }
}
