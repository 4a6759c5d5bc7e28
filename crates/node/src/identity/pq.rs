//! The node's key set and its post-quantum identity record.
//!
//! A node has an Ed25519 key (its PeerId), an ML-DSA-65 signing key and an
//! ML-KEM-768 decapsulation key; an X25519 key for the classical half of the
//! hybrid KEM is derived from the ML-KEM seed, so the KEM secret is one unit.
//! The [`PqIdentityRecord`] binds the public halves to the PeerId and is
//! signed by both the Ed25519 and the ML-DSA key.

use libp2p::{identity::Keypair, PeerId};
use ml_dsa::{signature::Keypair as _, KeyExport as _, MlDsa65};
use ml_kem::MlKem768;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::unix_secs;

/// Bytes of an ML-DSA-65 seed.
pub const ML_DSA_SEED_LEN: usize = 32;
/// Bytes of an ML-KEM-768 seed (d || z).
pub const ML_KEM_SEED_LEN: usize = 64;
/// Bytes of an ML-DSA-65 public key.
pub const ML_DSA_PUBLIC_LEN: usize = 1952;
/// Bytes of an ML-KEM-768 encapsulation key.
pub const ML_KEM_PUBLIC_LEN: usize = 1184;
/// Bytes of an ML-DSA-65 signature.
pub const ML_DSA_SIGNATURE_LEN: usize = 3309;

const RECORD_CONTEXT: &str = "conclave pq-identity record v1";
const RECORD_ML_DSA_CTX: &[u8] = b"conclave/pq-identity/v1";
const X25519_FROM_KEM_CONTEXT: &str = "conclave x25519 from ml-kem seed v1";

/// Errors of keys and identity records.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The PeerId does not embed an Ed25519 key.
    #[error("peer id {0} does not carry an Ed25519 public key")]
    NotEd25519(PeerId),
    /// Encoded key or record has the wrong shape.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A signature did not verify.
    #[error("invalid {which} signature on the PQ identity record of {peer}")]
    BadSignature {
        /// "Ed25519" or "ML-DSA-65".
        which: &'static str,
        /// Whose record.
        peer: PeerId,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut out);
    out
}

/// The Ed25519 public key embedded in an identity-multihash PeerId.
pub fn ed25519_public_of(peer: &PeerId) -> Result<libp2p::identity::PublicKey, IdentityError> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if multihash.code() != 0 {
        return Err(IdentityError::NotEd25519(*peer));
    }
    libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest())
        .map_err(|_| IdentityError::NotEd25519(*peer))
}

/// The secret seeds of a key set, for storage (keychain, key file, backup).
/// Zeroised on drop.
#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SecretSeeds {
    /// Ed25519 keypair, libp2p protobuf encoding.
    pub ed25519: Vec<u8>,
    /// ML-DSA-65 seed.
    pub ml_dsa: Vec<u8>,
    /// ML-KEM-768 seed.
    pub ml_kem: Vec<u8>,
}

/// The node's secret keys and its signed identity record.
pub struct NodeIdentity {
    keypair: Keypair,
    ml_dsa: ml_dsa::SigningKey<MlDsa65>,
    /// The same ML-DSA key, for messages (aws-lc-rs; see [`super::ml_dsa`]).
    message_signer: super::ml_dsa::MessageSigner,
    ml_kem: ml_kem::DecapsulationKey<MlKem768>,
    ml_kem_seed: Zeroizing<[u8; ML_KEM_SEED_LEN]>,
    x25519: x25519_dalek::StaticSecret,
    record: PqIdentityRecord,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("NodeIdentity")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl From<Keypair> for NodeIdentity {
    /// Pairs an existing libp2p key with freshly generated PQ keys.
    fn from(keypair: Keypair) -> Self {
        Self::from_parts(keypair, &random_bytes(), &random_bytes())
            .expect("fresh keys are well-formed")
    }
}

impl NodeIdentity {
    /// Generates a new key set.
    pub fn generate() -> Self {
        Keypair::generate_ed25519().into()
    }

    /// Builds the key set from its secrets and signs a fresh identity record.
    pub fn from_parts(
        keypair: Keypair,
        ml_dsa_seed: &[u8; ML_DSA_SEED_LEN],
        ml_kem_seed: &[u8; ML_KEM_SEED_LEN],
    ) -> Result<Self, IdentityError> {
        if keypair.key_type() != libp2p::identity::KeyType::Ed25519 {
            return Err(IdentityError::Malformed {
                what: "libp2p key",
                reason: "only Ed25519 keys are used for PeerIds".into(),
            });
        }
        let ml_dsa = ml_dsa::SigningKey::<MlDsa65>::from_seed(&(*ml_dsa_seed).into());
        let message_signer = super::ml_dsa::MessageSigner::from_seed(ml_dsa_seed)?;
        if message_signer.public_key() != ml_dsa.verifying_key().encode().as_slice() {
            return Err(IdentityError::Malformed {
                what: "ML-DSA seed",
                reason: "the two ML-DSA-65 implementations derive different keys from it".into(),
            });
        }
        let ml_kem = ml_kem::DecapsulationKey::<MlKem768>::from_seed((*ml_kem_seed).into());
        let x25519_secret =
            Zeroizing::new(blake3::derive_key(X25519_FROM_KEM_CONTEXT, ml_kem_seed));
        let x25519 = x25519_dalek::StaticSecret::from(*x25519_secret);
        let mut identity = Self {
            record: PqIdentityRecord::placeholder(keypair.public().to_peer_id()),
            keypair,
            ml_dsa,
            message_signer,
            ml_kem,
            ml_kem_seed: Zeroizing::new(*ml_kem_seed),
            x25519,
        };
        identity.record = identity.sign_record()?;
        Ok(identity)
    }

