//! What a session signs and who signs it: the [`SessionSpec`] the
//! coordinator sends in its invitation, and the [`SessionContext`] every
//! participant derives from it on its own (key aggregation, tweak, the
//! messages), so nobody has to trust the coordinator's arithmetic.

use std::time::Duration;

use conclave_node::{Multiaddr, PeerId};
use musig2::{secp::Point, KeyAggContext};
use serde::{Deserialize, Serialize};

use super::{SessionId, Timeouts};
use crate::{
    keys::SignerKey,
    psbt::{self, PsbtError, PsbtSummary},
};

/// Most signers in one session (sealed payloads reach at most 64 peers).
pub const MAX_SIGNERS: usize = 64;
/// Longest message a session signs, in bytes.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Longest phase timeout accepted in an invitation.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// One signer: a key and the peer that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerEntry {
    /// The signer's public key.
    pub key: SignerKey,
    /// The peer that signs with it.
    pub peer: PeerId,
}

/// What is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// An arbitrary message, signed as is (BIP-327 allows any length).
    Message(Vec<u8>),
    /// A PSBT (binary) whose inputs are taproot key-path spends by the
    /// tweaked aggregate key; one signature per input.
    Psbt(Vec<u8>),
}

/// A session as its coordinator defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// The session's id.
    pub session_id: SessionId,
    /// The coordinating peer.
    pub coordinator: PeerId,
    /// Where the coordinator listens (for signers that must reconnect).
    pub coordinator_addrs: Vec<Multiaddr>,
    /// The signers, sorted by key (BIP-327 KeySort), each key once.
    pub signers: Vec<SignerEntry>,
    /// What is signed.
    pub payload: Payload,
    /// Phase timeouts.
    pub timeouts: Timeouts,
}

/// Why a spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Too few or too many signers.
    #[error("a session needs 1 to {MAX_SIGNERS} signers, not {0}")]
    SignerCount(usize),
    /// Keys out of KeySort order or repeated.
    #[error("signer keys must be sorted (BIP-327 KeySort) and distinct; {0} is out of place")]
    NotSorted(SignerKey),
    /// Message too long.
    #[error("message of {0} bytes exceeds {MAX_MESSAGE_LEN} bytes")]
    MessageTooLong(usize),
    /// A timeout of zero or above the maximum.
    #[error("phase timeouts must be between 1 ms and {} s", MAX_TIMEOUT.as_secs())]
    BadTimeout,
    /// Key aggregation failed.
    #[error("key aggregation failed: {0}")]
    KeyAggregation(String),
    /// The PSBT cannot be signed by this session.
    #[error(transparent)]
    Psbt(#[from] PsbtError),
    /// This node holds none of the session's keys.
    #[error("this node signs for none of the session's keys")]
    NotASigner,
}

/// What every participant derives from a spec.
#[derive(Debug, Clone)]
pub struct SessionContext {
    /// BIP-327 key aggregation over the sorted keys (with the BIP-341
    /// tweak for PSBT sessions).
    pub key_agg: KeyAggContext,
    /// The messages to sign: the message itself, or each input's sighash.
    pub messages: Vec<Vec<u8>>,
    /// The plain aggregate key, x-only (what anyone recomputes from the keys).
    pub aggregate_pubkey: [u8; 32],
    /// The plain aggregate key, compressed (BIP-373 fields name it).
    pub aggregate_pubkey_full: [u8; 33],
    /// The key the signatures verify under: the tweaked output key for a
    /// PSBT, else the aggregate key.
    pub signing_key: [u8; 32],
    /// What a PSBT spends and pays.
    pub psbt_summary: Option<PsbtSummary>,
}

