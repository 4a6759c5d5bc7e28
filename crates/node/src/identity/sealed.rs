//! Sealed payloads: private data for one or more recipients.
//!
//! A random content key encrypts the payload (XChaCha20-Poly1305). For each
//! recipient, the content key is wrapped under a key-encryption key derived
//! with BLAKE3 from BOTH an ML-KEM-768 shared secret and an X25519 shared
//! secret (ephemeral sender key, recipient's static key) and the transcript,
//! so the payload stays private unless both schemes are broken
//! (harvest-now-decrypt-later included).

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    ChaCha20Poly1305, XChaCha20Poly1305,
};
use ml_kem::{kem::Encapsulate, Decapsulate, EncapsulationKey, MlKem768};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::pq::{random_bytes, NodeIdentity, PqIdentityRecord};

const KEK_CONTEXT: &str = "conclave sealed payload kek v1";
const HEADER_CONTEXT: &str = "conclave sealed payload header v1";
/// Recipients of one sealed payload, at most.
pub const MAX_RECIPIENTS: usize = 64;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not a sealed payload we can parse.
    #[error("malformed sealed payload: {0}")]
    Malformed(String),
    /// None of the recipient slots is ours.
    #[error("sealed payload is not addressed to this identity")]
    NotARecipient,
    /// Authentication failed: the payload, header or associated data changed.
    #[error("sealed payload failed authentication: it was tampered with or corrupted")]
    Tampered,
    /// A recipient's record is unusable.
    #[error("invalid recipient: {0}")]
    BadRecipient(String),
}

#[derive(Serialize, Deserialize)]
struct RecipientSlot {
    /// BLAKE3 of the recipient's record keys (finds our slot).
    key_id: [u8; 16],
    #[serde(with = "serde_bytes")]
    kem_ciphertext: Vec<u8>,
    #[serde(with = "serde_bytes")]
    wrapped_key: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    version: u8,
    ephemeral_x25519: [u8; 32],
    recipients: Vec<RecipientSlot>,
    nonce: [u8; 24],
    #[serde(with = "serde_bytes")]
    ciphertext: Vec<u8>,
}

fn key_id(record: &PqIdentityRecord) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&record.ml_kem_public);
    h.update(&record.x25519_public);
    h.finalize().as_bytes()[..16].try_into().expect("16 bytes")
}

fn kek(
    kem_secret: &[u8],
    x25519_secret: &[u8],
    ephemeral: &[u8; 32],
    slot: &[u8; 16],
    kem_ct: &[u8],
) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(KEK_CONTEXT);
    for part in [kem_secret, x25519_secret, ephemeral, slot, kem_ct] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    Zeroizing::new(*h.finalize().as_bytes())
}

/// Binds the payload AEAD to the header (ephemeral key and every slot) and
/// to the caller's associated data.
fn header_aad(sealed: &Sealed, aad: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(HEADER_CONTEXT);
    h.update(&[sealed.version]);
    h.update(&sealed.ephemeral_x25519);
    for slot in &sealed.recipients {
        h.update(&slot.key_id);
        h.update(&slot.kem_ciphertext);
        h.update(&slot.wrapped_key);
    }
    h.update(&sealed.nonce);
    h.update(&(aad.len() as u64).to_le_bytes());
    h.update(aad);
    *h.finalize().as_bytes()
}

/// Seals `plaintext` to each of `recipients` (verified identity records);
/// `aad` is authenticated but not encrypted (e.g. a session id).
pub fn seal(
    plaintext: &[u8],
    aad: &[u8],
    recipients: &[&PqIdentityRecord],
) -> Result<Vec<u8>, SealError> {
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(SealError::BadRecipient(format!(
            "1 to {MAX_RECIPIENTS} recipients"
        )));
    }
    let content_key = Zeroizing::new(random_bytes::<32>());
    let ephemeral = x25519_dalek::StaticSecret::from(random_bytes::<32>());
    let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral).to_bytes();
    let mut slots = Vec::with_capacity(recipients.len());
    for record in recipients {
        let ek_bytes: &ml_kem::Key<EncapsulationKey<MlKem768>> =
            record.ml_kem_public.as_slice().try_into().map_err(|_| {
                SealError::BadRecipient(format!("{}: ML-KEM key length", record.peer_id))
            })?;
        let ek = EncapsulationKey::<MlKem768>::new(ek_bytes).map_err(|_| {
            SealError::BadRecipient(format!("{}: invalid ML-KEM key", record.peer_id))
        })?;
        let (kem_ct, kem_secret) = ek.encapsulate();
        let x_secret =
            ephemeral.diffie_hellman(&x25519_dalek::PublicKey::from(record.x25519_public));
        let id = key_id(record);
        let kek = kek(
            &kem_secret,
            x_secret.as_bytes(),
            &ephemeral_public,
            &id,
            &kem_ct,
        );
        let wrapped_key = ChaCha20Poly1305::new(&(*kek).into())
            .encrypt(&[0u8; 12].into(), content_key.as_slice())
            .map_err(|_| SealError::Malformed("key wrapping failed".into()))?;
        slots.push(RecipientSlot {
            key_id: id,
            kem_ciphertext: kem_ct.to_vec(),
            wrapped_key,
        });
    }
    let mut sealed = Sealed {
        version: 1,
        ephemeral_x25519: ephemeral_public,
        recipients: slots,
        nonce: random_bytes(),
        ciphertext: Vec::new(),
    };
    let header = header_aad(&sealed, aad);
    sealed.ciphertext = XChaCha20Poly1305::new(&(*content_key).into())
        .encrypt(
            &sealed.nonce.into(),
            Payload {
                msg: plaintext,
                aad: &header,
            },
        )
        .map_err(|_| SealError::Malformed("encryption failed".into()))?;
    Ok(postcard::to_stdvec(&sealed).expect("sealed payloads serialise"))
}

