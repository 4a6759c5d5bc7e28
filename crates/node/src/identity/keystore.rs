//! The node's keys in the OS keychain (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows), one entry set per profile.
//!
//! A missing, locked or refusing keychain is an error that names the cause;
//! there is never a silent fallback to a plaintext file. Servers without a
//! keychain pass an explicit `--key-file` instead.

use std::{sync::Arc, time::Duration};

use keyring_core::{CredentialStore, Entry, Error as KeyringError};
use zeroize::Zeroizing;

use super::pq::{NodeIdentity, SecretSeeds};

/// How long a keychain call may take before we give up (a locked collection
/// can wait forever on an unlock prompt nobody sees).
pub const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(20);

const ENTRY_ED25519: &str = "ed25519";
const ENTRY_ML_DSA: &str = "ml-dsa-65";
const ENTRY_ML_KEM: &str = "ml-kem-768";
/// The entries of one identity, in the order they are written.
const ENTRIES: [&str; 3] = [ENTRY_ED25519, ENTRY_ML_DSA, ENTRY_ML_KEM];

/// Why the keychain could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// No keychain service is reachable.
    #[error("no OS keychain is available ({0}): start a keyring service (e.g. gnome-keyring) or pass --key-file")]
    Unavailable(String),
    /// The keychain is locked or denied access.
    #[error("the keychain is locked or refused access ({0}): unlock it, or pass --key-file")]
    Locked(String),
    /// The keychain failed.
    #[error("the keychain failed: {0}")]
    Failed(String),
    /// The keychain did not answer in time.
    #[error("the keychain did not answer within {} s (locked and waiting for an unlock prompt?): unlock it, or pass --key-file", KEYCHAIN_TIMEOUT.as_secs())]
    Timeout,
    /// Only some of the profile's keys are present.
    #[error("the keychain holds an incomplete identity for profile {profile:?} (missing {missing}): restore a backup with `conclavectl identity import`")]
    Incomplete {
        /// Profile.
        profile: String,
        /// Missing entry.
        missing: &'static str,
    },
    /// Stored keys are unusable.
    #[error("the keychain entry {entry} of profile {profile:?} is corrupted: {reason}")]
    Corrupt {
        /// Profile.
        profile: String,
        /// Entry name.
        entry: &'static str,
        /// Why.
        reason: String,
    },
}

/// Opens the platform's credential store (Secret Service, Keychain or
/// Credential Manager, chosen at compile time). Blocking.
pub fn platform_store() -> Result<Arc<CredentialStore>, KeystoreError> {
    #[cfg(target_os = "linux")]
    let store = zbus_secret_service_keyring_store::Store::new();
    #[cfg(target_os = "macos")]
    let store = apple_native_keyring_store::keychain::Store::new();
    #[cfg(target_os = "windows")]
    let store = windows_native_keyring_store::Store::new();
    let store = store.map_err(|e| KeystoreError::Unavailable(describe(&e)))?;
    Ok(store)
}

/// A keyring error with its whole chain of causes, each once, for messages
/// to people.
pub fn describe(e: &KeyringError) -> String {
    crate::error::describe(e)
}

fn map_error(e: KeyringError) -> KeystoreError {
    match e {
        KeyringError::NoStorageAccess(_) => KeystoreError::Locked(describe(&e)),
        KeyringError::NoDefaultStore => KeystoreError::Unavailable(describe(&e)),
        other => KeystoreError::Failed(describe(&other)),
    }
}

/// The keychain entries of one profile.
pub struct Keychain {
    profile: String,
    service: String,
    store: Arc<CredentialStore>,
}

impl Keychain {
    /// Opens the platform keychain for `profile` (blocking: call from
    /// `spawn_blocking`, or use [`load_or_create_identity`]).
    pub fn open(profile: &str) -> Result<Self, KeystoreError> {
        Ok(Self::with_store(profile, platform_store()?))
    }

    fn with_store(profile: &str, store: Arc<CredentialStore>) -> Self {
        Self {
            profile: profile.to_string(),
            service: format!("org.conclave.node/{profile}"),
            store,
        }
    }

    fn entry(&self, name: &str) -> Result<Entry, KeystoreError> {
        self.store
            .build(&self.service, name, None)
            .map_err(map_error)
    }