impl SessionContext {
    /// Validates `spec` and derives the context.
    pub fn new(spec: &SessionSpec) -> Result<Self, SpecError> {
        let n = spec.signers.len();
        if n == 0 || n > MAX_SIGNERS {
            return Err(SpecError::SignerCount(n));
        }
        for pair in spec.signers.windows(2) {
            if pair[0].key >= pair[1].key {
                return Err(SpecError::NotSorted(pair[1].key));
            }
        }
        let t = &spec.timeouts;
        for d in [t.join, t.nonces, t.partial_signatures] {
            if d.is_zero() || d > MAX_TIMEOUT {
                return Err(SpecError::BadTimeout);
            }
        }
        let plain = KeyAggContext::new(spec.signers.iter().map(|s| s.key.point()))
            .map_err(|e| SpecError::KeyAggregation(e.to_string()))?;
        let aggregate: Point = plain.aggregated_pubkey();
        let aggregate_pubkey = aggregate.serialize_xonly();
        let (key_agg, messages, psbt_summary) = match &spec.payload {
            Payload::Message(message) => {
                if message.len() > MAX_MESSAGE_LEN {
                    return Err(SpecError::MessageTooLong(message.len()));
                }
                (plain, vec![message.clone()], None)
            }
            Payload::Psbt(bytes) => {
                let tweaked = plain
                    .with_unspendable_taproot_tweak()
                    .map_err(|e| SpecError::KeyAggregation(e.to_string()))?;
                let output: Point = tweaked.aggregated_pubkey();
                let parsed = psbt::parse(bytes)?;
                let hashes =
                    psbt::sighashes(&parsed, &aggregate_pubkey, &output.serialize_xonly())?;
                let messages = hashes.iter().map(|h| h.to_vec()).collect();
                (tweaked, messages, Some(psbt::summary(&parsed)?))
            }
        };
        let signing: Point = key_agg.aggregated_pubkey();
        Ok(Self {
            key_agg,
            messages,
            aggregate_pubkey,
            aggregate_pubkey_full: aggregate.serialize(),
            signing_key: signing.serialize_xonly(),
            psbt_summary,
        })
    }

    /// The signer index of `key` in the session.
    pub fn index_of(&self, key: &SignerKey) -> Option<usize> {
        self.key_agg.pubkey_index(key.point())
    }
}

impl SessionSpec {
    /// Keys held by `peer`, in signer order.
    pub fn keys_of(&self, peer: &PeerId) -> Vec<SignerKey> {
        self.signers
            .iter()
            .filter(|s| s.peer == *peer)
            .map(|s| s.key)
            .collect()
    }

    /// Every signer key, in order.
    pub fn keys(&self) -> Vec<SignerKey> {
        self.signers.iter().map(|s| s.key).collect()
    }

    /// The distinct signer peers, in signer order.
    pub fn peers(&self) -> Vec<PeerId> {
        super::peers_of(&self.signers)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::SecretKey;

    /// A spec over fresh keys, one peer each; returns the secrets too.
    pub(crate) fn spec_with(n: usize, payload: Payload) -> (SessionSpec, Vec<SecretKey>) {
        let mut secrets: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
        secrets.sort_by_key(|s| s.public_key());
        let signers = secrets
            .iter()
            .map(|s| SignerEntry {
                key: s.public_key(),
                peer: PeerId::random(),
            })
            .collect();
        let spec = SessionSpec {
            session_id: SessionId::random(),
            coordinator: PeerId::random(),
            coordinator_addrs: Vec::new(),
            signers,
            payload,
            timeouts: Timeouts::uniform(Duration::from_secs(5)),
        };
        (spec, secrets)
    }

    #[test]
    fn unsorted_repeated_and_empty_signers_are_refused() {
        let (mut spec, _) = spec_with(3, Payload::Message(b"m".to_vec()));
        assert!(SessionContext::new(&spec).is_ok());
        spec.signers.swap(0, 1);
        assert!(matches!(
            SessionContext::new(&spec),
            Err(SpecError::NotSorted(_))
        ));
        spec.signers.swap(0, 1);
        spec.signers[1] = spec.signers[0].clone();
        assert!(matches!(
            SessionContext::new(&spec),
            Err(SpecError::NotSorted(_))
        ));
        spec.signers.clear();
        assert_eq!(
            SessionContext::new(&spec).unwrap_err(),
            SpecError::SignerCount(0)
        );
    }

    #[test]
    fn the_aggregate_key_is_keyagg_over_the_sorted_keys() {
        let (spec, _) = spec_with(4, Payload::Message(vec![7; 40]));
        let ctx = SessionContext::new(&spec).unwrap();
        let again = KeyAggContext::new(spec.keys().iter().map(|k| k.point())).unwrap();
        let point: Point = again.aggregated_pubkey();
        assert_eq!(ctx.aggregate_pubkey, point.serialize_xonly());
        assert_eq!(
            ctx.signing_key, ctx.aggregate_pubkey,
            "no tweak for messages"
        );
        assert_eq!(ctx.messages, vec![vec![7; 40]]);
    }
}
