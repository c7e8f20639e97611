//! Storage conformance suite (SPEC §12): the same cases run against every backend
//! of `lockstep_store::Store`. Each case is an `async fn case_name(env: Env)`;
//! the `lockstep_testkit::backends!` list at the bottom of each topic module
//! generates `<topic>::sqlite::case_name` and `<topic>::postgres::case_name`
//! tests for each.
//!
//! PostgreSQL runs against `LOCKSTEP_TEST_DATABASE_URL` (a fresh schema per
//! test); without it the PostgreSQL cases are skipped, or fail when PostgreSQL
//! is required (`CI`, `LOCKSTEP_REQUIRE_PG=1`).
//!
//! ```text
//! LOCKSTEP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p lockstep-store --test it conformance:: -- --test-threads=4
//! ```

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use lockstep_core::record::EtagMatch;
use lockstep_core::txn::OpResult;
use lockstep_core::{Command, Current, Error as CoreError, Outcome, Precondition};
use lockstep_store::Error;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod concurrency;
mod listing;
mod patch_delete;
mod storage;
mod transactions;
mod ttl;
mod versions;
