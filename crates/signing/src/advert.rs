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

/// Largest signer advert a peer may gossip: 16 records with 8 addresses
/// each fit in a quarter of it.
pub const MAX_ADVERT_BYTES: usize = 16 * 1024;
/// Most keys one peer holds in a [`Directory`] (and gossips in one advert;
/// a node with more keys is still found through their DHT records).
pub const MAX_KEYS_PER_PEER: usize = 16;
/// A peer's next advert is read no sooner than this after its last one, so
/// a peer makes the actor verify at most 16 proofs a second (honest nodes
/// re-advertise every half TTL, or when their keys change).
pub const MIN_ADVERT_INTERVAL: Duration = Duration::from_secs(1);

/// Why a gossiped advert was not read (nothing in the directory changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertRefusal {
    /// Larger than [`MAX_ADVERT_BYTES`].
    #[error("a signer advert of {0} bytes is larger than {MAX_ADVERT_BYTES}")]
    TooLarge(usize),
    /// More records than [`MAX_KEYS_PER_PEER`].
    #[error("a signer advert of {0} keys has more than {MAX_KEYS_PER_PEER}")]
    TooManyKeys(usize),
    /// Within [`MIN_ADVERT_INTERVAL`] of the peer's last advert.
    #[error("a signer advert came within {MIN_ADVERT_INTERVAL:?} of the peer's last one")]
    TooSoon,
    /// Not an advert.
    #[error("malformed signer advert: {0}")]
    Malformed(String),
}

/// What one peer holds in the directory (only peers holding a key have
/// one, so there are never more shares than records).
#[derive(Debug, Default)]
struct PeerShare {
    keys: Vec<SignerKey>,
    last_advert: Option<Instant>,
}

/// Signer records learnt from gossip and the DHT, bounded and aging. One
/// peer holds at most [`MAX_KEYS_PER_PEER`] keys, and a full directory
/// makes room from the peer holding the most: peers with many identities
/// or keys push out each other before they reach honest peers' few keys.
#[derive(Debug)]
pub struct Directory {
    records: HashMap<SignerKey, (SignerRecord, Instant)>,
    peers: HashMap<PeerId, PeerShare>,
    capacity: usize,
    max_age: Duration,
}

