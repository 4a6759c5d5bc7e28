//! The node's envelope policy: signing outgoing application messages and
//! verifying incoming ones against pinned PQ identity records and the replay
//! cache. Shared by the handle (callers' tasks) and the event loop.

use std::sync::{Arc, Mutex};

use libp2p::PeerId;

use crate::{
    error::NodeError,
    identity::{
        envelope::{Envelope, EnvelopeError, MessageKind, Verified},
        ml_dsa::VerifyingKeyCache,
        pq::IdentityError,
        registry::PqRegistry,
        replay::ReplayCache,
        sealed, NodeIdentity, PqIdentityRecord,
    },
};

/// Signing and verification of envelopes for one node.
pub(crate) struct Trust {
    identity: Arc<NodeIdentity>,
    registry: Mutex<PqRegistry>,
    replay: Mutex<ReplayCache>,
    /// Parsed ML-DSA keys of recent senders.
    keys: VerifyingKeyCache,
    envelopes: bool,
}

/// Senders whose parsed ML-DSA key is kept (about 2 KiB each).
const VERIFYING_KEYS: usize = 1024;

impl Trust {
    pub fn new(identity: NodeIdentity, envelopes: bool) -> Self {
        Self {
            identity: Arc::new(identity),
            registry: Mutex::new(PqRegistry::default()),
            replay: Mutex::new(ReplayCache::default()),
            keys: VerifyingKeyCache::new(VERIFYING_KEYS),
            envelopes,
        }
    }

    pub fn identity(&self) -> &Arc<NodeIdentity> {
        &self.identity
    }

    pub fn envelopes(&self) -> bool {
        self.envelopes
    }

    /// Signs `payload` into an envelope, or passes it through when envelopes
    /// are off.
    pub fn wrap(
        &self,
        kind: MessageKind,
        context: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, IdentityError> {
        if !self.envelopes {
            return Ok(payload);
        }
        Envelope::sign(&self.identity, kind, context, &payload)
    }

    /// Verifies signatures, pinned key and time window (not replay). The
    /// pinned key is the one of `claimed_sender`, or of the sender the
    /// envelope names (anonymous gossip carries no other).
    pub fn verify(
        &self,
        bytes: &[u8],
        kind: MessageKind,
        context: &str,
        claimed_sender: Option<PeerId>,
    ) -> Result<Verified, EnvelopeError> {
        let pinned = claimed_sender
            .or_else(|| Envelope::sender_of(bytes))
            .and_then(|p| self.pinned_key(&p));
        Envelope::verify_cached(
            bytes,
            kind,
            context,
            pinned.as_deref(),
            kind.window(),
            Some(&self.keys),
        )
    }

    /// Records a verified message; an error if it was seen before.
    pub fn check_replay(&self, verified: &Verified) -> Result<(), EnvelopeError> {
        self.replay
            .lock()
            .expect("replay cache lock")
            .check(verified)
    }

    /// Verifies an envelope fully (replay too, except for resource records)
    /// and returns its signer and payload. `expected` names the only
    /// acceptable signer, if any.
    pub fn unwrap(
        &self,
        bytes: &[u8],
        kind: MessageKind,
        context: &str,
        expected: Option<PeerId>,
    ) -> Result<(Option<PeerId>, Vec<u8>), EnvelopeError> {
        if !self.envelopes {
            return Ok((expected, bytes.to_vec()));
        }
        let verified = self.verify(bytes, kind, context, expected)?;
        if expected.is_some_and(|e| e != verified.sender) {
            return Err(EnvelopeError::WrongSender(verified.sender));
        }
        if kind != MessageKind::Resource {
            self.check_replay(&verified)?;
        }
        Ok((Some(verified.sender), verified.payload))
    }

    pub fn pinned_key(&self, peer: &PeerId) -> Option<Vec<u8>> {
        self.registry
            .lock()
            .expect("registry lock")
            .pinned_ml_dsa(peer)
    }

    pub fn record_of(&self, peer: &PeerId) -> Option<PqIdentityRecord> {
        if *peer == self.identity.peer_id() {
            return Some(self.identity.record().clone());
        }
        self.registry
            .lock()
            .expect("registry lock")
            .get(peer)
            .cloned()
    }

    pub fn insert_record(&self, record: PqIdentityRecord) {
        self.registry
            .lock()
            .expect("registry lock")
            .insert_verified(record);
    }

    /// Seals `plaintext` to the verified records of `peers`.
    pub fn seal_to(
        &self,
        peers: &[PeerId],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, NodeError> {
        let mut records = Vec::with_capacity(peers.len());
        for peer in peers {
            records.push(
                self.record_of(peer)
                    .ok_or(NodeError::UnknownRecipient(*peer))?,
            );
        }
        let refs: Vec<&PqIdentityRecord> = records.iter().collect();
        sealed::seal(plaintext, aad, &refs).map_err(NodeError::Seal)
    }

    /// Opens a payload sealed to us.
    pub fn open_sealed(&self, bytes: &[u8], aad: &[u8]) -> Result<Vec<u8>, sealed::SealError> {
        sealed::open(bytes, aad, &self.identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An envelope signed by `id`'s Ed25519 key but carrying (and signed
    /// with) another ML-DSA key: what a thief of the Ed25519 key alone
    /// could make.
    fn with_substituted_ml_dsa(id: &NodeIdentity) -> Vec<u8> {
        let thief = NodeIdentity::from_parts(id.keypair().clone(), &[7; 32], &[8; 64]).unwrap();
        Envelope::sign(&thief, MessageKind::Gossip, "news", b"x").unwrap()
    }

    #[test]
    fn anonymous_gossip_is_checked_against_the_key_pinned_for_its_named_sender() {
        let id = NodeIdentity::generate();
        let trust = Trust::new(NodeIdentity::generate(), true);
        let forged = with_substituted_ml_dsa(&id);
        // Before the sender's record is pinned, the envelope verifies.
        assert!(trust
            .verify(&forged, MessageKind::Gossip, "news", None)
            .is_ok());
        trust.insert_record(id.record().clone());
        for claimed in [None, Some(id.peer_id())] {
            assert_eq!(
                trust
                    .verify(&forged, MessageKind::Gossip, "news", claimed)
                    .unwrap_err(),
                EnvelopeError::KeyMismatch(id.peer_id()),
                "claimed sender {claimed:?}"
            );
        }
        let honest = Envelope::sign(&id, MessageKind::Gossip, "news", b"x").unwrap();
        assert!(trust
            .verify(&honest, MessageKind::Gossip, "news", None)
            .is_ok());
    }
}
