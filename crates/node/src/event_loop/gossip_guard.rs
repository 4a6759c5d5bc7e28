//! What a peer may send us: per-peer rate limits on messages and bytes, the
//! offences of peers over them (which cost them gossip score), counters of
//! their messages by validation outcome, the permits that bound how many
//! envelopes are verified at once and the fair queue of those waiting for
//! one. No I/O: the event loop reports scores and outcomes to gossipsub.

use std::{num::NonZeroUsize, sync::Arc, time::Instant};

use libp2p::{
    gossipsub::{MessageAcceptance, MessageId},
    PeerId,
};
use lru::LruCache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::fair_queue::{FairQueue, FairQueueCaps};
use crate::{gate::rate::KeyedLimiter, peers::MessageCounters};

/// Gossip envelopes verified concurrently; beyond this they wait.
pub(crate) const MAX_PENDING_VERIFICATIONS: usize = 256;
/// What may wait for verification: per forwarding peer and in all. A
/// message ignored for want of room is lost for good (gossipsub drops its
/// later copies as duplicates), so the queue is fair: a flood lengthens
/// the flooder's own queue, and a full one drops the flooders' messages.
pub(crate) const WAITING_CAPS: FairQueueCaps = FairQueueCaps {
    per_sender: 256,
    per_sender_bytes: 4 << 20,
    total: 8192,
    total_bytes: 64 << 20,
};

/// A gossip message waiting for a verification permit.
pub(crate) struct PendingGossip {
    pub message_id: MessageId,
    pub propagation_source: PeerId,
    pub topic: String,
    pub source: Option<PeerId>,
    pub data: Vec<u8>,
}
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
    /// Gossip envelopes waiting for a verification permit.
    waiting: FairQueue<PeerId, PendingGossip>,
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
            waiting: FairQueue::new(WAITING_CAPS),
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

    /// Queues `message` for verification, in its forwarder's turn. Returns
    /// the messages dropped to make room (to be ignored).
    pub fn await_verification(&mut self, message: PendingGossip) -> Vec<PendingGossip> {
        let bytes = message.data.len();
        self.waiting
            .push(message.propagation_source, message, bytes)
    }

    /// The next message to verify, with its permit, if a permit is free.
    pub fn next_verification(&mut self) -> Option<(OwnedSemaphorePermit, PendingGossip)> {
        if self.waiting.is_empty() {
            return None;
        }
        let permit = self.verification_permit()?;
        let (_, message) = self.waiting.pop()?;
        Some((permit, message))
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

    fn gossip(from: PeerId, n: u32) -> PendingGossip {
        PendingGossip {
            message_id: MessageId::new(&n.to_be_bytes()),
            propagation_source: from,
            topic: "t".into(),
            source: Some(from),
            data: vec![0; 100],
        }
    }

    #[test]
    fn a_message_arriving_while_verification_is_saturated_waits_its_turn() {
        let mut guard = GossipGuard::new(1.0, 1.0, 0, 64, 4);
        // A flood from 50 forwarders holds every permit and fills the queue.
        let flooders: Vec<PeerId> = (0..50).map(|_| PeerId::random()).collect();
        let mut held = Vec::new();
        let mut dropped = 0;
        for n in 0..20_000u32 {
            let from = flooders[n as usize % flooders.len()];
            dropped += guard.await_verification(gossip(from, n)).len();
            if let Some((permit, _)) = guard.next_verification() {
                held.push(permit);
            }
        }
        assert_eq!(held.len(), 4, "every permit taken");
        assert!(guard.next_verification().is_none(), "saturated");
        assert!(dropped > 0, "the flood overflowed its share");
        // An honest forwarder's message is kept, not ignored (a flooder's
        // newest makes room)...
        let honest = PeerId::random();
        let made_room = guard.await_verification(gossip(honest, u32::MAX));
        assert!(made_room.iter().all(|m| m.propagation_source != honest));
        // ...and verified within one turn of every forwarder.
        held.clear();
        let mut served = 0;
        loop {
            let (permit, next) = guard.next_verification().expect("the queue serves");
            served += 1;
            drop(permit);
            if next.propagation_source == honest {
                break;
            }
        }
        assert!(served <= flooders.len() + 1, "served after {served}");
    }

    #[test]
    fn waiting_messages_are_bounded_by_the_caps() {
        let mut guard = GossipGuard::new(1.0, 1.0, 0, 64, 1);
        let _busy = guard.verification_permit().unwrap();
        let flooder = PeerId::random();
        let mut kept = 0;
        for n in 0..10_000u32 {
            if guard.await_verification(gossip(flooder, n)).is_empty() {
                kept += 1;
            }
        }
        assert_eq!(kept, WAITING_CAPS.per_sender, "one forwarder's share");
    }
}
