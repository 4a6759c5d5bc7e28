//! Passphrase-encrypted identity backups (Argon2id, then XChaCha20-Poly1305).

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::pq::{random_bytes, NodeIdentity, SecretSeeds};

const MAGIC: &str = "conclave-identity-backup-v1";
/// Argon2id memory in KiB (64 MiB), passes and lanes.
const DEFAULT_KDF: KdfParams = KdfParams {
    memory_kib: 64 * 1024,
    passes: 3,
    lanes: 1,
};
/// Shortest accepted passphrase.
pub const MIN_PASSPHRASE_LEN: usize = 8;

/// Why a backup could not be made or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a Conclave backup.
    #[error("not a Conclave identity backup: {0}")]
    Malformed(String),
    /// Wrong passphrase, or the file was changed.
    #[error("wrong passphrase, or the backup file is corrupted")]
    Decrypt,
    /// Passphrase too short.
    #[error("passphrase too short: use at least {MIN_PASSPHRASE_LEN} characters")]
    WeakPassphrase,
    /// The key derivation failed.
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The keys inside are unusable.
    #[error(transparent)]
    Identity(#[from] super::pq::IdentityError),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct KdfParams {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
}

#[derive(Serialize, Deserialize)]
struct BackupFile {
    magic: String,
    kdf: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
    #[serde(with = "serde_bytes")]
    ciphertext: Vec<u8>,
}

fn derive(
    passphrase: &[u8],
    salt: &[u8; 16],
    kdf: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, BackupError> {
    let params = Params::new(kdf.memory_kib, kdf.passes, kdf.lanes, Some(32))
        .map_err(|e| BackupError::Kdf(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| BackupError::Kdf(e.to_string()))?;
    Ok(key)
}

/// Encrypts the identity's secrets under `passphrase`.
pub fn export(identity: &NodeIdentity, passphrase: &str) -> Result<Vec<u8>, BackupError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
        return Err(BackupError::WeakPassphrase);
    }
    let salt = random_bytes();
    let nonce = random_bytes();
    let key = derive(passphrase.as_bytes(), &salt, DEFAULT_KDF)?;
    let plain = Zeroizing::new(postcard::to_stdvec(&identity.seeds()).expect("seeds serialise"));
    let ciphertext = XChaCha20Poly1305::new(&(*key).into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: &plain,
                aad: MAGIC.as_bytes(),
            },
        )
        .map_err(|_| BackupError::Kdf("encryption failed".into()))?;
    let file = BackupFile {
        magic: MAGIC.into(),
        kdf: DEFAULT_KDF,
        salt,
        nonce,
        ciphertext,
    };
    Ok(serde_json::to_vec_pretty(&file).expect("backups serialise"))
}

/// Decrypts a backup made by [`export`].
pub fn import(bytes: &[u8], passphrase: &str) -> Result<NodeIdentity, BackupError> {
    let file: BackupFile =
        serde_json::from_slice(bytes).map_err(|e| BackupError::Malformed(e.to_string()))?;
    if file.magic != MAGIC {
        return Err(BackupError::Malformed(format!(
            "unknown format {:?}",
            file.magic
        )));
    }
    // Bound the work an attacker-supplied file can ask of us.
    if file.kdf.memory_kib > 1024 * 1024 || file.kdf.passes > 16 || file.kdf.lanes > 8 {
        return Err(BackupError::Malformed(
            "key-derivation parameters out of range".into(),
        ));
    }
    let key = derive(passphrase.as_bytes(), &file.salt, file.kdf)?;
    let plain = Zeroizing::new(
        XChaCha20Poly1305::new(&(*key).into())
            .decrypt(
                &file.nonce.into(),
                Payload {
                    msg: &file.ciphertext,
                    aad: MAGIC.as_bytes(),
                },
            )
            .map_err(|_| BackupError::Decrypt)?,
    );
    let seeds: SecretSeeds = postcard::from_bytes(&plain).map_err(|_| BackupError::Decrypt)?;
    Ok(NodeIdentity::from_seeds(&seeds)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_import_round_trip_and_wrong_passphrase() {
        let id = NodeIdentity::generate();
        let file = export(&id, "correct horse battery").unwrap();
        assert!(!String::from_utf8_lossy(&file).contains(&hex::encode(&id.seeds().ml_dsa)));
        let back = import(&file, "correct horse battery").unwrap();
        assert_eq!(back.peer_id(), id.peer_id());
        assert_eq!(back.record().fingerprint(), id.record().fingerprint());
        assert!(matches!(
            import(&file, "wrong horse battery"),
            Err(BackupError::Decrypt)
        ));
        assert!(matches!(
            export(&id, "short"),
            Err(BackupError::WeakPassphrase)
        ));
        assert!(matches!(
            import(b"{}", "whatever1"),
            Err(BackupError::Malformed(_))
        ));
    }
}
