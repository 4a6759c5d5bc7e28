//! The node's keys in an explicit key file, for servers without a keychain.
//! Created 0600 on first start; refused if group or others can read it.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use zeroize::Zeroizing;

use super::pq::{NodeIdentity, SecretSeeds};

const MAGIC: &[u8] = b"CONCLAVE-KEYS-1\n";

/// Errors loading or creating a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file's permissions let others read the secret keys.
    #[error("key file {path} has mode {mode:o}: it must not be readable by group or others (chmod 600 {path})")]
    InsecurePermissions {
        /// File path.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold keys we understand.
    #[error("key file {path} is not a valid Conclave key file: {reason}")]
    Malformed {
        /// File path.
        path: String,
        /// Decoder error.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
}

fn decode(bytes: &[u8]) -> Result<NodeIdentity, String> {
    let body = bytes.strip_prefix(MAGIC).ok_or("unknown format")?;
    let seeds: SecretSeeds = postcard::from_bytes(body).map_err(|e| e.to_string())?;
    NodeIdentity::from_seeds(&seeds).map_err(|e| e.to_string())
}

/// Writes `identity` to a new file at `path` (mode 0600); fails if it exists.
pub fn write_key_file(path: &Path, identity: &NodeIdentity) -> Result<(), KeyFileError> {
    let display = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: display.clone(),
        source,
    };
    let mut encoded = Zeroizing::new(MAGIC.to_vec());
    encoded.extend_from_slice(&postcard::to_stdvec(&identity.seeds()).expect("seeds serialise"));
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::state_file::create_missing_dirs(parent).map_err(io)?;
    // create_new: never overwrite keys another process just wrote.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::state_file::FILE_MODE)
        .open(path)
        .map_err(io)?;
    file.write_all(&encoded).map_err(io)?;
    file.sync_all().map_err(io)?;
    // The new name, too, must survive a power loss.
    crate::state_file::sync_dir(parent).map_err(io)
}

/// Loads the keys of an existing key file (permissions checked).
pub fn load_existing_key_file(path: &Path) -> Result<NodeIdentity, KeyFileError> {
    if !path.exists() {
        return Err(KeyFileError::Io {
            path: path.display().to_string(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    load_or_create_key_file(path)
}

/// Loads the keys at `path`, creating a new key set there (mode 0600) if
/// there is no file yet.
pub fn load_or_create_key_file(path: &Path) -> Result<NodeIdentity, KeyFileError> {
    let display = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::InsecurePermissions {
                    path: display,
                    mode,
                });
            }
            let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| KeyFileError::Io {
                path: display.clone(),
                source,
            })?);
            decode(&bytes).map_err(|reason| KeyFileError::Malformed {
                path: display,
                reason,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = NodeIdentity::generate();
            write_key_file(path, &identity)?;
            Ok(identity)
        }
        Err(source) => Err(KeyFileError::Io {
            path: display,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/identity.key");
        let first = load_or_create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let folder = std::fs::metadata(dir.path().join("k")).unwrap();
        assert_eq!(
            folder.permissions().mode() & 0o777,
            0o700,
            "the folder made for it"
        );
        let again = load_or_create_key_file(&path).unwrap();
        assert_eq!(first.peer_id(), again.peer_id());
        assert_eq!(first.record().fingerprint(), again.record().fingerprint());
    }

    #[test]
    fn readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        load_or_create_key_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_key_file(&path).unwrap_err();
        assert!(
            matches!(err, KeyFileError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        std::fs::write(&path, b"not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = load_or_create_key_file(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a valid Conclave key file"),
            "{err}"
        );
    }
}