    /// Rebuilds the key set from stored seeds.
    pub fn from_seeds(seeds: &SecretSeeds) -> Result<Self, IdentityError> {
        let malformed =
            |what: &'static str, reason: String| IdentityError::Malformed { what, reason };
        let keypair = Keypair::from_protobuf_encoding(&seeds.ed25519)
            .map_err(|e| malformed("Ed25519 key", e.to_string()))?;
        let ml_dsa: [u8; ML_DSA_SEED_LEN] = seeds
            .ml_dsa
            .as_slice()
            .try_into()
            .map_err(|_| malformed("ML-DSA seed", format!("{} bytes", seeds.ml_dsa.len())))?;
        let ml_kem: [u8; ML_KEM_SEED_LEN] = seeds
            .ml_kem
            .as_slice()
            .try_into()
            .map_err(|_| malformed("ML-KEM seed", format!("{} bytes", seeds.ml_kem.len())))?;
        Self::from_parts(keypair, &ml_dsa, &ml_kem)
    }

    /// The secret seeds, for storage.
    pub fn seeds(&self) -> SecretSeeds {
        SecretSeeds {
            ed25519: self
                .keypair
                .to_protobuf_encoding()
                .expect("Ed25519 keys encode"),
            ml_dsa: self.ml_dsa.to_seed().to_vec(),
            ml_kem: self.ml_kem_seed.to_vec(),
        }
    }

    fn sign_record(&self) -> Result<PqIdentityRecord, IdentityError> {
        let mut record = PqIdentityRecord {
            peer_id: self.peer_id(),
            ml_dsa_public: self.ml_dsa.verifying_key().encode().to_vec(),
            ml_kem_public: self.ml_kem.encapsulation_key().to_bytes().to_vec(),
            x25519_public: x25519_dalek::PublicKey::from(&self.x25519).to_bytes(),
            issued_at: unix_secs(),
            ed25519_signature: Vec::new(),
            ml_dsa_signature: Vec::new(),
        };
        let digest = record.digest();
        record.ed25519_signature = self
            .keypair
            .sign(&digest)
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        record.ml_dsa_signature = self.sign_ml_dsa(&digest, RECORD_ML_DSA_CTX)?;
        Ok(record)
    }

    /// The libp2p keypair.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// Our PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// Our signed identity record.
    pub fn record(&self) -> &PqIdentityRecord {
        &self.record
    }

    /// Signs `message` with ML-DSA-65 under the domain `ctx`.
    pub fn sign_ml_dsa(&self, message: &[u8], ctx: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.ml_dsa
            .expanded_key()
            .sign_deterministic(message, ctx)
            .map(|s| s.encode().to_vec())
            .map_err(|e| IdentityError::Signing(e.to_string()))
    }

    /// Signs `message` with ML-DSA-65 under the empty context, on the fast
    /// path (envelopes, whose digest binds their own domain tag).
    pub fn sign_ml_dsa_message(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.message_signer.sign(message)
    }

    /// Signs `message` with Ed25519.
    pub fn sign_ed25519(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.keypair
            .sign(message)
            .map_err(|e| IdentityError::Signing(e.to_string()))
    }

    pub(crate) fn ml_kem(&self) -> &ml_kem::DecapsulationKey<MlKem768> {
        &self.ml_kem
    }

    pub(crate) fn x25519(&self) -> &x25519_dalek::StaticSecret {
        &self.x25519
    }
}

/// Binds the PQ public keys of a node to its PeerId. Signed by the Ed25519 key
/// behind the PeerId and by the ML-DSA key it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PqIdentityRecord {
    /// Whose keys these are.
    pub peer_id: PeerId,
    /// ML-DSA-65 verifying key.
    #[serde(with = "serde_bytes")]
    pub ml_dsa_public: Vec<u8>,
    /// ML-KEM-768 encapsulation key.
    #[serde(with = "serde_bytes")]
    pub ml_kem_public: Vec<u8>,
    /// X25519 public key (classical half of the hybrid KEM).
    pub x25519_public: [u8; 32],
    /// Unix seconds when the record was signed.
    pub issued_at: u64,
    /// Ed25519 signature over the record digest.
    #[serde(with = "serde_bytes")]
    pub ed25519_signature: Vec<u8>,
    /// ML-DSA-65 signature over the record digest.
    #[serde(with = "serde_bytes")]
    pub ml_dsa_signature: Vec<u8>,
}

