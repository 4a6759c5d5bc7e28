//! Identity backup and restore for the Identity view: files encrypted under
//! a passphrase by the node's `identity::backup` (Argon2id, then
//! XChaCha20-Poly1305).
//!
//! Passphrases reach this module only as arguments, are wiped when dropped
//! and never appear in logs or errors. Every failure leaves both the backup
//! file and the profile's keys as they were.

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use conclave_node::identity::{backup, NodeIdentity};
use serde::Serialize;
use specta::Type;
use zeroize::Zeroizing;

use crate::error::{CommandError, CommandResult, ErrorCode};

/// Shortest passphrase the node accepts for a backup.
pub const MIN_PASSPHRASE_LEN: usize = backup::MIN_PASSPHRASE_LEN;

/// Largest file accepted as a backup: real ones are well under a kilobyte,
/// so anything bigger is not one (and is not read into memory).
const MAX_BACKUP_BYTES: u64 = 64 * 1024;

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

fn backup_error(e: backup::BackupError) -> CommandError {
    let message = e.to_string();
    match e {
        backup::BackupError::Decrypt => CommandError::new(ErrorCode::InvalidInput, message)
            .with_hint("check the passphrase; nothing was changed"),
        backup::BackupError::WeakPassphrase => CommandError::new(ErrorCode::InvalidInput, message),
        backup::BackupError::Malformed(_) => CommandError::new(ErrorCode::InvalidInput, message)
            .with_hint("choose a file made by Back up; nothing was changed"),
        backup::BackupError::Identity(_) => CommandError::new(ErrorCode::InvalidInput, message)
            .with_hint("the backup's keys are unusable; nothing was changed"),
        backup::BackupError::Kdf(_) => CommandError::new(ErrorCode::Internal, message),
    }
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> CommandError {
    let code = match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists => ErrorCode::InvalidInput,
        _ => ErrorCode::Storage,
    };
    CommandError::new(code, format!("cannot {what} {}: {e}", path.display()))
}

/// Encrypts `identity` under `passphrase` into a new file at `path` (mode
/// 0600). Refuses to overwrite an existing file. Blocking (Argon2id takes a
/// moment by design).
pub fn write_backup(
    identity: &NodeIdentity,
    path: &Path,
    passphrase: &Zeroizing<String>,
) -> CommandResult<BackupWritten> {
    if path.exists() {
        return Err(CommandError::new(
            ErrorCode::InvalidInput,
            format!("{} already exists", path.display()),
        )
        .with_hint("choose a new file name; an existing file is never overwritten"));
    }
    match path.parent() {
        Some(parent) if parent.is_dir() => {}
        _ => {
            return Err(CommandError::new(
                ErrorCode::InvalidInput,
                format!("the folder of {} does not exist", path.display()),
            ))
        }
    }
    let bytes = backup::export(identity, passphrase).map_err(backup_error)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, "create", &e))?;
    if let Err(e) = file.write_all(&bytes).and_then(|()| file.sync_all()) {
        // Never leave a half-written backup that looks like a good one.
        let _ = std::fs::remove_file(path);
        return Err(io_error(path, "write", &e));
    }
    Ok(BackupWritten {
        path: path.display().to_string(),
        peer_id: identity.peer_id().to_string(),
    })
}

/// Reads and decrypts the backup at `path`. Blocking.
pub fn read_backup(path: &Path, passphrase: &Zeroizing<String>) -> CommandResult<NodeIdentity> {
    let metadata = std::fs::metadata(path).map_err(|e| io_error(path, "read", &e))?;
    if !metadata.is_file() {
        return Err(CommandError::new(
            ErrorCode::InvalidInput,
            format!("{} is not a file", path.display()),
        ));
    }
    if metadata.len() > MAX_BACKUP_BYTES {
        return Err(CommandError::new(
            ErrorCode::InvalidInput,
            format!(
                "not a Conclave identity backup: {} is too large",
                path.display()
            ),
        )
        .with_hint("choose a file made by Back up; nothing was changed"));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, "read", &e))?;
    backup::import(&bytes, passphrase).map_err(backup_error)
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

    fn pass(text: &str) -> Zeroizing<String> {
        Zeroizing::new(text.to_string())
    }

    #[test]
    fn writes_then_reads_back_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.backup");
        let identity = NodeIdentity::generate();
        let written = write_backup(&identity, &path, &pass("correct horse battery")).unwrap();
        assert_eq!(written.peer_id, identity.peer_id().to_string());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let back = read_backup(&path, &pass("correct horse battery")).unwrap();
        assert_eq!(back.peer_id(), identity.peer_id());
        assert!(preview(&path, &back, &identity).same_as_current);

        let before = std::fs::read(&path).unwrap();
        let again = write_backup(&identity, &path, &pass("another passphrase")).unwrap_err();
        assert_eq!(again.code, ErrorCode::InvalidInput);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "existing file untouched"
        );
    }

    #[test]
    fn wrong_passphrase_corrupt_file_and_weak_passphrase_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.backup");
        let identity = NodeIdentity::generate();
        write_backup(&identity, &path, &pass("correct horse battery")).unwrap();

        let wrong = read_backup(&path, &pass("wrong horse battery")).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::InvalidInput);
        assert!(
            wrong.message.contains("wrong passphrase"),
            "{}",
            wrong.message
        );
        assert!(!wrong.message.contains("wrong horse"), "passphrase leaked");

        let corrupt = dir.path().join("corrupt.backup");
        std::fs::write(&corrupt, b"not json at all").unwrap();
        let err = read_backup(&corrupt, &pass("correct horse battery")).unwrap_err();
        assert!(
            err.message.contains("not a Conclave identity backup"),
            "{}",
            err.message
        );

        let weak = write_backup(&identity, &dir.path().join("weak.backup"), &pass("short"));
        assert_eq!(weak.unwrap_err().code, ErrorCode::InvalidInput);
        assert!(!dir.path().join("weak.backup").exists());
    }

    #[test]
    fn paths_must_be_absolute() {
        assert!(user_path("relative/file").is_err());
        assert!(user_path("  ").is_err());
        assert_eq!(
            user_path("/tmp/x.backup").unwrap(),
            PathBuf::from("/tmp/x.backup")
        );
    }
}
