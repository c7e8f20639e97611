//! HTTP handlers, one module per resource.

pub mod feeds;
pub mod gates;
pub mod leases;
pub mod records;
pub mod system;
pub mod txn;
