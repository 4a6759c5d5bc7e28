//! A key store in process memory, for tests and throwaway nodes: nothing
//! survives the process.

use std::{collections::BTreeMap, sync::Mutex};

use zeroize::Zeroizing;

use super::{KeyStore, KeyStoreError, SecretKey, SignerKey};

/// Keys held in memory only.
#[derive(Default)]
pub struct MemoryKeyStore {
    keys: Mutex<BTreeMap<SignerKey, Zeroizing<[u8; 32]>>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl KeyStore for MemoryKeyStore {
    fn list(&self) -> Result<Vec<SignerKey>, KeyStoreError> {
        Ok(self
            .keys
            .lock()
            .expect("key store lock")
            .keys()
            .copied()
            .collect())
    }

    fn secret(&self, key: &SignerKey) -> Result<Option<SecretKey>, KeyStoreError> {
        let keys = self.keys.lock().expect("key store lock");
        keys.get(key)
            .map(|bytes| {
                SecretKey::from_bytes(bytes.as_ref()).map_err(|e| KeyStoreError::Corrupt {
                    entry: key.to_hex(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    fn insert(&self, secret: &SecretKey) -> Result<SignerKey, KeyStoreError> {
        let key = secret.public_key();
        self.keys
            .lock()
            .expect("key store lock")
            .insert(key, Zeroizing::new(*secret.expose_bytes()));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_lists_and_returns_secrets() {
        let store = MemoryKeyStore::new();
        assert!(store.list().unwrap().is_empty());
        let secret = SecretKey::generate();
        let key = store.insert(&secret).unwrap();
        assert_eq!(store.insert(&secret).unwrap(), key, "idempotent");
        assert_eq!(store.list().unwrap(), vec![key]);
        let back = store.secret(&key).unwrap().unwrap();
        assert_eq!(back.expose_bytes(), secret.expose_bytes());
        let other = SecretKey::generate().public_key();
        assert!(store.secret(&other).unwrap().is_none());
    }
}
