//! Detached signed statements: what a peer says in a room, signed so that
//! anyone can check it long after the node's 5-minute envelope window.
//!
//! A [`Statement`] carries its payload, its signer's PeerId (the Ed25519
//! key is embedded in it), the signer's ML-DSA-65 verifying key, the time
//! the signer gave it, and two signatures over one BLAKE3 digest of all of
//! that: Ed25519 AND ML-DSA-65 (with the statement's domain as the ML-DSA
//! context). Both must verify. The domain separates kinds of statements, so
//! a signed bid can never pass for a signed result.
//!
//! Signing goes through the [`StatementSigner`] trait: the node implements
//! it over its identity keys; [`LocalSigner`] implements it over the same
//! key types for tests and tools that hold their own keys.

use std::collections::BTreeMap;

use libp2p_identity::{Keypair, PeerId, PublicKey};
use ml_dsa::{signature::Keypair as _, MlDsa65};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Bytes of an ML-DSA-65 verifying key.
pub const ML_DSA_PUBLIC_LEN: usize = 1952;
/// Bytes of an ML-DSA-65 signature.
pub const ML_DSA_SIGNATURE_LEN: usize = 3309;
/// Bytes of an Ed25519 signature.
pub const ED25519_SIGNATURE_LEN: usize = 64;
/// Largest payload a statement may carry.
pub const MAX_PAYLOAD_LEN: usize = 1024 * 1024;
/// Longest domain tag (ML-DSA contexts are at most 255 bytes).
pub const MAX_DOMAIN_LEN: usize = 64;

const DIGEST_CONTEXT: &str = "conclave rooms statement v1";

/// Why a statement could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The key refused or failed to sign.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The payload or domain is too long.
    #[error("statement too large: {0}")]
    TooLarge(String),
}

/// Why a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// Not decodable.
    #[error("malformed statement: {0}")]
    Malformed(String),
    /// Signed for another kind of statement.
    #[error("statement is a {found:?}, expected a {expected:?}")]
    WrongDomain {
        /// The domain the reader expects.
        expected: String,
        /// The domain it carries.
        found: String,
    },
    /// A key or signature has the wrong length, or the payload is too large.
    #[error("statement from {0} has fields of the wrong size")]
    BadSize(PeerId),
    /// The PeerId carries no Ed25519 key.
    #[error("signer {0} has no Ed25519 key in its PeerId")]
    NotEd25519(PeerId),
    /// The Ed25519 signature does not verify.
    #[error("invalid Ed25519 signature from {0}")]
    BadEd25519(PeerId),
    /// The ML-DSA-65 signature does not verify.
    #[error("invalid ML-DSA-65 signature from {0}")]
    BadMlDsa(PeerId),
    /// The ML-DSA key is not the one known for the signer.
    #[error("ML-DSA key of {0} is not the one pinned for it")]
    KeyMismatch(PeerId),
    /// The payload does not decode as the expected body (the text names
    /// the signer, the domain and the fault).
    #[error("{0}")]
    BadBody(String),
}

