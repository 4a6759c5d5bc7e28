//! Run messages for sessions not started here yet: a peer whose epoch tick
//! ran a little sooner sends its key exchange before our own tick has
//! checked the requests, and a session of another view can still be
//! reconciled with ours. Bounded in all, per author request, per sending
//! peer and in age, and an author's newest message always finds room: a
//! share full of its stale messages (sessions that never started here)
//! would otherwise silence that author for every session to come. A full
//! buffer makes room in the largest sender's share, so peers flooding it
//! (one with requests in many pairings, or many with a request each) only
//! ever evict each other, never a peer that sent less.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use crate::pairing::{Pairing, RequestId};

/// Messages kept in all.
const MAX_EARLY: usize = 512;
/// Of those, per author request: its newest.
const MAX_EARLY_PER_AUTHOR: usize = 4;
/// Per sending peer (four open requests in each of two pairings).
const MAX_EARLY_PER_SENDER: usize = 32;

struct Early<S> {
    pairing: Pairing,
    session_id: [u8; 32],
    author: RequestId,
    sender: S,
    message: Vec<u8>,
    received: Instant,
}

/// The buffer of early run messages, each from a sender `S` (the peer
/// that published it).
pub(crate) struct EarlyMessages<S> {
    entries: VecDeque<Early<S>>,
    max_age: Duration,
}

impl<S: Ord + Copy> EarlyMessages<S> {
    /// A buffer whose messages are dropped `max_age` after they arrived
    /// (past that, the session they belong to has started here or never
    /// will).
    pub(crate) fn new(max_age: Duration) -> Self {
        Self {
            entries: VecDeque::new(),
            max_age,
        }
    }

    /// Keeps `message` of `author`, sent by `sender`, for `session_id`:
    /// a full share of the author or of the sender drops its own oldest
    /// message, a full buffer the oldest of the largest sender's share.
    pub(crate) fn keep(
        &mut self,
        pairing: Pairing,
        session_id: [u8; 32],
        author: RequestId,
        sender: S,
        message: Vec<u8>,
        now: Instant,
    ) {
        self.expire(now);
        let by_author = self.entries.iter().filter(|e| e.author == author).count();
        let by_sender = self.entries.iter().filter(|e| e.sender == sender).count();
        let evicted = if by_author >= MAX_EARLY_PER_AUTHOR {
            self.entries.iter().position(|e| e.author == author)
        } else if by_sender >= MAX_EARLY_PER_SENDER {
            self.entries.iter().position(|e| e.sender == sender)
        } else if self.entries.len() >= MAX_EARLY {
            let largest = self.largest_sender();
            self.entries.iter().position(|e| Some(e.sender) == largest)
        } else {
            None
        };
        if let Some(oldest) = evicted {
            self.entries.remove(oldest);
        }
        self.entries.push_back(Early {
            pairing,
            session_id,
            author,
            sender,
            message,
            received: now,
        });
    }

    /// The sender holding the most messages (the earliest to arrive of
    /// those holding as many).
    fn largest_sender(&self) -> Option<S> {
        let mut shares: BTreeMap<S, usize> = BTreeMap::new();
        for e in &self.entries {
            *shares.entry(e.sender).or_default() += 1;
        }
        let most = shares.values().copied().max()?;
        self.entries
            .iter()
            .map(|e| e.sender)
            .find(|s| shares[s] == most)
    }

    /// What a session `session_id` of `pairing` with `participants`, just
    /// started, must see, in arrival order: its own messages (taken out)
    /// and those its participants sent in other views of it (kept: other
    /// sessions may start on them).
    pub(crate) fn take_for(
        &mut self,
        session_id: [u8; 32],
        pairing: Pairing,
        participants: &[RequestId],
        now: Instant,
    ) -> Vec<(RequestId, Vec<u8>)> {
        self.expire(now);
        let mut replay = Vec::new();
        self.entries.retain(|e| {
            let ours = e.session_id == session_id;
            if ours || (e.pairing == pairing && participants.contains(&e.author)) {
                replay.push((e.author, e.message.clone()));
            }
            !ours
        });
        replay
    }

