//! Errors the UI receives from commands: a stable code for logic, a message
//! for people, and what to do next where we know it.

use conclave_node::{
    error::{ConnectionError, GossipError, InputError},
    NodeError,
};
use serde::Serialize;
use specta::Type;

/// Kinds of failure the UI reacts to differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The user typed something that is not valid (address, peer id, setting).
    InvalidInput,
    /// The node is starting, restarting or has failed.
    NodeUnavailable,
    /// The network operation failed (dial refused, timeout, not connected).
    Network,
    /// Reading or writing the profile's files failed.
    Storage,
    /// The OS keychain is missing, locked or refused access.
    Keychain,
    /// Anything else.
    Internal,
}

/// The error every command returns.
#[derive(Debug, Clone, Serialize, Type, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What happened, in words.
    pub message: String,
    /// What the user can do about it, if we know.
    pub hint: Option<String>,
}

impl CommandError {
    /// An error of `code` with `message` and no hint.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do next.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The node is not running (yet, or any more).
    pub fn node_unavailable() -> Self {
        Self::new(ErrorCode::NodeUnavailable, "the node is not running")
            .with_hint("wait for it to start, or check Settings and Logs if it failed")
    }
}

impl From<NodeError> for CommandError {
    fn from(e: NodeError) -> Self {
        let message = e.to_string();
        match e {
            NodeError::Input(InputError::Multiaddr { .. }) => {
                Self::new(ErrorCode::InvalidInput, message).with_hint(
                    "a multiaddr looks like /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW…",
                )
            }
            NodeError::Input(InputError::PeerId { .. }) => {
                Self::new(ErrorCode::InvalidInput, message)
            }
            NodeError::Config(_) => Self::new(ErrorCode::InvalidInput, message),
            NodeError::Stopped => Self::node_unavailable(),
            // Our own connection policy refused the dial (the gate's reason
            // is the only place that says so).
            NodeError::Connection(ConnectionError::Dial { ref reason, .. })
                if reason.contains("deny list") || reason.contains("private mode") =>
            {
                Self::new(ErrorCode::InvalidInput, message).with_hint(
                    "allow the peer under Peers › Who may connect, or turn private mode off",
                )
            }
            NodeError::Connection(
                ConnectionError::Dial { .. } | ConnectionError::DialTimeout { .. },
            ) => Self::new(ErrorCode::Network, message)
                .with_hint("check that the peer is running and the address is reachable from here"),
            NodeError::Connection(ConnectionError::NotConnected(_))
            | NodeError::Gossip(GossipError::TopicPeersTimeout { .. }) => {
                Self::new(ErrorCode::Network, message)
            }
            _ => Self::new(ErrorCode::Internal, message),
        }
    }
}

impl From<crate::identity::IdentityError> for CommandError {
    fn from(e: crate::identity::IdentityError) -> Self {
        use conclave_node::identity::keystore::KeystoreError;
        let message = e.to_string();
        match e {
            crate::identity::IdentityError::KeyFile(_) => Self::new(ErrorCode::Storage, message),
            crate::identity::IdentityError::Keychain(
                KeystoreError::Locked(_) | KeystoreError::Timeout,
            ) => Self::new(ErrorCode::Keychain, message)
                .with_hint("unlock the system keychain and try again; nothing was changed"),
            crate::identity::IdentityError::Keychain(_) => Self::new(ErrorCode::Keychain, message),
        }
    }
}

/// Result of a command.
pub type CommandResult<T> = Result<T, CommandError>;
