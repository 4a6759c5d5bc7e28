//! Errors the UI receives from commands: a stable code for logic, a message
//! for people, and what to do next where we know it.

use conclave_coinjoin::service::CoinJoinError;
use conclave_node::{
    config::ConfigError,
    error::{describe, ConnectionError, GossipError, InputError},
    identity::{backup::BackupError, backup_file::BackupFileError, KeySourceError},
    NodeError,
};
use conclave_rooms::service::RoomsError;
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
        // Each cause once; the node's messages end with what to do, so a
        // hint is added only where they cannot know it (the app's views).
        let message = describe(&e);
        match e {
            NodeError::Input(InputError::Multiaddr { .. } | InputError::PeerId { .. }) => {
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
            NodeError::Connection(ConnectionError::Dial { .. }) => {
                Self::new(ErrorCode::Network, message)
            }
            NodeError::Connection(ConnectionError::DialTimeout { .. }) => {
                Self::new(ErrorCode::Network, message).with_hint(
                    "check that the peer is running and the address is reachable from here",
                )
            }
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

impl From<RoomsError> for CommandError {
    fn from(e: RoomsError) -> Self {
        let message = e.to_string();
        match e {
            RoomsError::Node(e) => e.into(),
            RoomsError::Stopped | RoomsError::NodeNotRunning => Self::node_unavailable(),
            RoomsError::Remote { .. } | RoomsError::Timeout(_) => {
                Self::new(ErrorCode::Network, message)
            }
            RoomsError::Store(_) => Self::new(ErrorCode::Storage, message),
            RoomsError::Record(_) | RoomsError::Tool(_) => Self::internal(message),
            _ => Self::new(ErrorCode::InvalidInput, message),
        }
    }
}

/// Result of a command.
pub type CommandResult<T> = Result<T, CommandError>;

#[cfg(test)]
mod tests {
    use conclave_node::{error::reads_well, identity::keystore::KeystoreError};

    use super::*;

    /// Panics unless the error reads well in the app (see [`reads_well`]),
    /// its message and hint read together, the hint last.
    fn assert_reads_well(case: &str, e: &CommandError, advice: &str) {
        let whole = match &e.hint {
            Some(hint) => format!("{}; {hint}", e.message),
            None => e.message.clone(),
        };
        if let Err(why) = reads_well(&whole, advice) {
            panic!("{case}: {why}");
        }
    }

    /// The failures the app meets first, from the node library as the app's
    /// commands get them (real sockets on 127.0.0.1); the keychain's error
    /// is the keyring crate's own type with the nesting Secret Service gives
    /// it, since a process cannot lose its keychain halfway through a test.
    #[tokio::test]
    async fn common_failures_read_well_in_the_app() {
        let bad = NodeError::parse_multiaddr("/ip4/127.0.0.1/tcpx/1").unwrap_err();
        assert_reads_well("bad multiaddr", &bad.into(), "write it like /ip4/");
        let bad = NodeError::parse_peer_id("12D3Koo").unwrap_err();
        assert_reads_well("bad peer id", &bad.into(), "copy it whole");

        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = conclave_node::NodeConfig::loopback();
        config.listen = vec![
            format!("/ip4/127.0.0.1/tcp/{}", held.local_addr().unwrap().port())
                .parse()
                .unwrap(),
        ];
        let keys = conclave_node::Keypair::generate_ed25519();
        let Err(in_use) = conclave_node::Node::start(config, keys).await else {
            panic!("a node started on a port another socket holds");
        };
        assert_reads_well("port in use", &in_use.into(), "or stop what holds it");

        let node = conclave_node::Node::start(
            conclave_node::NodeConfig::loopback(),
            conclave_node::Keypair::generate_ed25519(),
        )
        .await
        .unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stranger = conclave_node::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let addr = format!("/ip4/127.0.0.1/tcp/{closed}/p2p/{stranger}");
        let unreachable = node.connect(addr.parse().unwrap()).await.unwrap_err();
        let unreachable = CommandError::from(unreachable);
        assert_eq!(unreachable.code, ErrorCode::Network);
        assert_eq!(
            unreachable.message.matches(&addr).count(),
            1,
            "{}",
            unreachable.message
        );
        assert_reads_well(
            "unreachable peer",
            &unreachable,
            "check that the peer is running",
        );
        node.stop().await.unwrap();

        let unknown = SigningError::UnknownSession("ab".repeat(16)).into();
        assert_reads_well("unknown session", &unknown, "from the sessions list");

        #[derive(Debug)]
        struct Said(&'static str, Option<Box<Said>>);
        impl std::fmt::Display for Said {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Said {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let zbus = Said(
            "zbus error: Failed to connect: No such file or directory (os error 2)",
            Some(Box::new(Said(
                "No such file or directory (os error 2)",
                None,
            ))),
        );
        let keyring = keyring_core::Error::PlatformFailure(Box::new(zbus));
        let missing = KeySourceError::Keychain(KeystoreError::Unavailable(
            conclave_node::identity::keystore::describe(&keyring),
        ));
        assert_reads_well("no keychain", &missing.into(), "or pass --key-file");
        let refused =
            keyring_core::Error::NoStorageAccess(Box::new(Said("prompt dismissed", None)));
        let locked = KeySourceError::Keychain(KeystoreError::Locked(
            conclave_node::identity::keystore::describe(&refused),
        ));
        assert_reads_well("locked keychain", &locked.into(), "nothing was changed");
    }

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
