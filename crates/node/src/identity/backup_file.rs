//! Identity backups as files, for `conclavectl identity export|import` and
//! the desktop app's Identity view: written once (mode 0600, never over an
//! existing file, never left half-written), and read with a size bound
//! before anything is decrypted.

use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path};

use super::{
    backup::{self, BackupError},
    pq::NodeIdentity,
};

/// Largest file accepted as a backup: real ones are well under a kilobyte,
/// so anything bigger is not one (and is not read into memory).
pub const MAX_BACKUP_BYTES: u64 = 64 * 1024;

/// Why a backup file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupFileError {
    /// Backups never replace a file.
    #[error("{0} already exists")]
    Exists(String),
    /// The backup's folder is missing.
    #[error("the folder of {0} does not exist")]
    NoFolder(String),
    /// A folder or device where a backup file was expected.
    #[error("{0} is not a file")]
    NotAFile(String),
    /// Far larger than any backup.
    #[error("not a Conclave identity backup: {0} is too large")]
    TooLarge(String),
    /// The file system refused.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was tried: create, write or read.
        action: &'static str,
        /// The file.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// Encrypting or decrypting failed (a wrong passphrase, for one).
    #[error(transparent)]
    Backup(#[from] BackupError),
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BackupFileError + 'a {
    move |source| BackupFileError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Encrypts `identity` under `passphrase` into a new file at `path`.
/// Blocking: Argon2id takes a moment by design.
pub fn write(
    path: &Path,
    identity: &NodeIdentity,
    passphrase: &str,
) -> Result<(), BackupFileError> {
    let shown = || path.display().to_string();
    if path.exists() {
        return Err(BackupFileError::Exists(shown()));
    }
    if !path.parent().is_some_and(Path::is_dir) {
        return Err(BackupFileError::NoFolder(shown()));
    }
    let bytes = backup::export(identity, passphrase)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create", path))?;
    if let Err(e) = file.write_all(&bytes).and_then(|()| file.sync_all()) {
        // Never leave a half-written backup that looks like a good one.
        let _ = std::fs::remove_file(path);
        return Err(io("write", path)(e));
    }
    Ok(())
}

/// Reads and decrypts the backup at `path`. Blocking.
pub fn read(path: &Path, passphrase: &str) -> Result<NodeIdentity, BackupFileError> {
    let metadata = std::fs::metadata(path).map_err(io("read", path))?;
    if !metadata.is_file() {
        return Err(BackupFileError::NotAFile(path.display().to_string()));
    }
    if metadata.len() > MAX_BACKUP_BYTES {
        return Err(BackupFileError::TooLarge(path.display().to_string()));
    }
    let bytes = std::fs::read(path).map_err(io("read", path))?;
    Ok(backup::import(&bytes, passphrase)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_then_reads_back_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.backup");
        let identity = NodeIdentity::generate();
        write(&path, &identity, "correct horse battery").unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let back = read(&path, "correct horse battery").unwrap();
        assert_eq!(back.peer_id(), identity.peer_id());

        let before = std::fs::read(&path).unwrap();
        let again = write(&path, &identity, "another passphrase").unwrap_err();
        assert!(matches!(again, BackupFileError::Exists(_)), "{again}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "existing file untouched"
        );
        let nowhere = write(&dir.path().join("no/such.backup"), &identity, "long enough");
        assert!(matches!(nowhere, Err(BackupFileError::NoFolder(_))));
    }

    #[test]
    fn wrong_passphrase_corrupt_large_and_weak_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.backup");
        let identity = NodeIdentity::generate();
        write(&path, &identity, "correct horse battery").unwrap();

        let wrong = read(&path, "wrong horse battery").unwrap_err().to_string();
        assert!(wrong.contains("wrong passphrase"), "{wrong}");
        assert!(!wrong.contains("wrong horse"), "passphrase leaked");

        let corrupt = dir.path().join("corrupt.backup");
        std::fs::write(&corrupt, b"not json at all").unwrap();
        let err = read(&corrupt, "correct horse battery")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a Conclave identity backup"), "{err}");

        let large = dir.path().join("large.backup");
        std::fs::write(&large, vec![b' '; MAX_BACKUP_BYTES as usize + 1]).unwrap();
        let err = read(&large, "correct horse battery").unwrap_err();
        assert!(matches!(err, BackupFileError::TooLarge(_)), "{err}");
        assert!(matches!(
            read(dir.path(), "x"),
            Err(BackupFileError::NotAFile(_))
        ));

        let weak = dir.path().join("weak.backup");
        let err = write(&weak, &identity, "short").unwrap_err();
        assert!(matches!(
            err,
            BackupFileError::Backup(BackupError::WeakPassphrase)
        ));
        assert!(!weak.exists());
    }
}
