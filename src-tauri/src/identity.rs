//! Where the app gets the node's keys.
//!
//! [`load_identity`] is the one place that loads them: the OS keychain, or an
//! explicit key file.

use conclave_node::{identity::NodeIdentity, profile::Profile};

use crate::views::PqFingerprints;

/// Errors loading the node's keys.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The explicit key file is unusable.
    #[error(transparent)]
    KeyFile(#[from] conclave_node::identity::KeyFileError),
    /// The OS keychain is missing, locked or refused (never a silent
    /// plaintext fallback).
    #[error(transparent)]
    Keychain(#[from] conclave_node::identity::keystore::KeystoreError),
}

/// Environment variable naming an explicit key file instead of the keychain.
pub const KEY_FILE_ENV: &str = "CONCLAVE_KEY_FILE";

/// Loads the profile's keys (Ed25519 and the post-quantum set) from the OS
/// keychain, creating them on first start; or from the key file named by
/// `CONCLAVE_KEY_FILE`.
pub fn load_identity(profile: &Profile) -> Result<NodeIdentity, IdentityError> {
    if let Some(path) = std::env::var_os(KEY_FILE_ENV) {
        return Ok(conclave_node::identity::load_or_create_key_file(
            std::path::Path::new(&path),
        )?);
    }
    let keychain = conclave_node::identity::keystore::Keychain::open(profile.name())?;
    Ok(keychain.load_or_create()?.0)
}

/// Replaces the profile's keys with `identity` where [`load_identity`] finds
/// them (the keychain, or the key file). If the keychain fails part-way, the
/// previous keys are put back, so a failure changes nothing. Blocking.
pub fn replace_identity(profile: &Profile, identity: &NodeIdentity) -> Result<(), IdentityError> {
    if let Some(path) = std::env::var_os(KEY_FILE_ENV) {
        let path = std::path::Path::new(&path);
        // Write the new keys beside the old file, then swap them in one rename.
        let staged = path.with_extension("restoring");
        let _ = std::fs::remove_file(&staged);
        conclave_node::identity::keyfile::write_key_file(&staged, identity)?;
        return std::fs::rename(&staged, path).map_err(|source| {
            let _ = std::fs::remove_file(&staged);
            IdentityError::KeyFile(conclave_node::identity::KeyFileError::Io {
                path: path.display().to_string(),
                source,
            })
        });
    }
    let keychain = conclave_node::identity::keystore::Keychain::open(profile.name())?;
    let previous = keychain.load()?;
    if let Err(e) = keychain.store(identity) {
        if let Some(previous) = previous {
            if let Err(undo) = keychain.store(&previous) {
                tracing::error!(%undo, "could not put the previous keys back after a failed restore");
            }
        }
        return Err(e.into());
    }
    Ok(())
}

/// Where [`load_identity`] keeps the keys, for the Identity view.
pub fn key_storage(profile: &Profile) -> String {
    match std::env::var_os(KEY_FILE_ENV) {
        Some(path) => format!("key file {}", std::path::Path::new(&path).display()),
        None => format!("OS keychain, profile {}", profile.name()),
    }
}

/// Fingerprints (BLAKE3, first 16 bytes, hex) of the PQ keys the identity
/// record binds to the PeerId.
pub fn pq_fingerprints(identity: &NodeIdentity) -> Option<PqFingerprints> {
    let record = identity.record();
    let short = |bytes: &[u8]| hex::encode(&blake3::hash(bytes).as_bytes()[..16]);
    (!record.ml_dsa_public.is_empty()).then(|| PqFingerprints {
        record: record.fingerprint(),
        ml_dsa_65: short(&record.ml_dsa_public),
        ml_kem_768: short(&record.ml_kem_public),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs inside `scripts/with-keyring.sh` (make test does); skipped with a
    /// message anywhere else, so a developer's own keychain is never touched.
    fn in_keyring_session() -> bool {
        let ok = std::env::var("CONCLAVE_KEYRING_TEST").as_deref() == Ok("1")
            && std::env::var_os(KEY_FILE_ENV).is_none();
        if !ok {
            eprintln!("skipped: run through scripts/with-keyring.sh for a real keychain");
        }
        ok
    }

    #[test]
    fn replace_identity_swaps_the_profiles_keychain_entries() {
        if !in_keyring_session() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::resolve("app-restore-test", Some(dir.path())).unwrap();
        let first = load_identity(&profile).unwrap();
        assert_eq!(load_identity(&profile).unwrap().peer_id(), first.peer_id());

        let restored = NodeIdentity::generate();
        replace_identity(&profile, &restored).unwrap();
        let loaded = load_identity(&profile).unwrap();
        assert_eq!(loaded.peer_id(), restored.peer_id());
        assert_eq!(
            loaded.record().fingerprint(),
            restored.record().fingerprint()
        );
    }
}
