//! The store's error enum: a semantic refusal from the core, or a storage failure.

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pure semantics refused the command; nothing was written.
    #[error(transparent)]
    Core(#[from] lockstep_core::Error),
    /// Storage is unreachable or overloaded; nothing was applied; retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bad `--database` or option.
    #[error("configuration: {0}")]
    Config(String),
    /// A bug or corrupt data.
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Unavailable(e.to_string())
            }
            _ => Error::Internal(format!("sqlite: {e}")),
        }
    }
}