/// Something that signs statements with a peer's two identity keys. The
/// node implements this over its identity (`NodeIdentity::sign_ed25519` and
/// `sign_ml_dsa`); [`LocalSigner`] does it over keys it holds itself.
pub trait StatementSigner: Send + Sync {
    /// The signer's PeerId (its Ed25519 public key).
    fn peer_id(&self) -> PeerId;
    /// The signer's ML-DSA-65 verifying key (1952 bytes).
    fn ml_dsa_public(&self) -> Vec<u8>;
    /// An Ed25519 signature over `digest`.
    fn sign_ed25519(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError>;
    /// An ML-DSA-65 signature over `digest` under the context `ctx`.
    fn sign_ml_dsa(&self, digest: &[u8; 32], ctx: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// ML-DSA keys known to belong to peers (from their verified PQ identity
/// records). A statement from a pinned peer must carry the pinned key, so a
/// forger of Ed25519 alone cannot substitute its own ML-DSA key.
pub trait KeyPins {
    /// The pinned ML-DSA-65 key of `peer`, if one is known.
    fn pinned_ml_dsa(&self, peer: &PeerId) -> Option<Vec<u8>>;
}

/// No pins: each statement vouches for its own ML-DSA key.
pub struct NoPins;

impl KeyPins for NoPins {
    fn pinned_ml_dsa(&self, _peer: &PeerId) -> Option<Vec<u8>> {
        None
    }
}

impl KeyPins for BTreeMap<PeerId, Vec<u8>> {
    fn pinned_ml_dsa(&self, peer: &PeerId) -> Option<Vec<u8>> {
        self.get(peer).cloned()
    }
}

/// A signed statement (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// What kind of statement this is (a domain tag such as
    /// `conclave/rooms/bid/v1`).
    pub domain: String,
    /// Who signed it.
    pub signer: PeerId,
    /// The signer's ML-DSA-65 verifying key.
    #[serde(with = "serde_bytes")]
    pub ml_dsa_public: Vec<u8>,
    /// When the signer says it signed (ms since the Unix epoch).
    pub signed_at_ms: u64,
    /// The body (postcard-encoded, see [`Statement::body`]).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Ed25519 signature over the digest.
    #[serde(with = "serde_bytes")]
    pub ed25519_signature: Vec<u8>,
    /// ML-DSA-65 signature over the digest, context = the domain.
    #[serde(with = "serde_bytes")]
    pub ml_dsa_signature: Vec<u8>,
}

/// A statement's identity: the BLAKE3 digest its signatures cover.
pub type StatementId = [u8; 32];

fn digest_of(
    domain: &str,
    signer: &PeerId,
    ml_dsa_public: &[u8],
    signed_at_ms: u64,
    payload: &[u8],
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
    let signer = signer.to_bytes();
    for field in [domain.as_bytes(), &signer, ml_dsa_public, payload] {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field);
    }
    h.update(&signed_at_ms.to_le_bytes());
    *h.finalize().as_bytes()
}

impl Statement {
    /// Signs `body` (postcard-encoded) as a `domain` statement at `now_ms`.
    pub fn sign<T: Serialize>(
        signer: &dyn StatementSigner,
        domain: &str,
        body: &T,
        now_ms: u64,
    ) -> Result<Self, SignError> {
        let payload = postcard::to_stdvec(body).map_err(|e| SignError::Signing(e.to_string()))?;
        Self::sign_bytes(signer, domain, payload, now_ms)
    }

    /// Signs raw `payload` bytes as a `domain` statement at `now_ms`.
    pub fn sign_bytes(
        signer: &dyn StatementSigner,
        domain: &str,
        payload: Vec<u8>,
        now_ms: u64,
    ) -> Result<Self, SignError> {
        if domain.len() > MAX_DOMAIN_LEN {
            return Err(SignError::TooLarge(format!(
                "domain of {} bytes",
                domain.len()
            )));
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(SignError::TooLarge(format!(
                "payload of {} bytes exceeds {MAX_PAYLOAD_LEN}",
                payload.len()
            )));
        }
        let peer = signer.peer_id();
        let ml_dsa_public = signer.ml_dsa_public();
        let digest = digest_of(domain, &peer, &ml_dsa_public, now_ms, &payload);
        Ok(Self {
            ed25519_signature: signer.sign_ed25519(&digest)?,
            ml_dsa_signature: signer.sign_ml_dsa(&digest, domain.as_bytes())?,
            domain: domain.to_string(),
            signer: peer,
            ml_dsa_public,
            signed_at_ms: now_ms,
            payload,
        })
    }

    /// The digest both signatures cover; also the statement's id.
    pub fn id(&self) -> StatementId {
        digest_of(
            &self.domain,
            &self.signer,
            &self.ml_dsa_public,
            self.signed_at_ms,
            &self.payload,
        )
    }

    /// Checks the domain, the sizes and both signatures.
    pub fn verify(&self, domain: &str) -> Result<(), StatementError> {
        self.verify_pinned(domain, &NoPins)
    }