    fn expire(&mut self, now: Instant) {
        let max_age = self.max_age;
        self.entries
            .retain(|e| now.saturating_duration_since(e.received) < max_age);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairing(fee_rate: u64) -> Pairing {
        Pairing::new(100_000, fee_rate).expect("a pairing on the ladder")
    }

    fn author(n: u8) -> RequestId {
        RequestId([n; 32])
    }

    #[test]
    fn an_author_whose_share_is_full_of_stale_messages_still_gets_its_newest_through() {
        let now = Instant::now();
        let mut early = EarlyMessages::new(Duration::from_secs(60));
        // Messages of sessions that never start here.
        for stale in 0..MAX_EARLY_PER_AUTHOR as u8 {
            early.keep(pairing(1), [stale; 32], author(7), 7u8, vec![stale], now);
        }
        early.keep(pairing(1), [0xAA; 32], author(7), 7u8, b"kex".to_vec(), now);
        let replay = early.take_for([0xAA; 32], pairing(1), &[author(1)], now);
        assert_eq!(replay, vec![(author(7), b"kex".to_vec())]);
        assert_eq!(
            early.len(),
            MAX_EARLY_PER_AUTHOR - 1,
            "its oldest made room"
        );
    }

    #[test]
    fn one_authors_flood_evicts_only_its_own_messages() {
        let now = Instant::now();
        let mut early = EarlyMessages::new(Duration::from_secs(60));
        early.keep(pairing(1), [1; 32], author(1), 1u8, b"honest".to_vec(), now);
        for n in 0..1_000u32 {
            early.keep(
                pairing(1),
                [2; 32],
                author(9),
                9u8,
                n.to_le_bytes().to_vec(),
                now,
            );
        }
        assert_eq!(early.len(), 1 + MAX_EARLY_PER_AUTHOR);
        let replay = early.take_for([1; 32], pairing(1), &[author(1)], now);
        assert_eq!(replay, vec![(author(1), b"honest".to_vec())]);
    }

    #[test]
    fn messages_older_than_the_age_limit_are_dropped() {
        let start = Instant::now();
        let mut early = EarlyMessages::new(Duration::from_secs(10));
        early.keep(pairing(1), [1; 32], author(1), 1u8, b"old".to_vec(), start);
        early.keep(
            pairing(1),
            [1; 32],
            author(2),
            2u8,
            b"new".to_vec(),
            start + Duration::from_secs(6),
        );
        let replay = early.take_for([1; 32], pairing(1), &[], start + Duration::from_secs(11));
        assert_eq!(replay, vec![(author(2), b"new".to_vec())]);
    }

    #[test]
    fn other_views_by_participants_are_replayed_and_kept_and_strangers_are_not() {
        let now = Instant::now();
        let mut early = EarlyMessages::new(Duration::from_secs(60));
        early.keep(pairing(1), [1; 32], author(1), 1u8, b"ours".to_vec(), now);
        early.keep(
            pairing(1),
            [2; 32],
            author(2),
            2u8,
            b"other view".to_vec(),
            now,
        );
        early.keep(
            pairing(1),
            [2; 32],
            author(3),
            3u8,
            b"stranger".to_vec(),
            now,
        );
        early.keep(
            pairing(2),
            [3; 32],
            author(2),
            2u8,
            b"other pairing".to_vec(),
            now,
        );
        let replay = early.take_for([1; 32], pairing(1), &[author(1), author(2)], now);
        assert_eq!(
            replay,
            vec![
                (author(1), b"ours".to_vec()),
                (author(2), b"other view".to_vec())
            ]
        );
        assert_eq!(early.len(), 3, "only this session's own message is taken");
    }

    #[test]
    fn one_senders_flood_over_many_authors_evicts_only_its_own_messages() {
        // A peer with requests in many pairings: each author's share is
        // small, its sum is not.
        let now = Instant::now();
        let mut early = EarlyMessages::new(Duration::from_secs(60));
        early.keep(pairing(1), [1; 32], author(1), 1u8, b"honest".to_vec(), now);
        for n in 0..1_000u32 {
            let a = RequestId(<[u8; 32]>::try_from([(n + 2).to_le_bytes(); 8].concat()).unwrap());
            early.keep(pairing(2), [2; 32], a, 9u8, vec![0], now);
        }
        assert_eq!(early.len(), 1 + MAX_EARLY_PER_SENDER);
        let replay = early.take_for([1; 32], pairing(1), &[], now);
        assert_eq!(replay, vec![(author(1), b"honest".to_vec())]);
    }

    #[test]
    fn many_senders_flooding_a_full_buffer_evict_each_other_not_a_quiet_peer() {
        let now = Instant::now();
        let mut early = EarlyMessages::new(Duration::from_secs(60));
        early.keep(
            pairing(1),
            [1; 32],
            author(1),
            0u32,
            b"honest".to_vec(),
            now,
        );
        // Sybils, each with a full share, ten times what the buffer holds.
        let per_sybil = MAX_EARLY_PER_SENDER as u32;
        for n in 0..10 * MAX_EARLY as u32 {
            let a = RequestId(<[u8; 32]>::try_from([(n + 2).to_le_bytes(); 8].concat()).unwrap());
            early.keep(pairing(1), [2; 32], a, 1 + n / per_sybil, vec![0], now);
        }
        assert_eq!(early.len(), MAX_EARLY);
        let replay = early.take_for([1; 32], pairing(1), &[], now);
        assert_eq!(replay, vec![(author(1), b"honest".to_vec())]);
    }

    #[test]
    fn a_full_buffer_drops_its_oldest_message() {
        let now = Instant::now();
        let mut early = EarlyMessages::new(Duration::from_secs(60));
        for n in 0..=MAX_EARLY as u32 {
            let a = RequestId(<[u8; 32]>::try_from([n.to_le_bytes(); 8].concat()).unwrap());
            early.keep(pairing(1), [0; 32], a, n, vec![], now);
        }
        assert_eq!(early.len(), MAX_EARLY);
    }
}