/// Opens a sealed payload addressed to `identity`, checking `aad`.
pub fn open(bytes: &[u8], aad: &[u8], identity: &NodeIdentity) -> Result<Vec<u8>, SealError> {
    let sealed: Sealed =
        postcard::from_bytes(bytes).map_err(|e| SealError::Malformed(e.to_string()))?;
    if sealed.version != 1 {
        return Err(SealError::Malformed(format!(
            "unknown version {}",
            sealed.version
        )));
    }
    let id = key_id(identity.record());
    let slot = sealed
        .recipients
        .iter()
        .find(|s| s.key_id == id)
        .ok_or(SealError::NotARecipient)?;
    let kem_ct: &ml_kem::Ciphertext<MlKem768> = slot
        .kem_ciphertext
        .as_slice()
        .try_into()
        .map_err(|_| SealError::Tampered)?;
    let kem_secret = identity.ml_kem().decapsulate(kem_ct);
    let x_secret = identity
        .x25519()
        .diffie_hellman(&x25519_dalek::PublicKey::from(sealed.ephemeral_x25519));
    let kek = kek(
        &kem_secret,
        x_secret.as_bytes(),
        &sealed.ephemeral_x25519,
        &id,
        &slot.kem_ciphertext,
    );
    let content_key: [u8; 32] = ChaCha20Poly1305::new(&(*kek).into())
        .decrypt(&[0u8; 12].into(), slot.wrapped_key.as_slice())
        .map_err(|_| SealError::Tampered)?
        .try_into()
        .map_err(|_| SealError::Tampered)?;
    let content_key = Zeroizing::new(content_key);
    let header = header_aad(&sealed, aad);
    XChaCha20Poly1305::new(&(*content_key).into())
        .decrypt(
            &sealed.nonce.into(),
            Payload {
                msg: &sealed.ciphertext,
                aad: &header,
            },
        )
        .map_err(|_| SealError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recipient_opens_others_cannot() {
        let (a, b, eve) = (
            NodeIdentity::generate(),
            NodeIdentity::generate(),
            NodeIdentity::generate(),
        );
        let sealed = seal(b"nonce share", b"session-1", &[a.record(), b.record()]).unwrap();
        assert_eq!(open(&sealed, b"session-1", &a).unwrap(), b"nonce share");
        assert_eq!(open(&sealed, b"session-1", &b).unwrap(), b"nonce share");
        assert_eq!(
            open(&sealed, b"session-1", &eve),
            Err(SealError::NotARecipient)
        );
    }

    #[test]
    fn tampering_and_wrong_context_fail_authentication() {
        let a = NodeIdentity::generate();
        let sealed = seal(b"secret", b"ctx", &[a.record()]).unwrap();
        assert_eq!(open(&sealed, b"other ctx", &a), Err(SealError::Tampered));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&flipped, b"ctx", &a), Err(SealError::Tampered));
        // Flip a byte inside the recipient's KEM ciphertext.
        let mut parsed: Sealed = postcard::from_bytes(&sealed).unwrap();
        parsed.recipients[0].kem_ciphertext[5] ^= 1;
        let bytes = postcard::to_stdvec(&parsed).unwrap();
        assert_eq!(open(&bytes, b"ctx", &a), Err(SealError::Tampered));
        assert!(matches!(
            open(b"junk", b"ctx", &a),
            Err(SealError::Malformed(_))
        ));
        assert!(seal(b"x", b"", &[]).is_err());
    }
}