    /// As [`Statement::verify`], and the ML-DSA key must be the one `pins`
    /// holds for the signer (if it holds one).
    pub fn verify_pinned(&self, domain: &str, pins: &dyn KeyPins) -> Result<(), StatementError> {
        if self.domain != domain {
            return Err(StatementError::WrongDomain {
                expected: domain.to_string(),
                found: self.domain.clone(),
            });
        }
        let signer = self.signer;
        if self.ml_dsa_public.len() != ML_DSA_PUBLIC_LEN
            || self.ml_dsa_signature.len() != ML_DSA_SIGNATURE_LEN
            || self.ed25519_signature.len() != ED25519_SIGNATURE_LEN
            || self.payload.len() > MAX_PAYLOAD_LEN
        {
            return Err(StatementError::BadSize(signer));
        }
        if let Some(pinned) = pins.pinned_ml_dsa(&signer) {
            if pinned != self.ml_dsa_public {
                return Err(StatementError::KeyMismatch(signer));
            }
        }
        let digest = self.id();
        let ed = ed25519_public_of(&signer)?;
        if !ed.verify(&digest, &self.ed25519_signature) {
            return Err(StatementError::BadEd25519(signer));
        }
        if !verify_ml_dsa(
            &self.ml_dsa_public,
            &digest,
            self.domain.as_bytes(),
            &self.ml_dsa_signature,
        ) {
            return Err(StatementError::BadMlDsa(signer));
        }
        Ok(())
    }

    /// Verifies the statement as a `domain` statement and decodes its body.
    pub fn open<T: DeserializeOwned>(&self, domain: &str) -> Result<T, StatementError> {
        self.verify(domain)?;
        self.body()
    }

    /// Decodes the body without checking signatures (for statements already
    /// verified, e.g. inside a verified record).
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, StatementError> {
        postcard::from_bytes(&self.payload).map_err(|e| {
            StatementError::BadBody(format!(
                "statement from {} carries a malformed {} body: {e}",
                self.signer, self.domain
            ))
        })
    }

    /// Compact binary encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("statements serialise")
    }

    /// Decodes a statement (no signature check; see [`Statement::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StatementError> {
        if bytes.len() > MAX_PAYLOAD_LEN + 16 * 1024 {
            return Err(StatementError::Malformed(format!(
                "{} bytes is more than a statement may take",
                bytes.len()
            )));
        }
        postcard::from_bytes(bytes).map_err(|e| StatementError::Malformed(e.to_string()))
    }
}

