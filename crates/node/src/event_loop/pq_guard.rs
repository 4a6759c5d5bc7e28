//! What a peer's PQ identity record costs us: a record identical to the one
//! pinned for the peer is taken as verified without checking its
//! signatures again; others are verified (off the loop) a few times a
//! minute per peer and a few at once. No I/O.

use std::{sync::Arc, time::Instant};

use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::gate::rate::KeyedLimiter;

/// Records one peer may present per minute (bursts of as many): a new
/// connection brings two (its request and its answer).
pub(crate) const PQ_RECORDS_PER_MINUTE: f64 = 6.0;
/// Records verified at once; more are dropped until one finishes.
pub(crate) const MAX_PQ_VERIFICATIONS: usize = 8;
/// Peers whose rate is remembered.
const MAX_TRACKED_PEERS: usize = 4096;

/// What to do with a record a peer presented.
#[derive(Debug)]
pub(crate) enum PqAction {
    /// Over the peer's rate, or too many verifications in flight: drop it.
    Refuse(&'static str),
    /// The pinned record, byte for byte: verified already.
    Unchanged,
    /// Verify it off the loop, holding the permit.
    Verify(OwnedSemaphorePermit),
}

pub(crate) struct PqGuard {
    rate: KeyedLimiter<PeerId>,
    verifications: Arc<Semaphore>,
}

impl PqGuard {
    pub fn new(per_minute: f64, verifications: usize) -> Self {
        // A token per record; the limiter counts per second.
        Self {
            rate: KeyedLimiter::with_burst(per_minute / 60.0, per_minute, MAX_TRACKED_PEERS),
            verifications: Arc::new(Semaphore::new(verifications)),
        }
    }

    /// Decides on `record` from `peer`, given the bytes of the record pinned
    /// for it (if any).
    pub fn on_record(
        &mut self,
        peer: PeerId,
        record: &[u8],
        pinned: Option<&[u8]>,
        now: Instant,
    ) -> PqAction {
        // Cheaper than a token: a reconnecting peer is never throttled.
        if pinned == Some(record) {
            return PqAction::Unchanged;
        }
        if !self.rate.allow(peer, 1.0, now) {
            return PqAction::Refuse("too many PQ identity records from the peer");
        }
        match self.verifications.clone().try_acquire_owned() {
            Ok(permit) => PqAction::Verify(permit),
            Err(_) => PqAction::Refuse("too many PQ identity records being verified"),
        }
    }
}

impl Default for PqGuard {
    fn default() -> Self {
        Self::new(PQ_RECORDS_PER_MINUTE, MAX_PQ_VERIFICATIONS)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_peer_is_throttled_apart() {
        let mut guard = PqGuard::default();
        let (flooder, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let mut permits = Vec::new();
        let mut refused = 0;
        for _ in 0..100 {
            match guard.on_record(flooder, b"r", None, t0) {
                PqAction::Verify(p) => permits.push(p),
                PqAction::Refuse(_) => refused += 1,
                PqAction::Unchanged => unreachable!(),
            }
            permits.clear();
        }
        assert_eq!(refused, 100 - PQ_RECORDS_PER_MINUTE as usize);
        assert!(matches!(
            guard.on_record(other, b"r", None, t0),
            PqAction::Verify(_)
        ));
        assert!(matches!(
            guard.on_record(flooder, b"r", None, t0 + Duration::from_secs(10)),
            PqAction::Verify(_)
        ));
    }

    #[test]
    fn the_pinned_record_is_not_verified_again_and_verifications_are_bounded() {
        let mut guard = PqGuard::new(1e6, 2);
        let peer = PeerId::random();
        let t0 = Instant::now();
        assert!(matches!(
            guard.on_record(peer, b"same", Some(b"same"), t0),
            PqAction::Unchanged
        ));
        let held: Vec<PqAction> = (0..2)
            .map(|_| guard.on_record(peer, b"new", Some(b"same"), t0))
            .collect();
        assert!(held.iter().all(|a| matches!(a, PqAction::Verify(_))));
        assert!(matches!(
            guard.on_record(peer, b"new", Some(b"same"), t0),
            PqAction::Refuse(_)
        ));
        drop(held);
        assert!(matches!(
            guard.on_record(peer, b"new", None, t0),
            PqAction::Verify(_)
        ));
    }
}
