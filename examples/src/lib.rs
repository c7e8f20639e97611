//! What the seed examples share: the server they talk to (`LOCKSTEP_URL`,
//! default `http://127.0.0.1:7707`; `LOCKSTEP_TOKEN` when it has tokens), a
//! fresh namespace per run, and the invariant check that makes a run fail.
//!
//! Run one against a server: `cargo run -p lockstep-examples --bin receive-feed`.

use lockstep_client::{Client, Ns};
use std::hash::{BuildHasher, Hasher};

/// What an example answers: `Err` makes it exit non-zero.
pub type Outcome<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The client of `LOCKSTEP_URL` and a namespace of its own, `{example}-{random}`.
///
/// ```no_run
/// # async fn f() -> lockstep_examples::Outcome {
/// let ns = lockstep_examples::connect("receive-feed")?;
/// # Ok(()) }
/// ```
pub fn connect(example: &str) -> Outcome<Ns> {
    let url = std::env::var("LOCKSTEP_URL").unwrap_or_else(|_| "http://127.0.0.1:7707".into());
    let mut builder = Client::builder(url.clone());
    if let Ok(token) = std::env::var("LOCKSTEP_TOKEN") {
        builder = builder.token(token);
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let ns = format!("{example}-{:012x}", h.finish() & 0xffff_ffff_ffff);
    println!("{example}: {url}, namespace {ns}");
    Ok(builder.build()?.ns(&ns))
}

/// Fails the run with `what` unless `holds`; prints it either way.
///
/// ```
/// lockstep_examples::invariant(1 + 1 == 2, "arithmetic").unwrap();
/// assert!(lockstep_examples::invariant(false, "a planted violation").is_err());
/// ```
pub fn invariant(holds: bool, what: &str) -> Outcome {
    if holds {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("VIOLATED: {what}").into())
    }
}
