//! Signing keys: the secp256k1 keys this node signs with, kept in a
//! [`KeyStore`] and named by their compressed public key.
//!
//! BIP-327 individual public keys are plain 33-byte compressed keys, so a
//! [`SignerKey`] is exactly that. Secrets live in a store (the OS keychain
//! in the app and the daemon, memory in tests) and only pass through this
//! process's memory while a session signs; they never touch disk in clear.

pub mod keychain;
pub mod memory;

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use musig2::secp::{Point, Scalar};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use keychain::KeychainKeyStore;
pub use memory::MemoryKeyStore;

/// How long a key store call may take before we give up (a locked keychain
/// can wait forever on an unlock prompt nobody sees).
pub const KEY_STORE_TIMEOUT: Duration = Duration::from_secs(20);

/// A signer's public key: a valid compressed secp256k1 point (33 bytes).
///
/// Ordered by its serialization, which is BIP-327 KeySort order.
/// Crosses IPC as its hex string, as it serialises.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "specta", derive(specta::Type), specta(type = String))]
pub struct SignerKey([u8; 33]);

/// Why a key could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a compressed secp256k1 public key.
    #[error(
        "invalid public key {0:?}: expected 66 hex characters of a compressed secp256k1 point"
    )]
    InvalidPublicKey(String),
    /// Not a secp256k1 secret key.
    #[error(
        "invalid secret key: expected 64 hex characters of a non-zero scalar below the curve order"
    )]
    InvalidSecretKey,
}

impl SignerKey {
    /// Parses 33 bytes, checking that they encode a point on the curve.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let invalid = || KeyError::InvalidPublicKey(hex::encode(bytes));
        let array: [u8; 33] = bytes.try_into().map_err(|_| invalid())?;
        Point::from_slice(&array).map_err(|_| invalid())?;
        Ok(Self(array))
    }

    /// Parses 66 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes =
            hex::decode(text.trim()).map_err(|_| KeyError::InvalidPublicKey(text.to_string()))?;
        Self::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey(text.to_string()))
    }

    /// The 33 bytes.
    pub fn as_bytes(&self) -> &[u8; 33] {
        &self.0
    }

    /// Lower-case hex (66 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The curve point.
    pub fn point(&self) -> Point {
        Point::from_slice(&self.0).expect("checked when constructed")
    }
}

impl fmt::Display for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({})", self.to_hex())
    }
}

impl FromStr for SignerKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for SignerKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SignerKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// A secp256k1 secret key. Wiped from memory when dropped; neither `Clone`
/// nor printable, so it is not copied around by accident.
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(bytes.as_mut());
            if let Ok(key) = Self::from_bytes(bytes.as_ref()) {
                return key;
            }
        }
    }

    /// A key from its 32 bytes (a non-zero scalar below the curve order).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| KeyError::InvalidSecretKey)?;
        Scalar::from_slice(&array).map_err(|_| KeyError::InvalidSecretKey)?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// A key from 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes =
            Zeroizing::new(hex::decode(text.trim()).map_err(|_| KeyError::InvalidSecretKey)?);
        Self::from_bytes(&bytes)
    }

    /// The 32 secret bytes (for storing them in a key store).
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public key.
    pub fn public_key(&self) -> SignerKey {
        SignerKey(self.scalar().base_point_mul().serialize())
    }

    pub(crate) fn scalar(&self) -> Scalar {
        Scalar::from_slice(self.0.as_ref()).expect("checked when constructed")
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(for {})", self.public_key())
    }
}

/// A key as `conclavectl wallet list --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct KeyInfo {
    /// Compressed public key, 66 hex characters.
    pub pubkey: String,
}

impl From<SignerKey> for KeyInfo {
    fn from(key: SignerKey) -> Self {
        Self {
            pubkey: key.to_hex(),
        }
    }
}

/// Why a key store could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyStoreError {
    /// No keychain service is reachable.
    #[error("no OS keychain is available ({0}): start a keyring service (e.g. gnome-keyring)")]
    Unavailable(String),
    /// The keychain is locked or denied access.
    #[error("the keychain is locked or refused access ({0}): unlock it and try again")]
    Locked(String),
    /// The store failed.
    #[error("the key store failed: {0}")]
    Failed(String),
    /// The store did not answer in time.
    #[error("the key store did not answer within {} s (locked and waiting for an unlock prompt?)", KEY_STORE_TIMEOUT.as_secs())]
    Timeout,
    /// A stored entry is unusable.
    #[error("the key store entry {entry:?} is corrupted: {reason}")]
    Corrupt {
        /// Entry name.
        entry: String,
        /// Why.
        reason: String,
    },
}

/// Where signing keys are kept. Calls may block (a keychain talks to a
/// service): async code goes through [`run_blocking`].
pub trait KeyStore: Send + Sync + 'static {
    /// Public keys of every stored key, sorted.
    fn list(&self) -> Result<Vec<SignerKey>, KeyStoreError>;

    /// The secret key of `key`, if stored.
    fn secret(&self, key: &SignerKey) -> Result<Option<SecretKey>, KeyStoreError>;

    /// Stores `secret` (replacing nothing: storing a key twice is a no-op)
    /// and returns its public key.
    fn insert(&self, secret: &SecretKey) -> Result<SignerKey, KeyStoreError>;
}

/// Runs a blocking key store operation off the async runtime, with a timeout.
pub async fn run_blocking<T: Send + 'static>(
    store: &Arc<dyn KeyStore>,
    op: impl FnOnce(&dyn KeyStore) -> Result<T, KeyStoreError> + Send + 'static,
) -> Result<T, KeyStoreError> {
    let store = store.clone();
    let task = tokio::task::spawn_blocking(move || op(store.as_ref()));
    match tokio::time::timeout(KEY_STORE_TIMEOUT, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(KeyStoreError::Failed(join.to_string())),
        Err(_) => Err(KeyStoreError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_parse_and_sort_like_keysort() {
        let a = SignerKey::from_hex(
            "023590A94E768F8E1815C2F24B4D80A8E3149316C3518CE7B7AD338368D038CA66",
        )
        .unwrap();
        let b = SignerKey::from_hex(
            "03DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
        )
        .unwrap();
        assert!(a < b);
        assert_eq!(a.to_hex().len(), 66);
        assert_eq!(a.to_hex().parse::<SignerKey>().unwrap(), a);
        // Not on the curve, wrong prefix, wrong length.
        for bad in [
            "020000000000000000000000000000000000000000000000000000000000000005",
            "04F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
            "02F9308A",
        ] {
            assert!(SignerKey::from_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_keys_round_trip_and_reject_bad_scalars() {
        let secret = SecretKey::generate();
        let again = SecretKey::from_bytes(secret.expose_bytes()).unwrap();
        assert_eq!(secret.public_key(), again.public_key());
        assert!(SecretKey::from_bytes(&[0u8; 32]).is_err());
        assert!(SecretKey::from_hex(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"
        )
        .is_err());
        assert!(!format!("{secret:?}").contains(&hex::encode(secret.expose_bytes())));
    }
}
