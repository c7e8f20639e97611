//! The peers, each through its native Rust client (feature `peers`).

pub mod etcd;
pub mod postgres;
pub mod redis;

use crate::workload::{FEEDS, LEASE_NAMES, SPREAD_KEYS};

/// Every CAS key name (`c/0` … `c/9999`); `cas_hot` uses `c/0`.
fn cas_keys() -> impl Iterator<Item = String> {
    (0..SPREAD_KEYS).map(|i| format!("c/{i}"))
}

/// Every lease name (`l0` … `l99`).
fn lease_names() -> impl Iterator<Item = String> {
    (0..LEASE_NAMES).map(|i| format!("l{i}"))
}

/// Every feed name (`f0` … `f99`).
fn feed_names() -> impl Iterator<Item = String> {
    (0..FEEDS).map(|i| format!("f{i}"))
}
