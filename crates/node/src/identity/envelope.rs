//! Signed envelopes: every application message travels in one.
//!
//! The envelope is signed with Ed25519 AND ML-DSA-65 over a BLAKE3 digest of
//! its fields, with a domain-separation tag per message kind, a timestamp and
//! a random nonce. Its first byte is its version ([`ENVELOPE_VERSION`]);
//! another version is refused before anything else is read. Version 2 signs
//! ML-DSA with the empty FIPS 204 context (the digest binds the tag), which
//! lets the fast implementation ([`super::ml_dsa`]) sign and verify it. A receiver checks both signatures, that the timestamp lies
//! inside the accepted window, and that the digest was not seen before (the
//! replay cache, [`super::replay`]).
//!
//! The sender's ML-DSA verifying key travels in the envelope so any node can
//! verify a message from a peer it never met. Where the node holds a verified
//! [`PqIdentityRecord`](super::pq::PqIdentityRecord) for the sender, the key
//! must be the one that record pins, so a forger of Ed25519 alone cannot
//! substitute its own ML-DSA key for a known peer.

use std::time::Duration;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::{
    ml_dsa::{self, VerifyingKeyCache},
    pq::{ed25519_public_of, random_bytes, IdentityError, NodeIdentity},
};
use crate::clock::unix_ms;

/// The envelope version this node writes and reads.
pub const ENVELOPE_VERSION: u8 = 2;
const DIGEST_CONTEXT: &str = "conclave envelope v2";
/// Envelopes older or newer than this (against our clock) are refused.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Longest life of a resource record (its TTL), one week: its envelope
/// stays valid that long.
pub const RESOURCE_MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What kind of message an envelope carries; its tag separates the domains
/// of the signatures, so a signature for one kind is useless for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Gossip on a topic.
    Gossip,
    /// A direct message to a protocol handler.
    Direct,
    /// The reply to a direct message.
    DirectReply,
    /// A DHT resource record.
    Resource,
}

impl MessageKind {
    /// The domain-separation tag.
    pub fn tag(self) -> &'static str {
        match self {
            MessageKind::Gossip => "conclave/gossip/v1",
            MessageKind::Direct => "conclave/direct/v1",
            MessageKind::DirectReply => "conclave/direct-reply/v1",
            MessageKind::Resource => "conclave/resource/v1",
        }
    }

    /// How far from our clock an envelope's timestamp may lie: minutes for
    /// messages; for resource records, which live as long as their TTL,
    /// the longest TTL on top.
    pub fn window(self) -> Duration {
        match self {
            MessageKind::Resource => RESOURCE_MAX_TTL + DEFAULT_WINDOW,
            MessageKind::Gossip | MessageKind::Direct | MessageKind::DirectReply => DEFAULT_WINDOW,
        }
    }
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a decodable envelope.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// Written by a node of another version.
    #[error(
        "envelope version {found} from another Conclave release; this node reads version {ENVELOPE_VERSION} (update the older node)"
    )]
    UnknownVersion {
        /// The first byte found.
        found: u8,
    },
    /// Signed for another kind of message or another context.
    #[error("envelope is for {found:?}, expected {expected:?}")]
    WrongKind {
        /// Expected tag.
        expected: String,
        /// Tag found.
        found: String,
    },
    /// The Ed25519 signature does not verify.
    #[error("invalid Ed25519 signature from {0}")]
    BadEd25519(PeerId),
    /// The ML-DSA-65 signature does not verify.
    #[error("invalid ML-DSA-65 signature from {0}")]
    BadMlDsa(PeerId),
    /// The ML-DSA key is not the one pinned for the sender.
    #[error("ML-DSA key of {0} does not match its verified PQ identity record")]
    KeyMismatch(PeerId),
    /// Timestamp outside the accepted window.
    #[error("envelope from {sender} is stale or from the future ({skew_secs} s off)")]
    OutsideWindow {
        /// Sender.
        sender: PeerId,
        /// Distance from our clock in seconds.
        skew_secs: u64,
    },
    /// Already seen.
    #[error("replayed envelope from {0}")]
    Replay(PeerId),
    /// Signed by someone other than the one peer that may sign it (the
    /// peer it came from, or the one asked).
    #[error("message signed by {0} instead of the peer it came from")]
    WrongSender(PeerId),
}