/// The Ed25519 public key embedded in an identity-multihash PeerId.
pub fn ed25519_public_of(peer: &PeerId) -> Result<PublicKey, StatementError> {
    // An identity multihash: code 0, the length, then the protobuf-encoded
    // key (36 bytes for Ed25519, so both varints are one byte).
    let bytes = peer.to_bytes();
    let key = match bytes.as_slice() {
        [0, len, key @ ..] if usize::from(*len) == key.len() && *len < 0x80 => {
            PublicKey::try_decode_protobuf(key).map_err(|_| StatementError::NotEd25519(*peer))?
        }
        _ => return Err(StatementError::NotEd25519(*peer)),
    };
    if key.key_type() != libp2p_identity::KeyType::Ed25519 {
        return Err(StatementError::NotEd25519(*peer));
    }
    Ok(key)
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

/// A signer over keys it holds: a libp2p Ed25519 keypair and an ML-DSA-65
/// key, the same key types as the node's identity.
pub struct LocalSigner {
    keypair: Keypair,
    ml_dsa: ml_dsa::SigningKey<MlDsa65>,
    ml_dsa_public: Vec<u8>,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("LocalSigner")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl LocalSigner {
    /// Fresh keys.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Self::from_parts(Keypair::generate_ed25519(), &seed)
    }

    /// From an Ed25519 keypair and an ML-DSA-65 seed.
    pub fn from_parts(keypair: Keypair, ml_dsa_seed: &[u8; 32]) -> Self {
        let ml_dsa = ml_dsa::SigningKey::<MlDsa65>::from_seed(&(*ml_dsa_seed).into());
        let ml_dsa_public = ml_dsa.verifying_key().encode().to_vec();
        Self {
            keypair,
            ml_dsa,
            ml_dsa_public,
        }
    }
}

impl StatementSigner for LocalSigner {
    fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    fn ml_dsa_public(&self) -> Vec<u8> {
        self.ml_dsa_public.clone()
    }

    fn sign_ed25519(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        self.keypair
            .sign(digest)
            .map_err(|e| SignError::Signing(e.to_string()))
    }

    fn sign_ml_dsa(&self, digest: &[u8; 32], ctx: &[u8]) -> Result<Vec<u8>, SignError> {
        self.ml_dsa
            .expanded_key()
            .sign_deterministic(digest, ctx)
            .map(|s| s.encode().to_vec())
            .map_err(|e| SignError::Signing(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "conclave/rooms/test/v1";

    #[test]
    fn a_statement_verifies_long_after_it_was_signed() {
        let signer = LocalSigner::generate();
        // Signed a day ago: statements have no freshness window.
        let s = Statement::sign(&signer, DOMAIN, &(7u32, "hello".to_string()), 1_000).unwrap();
        let back = Statement::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        let body: (u32, String) = back.open(DOMAIN).unwrap();
        assert_eq!(body, (7, "hello".to_string()));
        assert_eq!(back.signer, signer.peer_id());
    }

    #[test]
    fn every_field_is_covered_by_both_signatures() {
        let signer = LocalSigner::generate();
        let s = Statement::sign(&signer, DOMAIN, &42u64, 5).unwrap();
        let peer = signer.peer_id();

        let mut t = s.clone();
        t.payload = postcard::to_stdvec(&43u64).unwrap();
        assert_eq!(t.verify(DOMAIN), Err(StatementError::BadEd25519(peer)));

        let mut t = s.clone();
        t.signed_at_ms += 1;
        assert_eq!(t.verify(DOMAIN), Err(StatementError::BadEd25519(peer)));

        let mut t = s.clone();
        t.ml_dsa_signature[7] ^= 1;
        assert_eq!(t.verify(DOMAIN), Err(StatementError::BadMlDsa(peer)));

        // Another signer's PeerId over our signatures.
        let mut t = s.clone();
        t.signer = LocalSigner::generate().peer_id();
        assert!(matches!(
            t.verify(DOMAIN),
            Err(StatementError::BadEd25519(_))
        ));

        // A domain it was not signed for is refused before any signature.
        assert!(matches!(
            s.verify("conclave/rooms/other/v1"),
            Err(StatementError::WrongDomain { .. })
        ));
        let mut t = s.clone();
        t.domain = "conclave/rooms/other/v1".into();
        assert!(t.verify("conclave/rooms/other/v1").is_err());

        let mut t = s.clone();
        t.ml_dsa_public.pop();
        assert_eq!(t.verify(DOMAIN), Err(StatementError::BadSize(peer)));
        assert!(Statement::from_bytes(b"\x00garbage").is_err());
    }

    #[test]
    fn a_substituted_ml_dsa_key_fails_for_a_pinned_peer() {
        let signer = LocalSigner::generate();
        let other = LocalSigner::generate();
        // A forger who holds only the Ed25519 key signs with its own ML-DSA key.
        let forger = LocalSigner::from_parts(
            Keypair::from_protobuf_encoding(&signer.keypair.to_protobuf_encoding().unwrap())
                .unwrap(),
            &[9; 32],
        );
        let s = Statement::sign(&forger, DOMAIN, &1u8, 1).unwrap();
        s.verify(DOMAIN).unwrap();
        let mut pins = BTreeMap::new();
        pins.insert(signer.peer_id(), signer.ml_dsa_public());
        assert_eq!(
            s.verify_pinned(DOMAIN, &pins),
            Err(StatementError::KeyMismatch(signer.peer_id()))
        );
        pins.insert(signer.peer_id(), forger.ml_dsa_public());
        s.verify_pinned(DOMAIN, &pins).unwrap();
        assert_ne!(other.ml_dsa_public(), signer.ml_dsa_public());
    }
}