impl PqIdentityRecord {
    fn placeholder(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            ml_dsa_public: Vec::new(),
            ml_kem_public: Vec::new(),
            x25519_public: [0; 32],
            issued_at: 0,
            ed25519_signature: Vec::new(),
            ml_dsa_signature: Vec::new(),
        }
    }

    /// BLAKE3 digest of the signed fields, domain-separated.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(RECORD_CONTEXT);
        let peer = self.peer_id.to_bytes();
        for field in [
            &peer[..],
            &self.ml_dsa_public,
            &self.ml_kem_public,
            &self.x25519_public,
        ] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field);
        }
        h.update(&self.issued_at.to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// A short fingerprint of the PQ keys (hex), for people to compare.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&self.ml_dsa_public);
        h.update(&self.ml_kem_public);
        h.update(&self.x25519_public);
        hex::encode(&h.finalize().as_bytes()[..16])
    }

    /// Checks both signatures and the key sizes.
    pub fn verify(&self) -> Result<(), IdentityError> {
        if self.ml_dsa_public.len() != ML_DSA_PUBLIC_LEN
            || self.ml_kem_public.len() != ML_KEM_PUBLIC_LEN
        {
            return Err(IdentityError::Malformed {
                what: "PQ identity record",
                reason: "public keys have the wrong length".into(),
            });
        }
        let digest = self.digest();
        let ed = ed25519_public_of(&self.peer_id)?;
        if !ed.verify(&digest, &self.ed25519_signature) {
            return Err(IdentityError::BadSignature {
                which: "Ed25519",
                peer: self.peer_id,
            });
        }
        if !verify_ml_dsa(
            &self.ml_dsa_public,
            &digest,
            RECORD_ML_DSA_CTX,
            &self.ml_dsa_signature,
        ) {
            return Err(IdentityError::BadSignature {
                which: "ML-DSA-65",
                peer: self.peer_id,
            });
        }
        Ok(())
    }

    /// Compact binary encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("records serialise")
    }

    /// Decodes and verifies a record.
    pub fn from_bytes_verified(bytes: &[u8]) -> Result<Self, IdentityError> {
        let record: Self = postcard::from_bytes(bytes).map_err(|e| IdentityError::Malformed {
            what: "PQ identity record",
            reason: e.to_string(),
        })?;
        record.verify()?;
        Ok(record)
    }
}

/// Verifies an ML-DSA-65 signature; false on any malformed input.
pub fn verify_ml_dsa(public: &[u8], message: &[u8], ctx: &[u8], signature: &[u8]) -> bool {
    let Ok(public) = <&ml_dsa::EncodedVerifyingKey<MlDsa65>>::try_from(public) else {
        return false;
    };
    let Ok(signature) = <&ml_dsa::EncodedSignature<MlDsa65>>::try_from(signature) else {
        return false;
    };
    let Some(signature) = ml_dsa::Signature::<MlDsa65>::decode(signature) else {
        return false;
    };
    ml_dsa::VerifyingKey::<MlDsa65>::decode(public).verify_with_context(message, ctx, &signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_verifies_and_round_trips() {
        let id = NodeIdentity::generate();
        let bytes = id.record().to_bytes();
        let back = PqIdentityRecord::from_bytes_verified(&bytes).unwrap();
        assert_eq!(&back, id.record());
        assert_eq!(back.peer_id, id.peer_id());
        assert_eq!(back.ml_dsa_public.len(), ML_DSA_PUBLIC_LEN);
    }

    #[test]
    fn seeds_restore_the_same_keys() {
        let id = NodeIdentity::generate();
        let again = NodeIdentity::from_seeds(&id.seeds()).unwrap();
        assert_eq!(again.peer_id(), id.peer_id());
        assert_eq!(again.record().fingerprint(), id.record().fingerprint());
    }

    #[test]
    fn tampered_records_are_refused() {
        let id = NodeIdentity::generate();
        let other = NodeIdentity::generate();
        let mut swapped = id.record().clone();
        swapped.ml_kem_public = other.record().ml_kem_public.clone();
        assert!(matches!(
            swapped.verify(),
            Err(IdentityError::BadSignature {
                which: "Ed25519",
                ..
            })
        ));

        // Someone else's PeerId with our (validly ML-DSA-signed) keys.
        let mut stolen = id.record().clone();
        stolen.peer_id = other.peer_id();
        assert!(stolen.verify().is_err());

        let mut bad_pq = id.record().clone();
        bad_pq.ml_dsa_signature[10] ^= 1;
        assert!(matches!(
            bad_pq.verify(),
            Err(IdentityError::BadSignature {
                which: "ML-DSA-65",
                ..
            })
        ));
        assert!(PqIdentityRecord::from_bytes_verified(b"junk").is_err());
    }
}
