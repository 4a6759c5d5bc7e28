//! Which DHT records that peers PUT to us are stored. Before the envelope
//! is verified: a size cap, a per-source rate and a bound on verifications
//! in flight. After: a key's live record is replaced only by a newer one
//! from the same signer (nobody overwrites or rolls back another's
//! record), each signer holds a bounded share of the store, and the store
//! holds at most [`MAX_STORED_RECORDS`]. No I/O: the event loop verifies
//! off the loop and writes the store.

use std::{collections::HashMap, sync::Arc, time::Instant};

use libp2p::{kad, PeerId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    gate::rate::KeyedLimiter,
    records::{RecordMeta, MAX_RECORD_BYTES, MAX_STORED_RECORDS},
};

/// Records one signer may hold in our store (a node announces a handful:
/// one per resource and one index per type).
pub(crate) const MAX_RECORDS_PER_SIGNER: usize = 64;
/// Records one peer may PUT per second (bursts of as many).
pub(crate) const PUTS_PER_SEC_PER_SOURCE: f64 = 16.0;
/// Sources whose PUT rate is remembered (least recently seen forgotten).
pub(crate) const MAX_TRACKED_SOURCES: usize = 4096;
/// Inbound records being verified at once; more are dropped unverified.
pub(crate) const MAX_RECORD_CHECKS: usize = 16;

/// Why an inbound record is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("record of {size} bytes exceeds {MAX_RECORD_BYTES} bytes")]
    TooLarge { size: usize },
    #[error("the source sends records faster than {PUTS_PER_SEC_PER_SOURCE} a second")]
    RateLimited,
    #[error("{MAX_RECORD_CHECKS} records are being verified already")]
    Busy,
    #[error("the stored record was signed by another peer and is still live")]
    OtherOwner,
    #[error("the stored record is as new or newer")]
    NotNewer,
    #[error("the signer holds {MAX_RECORDS_PER_SIGNER} records already")]
    SignerQuota,
    #[error("the store holds {MAX_STORED_RECORDS} records already")]
    Full,
}

/// The record stored under a key, as the policy compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub signer: Option<PeerId>,
    pub timestamp_ms: u64,
}

/// Limits on what peers store with us.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordCaps {
    pub records: usize,
    pub per_signer: usize,
    pub puts_per_sec: f64,
    pub checks: usize,
}

impl Default for RecordCaps {
    fn default() -> Self {
        Self {
            records: MAX_STORED_RECORDS,
            per_signer: MAX_RECORDS_PER_SIGNER,
            puts_per_sec: PUTS_PER_SEC_PER_SOURCE,
            checks: MAX_RECORD_CHECKS,
        }
    }
}

/// The owner and expiry of every record stored from a PUT.
pub(crate) struct RecordPolicy {
    caps: RecordCaps,
    rate: KeyedLimiter<PeerId>,
    checks: Arc<Semaphore>,
    /// Key → (signer, expiry in Unix seconds) of records stored from PUTs.
    owners: HashMap<kad::RecordKey, (Option<PeerId>, u64)>,
    per_signer: HashMap<Option<PeerId>, usize>,
    /// Inbound records decided on (stored or refused) since start.
    handled: u64,
}

impl RecordPolicy {
    pub fn new(caps: RecordCaps) -> Self {
        Self {
            rate: KeyedLimiter::new(caps.puts_per_sec, MAX_TRACKED_SOURCES),
            checks: Arc::new(Semaphore::new(caps.checks)),
            owners: HashMap::new(),
            per_signer: HashMap::new(),
            handled: 0,
            caps,
        }
    }

