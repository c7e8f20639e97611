//! The integration tests of lockstep-store, one binary: the storage
//! conformance suite, every case on SQLite and PostgreSQL (the harness is
//! `lockstep_testkit::store`).

mod common;

mod changes;
mod conformance;
mod feeds;
mod gates;
mod idempotency;
mod leases;
