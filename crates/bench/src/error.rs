//! The one error type of the load generator.

/// What can go wrong while driving a target or writing the results.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket, file or process read failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP exchange failed (connection refused, reset, bad framing).
    #[error("HTTP: {0}")]
    Http(String),
    /// The target answered something the workload does not expect.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// A result line or an answer body is not the JSON it should be.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A peer's native client failed.
    #[cfg(feature = "peers")]
    #[error("{peer}: {message}")]
    Peer {
        /// Which peer (redis, postgres, etcd).
        peer: &'static str,
        /// Its client's message.
        message: String,
    },
    /// The workload is not defined for this target (e.g. `gate_cycle` on Redis).
    #[error("workload {0} is not defined for this target")]
    Unsupported(&'static str),
    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),
}

#[cfg(feature = "peers")]
impl Error {
    /// A peer client's error, kept as text.
    pub fn peer(peer: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Peer {
            peer,
            message: e.to_string(),
        }
    }
}
