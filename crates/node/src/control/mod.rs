//! The daemon's control socket: JSON-RPC 2.0, one JSON object per line, over
//! a Unix socket created 0600 that serves only its owner's uid and root.
//! [`server`] serves a node; [`client`] is what `conclavectl` uses.

pub mod client;
pub mod rpc;
pub mod server;

/// Errors of the control socket, on either side.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody listens on the socket.
    #[error("cannot reach the daemon at {path}: {reason}; start conclaved, or point --control at its socket")]
    Connect {
        /// Socket path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Another process already serves the socket.
    #[error(
        "control socket {0} is in use by another daemon: stop it, or pass another --control path"
    )]
    InUse(String),
    /// Something other than a socket is at the socket's path.
    #[error(
        "{0} exists and is not a socket: refusing to replace it; \
         move it away or pass another --control path"
    )]
    NotASocket(String),
    /// Socket I/O failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// Socket path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The other side sent something that is not JSON-RPC.
    #[error("malformed control message: {0}")]
    Protocol(String),
    /// The daemon answered with an error.
    #[error("{message}")]
    Remote {
        /// JSON-RPC error code.
        code: i64,
        /// The daemon's explanation.
        message: String,
    },
}