    /// Whether a record of `size` bytes from `source` is worth verifying;
    /// if so, the permit to hold while it is verified.
    pub fn admit(
        &mut self,
        source: PeerId,
        size: usize,
        now: Instant,
    ) -> Result<OwnedSemaphorePermit, Refusal> {
        if size > MAX_RECORD_BYTES {
            return Err(Refusal::TooLarge { size });
        }
        if !self.rate.allow(source, 1.0, now) {
            return Err(Refusal::RateLimited);
        }
        self.checks
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)
    }

    /// Whether `provider` may add another provider record now (charged to
    /// the same per-source rate as its records).
    pub fn admit_provider(&mut self, provider: PeerId, now: Instant) -> Result<(), Refusal> {
        if self.rate.allow(provider, 1.0, now) {
            Ok(())
        } else {
            Err(Refusal::RateLimited)
        }
    }

    /// Decides on a verified record for `key` given the live record stored
    /// there (if any); if it is to be stored, it is counted as stored.
    pub fn decide(
        &mut self,
        key: &kad::RecordKey,
        candidate: RecordMeta,
        existing: Option<Stored>,
        now_secs: u64,
    ) -> Result<(), Refusal> {
        if let Some(existing) = existing {
            if existing.signer != candidate.signer {
                return Err(Refusal::OtherOwner);
            }
            if candidate.timestamp_ms <= existing.timestamp_ms {
                return Err(Refusal::NotNewer);
            }
        }
        let replaces_own = self
            .owners
            .get(key)
            .is_some_and(|(signer, _)| *signer == candidate.signer);
        if !replaces_own {
            if self.owners.len() >= self.caps.records {
                self.prune(now_secs);
            }
            if self.count(candidate.signer) >= self.caps.per_signer {
                return Err(Refusal::SignerQuota);
            }
            if self.owners.len() >= self.caps.records {
                return Err(Refusal::Full);
            }
        }
        self.forget(key);
        self.owners
            .insert(key.clone(), (candidate.signer, candidate.expires_at));
        *self.per_signer.entry(candidate.signer).or_default() += 1;
        Ok(())
    }

    /// The store did not keep `key` after all (or it left the store).
    pub fn forget(&mut self, key: &kad::RecordKey) {
        if let Some((signer, _)) = self.owners.remove(key) {
            if let Some(n) = self.per_signer.get_mut(&signer) {
                *n -= 1;
                if *n == 0 {
                    self.per_signer.remove(&signer);
                }
            }
        }
    }

    /// Forgets records expired at `now_secs`; returns their keys, to be
    /// removed from the store.
    pub fn prune(&mut self, now_secs: u64) -> Vec<kad::RecordKey> {
        let expired: Vec<kad::RecordKey> = self
            .owners
            .iter()
            .filter(|(_, (_, expires_at))| *expires_at <= now_secs)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            self.forget(key);
        }
        expired
    }

    /// Counts an inbound record decided on, stored or not.
    pub fn handled(&mut self) {
        self.handled += 1;
    }

    /// Inbound records decided on since start.
    pub fn handled_count(&self) -> u64 {
        self.handled
    }

    /// Records stored from PUTs.
    pub fn stored(&self) -> usize {
        self.owners.len()
    }

    /// Records `signer` holds.
    pub fn count(&self, signer: Option<PeerId>) -> usize {
        self.per_signer.get(&signer).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(i: usize) -> kad::RecordKey {
        kad::RecordKey::new(&format!("/conclave/res/t/{i}"))
    }

    fn meta(signer: PeerId, timestamp_ms: u64) -> RecordMeta {
        RecordMeta {
            signer: Some(signer),
            timestamp_ms,
            expires_at: 1_000,
        }
    }

    fn stored(m: RecordMeta) -> Option<Stored> {
        Some(Stored {
            signer: m.signer,
            timestamp_ms: m.timestamp_ms,
        })
    }

    #[test]
    fn only_a_newer_record_of_the_same_signer_replaces_a_live_one() {
        let mut policy = RecordPolicy::new(RecordCaps::default());
        let (owner, stranger) = (PeerId::random(), PeerId::random());
        let first = meta(owner, 10);
        policy.decide(&key(0), first, None, 0).unwrap();
        assert_eq!(
            policy.decide(&key(0), meta(stranger, 99), stored(first), 0),
            Err(Refusal::OtherOwner)
        );
        assert_eq!(
            policy.decide(&key(0), meta(owner, 9), stored(first), 0),
            Err(Refusal::NotNewer),
            "an older signed copy"
        );
        assert_eq!(
            policy.decide(&key(0), first, stored(first), 0),
            Err(Refusal::NotNewer),
            "the same copy again"
        );
        policy
            .decide(&key(0), meta(owner, 11), stored(first), 0)
            .unwrap();
        assert_eq!(
            policy.count(Some(owner)),
            1,
            "a replacement takes no more room"
        );
        // Once the stored record expired, the key is free again.
        policy.decide(&key(0), meta(stranger, 1), None, 0).unwrap();
        assert_eq!(policy.count(Some(owner)), 0);
        assert_eq!(policy.count(Some(stranger)), 1);
    }

    #[test]
    fn each_signer_holds_a_bounded_share_and_the_store_a_bounded_total() {
        let caps = RecordCaps::default();
        let mut policy = RecordPolicy::new(caps);
        let honest = PeerId::random();
        policy.decide(&key(0), meta(honest, 1), None, 0).unwrap();
        // 100k records from never-seen signers, a few keys each.
        let mut stored_count = 1;
        for i in 1..100_000 {
            let signer = PeerId::random();
            for j in 0..3 {
                if policy
                    .decide(&key(i * 3 + j), meta(signer, 1), None, 0)
                    .is_ok()
                {
                    stored_count += 1;
                }
            }
            assert!(policy.stored() <= caps.records);
        }
        assert_eq!(stored_count, caps.records);
        assert_eq!(policy.stored(), caps.records);
        assert_eq!(policy.count(Some(honest)), 1, "never evicted");

        let greedy = PeerId::random();
        let mut policy = RecordPolicy::new(caps);
        let taken = (0..1000)
            .filter(|i| policy.decide(&key(*i), meta(greedy, 1), None, 0).is_ok())
            .count();
        assert_eq!(taken, caps.per_signer);
        assert_eq!(
            policy.decide(&key(5000), meta(greedy, 1), None, 0),
            Err(Refusal::SignerQuota)
        );
    }

    #[test]
    fn expired_records_make_room() {
        let caps = RecordCaps {
            records: 2,
            ..RecordCaps::default()
        };
        let mut policy = RecordPolicy::new(caps);
        let short = RecordMeta {
            expires_at: 5,
            ..meta(PeerId::random(), 1)
        };
        policy.decide(&key(0), short, None, 0).unwrap();
        policy
            .decide(&key(1), meta(PeerId::random(), 1), None, 0)
            .unwrap();
        assert_eq!(
            policy.decide(&key(2), meta(PeerId::random(), 1), None, 0),
            Err(Refusal::Full)
        );
        policy
            .decide(&key(2), meta(PeerId::random(), 1), None, 6)
            .unwrap();
        assert_eq!(policy.prune(2_000).len(), 2);
        assert_eq!(policy.stored(), 0);
    }

    #[test]
    fn puts_are_rate_limited_per_source_and_verifications_bounded() {
        let caps = RecordCaps {
            checks: 4,
            ..RecordCaps::default()
        };
        let mut policy = RecordPolicy::new(caps);
        let t0 = Instant::now();
        assert_eq!(
            policy
                .admit(PeerId::random(), MAX_RECORD_BYTES + 1, t0)
                .unwrap_err(),
            Refusal::TooLarge {
                size: MAX_RECORD_BYTES + 1
            }
        );
        let flooder = PeerId::random();
        let mut permits = Vec::new();
        let mut outcomes = Vec::new();
        for _ in 0..40 {
            match policy.admit(flooder, 100, t0) {
                Ok(p) => permits.push(p),
                Err(e) => outcomes.push(e),
            }
        }
        assert_eq!(permits.len(), caps.checks, "verifications in flight");
        assert!(outcomes.contains(&Refusal::Busy));
        permits.clear();
        let later = t0 + Duration::from_secs(5);
        let admitted = (0..40)
            .filter_map(|_| policy.admit(flooder, 100, later).ok())
            .count();
        assert_eq!(admitted, PUTS_PER_SEC_PER_SOURCE as usize);
        assert!(
            policy.admit(PeerId::random(), 100, later).is_ok(),
            "another source is unaffected"
        );
    }
}
