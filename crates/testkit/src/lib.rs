//! lockstep-testkit: what the integration tests of every crate share (dev-only,
//! never published).
//!
//! - [`backends!`]: one test per case and backend (`sqlite::case`,
//!   `postgres::case`), the backend passed to a runner.
//! - [`pg`]: the PostgreSQL test database: a fresh schema per test in the
//!   database named by `LOCKSTEP_TEST_DATABASE_URL`. When PostgreSQL is
//!   required ([`pg::required`]: `CI` or `LOCKSTEP_REQUIRE_PG=1`) a missing
//!   database fails the test loudly; otherwise the test is skipped with a note.
//! - [`server`]: the server in-process on a loopback port.
//! - [`store`]: a fresh [`lockstep_store::Store`] of either backend per case,
//!   supervised (panics surface, hangs time out, the schema is dropped).

#![allow(clippy::unwrap_used)]

pub mod pg;
pub mod server;
pub mod store;

/// Which database a test case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded mode.
    Sqlite,
    /// Shared mode.
    Postgres,
}

/// One `#[tokio::test]` per case and backend: `sqlite::$case` and
/// `postgres::$case`, each calling `$run(Backend, super::$case).await`
/// (`$run` is a path seen from the invoking module, e.g. `super::run`).
///
/// ```text
/// lockstep_testkit::backends!(lockstep_testkit::store::run; put_versions, reopen);
/// ```
///
/// With a module name first, the tests go in that module (`$module::sqlite::$case`,
/// `$module::postgres::$case`), so a second runner fits in the same file:
///
/// ```text
/// lockstep_testkit::backends!(manual_clock => lockstep_testkit::store::run_manual; ttl);
/// ```
#[macro_export]
macro_rules! backends {
    ($module:ident => $run:path; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::backends!($run; $($case),*);
        }
    };
    ($run:path; $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $run($crate::Backend::Sqlite, super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $run($crate::Backend::Postgres, super::$case).await;
                }
            )*
        }
    };
}