    fn read(&self, name: &'static str) -> Result<Option<Zeroizing<Vec<u8>>>, KeystoreError> {
        match self.entry(name)?.get_secret() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    }

    /// Loads the profile's identity; `None` if the keychain holds none.
    pub fn load(&self) -> Result<Option<NodeIdentity>, KeystoreError> {
        let parts = ENTRIES.map(|name| (name, self.read(name)));
        let mut values = Vec::new();
        for (name, value) in parts {
            values.push((name, value?));
        }
        if values.iter().all(|(_, v)| v.is_none()) {
            return Ok(None);
        }
        if let Some((missing, _)) = values.iter().find(|(_, v)| v.is_none()) {
            return Err(KeystoreError::Incomplete {
                profile: self.profile.clone(),
                missing,
            });
        }
        let take = |i: usize| values[i].1.as_ref().map(|v| v.to_vec()).unwrap_or_default();
        let seeds = SecretSeeds {
            ed25519: take(0),
            ml_dsa: take(1),
            ml_kem: take(2),
        };
        NodeIdentity::from_seeds(&seeds)
            .map(Some)
            .map_err(|e| KeystoreError::Corrupt {
                profile: self.profile.clone(),
                entry: "identity",
                reason: e.to_string(),
            })
    }

    /// Stores (or replaces) the profile's identity.
    pub fn store(&self, identity: &NodeIdentity) -> Result<(), KeystoreError> {
        let seeds = identity.seeds();
        for (name, secret) in
            ENTRIES
                .into_iter()
                .zip([&seeds.ed25519, &seeds.ml_dsa, &seeds.ml_kem])
        {
            self.entry(name)?.set_secret(secret).map_err(map_error)?;
        }
        Ok(())
    }

