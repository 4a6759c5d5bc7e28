//! ML-DSA-65 on the message path: aws-lc-rs (already in the build for
//! QUIC's TLS) signs and verifies envelopes several times faster than the
//! pure-Rust `ml-dsa` crate, from the same FIPS 204 seed, always with the
//! empty FIPS 204 context (the envelope's BLAKE3 digest binds its tag). The
//! `ml-dsa` crate stays the reference: identity records are signed with it,
//! and the tests below check that both implementations agree.

use std::{num::NonZeroUsize, sync::Arc};

use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, PqdsaKeyPair, ML_DSA_65, ML_DSA_65_SIGNING,
};
use lru::LruCache;

use super::pq::{IdentityError, ML_DSA_SEED_LEN};

/// Our ML-DSA-65 key for signing messages.
pub(crate) struct MessageSigner(PqdsaKeyPair);

impl MessageSigner {
    /// The key FIPS 204 derives from `seed` (the one `ml-dsa` derives).
    pub fn from_seed(seed: &[u8; ML_DSA_SEED_LEN]) -> Result<Self, IdentityError> {
        PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, seed)
            .map(Self)
            .map_err(|e| IdentityError::Malformed {
                what: "ML-DSA seed",
                reason: e.to_string(),
            })
    }

    /// The encoded verifying key.
    pub fn public_key(&self) -> &[u8] {
        self.0.public_key().as_ref()
    }

    /// Signs `message` with the empty context.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let mut signature = vec![0u8; ML_DSA_65_SIGNING.signature_len()];
        let len = self
            .0
            .sign(message, &mut signature)
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        signature.truncate(len);
        Ok(signature)
    }
}

/// A parsed ML-DSA-65 verifying key.
pub struct VerifyingKey(ParsedPublicKey);

impl VerifyingKey {
    /// Parses an encoded key; `None` if it is not an ML-DSA-65 key.
    pub fn parse(public: &[u8]) -> Option<Self> {
        ParsedPublicKey::new(&ML_DSA_65, public).ok().map(Self)
    }

    /// Whether `signature` signs `message` (empty context).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify_sig(message, signature).is_ok()
    }
}

/// Verifies with a key parsed for this one check.
pub fn verify(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    VerifyingKey::parse(public).is_some_and(|key| key.verify(message, signature))
}

/// Parsed verifying keys of recent senders, by the BLAKE3 hash of their
/// encoding (parsing costs about as much as a verification).
pub struct VerifyingKeyCache {
    keys: std::sync::Mutex<LruCache<[u8; 32], Arc<VerifyingKey>>>,
}

impl VerifyingKeyCache {
    /// A cache of at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            keys: std::sync::Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The parsed key for `public`, parsed now if not cached; `None` if it
    /// is not an ML-DSA-65 key (not cached).
    pub fn get(&self, public: &[u8]) -> Option<Arc<VerifyingKey>> {
        let id = *blake3::hash(public).as_bytes();
        if let Some(key) = self.lock().get(&id) {
            return Some(key.clone());
        }
        let key = Arc::new(VerifyingKey::parse(public)?);
        self.lock().put(id, key.clone());
        Some(key)
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<[u8; 32], Arc<VerifyingKey>>> {
        // A panic while holding the lock leaves a usable cache.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use ml_dsa::{signature::Keypair as _, MlDsa65};

    use super::*;

    fn reference_key(seed: &[u8; 32]) -> ml_dsa::SigningKey<MlDsa65> {
        ml_dsa::SigningKey::<MlDsa65>::from_seed(&(*seed).into())
    }

    #[test]
    fn both_implementations_derive_the_same_key_and_verify_each_other() {
        for seed in [[0u8; 32], [0x5a; 32], *blake3::hash(b"seed").as_bytes()] {
            let fast = MessageSigner::from_seed(&seed).unwrap();
            let reference = reference_key(&seed);
            let public = reference.verifying_key().encode().to_vec();
            assert_eq!(fast.public_key(), public.as_slice(), "same public key");

            let message = b"conclave envelope digest";
            let by_fast = fast.sign(message).unwrap();
            assert!(
                super::super::pq::verify_ml_dsa(&public, message, b"", &by_fast),
                "the reference verifies aws-lc-rs's signature"
            );
            let by_reference = reference
                .expanded_key()
                .sign_deterministic(message, b"")
                .unwrap()
                .encode()
                .to_vec();
            assert!(
                verify(&public, message, &by_reference),
                "aws-lc-rs verifies the reference's signature"
            );
            assert!(!verify(&public, b"another message", &by_fast));
            // A signature under a non-empty context is another signature.
            let with_context = reference
                .expanded_key()
                .sign_deterministic(message, b"ctx")
                .unwrap()
                .encode()
                .to_vec();
            assert!(!verify(&public, message, &with_context));
        }
    }

    #[test]
    fn malformed_keys_and_signatures_do_not_verify() {
        let fast = MessageSigner::from_seed(&[1; 32]).unwrap();
        let signature = fast.sign(b"m").unwrap();
        assert!(!verify(&[0u8; 10], b"m", &signature));
        assert!(!verify(fast.public_key(), b"m", &signature[..100]));
        assert!(VerifyingKey::parse(b"not a key").is_none());
    }

    #[test]
    fn the_cache_parses_each_key_once_and_is_bounded() {
        let cache = VerifyingKeyCache::new(2);
        let keys: Vec<MessageSigner> = (0..3u8)
            .map(|i| MessageSigner::from_seed(&[i; 32]).unwrap())
            .collect();
        let first = cache.get(keys[0].public_key()).unwrap();
        let again = cache.get(keys[0].public_key()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "parsed once");
        assert!(cache.get(b"garbage").is_none());
        assert_eq!(cache.len(), 1, "garbage is not cached");
        for key in &keys {
            cache.get(key.public_key()).unwrap();
        }
        assert_eq!(cache.len(), 2);
        let signature = keys[2].sign(b"m").unwrap();
        assert!(cache
            .get(keys[2].public_key())
            .unwrap()
            .verify(b"m", &signature));
    }
}
