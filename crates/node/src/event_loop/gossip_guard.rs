//! What a peer may send us: per-peer rate limits on messages and bytes, the
//! offences of peers over them (which cost them gossip score), counters of
//! their messages by validation outcome, and the permits that bound how many
//! envelopes are verified at once. No I/O: the event loop reports scores and
//! outcomes to gossipsub.

use std::{num::NonZeroUsize, sync::Arc, time::Instant};

use libp2p::{gossipsub::MessageAcceptance, PeerId};
use lru::LruCache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{gate::rate::KeyedLimiter, peers::MessageCounters};

/// Gossip envelopes verified concurrently; beyond this they are ignored.
pub(crate) const MAX_PENDING_VERIFICATIONS: usize = 256;
/// Application score lost per rate-limit offence (app-specific weight 1).
pub(crate) const OFFENCE_PENALTY: f64 = 5.0;
/// The most application score offences can cost.
pub(crate) const MAX_PENALTY: f64 = 500.0;

/// Per-peer limits and counters of inbound messages (bounded: least recently
/// seen peers forgotten first).
pub(crate) struct GossipGuard {
    /// Messages per (peer, topic) per second.
    message_rate: KeyedLimiter<(PeerId, String)>,
    /// Message bytes per peer per second.
    byte_rate: KeyedLimiter<PeerId>,
    /// Rate-limit violations per peer.
    offences: LruCache<PeerId, u32>,
    /// Gossip validation outcomes per forwarding peer.
    counters: LruCache<PeerId, MessageCounters>,
    /// Gossip envelopes being verified off the loop, at most.
    verifications: Arc<Semaphore>,
}

impl GossipGuard {
    /// Limits of `messages_per_sec` per peer and topic and `bytes_per_sec`
    /// per peer, for up to `peers` peers; at most `verifications` envelopes
    /// in verification at once. The byte bucket holds at least
    /// `largest_message`, so a message the sender's size check let through
    /// always fits it.
    pub fn new(
        messages_per_sec: f64,
        bytes_per_sec: f64,
        largest_message: usize,
        peers: usize,
        verifications: usize,
    ) -> Self {
        let size = NonZeroUsize::new(peers).unwrap_or(NonZeroUsize::MIN);
        Self {
            message_rate: KeyedLimiter::new(messages_per_sec, peers),
            byte_rate: KeyedLimiter::with_burst(bytes_per_sec, largest_message as f64, peers),
            offences: LruCache::new(size),
            counters: LruCache::new(size),
            verifications: Arc::new(Semaphore::new(verifications)),
        }
    }

    /// Charges a message of `bytes` (on `topic`, for gossip) to `peer`.
    /// `None` if it is within the limits; over them, the peer's new
    /// application score: each offence costs [`OFFENCE_PENALTY`], at most
    /// [`MAX_PENALTY`] in all.
    pub fn charge(
        &mut self,
        peer: PeerId,
        topic: Option<&str>,
        bytes: usize,
        now: Instant,
    ) -> Option<f64> {
        let messages_ok =
            topic.is_none_or(|t| self.message_rate.allow((peer, t.to_string()), 1.0, now));
        let bytes_ok = self.byte_rate.allow(peer, bytes as f64, now);
        if messages_ok && bytes_ok {
            return None;
        }
        let offences = self.offences.get_or_insert_mut(peer, || 0);
        *offences = offences.saturating_add(1);
        Some(-(f64::from(*offences) * OFFENCE_PENALTY).min(MAX_PENALTY))
    }

    /// Counts a gossip message `peer` forwarded, by its validation outcome.
    pub fn count(&mut self, peer: PeerId, acceptance: &MessageAcceptance) {
        let counters = self
            .counters
            .get_or_insert_mut(peer, MessageCounters::default);
        match acceptance {
            MessageAcceptance::Accept => counters.accepted += 1,
            MessageAcceptance::Reject => counters.rejected += 1,
            MessageAcceptance::Ignore => counters.ignored += 1,
        }
    }

    /// The messages `peer` forwarded, by outcome.
    pub fn counters(&self, peer: &PeerId) -> MessageCounters {
        self.counters.peek(peer).copied().unwrap_or_default()
    }

