//! Errors the UI receives from commands: a stable code for logic, a message
//! for people, and what to do next where we know it.

use conclave_coinjoin::service::CoinJoinError;
use conclave_node::{
    config::ConfigError,
    error::{ConnectionError, GossipError, InputError},
    identity::{backup::BackupError, backup_file::BackupFileError, KeySourceError},
    NodeError,
};
use conclave_signing::SigningError;
use conclave_sim::sandbox::SandboxError;
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

/// The hint of a failure that left the keychain as it was.
const UNLOCK_AND_RETRY: &str = "unlock the system keychain and try again; nothing was changed";

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

    /// A task of ours ended without an answer (it panicked or was cancelled).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, e.to_string())
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

impl From<SandboxError> for CommandError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Node(e) => e.into(),
            SandboxError::Count | SandboxError::Full { .. } => {
                Self::new(ErrorCode::InvalidInput, e.to_string())
            }
            SandboxError::NoAddress => Self::internal(e),
        }
    }
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> Self {
        let code = match e {
            ConfigError::Read { .. } | ConfigError::Write { .. } => ErrorCode::Storage,
            _ => ErrorCode::InvalidInput,
        };
        Self::new(code, e.to_string())
    }
}

impl From<KeySourceError> for CommandError {
    fn from(e: KeySourceError) -> Self {
        use conclave_node::identity::keystore::KeystoreError;
        let message = e.to_string();
        match e {
            KeySourceError::KeyFile(_) => Self::new(ErrorCode::Storage, message),
            KeySourceError::Keychain(KeystoreError::Locked(_) | KeystoreError::Timeout) => {
                Self::new(ErrorCode::Keychain, message).with_hint(UNLOCK_AND_RETRY)
            }
            KeySourceError::Keychain(_) => Self::new(ErrorCode::Keychain, message),
        }
    }
}

impl From<BackupFileError> for CommandError {
    fn from(e: BackupFileError) -> Self {
        let message = e.to_string();
        let invalid = Self::new(ErrorCode::InvalidInput, message.clone());
        let not_a_backup = "choose a file made by Back up; nothing was changed";
        match e {
            BackupFileError::Exists(_) => {
                invalid.with_hint("choose a new file name; an existing file is never overwritten")
            }
            BackupFileError::NoFolder(_)
            | BackupFileError::NotAFile(_)
            | BackupFileError::Backup(BackupError::WeakPassphrase) => invalid,
            BackupFileError::TooLarge(_) | BackupFileError::Backup(BackupError::Malformed(_)) => {
                invalid.with_hint(not_a_backup)
            }
            BackupFileError::Backup(BackupError::Decrypt) => {
                invalid.with_hint("check the passphrase; nothing was changed")
            }
            BackupFileError::Backup(BackupError::Identity(_)) => {
                invalid.with_hint("the backup's keys are unusable; nothing was changed")
            }
            BackupFileError::Io { ref source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists
                ) =>
            {
                invalid
            }
            BackupFileError::Io { .. } => Self::new(ErrorCode::Storage, message),
            BackupFileError::Backup(BackupError::Kdf(_)) => Self::internal(message),
        }
    }
}

impl From<SigningError> for CommandError {
    fn from(e: SigningError) -> Self {
        let message = e.to_string();
        match e {
            SigningError::Node(e) => e.into(),
            SigningError::KeyStore(_) => {
                Self::new(ErrorCode::Keychain, message).with_hint(UNLOCK_AND_RETRY)
            }
            SigningError::Key(_)
            | SigningError::Spec(_)
            | SigningError::Psbt(_)
            | SigningError::SessionId(_)
            | SigningError::UnknownSession(_)
            | SigningError::NotOurKey(_) => Self::new(ErrorCode::InvalidInput, message),
            SigningError::UnknownSigner(_) => Self::new(ErrorCode::Network, message).with_hint(
                "connect to the signer's node (Peers view) and check that it holds the key",
            ),
            SigningError::Unreachable { .. } => Self::new(ErrorCode::Network, message),
            SigningError::Stopped => CommandError::node_unavailable(),
            _ => Self::internal(message),
        }
    }
}

impl From<CoinJoinError> for CommandError {
    fn from(e: CoinJoinError) -> Self {
        let message = e.to_string();
        match e {
            CoinJoinError::Node(e) => e.into(),
            CoinJoinError::Wallet(_) => Self::new(ErrorCode::Keychain, message),
            CoinJoinError::Chain(_) => Self::new(ErrorCode::Network, message),
            CoinJoinError::Store(_) => Self::new(ErrorCode::Storage, message),
            CoinJoinError::Stopped => Self::node_unavailable(),
            _ => Self::new(ErrorCode::InvalidInput, message),
        }
    }
}

/// Result of a command.
pub type CommandResult<T> = Result<T, CommandError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_errors_tell_bad_input_from_unreachable_signers() {
        let bad: CommandError = SigningError::UnknownSession("x".into()).into();
        assert_eq!(bad.code, ErrorCode::InvalidInput);
        let key = conclave_signing::SecretKey::generate().public_key();
        let unknown: CommandError = SigningError::UnknownSigner(key).into();
        assert_eq!(unknown.code, ErrorCode::Network);
        assert!(unknown.hint.is_some());
    }

    #[test]
    fn backup_errors_say_what_to_do_and_that_nothing_changed() {
        let wrong: CommandError = BackupFileError::Backup(BackupError::Decrypt).into();
        assert_eq!(wrong.code, ErrorCode::InvalidInput);
        assert!(
            wrong.message.contains("wrong passphrase"),
            "{}",
            wrong.message
        );
        assert!(wrong.hint.unwrap().contains("nothing was changed"));
        let exists: CommandError = BackupFileError::Exists("/tmp/x".into()).into();
        assert!(exists.hint.unwrap().contains("never overwritten"));
        let denied = BackupFileError::Io {
            action: "create",
            path: "/x".into(),
            source: std::io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(CommandError::from(denied).code, ErrorCode::Storage);
    }
}