    /// Replaces the profile's identity with `identity`, whatever the
    /// keychain held before (also an incomplete or corrupted set). If the
    /// keychain fails part-way, the entries already written are put back as
    /// they were (or removed, where there was none), so a failure changes
    /// nothing.
    pub fn replace(&self, identity: &NodeIdentity) -> Result<(), KeystoreError> {
        let mut previous = Vec::with_capacity(ENTRIES.len());
        for name in ENTRIES {
            previous.push(self.read(name)?);
        }
        let seeds = identity.seeds();
        let secrets = [&seeds.ed25519, &seeds.ml_dsa, &seeds.ml_kem];
        for (written, (name, secret)) in ENTRIES.into_iter().zip(secrets).enumerate() {
            if let Err(e) = self
                .entry(name)
                .and_then(|entry| entry.set_secret(secret).map_err(map_error))
            {
                for (name, before) in ENTRIES.into_iter().zip(&previous).take(written) {
                    if let Err(undo) = self.put_back(name, before.as_deref().map(Vec::as_slice)) {
                        tracing::error!(entry = name, %undo, "could not put a keychain entry back after a failed replace");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn put_back(&self, name: &str, secret: Option<&[u8]>) -> Result<(), KeystoreError> {
        let entry = self.entry(name)?;
        match secret {
            Some(secret) => entry.set_secret(secret).map_err(map_error),
            None => match entry.delete_credential() {
                Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
                Err(e) => Err(map_error(e)),
            },
        }
    }

    /// Loads the identity, generating and storing one on first use. Returns
    /// whether it was created.
    pub fn load_or_create(&self) -> Result<(NodeIdentity, bool), KeystoreError> {
        if let Some(identity) = self.load()? {
            return Ok((identity, false));
        }
        let identity = NodeIdentity::generate();
        self.store(&identity)?;
        Ok((identity, true))
    }
}

/// Runs a blocking keychain operation off the async runtime, with a timeout.
pub async fn with_keychain<T: Send + 'static>(
    profile: &str,
    op: impl FnOnce(&Keychain) -> Result<T, KeystoreError> + Send + 'static,
) -> Result<T, KeystoreError> {
    let profile = profile.to_string();
    let task = tokio::task::spawn_blocking(move || op(&Keychain::open(&profile)?));
    match tokio::time::timeout(KEYCHAIN_TIMEOUT, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(KeystoreError::Failed(join.to_string())),
        Err(_) => Err(KeystoreError::Timeout),
    }
}

/// Loads the profile's identity from the keychain, creating it on first use.
pub async fn load_or_create_identity(profile: &str) -> Result<(NodeIdentity, bool), KeystoreError> {
    with_keychain(profile, |k| k.load_or_create()).await
}

#[cfg(test)]
mod tests {
    //! The keychain's own behaviour is tested against a real Secret Service
    //! (`identity::keysource`, the daemon's keychain test). A keychain that
    //! fails part-way through a write cannot be arranged in a real one, so
    //! these use keyring-core's in-memory mock store, with one entry made to
    //! refuse writes.

    use std::collections::HashMap;

    use keyring_core::{api::CredentialApi, api::CredentialStoreApi, mock, Credential};

    use super::*;

    /// The mock store, except that writes to the entry `refuse` fail.
    struct RefusingStore {
        inner: Arc<mock::Store>,
        refuse: Option<&'static str>,
    }

    /// A mock entry that refuses writes.
    struct ReadOnly(Entry);

    impl CredentialApi for ReadOnly {
        fn set_secret(&self, _secret: &[u8]) -> keyring_core::Result<()> {
            Err(KeyringError::NoStorageAccess(
                "write refused by the test".into(),
            ))
        }
        fn get_secret(&self) -> keyring_core::Result<Vec<u8>> {
            self.0.get_secret()
        }
        fn delete_credential(&self) -> keyring_core::Result<()> {
            self.0.delete_credential()
        }
        fn get_credential(&self) -> keyring_core::Result<Option<Arc<Credential>>> {
            Ok(None)
        }
        fn get_specifiers(&self) -> Option<(String, String)> {
            self.0.get_specifiers()
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    impl std::fmt::Debug for ReadOnly {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ReadOnly")
        }
    }

    impl CredentialStoreApi for RefusingStore {
        fn vendor(&self) -> String {
            "test".into()
        }
        fn id(&self) -> String {
            "refusing".into()
        }
        fn build(
            &self,
            service: &str,
            user: &str,
            mods: Option<&HashMap<&str, &str>>,
        ) -> keyring_core::Result<Entry> {
            let entry = self.inner.build(service, user, mods)?;
            Ok(if self.refuse == Some(user) {
                Entry::new_with_credential(Arc::new(ReadOnly(entry)))
            } else {
                entry
            })
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    impl std::fmt::Debug for RefusingStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("RefusingStore")
        }
    }

    fn keychain(inner: &Arc<mock::Store>, refuse: Option<&'static str>) -> Keychain {
        let store = RefusingStore {
            inner: inner.clone(),
            refuse,
        };
        Keychain::with_store("undo-test", Arc::new(store))
    }

    #[test]
    fn a_replace_that_fails_part_way_puts_the_previous_keys_back() {
        let memory = mock::Store::new().unwrap();
        let first = NodeIdentity::generate();
        keychain(&memory, None).store(&first).unwrap();

        // The Ed25519 entry is written, then the ML-DSA one is refused.
        let err = keychain(&memory, Some(ENTRY_ML_DSA))
            .replace(&NodeIdentity::generate())
            .unwrap_err();
        assert!(matches!(err, KeystoreError::Locked(_)), "{err}");
        let kept = keychain(&memory, None).load().unwrap().unwrap();
        assert_eq!(kept.peer_id(), first.peer_id());
        assert_eq!(kept.record().fingerprint(), first.record().fingerprint());

        // With no keys before, a failed replace leaves none (not a partial set).
        let empty = mock::Store::new().unwrap();
        let err = keychain(&empty, Some(ENTRY_ML_KEM)).replace(&first);
        assert!(err.is_err());
        assert!(keychain(&empty, None).load().unwrap().is_none());

        // A replace that succeeds swaps every entry, also over a partial set.
        let partial = mock::Store::new().unwrap();
        keychain(&partial, Some(ENTRY_ML_KEM))
            .store(&first)
            .unwrap_err();
        assert!(keychain(&partial, None).load().is_err(), "incomplete set");
        let second = NodeIdentity::generate();
        keychain(&partial, None).replace(&second).unwrap();
        let loaded = keychain(&partial, None).load().unwrap().unwrap();
        assert_eq!(loaded.peer_id(), second.peer_id());
    }
}
