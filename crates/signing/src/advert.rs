//! Signer advertisement: which signing keys a peer signs for.
//!
//! A [`SignerRecord`] binds one key to a PeerId twice over: the node
//! publishes it as a DHT resource (type [`SIGNER_RESOURCE`], id = the key
//! in hex) or on the gossip topic [`SIGNER_TOPIC`], both in the node's
//! signed envelopes, and the record carries a BIP-340 signature by the key
//! itself over the PeerId, so nobody can claim a key they do not hold.
//! A session creator finds the peer behind each key in its [`Directory`]
//! (filled from gossip) or, failing that, in the DHT.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use conclave_node::{Multiaddr, PeerId};
use musig2::CompactSignature;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::keys::{SecretKey, SignerKey};

/// DHT resource type of signer records.
pub const SIGNER_RESOURCE: &str = "musig2-signer";
/// Gossip topic on which nodes announce their signer records.
pub const SIGNER_TOPIC: &str = "conclave/musig2-signers/1";
/// Most addresses a record carries.
pub const MAX_ADDRS: usize = 8;

const PROOF_CONTEXT: &str = "conclave musig2 signer record v1";

/// One signing key and the peer that signs with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerRecord {
    /// The signing key.
    pub key: SignerKey,
    /// The peer.
    pub peer: PeerId,
    /// Where the peer listens.
    pub addrs: Vec<Multiaddr>,
    /// BIP-340 signature by `key` over the PeerId (hex): proof of possession.
    pub proof: String,
}

/// A node's records, as gossiped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerAdvert {
    /// One record per key.
    pub records: Vec<SignerRecord>,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertError {
    /// The proof does not verify.
    #[error("the signer record of {0} has an invalid proof of possession")]
    BadProof(SignerKey),
    /// The record is published by another peer than it names.
    #[error("the signer record of {key} names {named} but was published by {publisher}")]
    WrongPublisher {
        /// The key.
        key: SignerKey,
        /// Peer the record names.
        named: String,
        /// Peer that published it.
        publisher: String,
    },
    /// Not a record.
    #[error("malformed signer record: {0}")]
    Malformed(String),
}

fn proof_message(key: &SignerKey, peer: &PeerId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(PROOF_CONTEXT);
    hasher.update(key.as_bytes());
    hasher.update(&peer.to_bytes());
    *hasher.finalize().as_bytes()
}

impl SignerRecord {
    /// A record for `secret`'s key, signed by it.
    pub fn sign(secret: &SecretKey, peer: PeerId, addrs: Vec<Multiaddr>) -> Self {
        let key = secret.public_key();
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let proof: CompactSignature =
            musig2::sign_solo(secret.scalar(), proof_message(&key, &peer), seed);
        Self {
            key,
            peer,
            addrs: addrs.into_iter().take(MAX_ADDRS).collect(),
            proof: hex::encode(proof.serialize()),
        }
    }

    /// Checks the proof of possession, and that `publisher` (the signer of
    /// the envelope the record came in) is the peer it names.
    pub fn verify(&self, publisher: PeerId) -> Result<(), AdvertError> {
        if publisher != self.peer {
            return Err(AdvertError::WrongPublisher {
                key: self.key,
                named: self.peer.to_string(),
                publisher: publisher.to_string(),
            });
        }
        let proof = hex::decode(&self.proof).map_err(|_| AdvertError::BadProof(self.key))?;
        musig2::verify_single(
            self.key.point(),
            proof.as_slice(),
            proof_message(&self.key, &self.peer),
        )
        .map_err(|_| AdvertError::BadProof(self.key))
    }
}

/// Signer records learnt from gossip and the DHT, bounded and aging.
#[derive(Debug)]
pub struct Directory {
    records: HashMap<SignerKey, (SignerRecord, Instant)>,
    capacity: usize,
    max_age: Duration,
}

impl Directory {
    /// A directory of at most `capacity` keys, each trusted for `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            records: HashMap::new(),
            capacity,
            max_age,
        }
    }

    /// Adds a verified record (the newest wins).
    pub fn insert(&mut self, record: SignerRecord, now: Instant) {
        if self.records.len() >= self.capacity && !self.records.contains_key(&record.key) {
            // Make room: drop the oldest.
            if let Some(oldest) = self
                .records
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(k, _)| *k)
            {
                self.records.remove(&oldest);
            }
        }
        self.records.insert(record.key, (record, now));
    }

    /// The live record of `key`.
    pub fn get(&self, key: &SignerKey, now: Instant) -> Option<&SignerRecord> {
        self.records
            .get(key)
            .filter(|(_, seen)| now.duration_since(*seen) < self.max_age)
            .map(|(r, _)| r)
    }

    /// Forgets the records of `peer` (it announced a new set).
    pub fn forget_peer(&mut self, peer: &PeerId) {
        self.records.retain(|_, (r, _)| r.peer != *peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_prove_possession_and_name_their_publisher() {
        let secret = SecretKey::generate();
        let peer = PeerId::random();
        let record = SignerRecord::sign(&secret, peer, Vec::new());
        record.verify(peer).unwrap();
        assert!(matches!(
            record.verify(PeerId::random()),
            Err(AdvertError::WrongPublisher { .. })
        ));
        // Claiming someone else's key: the proof is over another PeerId.
        let mut stolen = record.clone();
        stolen.peer = PeerId::random();
        assert_eq!(
            stolen.verify(stolen.peer),
            Err(AdvertError::BadProof(record.key))
        );
    }

    #[test]
    fn the_directory_is_bounded_and_ages_out() {
        let now = Instant::now();
        let mut dir = Directory::new(2, Duration::from_secs(10));
        let peer = PeerId::random();
        let records: Vec<SignerRecord> = (0..3)
            .map(|_| SignerRecord::sign(&SecretKey::generate(), peer, Vec::new()))
            .collect();
        for (i, r) in records.iter().enumerate() {
            dir.insert(r.clone(), now + Duration::from_secs(i as u64));
        }
        assert!(dir.get(&records[0].key, now).is_none(), "oldest evicted");
        assert!(dir.get(&records[2].key, now).is_some());
        assert!(dir
            .get(&records[2].key, now + Duration::from_secs(30))
            .is_none());
        dir.forget_peer(&peer);
        assert!(dir.get(&records[1].key, now).is_none());
    }
}
