//! Errors of a simulation run.

use std::path::PathBuf;

use conclave_node::{control::ControlError, NodeError};

use crate::config::ConfigError;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is not runnable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An in-process node failed.
    #[error("node {node}: {source}")]
    Node {
        /// Index of the node.
        node: usize,
        /// What the node said.
        source: NodeError,
    },
    /// A daemon's control socket failed.
    #[error("conclaved {node}: {source}")]
    Control {
        /// Index of the daemon.
        node: usize,
        /// What the socket said.
        source: ControlError,
    },
    /// A daemon could not be started or answered nonsense.
    #[error("conclaved {node}: {reason}")]
    Daemon {
        /// Index of the daemon.
        node: usize,
        /// What went wrong.
        reason: String,
    },
    /// The `conclaved` binary was not found.
    #[error("conclaved not found (looked at {looked:?}); build it with `cargo build --release -p conclave-daemon --bins` or pass --conclaved PATH (or set CONCLAVED)")]
    DaemonBinary {
        /// Paths tried.
        looked: Vec<PathBuf>,
    },
    /// Too many of the topology's dials failed to call it that topology.
    #[error("{failed} of {total} topology dials failed; first: {first}")]
    Topology {
        /// Dials that failed.
        failed: usize,
        /// Dials tried.
        total: usize,
        /// The first failure.
        first: String,
    },
    /// A step did not finish within its bound.
    #[error("timed out after {secs} s: {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        secs: u64,
    },
    /// Local I/O (temporary folders, /proc).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A payload could not be built.
    #[error(transparent)]
    Payload(#[from] crate::payload::PayloadError),
}

impl SimError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
        let what = what.into();
        move |source| SimError::Io { what, source }
    }
}
