//! Identity backup and restore for the Identity view: what it shows, and
//! the paths people type. The files themselves are the node's
//! (`identity::backup_file`: Argon2id, then XChaCha20-Poly1305, mode 0600,
//! never over an existing file).
//!
//! Passphrases reach the app only as command arguments, are wiped when
//! dropped and never appear in logs or errors. Every failure leaves both the
//! backup file and the profile's keys as they were.

use std::path::{Path, PathBuf};

use conclave_node::identity::{backup, NodeIdentity};
use serde::Serialize;
use specta::Type;

use crate::error::{CommandError, CommandResult, ErrorCode};

/// Shortest passphrase the node accepts for a backup.
pub const MIN_PASSPHRASE_LEN: usize = backup::MIN_PASSPHRASE_LEN;

/// A backup was written.
#[derive(Debug, Clone, Serialize, Type, PartialEq)]
pub struct BackupWritten {
    /// Where, as an absolute path.
    pub path: String,
    /// The PeerId the backup restores.
    pub peer_id: String,
}

/// What a backup file holds, shown before the user confirms a restore.
#[derive(Debug, Clone, Serialize, Type, PartialEq)]
pub struct BackupPreview {
    /// The file read.
    pub path: String,
    /// The PeerId it restores.
    pub peer_id: String,
    /// Fingerprint of its post-quantum identity record.
    pub pq_record: String,
    /// Whether it is the identity this profile already has.
    pub same_as_current: bool,
}

/// The profile's identity was replaced.
#[derive(Debug, Clone, Serialize, Type, PartialEq)]
pub struct RestoreDone {
    /// The PeerId the node now runs with.
    pub peer_id: String,
    /// The PeerId it had before.
    pub previous_peer_id: String,
}

/// A path the user typed: absolute, or starting with `~/`.
pub fn user_path(text: &str) -> CommandResult<PathBuf> {
    let text = text.trim();
    if text.is_empty() {
        return Err(
            CommandError::new(ErrorCode::InvalidInput, "enter a file path")
                .with_hint("for example ~/conclave-identity.backup"),
        );
    }
    let path = match text.strip_prefix("~/") {
        Some(rest) => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(rest),
            None => {
                return Err(CommandError::new(
                    ErrorCode::InvalidInput,
                    "cannot expand ~: HOME is not set",
                )
                .with_hint("enter an absolute path"))
            }
        },
        None => PathBuf::from(text),
    };
    if !path.is_absolute() {
        return Err(CommandError::new(
            ErrorCode::InvalidInput,
            format!("{text} is not an absolute path"),
        )
        .with_hint("start it with / (or ~/ for your home folder)"));
    }
    Ok(path)
}

/// What the Identity view shows about a decrypted backup.
pub fn preview(path: &Path, identity: &NodeIdentity, current: &NodeIdentity) -> BackupPreview {
    BackupPreview {
        path: path.display().to_string(),
        peer_id: identity.peer_id().to_string(),
        pq_record: identity.record().fingerprint(),
        same_as_current: identity.peer_id() == current.peer_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute() {
        assert!(user_path("relative/file").is_err());
        assert!(user_path("  ").is_err());
        assert_eq!(
            user_path("/tmp/x.backup").unwrap(),
            PathBuf::from("/tmp/x.backup")
        );
    }

    #[test]
    fn a_preview_names_the_backups_peer_and_whether_it_is_ours() {
        let ours = NodeIdentity::generate();
        let other = NodeIdentity::generate();
        let path = Path::new("/tmp/id.backup");
        assert!(preview(path, &ours, &ours).same_as_current);
        let shown = preview(path, &other, &ours);
        assert!(!shown.same_as_current);
        assert_eq!(shown.peer_id, other.peer_id().to_string());
        assert_eq!(shown.pq_record, other.record().fingerprint());
    }
}
