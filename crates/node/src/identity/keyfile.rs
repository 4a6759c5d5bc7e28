//! The Ed25519 libp2p key in an explicit key file, for servers without a
//! keychain. Created 0600 on first start; refused if group or world can read it.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use libp2p::identity::Keypair;

/// Errors loading or creating a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file's permissions let others read the secret key.
    #[error("key file {path} has mode {mode:o}: it must not be readable by group or others (chmod 600 {path})")]
    InsecurePermissions {
        /// File path.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a key we understand.
    #[error("key file {path} is not a valid Ed25519 key: {reason}")]
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

/// Loads the key at `path`, creating a new Ed25519 key there (mode 0600) if
/// there is no file yet.
pub fn load_or_create_key_file(path: &Path) -> Result<Keypair, KeyFileError> {
    let display = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: display.clone(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::InsecurePermissions {
                    path: display,
                    mode,
                });
            }
            let bytes = std::fs::read(path).map_err(io)?;
            Keypair::from_protobuf_encoding(&bytes).map_err(|e| KeyFileError::Malformed {
                path: display,
                reason: e.to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let encoded = keypair
                .to_protobuf_encoding()
                .map_err(|e| KeyFileError::Malformed {
                    path: display.clone(),
                    reason: e.to_string(),
                })?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            // create_new: never overwrite a key another process just wrote.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(&encoded).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(keypair)
        }
        Err(e) => Err(io(e)),
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
        let again = load_or_create_key_file(&path).unwrap();
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
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
        assert!(err.to_string().contains("not a valid Ed25519 key"), "{err}");
    }
}
