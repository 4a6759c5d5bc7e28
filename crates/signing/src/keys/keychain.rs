//! Signing keys in the OS keychain (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows), under the service
//! `org.conclave.signing/<profile>`: one entry per key (`key/<pubkey>`,
//! the 32 secret bytes) and an `index` entry listing the public keys, since
//! keychains cannot be enumerated portably.
//!
//! A missing, locked or refusing keychain is an error that names the cause;
//! there is never a fallback to a file.

use std::sync::{Arc, Mutex};

use conclave_node::identity::keystore::{self, describe};
use keyring_core::{CredentialStore, Entry, Error as KeyringError};
use zeroize::Zeroizing;

use super::{KeyStore, KeyStoreError, SecretKey, SignerKey};

const INDEX_ENTRY: &str = "index";

fn platform_store() -> Result<Arc<CredentialStore>, KeyStoreError> {
    keystore::platform_store().map_err(|e| KeyStoreError::Unavailable(e.to_string()))
}

fn map_error(e: KeyringError) -> KeyStoreError {
    match e {
        KeyringError::NoStorageAccess(_) => KeyStoreError::Locked(describe(&e)),
        KeyringError::NoDefaultStore => KeyStoreError::Unavailable(describe(&e)),
        other => KeyStoreError::Failed(describe(&other)),
    }
}

/// The signing keys of one profile in the OS keychain.
pub struct KeychainKeyStore {
    service: String,
    store: Arc<CredentialStore>,
    /// Serialises read-modify-write of the index within this process.
    index_lock: Mutex<()>,
}

impl KeychainKeyStore {
    /// Opens the platform keychain for `profile` (blocking: call from
    /// `spawn_blocking`).
    pub fn open(profile: &str) -> Result<Self, KeyStoreError> {
        Ok(Self {
            service: format!("org.conclave.signing/{profile}"),
            store: platform_store()?,
            index_lock: Mutex::new(()),
        })
    }

    /// Opens the keychain for `profile` off the async runtime, giving up
    /// after [`KEY_STORE_TIMEOUT`](super::KEY_STORE_TIMEOUT) (a locked
    /// keychain can wait forever on an unlock prompt nobody sees).
    pub async fn open_in_background(profile: &str) -> Result<Self, KeyStoreError> {
        let profile = profile.to_string();
        let open = tokio::task::spawn_blocking(move || Self::open(&profile));
        match tokio::time::timeout(super::KEY_STORE_TIMEOUT, open).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(join)) => Err(KeyStoreError::Failed(join.to_string())),
            Err(_) => Err(KeyStoreError::Timeout),
        }
    }

    /// The keychain service name the entries live under.
    pub fn service(&self) -> &str {
        &self.service
    }

    fn entry(&self, name: &str) -> Result<Entry, KeyStoreError> {
        self.store
            .build(&self.service, name, None)
            .map_err(map_error)
    }

    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyStoreError> {
        match self.entry(name)?.get_secret() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    }

    fn read_index(&self) -> Result<Vec<SignerKey>, KeyStoreError> {
        let Some(bytes) = self.read(INDEX_ENTRY)? else {
            return Ok(Vec::new());
        };
        serde_json::from_slice(&bytes).map_err(|e| KeyStoreError::Corrupt {
            entry: INDEX_ENTRY.into(),
            reason: e.to_string(),
        })
    }
}

fn key_entry(key: &SignerKey) -> String {
    format!("key/{key}")
}

impl KeyStore for KeychainKeyStore {
    fn list(&self) -> Result<Vec<SignerKey>, KeyStoreError> {
        let mut keys = self.read_index()?;
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    fn secret(&self, key: &SignerKey) -> Result<Option<SecretKey>, KeyStoreError> {
        let name = key_entry(key);
        let Some(bytes) = self.read(&name)? else {
            return Ok(None);
        };
        let secret = SecretKey::from_bytes(&bytes).map_err(|e| KeyStoreError::Corrupt {
            entry: name.clone(),
            reason: e.to_string(),
        })?;
        if secret.public_key() != *key {
            return Err(KeyStoreError::Corrupt {
                entry: name,
                reason: "the secret does not match the public key it is stored under".into(),
            });
        }
        Ok(Some(secret))
    }

    fn insert(&self, secret: &SecretKey) -> Result<SignerKey, KeyStoreError> {
        let key = secret.public_key();
        let _guard = self.index_lock.lock().expect("index lock");
        // The secret first: an index that names a missing key would be worse
        // than a stored key the index does not list yet.
        self.entry(&key_entry(&key))?
            .set_secret(secret.expose_bytes())
            .map_err(map_error)?;
        let mut index = self.read_index()?;
        if !index.contains(&key) {
            index.push(key);
            index.sort();
            let bytes = serde_json::to_vec(&index).expect("keys serialise");
            self.entry(INDEX_ENTRY)?
                .set_secret(&bytes)
                .map_err(map_error)?;
        }
        Ok(key)
    }
}
