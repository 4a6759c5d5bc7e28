//! The messages of a run, as published on the session's topic (the node
//! wraps each in a signed envelope; the author is the request whose peer
//! signed it).
//!
//! Every message names its session and run, and lists the hashes of the
//! previous phase's messages its author saw, in run order: this stands in
//! for the reliable broadcast DiceMix assumes. Two different messages from
//! one author for one phase of a run are proof of equivocation.

use serde::{Deserialize, Serialize};

use crate::{
    dcnet::Slot,
    exclusion::Phase,
    field::Fe,
    kex::{serde_bytes_vec, PublicKeys},
    pairing::RequestId,
};

/// Largest encoded run message (the ciphertexts of 64 peers fit).
pub const MAX_MESSAGE_BYTES: usize = 96 * 1024;

/// A message's hash (what later messages list as seen).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageHash(pub [u8; 32]);

impl std::fmt::Debug for MessageHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageHash({})", hex::encode(&self.0[..6]))
    }
}

/// One signature of a transaction input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSignature {
    /// The input's index in the sorted transaction.
    pub input: u32,
    /// The signature (64 bytes for SIGHASH_DEFAULT).
    #[serde(with = "serde_bytes_vec")]
    pub signature: Vec<u8>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Public keys, and a commitment to the seed and output keys.
    KeyExchange {
        /// X25519 and ML-KEM-768 public keys.
        keys: PublicKeys,
        /// BLAKE3 over the run seed and the output keys.
        commitment: [u8; 32],
        /// The run's participants as the author sees them (its view).
        participants: Vec<RequestId>,
    },
    /// One ML-KEM ciphertext per participant in run order (empty for
    /// the author itself).
    Ciphertexts {
        /// The ciphertexts.
        ciphertexts: Vec<Ciphertext>,
        /// Hashes of the key exchanges seen.
        seen: Vec<MessageHash>,
    },
    /// The padded power sums of the author's slot messages.
    SlotReservation {
        /// One element per message of the run.
        vector: Vec<Fe>,
        /// Hashes of the ciphertext messages seen.
        seen: Vec<MessageHash>,
    },
    /// The author's XOR DC-net vector.
    DcNet {
        /// One slot per message of the run.
        vector: Vec<Slot>,
        /// Hashes of the slot reservations seen.
        seen: Vec<MessageHash>,
    },
    /// The author found its outputs, every key valid: the DC-net succeeded.
    Accept {
        /// Hashes of the DC-net messages seen.
        seen: Vec<MessageHash>,
    },
    /// The author reveals its run secrets so the run can be replayed.
    Reveal {
        /// The run seed.
        seed: [u8; 32],
        /// The output keys it committed to.
        output_keys: Vec<Slot>,
        /// The failure it claims (it started the blame), or `None` when it
        /// reveals because others did.
        claim: Option<Phase>,
        /// Hashes of the reveals it answers.
        seen: Vec<MessageHash>,
    },
    /// Signatures of the author's inputs (after every peer accepted).
    Signatures {
        /// One per input it owns.
        signatures: Vec<InputSignature>,
        /// Hashes of the accept messages seen.
        seen: Vec<MessageHash>,
    },
}

/// A ciphertext (its own type so the encoding is compact bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ciphertext(#[serde(with = "serde_bytes_vec")] pub Vec<u8>);

impl Body {
    /// The phase this message belongs to (a reveal belongs to blame).
    pub fn phase(&self) -> Phase {
        match self {
            Body::KeyExchange { .. } => Phase::KeyExchange,
            Body::Ciphertexts { .. } => Phase::Ciphertexts,
            Body::SlotReservation { .. } => Phase::SlotReservation,
            Body::DcNet { .. } => Phase::DcNet,
            Body::Accept { .. } => Phase::Acceptance,
            Body::Reveal { .. } => Phase::Blame,
            Body::Signatures { .. } => Phase::Signatures,
        }
    }

    /// The previous phase's hashes it lists.
    pub fn seen(&self) -> &[MessageHash] {
        match self {
            Body::KeyExchange { .. } => &[],
            Body::Ciphertexts { seen, .. }
            | Body::SlotReservation { seen, .. }
            | Body::DcNet { seen, .. }
            | Body::Accept { seen }
            | Body::Reveal { seen, .. }
            | Body::Signatures { seen, .. } => seen,
        }
    }
}

/// A run message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMessage {
    /// The session.
    pub session_id: [u8; 32],
    /// The run within it.
    pub run: u32,
    /// What it says.
    pub body: Body,
}

/// Not a run message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("run message of {0} bytes exceeds {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// Not decodable.
    #[error("malformed run message: {0}")]
    Malformed(String),
}

impl RunMessage {
    /// The encoding that is published.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("run messages serialise")
    }

    /// Decodes a published message, refusing oversized ones first.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// Its hash.
    pub fn hash(&self) -> MessageHash {
        hash_encoded(&self.encode())
    }
}

/// The hash of an encoded message.
pub fn hash_encoded(bytes: &[u8]) -> MessageHash {
    let mut h = blake3::Hasher::new_derive_key("conclave coinjoin run message v1");
    h.update(bytes);
    MessageHash(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_roundtrip_and_oversized_or_garbage_bytes_are_refused() {
        let m = RunMessage {
            session_id: [1; 32],
            run: 3,
            body: Body::SlotReservation {
                vector: vec![Fe::from(5), Fe::from(9)],
                seen: vec![MessageHash([2; 32])],
            },
        };
        let bytes = m.encode();
        assert_eq!(RunMessage::decode(&bytes).unwrap(), m);
        assert_eq!(m.hash(), hash_encoded(&bytes));
        assert_eq!(
            RunMessage::decode(&vec![0; MAX_MESSAGE_BYTES + 1]),
            Err(DecodeError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
        assert!(matches!(
            RunMessage::decode(&bytes[..bytes.len() - 3]),
            Err(DecodeError::Malformed(_))
        ));
        // A non-canonical field element does not decode.
        let mut bad = bytes.clone();
        let at = bad.len() - 32 - 1 - 32;
        bad[at..at + 16].copy_from_slice(&[0xff; 16]);
        assert!(matches!(
            RunMessage::decode(&bad),
            Err(DecodeError::Malformed(_))
        ));
    }
}
