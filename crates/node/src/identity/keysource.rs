//! Where a node's keys are kept: the OS keychain or a key file, chosen by
//! one rule ([`KeySource::for_profile`]) that `conclaved`, `conclavectl` and
//! the desktop app share, with loading and an undoable replace for both.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use libp2p::PeerId;

use super::{
    keyfile::{self, KeyFileError},
    keystore::{self, KeystoreError},
    pq::NodeIdentity,
};
use crate::profile::Profile;

/// The environment variable that names a key file, as `--key-file` does.
pub const KEY_FILE_ENV: &str = "CONCLAVE_KEY_FILE";

/// Why the node's keys could not be loaded or replaced.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// The key file is unusable.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The OS keychain is missing, locked or refused (never a silent
    /// plaintext fallback).
    #[error(transparent)]
    Keychain(#[from] KeystoreError),
}

/// Where a profile's node keys live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The profile's entries in the OS keychain.
    Keychain {
        /// The profile.
        profile: String,
    },
    /// A key file (created 0600, refused if group or others can read it).
    KeyFile(PathBuf),
}

impl KeySource {
    /// The one rule for where a profile's keys are:
    /// 1. a key file named explicitly (`--key-file PATH`, or the
    ///    `CONCLAVE_KEY_FILE` environment variable);
    /// 2. else, for a profile kept in one folder (`--data-dir DIR`), the key
    ///    file `DIR/identity.key`, beside the rest of its files;
    /// 3. else the OS keychain, under the profile's name.
    pub fn for_profile(profile: &Profile, key_file: Option<&Path>) -> Self {
        match key_file {
            Some(path) => Self::KeyFile(path.to_path_buf()),
            None if profile.in_one_folder() => Self::KeyFile(profile.key_file()),
            None => Self::Keychain {
                profile: profile.name().to_string(),
            },
        }
    }

    /// Loads the keys, creating and storing a new set on first use; returns
    /// whether they were created.
    pub async fn load_or_create(&self) -> Result<(NodeIdentity, bool), KeySourceError> {
        match self {
            Self::Keychain { profile } => {
                Ok(keystore::with_keychain(profile, |k| k.load_or_create()).await?)
            }
            Self::KeyFile(path) => {
                let existed = path.exists();
                let path = path.clone();
                let identity = blocking(move || keyfile::load_or_create_key_file(&path)).await?;
                Ok((identity, !existed))
            }
        }
    }

    /// Loads the keys; `None` if there are none yet.
    pub async fn load(&self) -> Result<Option<NodeIdentity>, KeySourceError> {
        match self {
            Self::Keychain { profile } => Ok(keystore::with_keychain(profile, |k| k.load()).await?),
            Self::KeyFile(path) if !path.exists() => Ok(None),
            Self::KeyFile(path) => {
                let path = path.clone();
                Ok(Some(
                    blocking(move || keyfile::load_existing_key_file(&path)).await?,
                ))
            }
        }
    }

    /// Replaces the keys with `identity`. A failure changes nothing: the key
    /// file is swapped in one rename, and a keychain that fails part-way
    /// gets its previous entries back.
    pub async fn replace(&self, identity: Arc<NodeIdentity>) -> Result<(), KeySourceError> {
        match self {
            Self::Keychain { profile } => {
                Ok(keystore::with_keychain(profile, move |k| k.replace(&identity)).await?)
            }
            Self::KeyFile(path) => {
                let path = path.clone();
                blocking(move || replace_key_file(&path, &identity)).await
            }
        }
    }

    /// The keychain namespace for this node's other secrets, such as its
    /// MuSig2 signing keys: the profile's name when the node keys are in
    /// the keychain; `<profile>@<peer id>` when they are in a key file, so
    /// two nodes with key files on one machine never share those secrets.
    pub fn secrets_namespace(&self, profile: &Profile, peer_id: &PeerId) -> String {
        match self {
            Self::Keychain { profile } => profile.clone(),
            Self::KeyFile(_) => format!("{}@{peer_id}", profile.name()),
        }
    }
}

impl fmt::Display for KeySource {
    /// Where the keys are, in words ("OS keychain, profile alice").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keychain { profile } => write!(f, "OS keychain, profile {profile}"),
            Self::KeyFile(path) => write!(f, "key file {}", path.display()),
        }
    }
}

