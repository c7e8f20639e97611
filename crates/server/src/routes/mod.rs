//! HTTP handlers, one module per resource.

pub mod changes;
pub mod feeds;
pub mod gates;
pub mod idempotency;
pub mod leases;
pub mod paging;
pub mod records;
pub mod system;
pub mod txn;