impl Directory {
    /// A directory of at most `capacity` keys, each trusted for `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            records: HashMap::new(),
            peers: HashMap::new(),
            capacity,
            max_age,
        }
    }

    /// Reads the advert `publisher` gossiped: refused whole when too large,
    /// too soon or with too many keys; otherwise its verified records
    /// replace the peer's, and each record that fails verification is
    /// returned with its reason.
    pub fn accept_advert(
        &mut self,
        publisher: PeerId,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Vec<AdvertError>, AdvertRefusal> {
        if bytes.len() > MAX_ADVERT_BYTES {
            return Err(AdvertRefusal::TooLarge(bytes.len()));
        }
        let last = self.peers.get(&publisher).and_then(|p| p.last_advert);
        if last.is_some_and(|t| now.saturating_duration_since(t) < MIN_ADVERT_INTERVAL) {
            return Err(AdvertRefusal::TooSoon);
        }
        let advert: SignerAdvert =
            serde_json::from_slice(bytes).map_err(|e| AdvertRefusal::Malformed(e.to_string()))?;
        if advert.records.len() > MAX_KEYS_PER_PEER {
            return Err(AdvertRefusal::TooManyKeys(advert.records.len()));
        }
        self.forget_peer(&publisher);
        let mut refused = Vec::new();
        for record in advert.records {
            match record.verify(publisher) {
                Ok(()) => self.insert(record, now),
                Err(e) => refused.push(e),
            }
        }
        if let Some(share) = self.peers.get_mut(&publisher) {
            share.last_advert = Some(now);
        }
        Ok(refused)
    }

    /// Adds a verified record (the newest wins).
    pub fn insert(&mut self, record: SignerRecord, now: Instant) {
        let key = record.key;
        if let Some((old, _)) = self.records.get(&key) {
            let old_peer = old.peer;
            self.remove(&key, &old_peer);
        }
        let share = self.peers.entry(record.peer).or_default();
        if share.keys.len() >= MAX_KEYS_PER_PEER {
            let oldest = share.keys[0];
            self.remove(&oldest, &record.peer);
        }
        if self.records.len() >= self.capacity {
            self.make_room(now);
        }
        self.peers.entry(record.peer).or_default().keys.push(key);
        self.records.insert(key, (record, now));
    }

    /// Drops what aged out; if nothing did, the oldest record of the peer
    /// holding the most.
    fn make_room(&mut self, now: Instant) {
        let expired: Vec<(SignerKey, PeerId)> = self
            .records
            .iter()
            .filter(|(_, (_, seen))| now.saturating_duration_since(*seen) >= self.max_age)
            .map(|(k, (r, _))| (*k, r.peer))
            .collect();
        if !expired.is_empty() {
            for (key, peer) in expired {
                self.remove(&key, &peer);
            }
            return;
        }
        let largest = self
            .peers
            .iter()
            .filter_map(|(peer, share)| {
                let oldest = share.keys.first()?;
                let seen = self.records.get(oldest).map(|(_, t)| *t)?;
                // Most keys first; among equals, the staler.
                Some(((share.keys.len(), std::cmp::Reverse(seen)), *peer, *oldest))
            })
            .max_by_key(|(rank, _, _)| *rank);
        if let Some((_, peer, key)) = largest {
            self.remove(&key, &peer);
        }
    }

    fn remove(&mut self, key: &SignerKey, peer: &PeerId) {
        self.records.remove(key);
        if let Some(share) = self.peers.get_mut(peer) {
            share.keys.retain(|k| k != key);
            if share.keys.is_empty() {
                self.peers.remove(peer);
            }
        }
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
        if let Some(share) = self.peers.remove(peer) {
            for key in share.keys {
                self.records.remove(&key);
            }
        }
    }

    /// How many keys the directory holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
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

    fn advert_of(peer: PeerId, keys: usize) -> Vec<u8> {
        let records = (0..keys)
            .map(|_| SignerRecord::sign(&SecretKey::generate(), peer, Vec::new()))
            .collect();
        serde_json::to_vec(&SignerAdvert { records }).unwrap()
    }

    fn honest_directory(
        capacity: usize,
        honest: usize,
        now: Instant,
    ) -> (Directory, Vec<SignerKey>) {
        let mut dir = Directory::new(capacity, Duration::from_secs(3600));
        let mut keys = Vec::new();
        for _ in 0..honest {
            let peer = PeerId::random();
            let record = SignerRecord::sign(&SecretKey::generate(), peer, Vec::new());
            keys.push(record.key);
            let advert = serde_json::to_vec(&SignerAdvert {
                records: vec![record],
            })
            .unwrap();
            assert_eq!(dir.accept_advert(peer, &advert, now), Ok(Vec::new()));
        }
        (dir, keys)
    }

    #[test]
    fn one_peer_holds_at_most_its_share_and_oversized_adverts_are_not_read() {
        let now = Instant::now();
        let (mut dir, honest) = honest_directory(64, 40, now);
        let hostile = PeerId::random();
        let too_many = advert_of(hostile, MAX_KEYS_PER_PEER + 1);
        assert_eq!(
            dir.accept_advert(hostile, &too_many, now),
            Err(AdvertRefusal::TooManyKeys(MAX_KEYS_PER_PEER + 1))
        );
        let huge = vec![b' '; MAX_ADVERT_BYTES + 1];
        assert_eq!(
            dir.accept_advert(hostile, &huge, now),
            Err(AdvertRefusal::TooLarge(MAX_ADVERT_BYTES + 1))
        );
        assert!(matches!(
            dir.accept_advert(hostile, b"{]", now),
            Err(AdvertRefusal::Malformed(_))
        ));
        assert_eq!(dir.len(), 40, "nothing changed");
        // Its largest allowed advert, again and again: its share stays 16.
        for i in 0..20u64 {
            let at = now + MIN_ADVERT_INTERVAL * (i as u32 + 1);
            let advert = advert_of(hostile, MAX_KEYS_PER_PEER);
            dir.accept_advert(hostile, &advert, at).unwrap();
        }
        assert_eq!(dir.len(), 40 + MAX_KEYS_PER_PEER);
        // Records naming it, learnt from the DHT, come out of the same share.
        for _ in 0..100 {
            let record = SignerRecord::sign(&SecretKey::generate(), hostile, Vec::new());
            dir.insert(record, now);
        }
        assert_eq!(dir.len(), 40 + MAX_KEYS_PER_PEER);
        assert!(honest.iter().all(|k| dir.get(k, now).is_some()));
    }

    #[test]
    fn a_peer_advertising_again_within_the_interval_is_not_read() {
        let now = Instant::now();
        let (mut dir, _) = honest_directory(64, 0, now);
        let peer = PeerId::random();
        dir.accept_advert(peer, &advert_of(peer, 2), now).unwrap();
        let again = advert_of(peer, 3);
        assert_eq!(
            dir.accept_advert(peer, &again, now + MIN_ADVERT_INTERVAL / 2),
            Err(AdvertRefusal::TooSoon)
        );
        assert_eq!(dir.len(), 2);
        dir.accept_advert(peer, &again, now + MIN_ADVERT_INTERVAL)
            .unwrap();
        assert_eq!(dir.len(), 3, "the new set replaced the old");
    }

    #[test]
    fn sybils_filling_the_directory_evict_each_other_not_honest_peers() {
        let now = Instant::now();
        let capacity = 4096;
        let (mut dir, honest) = honest_directory(capacity, 100, now);
        // 400 identities with 16 keys each: 6,400 records for 3,996 places.
        for i in 0..400u32 {
            let sybil = PeerId::random();
            let at = now + Duration::from_millis(u64::from(i) + 1);
            dir.accept_advert(sybil, &advert_of(sybil, MAX_KEYS_PER_PEER), at)
                .unwrap();
        }
        assert_eq!(dir.len(), capacity);
        let kept = honest.iter().filter(|k| dir.get(k, now).is_some()).count();
        assert_eq!(kept, 100, "every honest key stays");
    }

    #[test]
    fn a_record_that_fails_verification_is_reported_and_not_kept() {
        let now = Instant::now();
        let (mut dir, _) = honest_directory(8, 0, now);
        let peer = PeerId::random();
        let good = SignerRecord::sign(&SecretKey::generate(), peer, Vec::new());
        let mut forged = SignerRecord::sign(&SecretKey::generate(), peer, Vec::new());
        forged.key = SecretKey::generate().public_key();
        let advert = serde_json::to_vec(&SignerAdvert {
            records: vec![good.clone(), forged.clone()],
        })
        .unwrap();
        let refused = dir.accept_advert(peer, &advert, now).unwrap();
        assert_eq!(refused, vec![AdvertError::BadProof(forged.key)]);
        assert!(dir.get(&good.key, now).is_some());
        assert!(dir.get(&forged.key, now).is_none());
    }
}