impl EnvelopeError {
    /// Whether the error proves misbehaviour (reject and penalise) rather than
    /// staleness or duplication (ignore).
    pub fn is_invalid(&self) -> bool {
        !matches!(
            self,
            EnvelopeError::OutsideWindow { .. }
                | EnvelopeError::Replay(_)
                | EnvelopeError::UnknownVersion { .. }
        )
    }
}

/// An envelope on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// [`ENVELOPE_VERSION`].
    pub version: u8,
    /// Domain-separation tag (a [`MessageKind`] tag).
    pub tag: String,
    /// Extra context bound into the signature (topic, protocol id, key).
    pub context: String,
    /// Signer.
    pub sender: PeerId,
    /// Milliseconds since the Unix epoch at signing.
    pub timestamp_ms: u64,
    /// Random nonce: equal payloads still give distinct envelopes.
    pub nonce: [u8; 16],
    /// The signer's ML-DSA-65 verifying key.
    #[serde(with = "serde_bytes")]
    pub ml_dsa_public: Vec<u8>,
    /// Application payload.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Ed25519 signature over the digest.
    #[serde(with = "serde_bytes")]
    pub ed25519_signature: Vec<u8>,
    /// ML-DSA-65 signature over the digest.
    #[serde(with = "serde_bytes")]
    pub ml_dsa_signature: Vec<u8>,
}

/// A verified envelope's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Signer.
    pub sender: PeerId,
    /// Payload.
    pub payload: Vec<u8>,
    /// Signing time (ms since the epoch).
    pub timestamp_ms: u64,
    /// Envelope digest (unique per envelope).
    pub digest: [u8; 32],
}

