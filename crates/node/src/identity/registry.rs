//! Verified PQ identity records of other peers (bounded). A record here pins
//! the peer's ML-DSA key: envelopes from that peer must use it.

use std::num::NonZeroUsize;

use libp2p::PeerId;
use lru::LruCache;

use super::pq::PqIdentityRecord;

/// Records kept, least recently used dropped first.
pub const REGISTRY_SIZE: usize = 4096;

/// Cache of verified identity records by peer.
pub struct PqRegistry {
    records: LruCache<PeerId, PqIdentityRecord>,
}

impl Default for PqRegistry {
    fn default() -> Self {
        Self {
            records: LruCache::new(NonZeroUsize::new(REGISTRY_SIZE).expect("non-zero")),
        }
    }
}

impl PqRegistry {
    /// Adds a record that has been verified. A newer record for the same peer
    /// replaces an older one; an older one is ignored.
    pub fn insert_verified(&mut self, record: PqIdentityRecord) {
        if let Some(existing) = self.records.peek(&record.peer_id) {
            if existing.issued_at > record.issued_at {
                return;
            }
        }
        self.records.put(record.peer_id, record);
    }

    /// The record of `peer`, if verified.
    pub fn get(&mut self, peer: &PeerId) -> Option<&PqIdentityRecord> {
        self.records.get(peer)
    }

    /// The pinned ML-DSA key of `peer`.
    pub fn pinned_ml_dsa(&mut self, peer: &PeerId) -> Option<Vec<u8>> {
        self.records.get(peer).map(|r| r.ml_dsa_public.clone())
    }
}