    /// A permit to verify one envelope off the loop, unless the most are
    /// being verified already. Dropping the permit frees it.
    pub fn verification_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.verifications.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn offences_cost_score_in_steps_up_to_the_cap() {
        let mut guard = GossipGuard::new(1.0, 1e9, 0, 16, 1);
        let (peer, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert_eq!(
            guard.charge(peer, Some("t"), 10, t0),
            None,
            "within the burst"
        );
        let scores: Vec<Option<f64>> = (0..3)
            .map(|_| guard.charge(peer, Some("t"), 10, t0))
            .collect();
        assert_eq!(scores, [Some(-5.0), Some(-10.0), Some(-15.0)]);
        for _ in 0..200 {
            guard.charge(peer, Some("t"), 10, t0);
        }
        assert_eq!(
            guard.charge(peer, Some("t"), 10, t0),
            Some(-MAX_PENALTY),
            "capped"
        );
        assert_eq!(
            guard.charge(other, Some("t"), 10, t0),
            None,
            "peers are independent"
        );
        assert_eq!(
            guard.charge(peer, Some("u"), 10, t0),
            None,
            "topics are limited apart"
        );
        assert_eq!(
            guard.charge(peer, Some("t"), 10, t0 + Duration::from_secs(1)),
            None,
            "the bucket refills"
        );
    }

    #[test]
    fn bytes_are_limited_per_peer_across_topics_and_direct_messages() {
        let mut guard = GossipGuard::new(1e9, 1000.0, 0, 16, 1);
        let peer = PeerId::random();
        let t0 = Instant::now();
        assert_eq!(guard.charge(peer, Some("a"), 600, t0), None);
        assert_eq!(
            guard.charge(peer, None, 600, t0),
            Some(-5.0),
            "1200 bytes > 1000 per second"
        );
        assert_eq!(
            guard.charge(peer, None, 300, t0),
            None,
            "what is left of the second"
        );
    }

    #[test]
    fn a_largest_message_fits_the_default_byte_bucket_once_a_second() {
        let config = crate::NodeConfig::default();
        let largest = config.max_message_size + crate::gossip::FRAME_OVERHEAD;
        let mut guard = GossipGuard::new(
            config.max_messages_per_sec,
            config.max_bytes_per_sec,
            largest,
            16,
            1,
        );
        let peer = PeerId::random();
        let t0 = Instant::now();
        // The biggest payload the sender accepts, in its envelope.
        let message = config.max_message_size + 6 * 1024;
        assert_eq!(guard.charge(peer, Some("t"), message, t0), None);
        assert!(
            guard.charge(peer, Some("t"), message, t0).is_some(),
            "the rate still holds"
        );
        let refilled = t0 + Duration::from_secs_f64(message as f64 / config.max_bytes_per_sec);
        assert_eq!(guard.charge(peer, Some("t"), message, refilled), None);
    }

    #[test]
    fn counts_outcomes_per_peer() {
        let mut guard = GossipGuard::new(1.0, 1.0, 0, 16, 1);
        let peer = PeerId::random();
        for acceptance in [
            MessageAcceptance::Accept,
            MessageAcceptance::Accept,
            MessageAcceptance::Reject,
            MessageAcceptance::Ignore,
        ] {
            guard.count(peer, &acceptance);
        }
        let counted = guard.counters(&peer);
        assert_eq!(
            (counted.accepted, counted.rejected, counted.ignored),
            (2, 1, 1)
        );
        assert_eq!(
            guard.counters(&PeerId::random()),
            MessageCounters::default()
        );
    }

    #[test]
    fn forgets_the_least_recent_peer_beyond_capacity() {
        let mut guard = GossipGuard::new(1.0, 1.0, 0, 2, 1);
        let peers = [PeerId::random(), PeerId::random(), PeerId::random()];
        for peer in peers {
            guard.count(peer, &MessageAcceptance::Reject);
        }
        assert_eq!(guard.counters(&peers[0]).rejected, 0, "forgotten");
        assert_eq!(guard.counters(&peers[2]).rejected, 1);
    }

    #[test]
    fn verification_permits_are_bounded_and_return() {
        let guard = GossipGuard::new(1.0, 1.0, 0, 2, 2);
        let first = guard.verification_permit().expect("a free permit");
        let _second = guard.verification_permit().expect("a second permit");
        assert!(guard.verification_permit().is_none(), "two at most");
        drop(first);
        assert!(
            guard.verification_permit().is_some(),
            "a dropped permit frees its slot"
        );
    }
}
