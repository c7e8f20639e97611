//! The client against a real server in process, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;
mod proxy;

mod changes;
mod leases;
mod primitives;
mod records;
mod retries;