/// Writes the new keys beside the old file, then swaps them in with one
/// rename, so the file always holds one whole key set.
fn replace_key_file(path: &Path, identity: &NodeIdentity) -> Result<(), KeyFileError> {
    let staged = path.with_extension("restoring");
    let _ = std::fs::remove_file(&staged);
    keyfile::write_key_file(&staged, identity)?;
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::rename(&staged, path).map_err(|source| {
        let _ = std::fs::remove_file(&staged);
        io(source)
    })?;
    crate::state_file::sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(io)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KeyFileError> + Send + 'static,
) -> Result<T, KeySourceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| KeystoreError::Failed(join.to_string()))?
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_file_then_the_profiles_folder_then_the_keychain() {
        let dir = tempfile::tempdir().unwrap();
        let explicit = dir.path().join("elsewhere.key");
        let one_folder = Profile::resolve("a", Some(dir.path())).unwrap();
        let standard = Profile::resolve("a", None).unwrap();

        let source = KeySource::for_profile(&one_folder, Some(&explicit));
        assert_eq!(source, KeySource::KeyFile(explicit.clone()));
        let source = KeySource::for_profile(&standard, Some(&explicit));
        assert_eq!(source, KeySource::KeyFile(explicit));
        let source = KeySource::for_profile(&one_folder, None);
        assert_eq!(source, KeySource::KeyFile(dir.path().join("identity.key")));
        let source = KeySource::for_profile(&standard, None);
        assert_eq!(source.to_string(), "OS keychain, profile a");

        let peer = NodeIdentity::generate().peer_id();
        assert_eq!(source.secrets_namespace(&standard, &peer), "a");
        let file = KeySource::for_profile(&one_folder, None);
        assert_eq!(
            file.secrets_namespace(&one_folder, &peer),
            format!("a@{peer}")
        );
    }

    /// Loads the same keys twice (creating them the first time if there
    /// are none), then replaces them; returns the first keys, whether they
    /// were created, and the new.
    async fn keeps_then_replaces(source: &KeySource) -> (NodeIdentity, bool, Arc<NodeIdentity>) {
        let (first, created_first) = source.load_or_create().await.unwrap();
        let (again, created) = source.load_or_create().await.unwrap();
        assert!(!created);
        assert_eq!(again.peer_id(), first.peer_id());

        let restored = Arc::new(NodeIdentity::generate());
        source.replace(restored.clone()).await.unwrap();
        let loaded = source.load().await.unwrap().unwrap();
        assert_eq!(loaded.peer_id(), restored.peer_id());
        assert_eq!(
            loaded.record().fingerprint(),
            restored.record().fingerprint()
        );
        (first, created_first, restored)
    }

    #[tokio::test]
    async fn a_key_file_is_created_once_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/identity.key");
        let source = KeySource::KeyFile(path.clone());
        assert!(source.load().await.unwrap().is_none());
        let (first, created, restored) = keeps_then_replaces(&source).await;
        assert!(created);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(!path.with_extension("restoring").exists());

        // A file the swap cannot replace (a folder in its place) keeps it.
        let blocked = KeySource::KeyFile(dir.path().join("keys"));
        assert!(blocked.replace(Arc::new(first)).await.is_err());
        assert_eq!(
            source.load().await.unwrap().unwrap().peer_id(),
            restored.peer_id()
        );
    }

    /// Runs inside `scripts/with-keyring.sh` (make test does); skipped with
    /// a message anywhere else, so a developer's own keychain is never
    /// touched.
    fn in_keyring_session() -> bool {
        let ok = std::env::var("CONCLAVE_KEYRING_TEST").as_deref() == Ok("1");
        if !ok {
            eprintln!("skipped: run through scripts/with-keyring.sh for a real keychain");
        }
        ok
    }

    #[tokio::test]
    async fn the_keychain_keeps_a_profiles_keys_and_replaces_them() {
        if !in_keyring_session() {
            return;
        }
        let source = KeySource::Keychain {
            profile: "keysource-test".into(),
        };
        keeps_then_replaces(&source).await;
    }
}
