//! The replay cache: the digests of accepted envelopes, bounded, so a
//! replayed envelope is refused for as long as its timestamp would pass.

use std::{
    collections::{BTreeSet, HashSet},
    time::Duration,
};

use super::envelope::{EnvelopeError, Verified, DEFAULT_WINDOW};
use crate::clock::unix_ms;

/// Digests remembered by the replay cache (about 100 bytes each): the
/// whole window at 218 accepted envelopes a second node-wide; beyond that
/// rate the window shrinks instead (see [`ReplayCache`]).
pub const REPLAY_CACHE_SIZE: usize = 65_536;

/// Remembers the digests of accepted envelopes for as long as their
/// timestamps lie inside the window: older ones are refused by their
/// timestamp, so they are forgotten. The cache is bounded; when it is full
/// of envelopes still inside the window, the oldest is forgotten and the
/// window closes behind it (envelopes signed at or before the forgotten one
/// are refused as stale), so a forgotten digest can never be replayed: a
/// flood shortens the window, it never opens a gap.
pub struct ReplayCache {
    capacity: usize,
    window_ms: u64,
    seen: HashSet<[u8; 32]>,
    by_time: BTreeSet<(u64, [u8; 32])>,
    /// The latest timestamp forgotten while still inside the window.
    floor_ms: u64,
}

impl ReplayCache {
    /// A cache of `capacity` digests over [`DEFAULT_WINDOW`].
    pub fn new(capacity: usize) -> Self {
        Self::with_window(capacity, DEFAULT_WINDOW)
    }

    /// A cache of `capacity` digests over `window` (either side of our clock).
    pub fn with_window(capacity: usize, window: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            window_ms: window.as_millis() as u64,
            seen: HashSet::new(),
            by_time: BTreeSet::new(),
            floor_ms: 0,
        }
    }

    /// Records `verified` now; an error if its digest was seen before or it
    /// is too old to be told apart from a replay.
    pub fn check(&mut self, verified: &Verified) -> Result<(), EnvelopeError> {
        self.check_at(verified, unix_ms())
    }

    /// [`check`](Self::check) at `now_ms` (ms since the epoch).
    pub fn check_at(&mut self, verified: &Verified, now_ms: u64) -> Result<(), EnvelopeError> {
        let horizon = now_ms.saturating_sub(self.window_ms);
        while let Some(&(timestamp, digest)) = self.by_time.first() {
            if timestamp >= horizon {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&digest);
        }
        let stale = EnvelopeError::OutsideWindow {
            sender: verified.sender,
            skew_secs: now_ms.saturating_sub(verified.timestamp_ms) / 1000,
        };
        if verified.timestamp_ms < horizon || verified.timestamp_ms <= self.floor_ms {
            return Err(stale);
        }
        if self.seen.contains(&verified.digest) {
            return Err(EnvelopeError::Replay(verified.sender));
        }
        if self.seen.len() >= self.capacity {
            let &(oldest, digest) = self.by_time.first().expect("a full cache");
            if verified.timestamp_ms <= oldest {
                return Err(stale);
            }
            self.by_time.pop_first();
            self.seen.remove(&digest);
            self.floor_ms = self.floor_ms.max(oldest);
        }
        self.seen.insert(verified.digest);
        self.by_time
            .insert((verified.timestamp_ms, verified.digest));
        Ok(())
    }

    /// Digests remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no digest is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(REPLAY_CACHE_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{
        envelope::{Envelope, MessageKind},
        NodeIdentity,
    };

    fn verify(bytes: &[u8]) -> Result<Verified, EnvelopeError> {
        Envelope::verify(bytes, MessageKind::Gossip, "news", None, DEFAULT_WINDOW)
    }

    fn at(id: &NodeIdentity, n: u64, timestamp_ms: u64) -> Verified {
        Verified {
            sender: id.peer_id(),
            payload: Vec::new(),
            timestamp_ms,
            digest: *blake3::hash(&n.to_le_bytes()).as_bytes(),
        }
    }

    #[test]
    fn a_replay_at_150_s_is_refused_after_a_flood_larger_than_the_cache() {
        let id = NodeIdentity::generate();
        let t0 = 1_000_000_000_000;
        let mut cache = ReplayCache::default();
        let first = at(&id, u64::MAX, t0);
        cache.check_at(&first, t0).unwrap();
        // 100k envelopes in 150 s (667 a second, three times what the cache
        // holds over the window), each checked at its signing time.
        let flood = 100_000;
        for n in 0..flood {
            let t = t0 + 1 + n * 150_000 / flood;
            cache.check_at(&at(&id, n, t), t).unwrap();
            assert!(cache.len() <= REPLAY_CACHE_SIZE);
        }
        let replay = cache.check_at(&first, t0 + 150_000).unwrap_err();
        assert!(!replay.is_invalid(), "ignored, not penalised: {replay}");
        let replay = cache.check_at(&at(&id, flood - 1, t0 + 150_000), t0 + 150_000);
        assert_eq!(replay, Err(EnvelopeError::Replay(id.peer_id())));
        let fresh = at(&id, flood, t0 + 150_001);
        assert_eq!(
            cache.check_at(&fresh, t0 + 150_001),
            Ok(()),
            "new ones pass"
        );
    }

    #[test]
    fn within_its_rate_the_cache_covers_the_whole_window() {
        let id = NodeIdentity::generate();
        let t0 = 1_000_000_000_000;
        let mut cache = ReplayCache::with_window(1_000, DEFAULT_WINDOW);
        let first = at(&id, u64::MAX, t0);
        cache.check_at(&first, t0).unwrap();
        // 3 a second for 299 s: fewer than the cache holds.
        for n in 0..897 {
            let t = t0 + 1 + n * 1000 / 3;
            cache.check_at(&at(&id, n, t), t).unwrap();
        }
        let now = t0 + 299_000;
        assert_eq!(
            cache.check_at(&first, now),
            Err(EnvelopeError::Replay(id.peer_id()))
        );
        // Past the window it is forgotten, and refused by its age instead.
        let later = t0 + DEFAULT_WINDOW.as_millis() as u64 + 1;
        assert!(matches!(
            cache.check_at(&first, later),
            Err(EnvelopeError::OutsideWindow { .. })
        ));
        assert!(cache.len() < 1_000);
    }

    #[test]
    fn replays_and_stale_envelopes_are_ignored_not_rejected() {
        let id = NodeIdentity::generate();
        let bytes = Envelope::sign(&id, MessageKind::Gossip, "news", b"x").unwrap();
        let mut cache = ReplayCache::new(8);
        let v = verify(&bytes).unwrap();
        cache.check(&v).unwrap();
        let replay = cache.check(&verify(&bytes).unwrap()).unwrap_err();
        assert_eq!(replay, EnvelopeError::Replay(id.peer_id()));
        assert!(!replay.is_invalid());

        let mut e: Envelope = postcard::from_bytes(&bytes).unwrap();
        e.timestamp_ms -= 10 * 60 * 1000;
        let err = verify(&postcard::to_stdvec(&e).unwrap()).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::OutsideWindow { skew_secs: 600, .. }),
            "{err}"
        );
        assert!(!err.is_invalid());
        assert!(EnvelopeError::BadMlDsa(id.peer_id()).is_invalid());
    }
}