impl Envelope {
    fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
        h.update(&[self.version]);
        let sender = self.sender.to_bytes();
        for field in [
            self.tag.as_bytes(),
            self.context.as_bytes(),
            &sender,
            &self.ml_dsa_public,
            &self.payload,
        ] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field);
        }
        h.update(&self.timestamp_ms.to_le_bytes());
        h.update(&self.nonce);
        *h.finalize().as_bytes()
    }

    /// Signs `payload` as `kind` within `context` and encodes the envelope.
    pub fn sign(
        identity: &NodeIdentity,
        kind: MessageKind,
        context: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, IdentityError> {
        let mut envelope = Envelope {
            version: ENVELOPE_VERSION,
            tag: kind.tag().to_string(),
            context: context.to_string(),
            sender: identity.peer_id(),
            timestamp_ms: unix_ms(),
            nonce: random_bytes(),
            ml_dsa_public: identity.record().ml_dsa_public.clone(),
            payload: payload.to_vec(),
            ed25519_signature: Vec::new(),
            ml_dsa_signature: Vec::new(),
        };
        let digest = envelope.digest();
        envelope.ed25519_signature = identity.sign_ed25519(&digest)?;
        envelope.ml_dsa_signature = identity.sign_ml_dsa_message(&digest)?;
        Ok(postcard::to_stdvec(&envelope).expect("envelopes serialise"))
    }

    /// The sender an envelope names, read without decoding the rest (for
    /// looking up its pinned key before verifying); `None` if `bytes` is
    /// not an envelope of this version.
    pub fn sender_of(bytes: &[u8]) -> Option<PeerId> {
        #[derive(Deserialize)]
        struct Head<'a> {
            version: u8,
            #[serde(borrow)]
            _tag: &'a str,
            #[serde(borrow)]
            _context: &'a str,
            sender: PeerId,
        }
        let (head, _) = postcard::take_from_bytes::<Head<'_>>(bytes).ok()?;
        (head.version == ENVELOPE_VERSION).then_some(head.sender)
    }

    /// Decodes `bytes` and checks kind, context, both signatures, the pinned
    /// key (if `pinned_ml_dsa` is given) and the time window. Replay is
    /// checked separately ([`super::replay::ReplayCache`]) so a caller can verify off the
    /// event loop and record digests in order on it.
    pub fn verify(
        bytes: &[u8],
        kind: MessageKind,
        context: &str,
        pinned_ml_dsa: Option<&[u8]>,
        window: Duration,
    ) -> Result<Verified, EnvelopeError> {
        Self::verify_cached(bytes, kind, context, pinned_ml_dsa, window, None)
    }

    /// [`Envelope::verify`], taking the sender's parsed ML-DSA key from
    /// `keys` (and leaving it there) when given.
    pub fn verify_cached(
        bytes: &[u8],
        kind: MessageKind,
        context: &str,
        pinned_ml_dsa: Option<&[u8]>,
        window: Duration,
        keys: Option<&VerifyingKeyCache>,
    ) -> Result<Verified, EnvelopeError> {
        match bytes.first() {
            Some(&ENVELOPE_VERSION) => {}
            Some(&found) => return Err(EnvelopeError::UnknownVersion { found }),
            None => return Err(EnvelopeError::Malformed("empty".into())),
        }
        let envelope: Envelope =
            postcard::from_bytes(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if envelope.tag != kind.tag() || envelope.context != context {
            return Err(EnvelopeError::WrongKind {
                expected: format!("{} {context}", kind.tag()),
                found: format!("{} {}", envelope.tag, envelope.context),
            });
        }
        let sender = envelope.sender;
        if let Some(pinned) = pinned_ml_dsa {
            if pinned != envelope.ml_dsa_public.as_slice() {
                return Err(EnvelopeError::KeyMismatch(sender));
            }
        }
        let skew = unix_ms().abs_diff(envelope.timestamp_ms);
        if skew > window.as_millis() as u64 {
            return Err(EnvelopeError::OutsideWindow {
                sender,
                skew_secs: skew / 1000,
            });
        }
        let digest = envelope.digest();
        let ed = ed25519_public_of(&sender).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if !ed.verify(&digest, &envelope.ed25519_signature) {
            return Err(EnvelopeError::BadEd25519(sender));
        }
        let ml_dsa_valid = match keys {
            Some(keys) => keys
                .get(&envelope.ml_dsa_public)
                .is_some_and(|key| key.verify(&digest, &envelope.ml_dsa_signature)),
            None => ml_dsa::verify(&envelope.ml_dsa_public, &digest, &envelope.ml_dsa_signature),
        };
        if !ml_dsa_valid {
            return Err(EnvelopeError::BadMlDsa(sender));
        }
        Ok(Verified {
            sender,
            payload: envelope.payload,
            timestamp_ms: envelope.timestamp_ms,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(bytes: &[u8]) -> Result<Verified, EnvelopeError> {
        Envelope::verify(bytes, MessageKind::Gossip, "news", None, DEFAULT_WINDOW)
    }

    #[test]
    fn sign_then_verify() {
        let id = NodeIdentity::generate();
        let bytes = Envelope::sign(&id, MessageKind::Gossip, "news", b"hello").unwrap();
        let v = verify(&bytes).unwrap();
        assert_eq!(v.sender, id.peer_id());
        assert_eq!(v.payload, b"hello");
        let pinned = id.record().ml_dsa_public.clone();
        Envelope::verify(
            &bytes,
            MessageKind::Gossip,
            "news",
            Some(&pinned),
            DEFAULT_WINDOW,
        )
        .unwrap();
    }

    #[test]
    fn resource_records_stay_in_their_window_for_a_week_messages_for_minutes() {
        let id = NodeIdentity::generate();
        let aged = |kind: MessageKind, age: Duration| {
            let bytes = Envelope::sign(&id, kind, "k", b"x").unwrap();
            let mut e: Envelope = postcard::from_bytes(&bytes).unwrap();
            e.timestamp_ms -= age.as_millis() as u64;
            // The window is checked before the (now broken) signatures.
            Envelope::verify(
                &postcard::to_stdvec(&e).unwrap(),
                kind,
                "k",
                None,
                kind.window(),
            )
            .unwrap_err()
        };
        let day = Duration::from_secs(24 * 3600);
        assert!(matches!(
            aged(MessageKind::Resource, day),
            EnvelopeError::BadEd25519(_)
        ));
        assert!(matches!(
            aged(MessageKind::Resource, RESOURCE_MAX_TTL + day),
            EnvelopeError::OutsideWindow { .. }
        ));
        for kind in [
            MessageKind::Gossip,
            MessageKind::Direct,
            MessageKind::DirectReply,
        ] {
            let err = aged(kind, DEFAULT_WINDOW + Duration::from_secs(60));
            assert!(
                matches!(err, EnvelopeError::OutsideWindow { .. }),
                "{kind:?}: {err}"
            );
        }
    }

    #[test]
    fn every_field_is_covered() {
        let id = NodeIdentity::generate();
        let bytes = Envelope::sign(&id, MessageKind::Gossip, "news", b"hello").unwrap();
        let decoded: Envelope = postcard::from_bytes(&bytes).unwrap();
        let reencode = |e: &Envelope| postcard::to_stdvec(e).unwrap();

        let mut e = decoded.clone();
        e.payload = b"hellO".to_vec();
        assert_eq!(
            verify(&reencode(&e)),
            Err(EnvelopeError::BadEd25519(id.peer_id()))
        );

        let mut e = decoded.clone();
        e.ml_dsa_signature[100] ^= 0x40;
        assert_eq!(
            verify(&reencode(&e)),
            Err(EnvelopeError::BadMlDsa(id.peer_id()))
        );

        let mut e = decoded.clone();
        e.ed25519_signature[0] ^= 1;
        assert_eq!(
            verify(&reencode(&e)),
            Err(EnvelopeError::BadEd25519(id.peer_id()))
        );

        // Another kind or context: refused before any signature check.
        assert!(matches!(
            Envelope::verify(&bytes, MessageKind::Direct, "news", None, DEFAULT_WINDOW),
            Err(EnvelopeError::WrongKind { .. })
        ));
        assert!(matches!(
            Envelope::verify(&bytes, MessageKind::Gossip, "other", None, DEFAULT_WINDOW),
            Err(EnvelopeError::WrongKind { .. })
        ));
        assert!(matches!(
            verify(b"\x02\x02garbage"),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn another_version_is_refused_before_it_is_read_and_not_penalised() {
        let id = NodeIdentity::generate();
        let bytes = Envelope::sign(&id, MessageKind::Gossip, "news", b"hello").unwrap();
        let mut next = bytes.clone();
        next[0] = ENVELOPE_VERSION + 1;
        let refused = verify(&next).unwrap_err();
        assert_eq!(refused, EnvelopeError::UnknownVersion { found: 3 });
        assert!(!refused.is_invalid(), "ignored, not penalised");
        assert!(refused.to_string().ends_with("(update the older node)"));
        // A version-1 envelope began with its tag: it is not misread.
        #[derive(serde::Serialize)]
        struct V1<'a> {
            tag: &'a str,
            context: &'a str,
        }
        let v1 = postcard::to_stdvec(&V1 {
            tag: MessageKind::Gossip.tag(),
            context: "news",
        })
        .unwrap();
        assert!(matches!(
            verify(&v1),
            Err(EnvelopeError::UnknownVersion { found: 18 })
        ));
    }

    #[test]
    fn the_sender_is_read_from_the_head_alone() {
        let id = NodeIdentity::generate();
        let bytes = Envelope::sign(&id, MessageKind::Gossip, "news", b"hello").unwrap();
        assert_eq!(Envelope::sender_of(&bytes), Some(id.peer_id()));
        assert_eq!(Envelope::sender_of(&bytes[..20]), None);
        let mut other = bytes.clone();
        other[0] = 1;
        assert_eq!(Envelope::sender_of(&other), None);
    }

    #[test]
    fn the_key_cache_verifies_like_a_fresh_parse() {
        let id = NodeIdentity::generate();
        let keys = VerifyingKeyCache::new(4);
        for n in 0..3 {
            let bytes = Envelope::sign(&id, MessageKind::Gossip, "news", &[n]).unwrap();
            let cached = Envelope::verify_cached(
                &bytes,
                MessageKind::Gossip,
                "news",
                None,
                DEFAULT_WINDOW,
                Some(&keys),
            )
            .unwrap();
            assert_eq!(cached, verify(&bytes).unwrap());
        }
        assert_eq!(keys.len(), 1, "one sender, one parsed key");
        let bytes = Envelope::sign(&id, MessageKind::Gossip, "news", b"x").unwrap();
        let mut e: Envelope = postcard::from_bytes(&bytes).unwrap();
        e.ml_dsa_signature[5] ^= 1;
        let forged = postcard::to_stdvec(&e).unwrap();
        assert_eq!(
            Envelope::verify_cached(
                &forged,
                MessageKind::Gossip,
                "news",
                None,
                DEFAULT_WINDOW,
                Some(&keys)
            ),
            Err(EnvelopeError::BadMlDsa(id.peer_id()))
        );
    }

    #[test]
    fn a_substituted_ml_dsa_key_is_refused_for_a_pinned_peer() {
        let id = NodeIdentity::generate();
        let other = NodeIdentity::generate();
        let bytes = Envelope::sign(&id, MessageKind::Gossip, "news", b"x").unwrap();
        let wrong = other.record().ml_dsa_public.clone();
        assert_eq!(
            Envelope::verify(
                &bytes,
                MessageKind::Gossip,
                "news",
                Some(&wrong),
                DEFAULT_WINDOW
            ),
            Err(EnvelopeError::KeyMismatch(id.peer_id()))
        );
    }
}
