//! The end-to-end tests of lockstep, one binary: real HTTP against the server
//! in process (`lockstep_testkit::server`), and the `lockstep` binary spawned
//! only where a process is the point (kill -9, outage, shutdown, several
//! instances over one PostgreSQL, the command line itself).

mod common;

mod auth;
mod bad_input;
mod changes;
mod check;
mod concurrency;
mod copy;
mod durability;
mod faults;
mod feeds;
mod gates;
mod http_conformance;
mod idempotency;
mod leases;
mod ops;
mod outage;
mod shutdown;
mod tidy;
