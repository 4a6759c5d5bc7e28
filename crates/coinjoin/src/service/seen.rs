//! The requests seen on one pairing's topic. Anyone can announce a request
//! (its coins are checked against the chain only at an epoch tick), so the
//! table is bounded per author and in all, and a full table makes room
//! among the unchecked requests of the author holding the most of them. A
//! flood of announcements cannot keep an honest newcomer out, evicts it
//! only once no flooder holds more than it does (many identities with one
//! request each; it is announced again, and the next tick protects it),
//! and never pushes out a request whose coins a tick found valid (faking
//! those costs real coins).

use std::collections::BTreeMap;

use crate::pairing::RequestId;

/// Requests remembered per pairing.
const MAX_SEEN: usize = 512;
/// Requests one author may have open per pairing.
const MAX_PER_AUTHOR: usize = 4;

/// A request `R` seen from its author `A`.
pub(crate) struct Seen<R, A> {
    pub(crate) request: R,
    pub(crate) author: A,
    expiry: u64,
    /// Whether an epoch tick found its coins valid.
    checked: bool,
    arrival: u64,
    /// Unix ms when it first arrived here.
    seen_ms: u64,
}

impl<R, A> Seen<R, A> {
    /// Whether the epoch tick at `tick_ms` takes this request in, when a
    /// request must be announced `settle_ms` before a tick. Its author
    /// ticks with it once that much has passed since it announced it; we
    /// saw it later than that and ask a tenth of `settle_ms` more (for
    /// clocks that differ), so whenever we take it in, its author ticks
    /// too. The other way round (its author ticks with it, we leave it
    /// out) is the difference of views that sessions resolve by re-forming,
    /// without blame; a peer left holding out on a session it never knew
    /// of would be blamed.
    pub(crate) fn settled_for(&self, tick_ms: u64, settle_ms: u64) -> bool {
        self.seen_ms + settle_ms + settle_ms / 10 <= tick_ms
    }
}

/// What became of an announcement.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Added,
    /// Already in the table.
    Known,
    /// Not kept, and why.
    Refused(&'static str),
}

/// One pairing's table.
pub(crate) struct SeenRequests<R, A> {
    entries: BTreeMap<RequestId, Seen<R, A>>,
    arrivals: u64,
}

impl<R, A> Default for SeenRequests<R, A> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            arrivals: 0,
        }
    }
}

impl<R, A: Ord + Copy> SeenRequests<R, A> {
    /// Keeps `request` (id `id`, by `author`, open until unix second
    /// `expiry`) arriving at unix ms `now_ms`, first forgetting expired
    /// requests; a full table evicts the oldest unchecked request of the
    /// author with the most unchecked.
    pub(crate) fn insert(
        &mut self,
        id: RequestId,
        request: R,
        author: A,
        expiry: u64,
        now_ms: u64,
    ) -> Admission {
        if self.entries.contains_key(&id) {
            return Admission::Known;
        }
        let now_secs = now_ms / 1000;
        self.entries.retain(|_, s| s.expiry > now_secs);
        let by_author = self.entries.values().filter(|s| s.author == author).count();
        if by_author >= MAX_PER_AUTHOR {
            return Admission::Refused("its author has as many requests open as it may");
        }
        if self.entries.len() >= MAX_SEEN {
            let Some(evicted) = self.eviction_candidate() else {
                return Admission::Refused("every request kept has coins a tick found valid");
            };
            self.entries.remove(&evicted);
        }
        self.arrivals += 1;
        self.entries.insert(
            id,
            Seen {
                request,
                author,
                expiry,
                checked: false,
                arrival: self.arrivals,
                seen_ms: now_ms,
            },
        );
        Admission::Added
    }

    /// The oldest unchecked request of the author with the most unchecked
    /// (the earliest to arrive among authors holding as many).
    fn eviction_candidate(&self) -> Option<RequestId> {
        let mut shares: BTreeMap<A, (usize, u64, RequestId)> = BTreeMap::new();
        for (id, s) in self.entries.iter().filter(|(_, s)| !s.checked) {
            let share = shares.entry(s.author).or_insert((0, u64::MAX, *id));
            share.0 += 1;
            if s.arrival < share.1 {
                (share.1, share.2) = (s.arrival, *id);
            }
        }
        shares
            .into_values()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, _, id)| id)
    }

    /// Marks the requests an epoch tick found valid.
    pub(crate) fn mark_checked(&mut self, ids: impl IntoIterator<Item = RequestId>) {
        for id in ids {
            if let Some(s) = self.entries.get_mut(&id) {
                s.checked = true;
            }
        }
    }

    pub(crate) fn get(&self, id: &RequestId) -> Option<&Seen<R, A>> {
        self.entries.get(id)
    }

    pub(crate) fn remove(&mut self, id: &RequestId) -> Option<Seen<R, A>> {
        self.entries.remove(id)
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&RequestId, &mut Seen<R, A>) -> bool) {
        self.entries.retain(keep);
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Seen<R, A>> {
        self.entries.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn id(n: u32) -> RequestId {
        RequestId(<[u8; 32]>::try_from([n.to_le_bytes(); 8].concat()).unwrap())
    }

    /// Fills the table with `per_author` requests from each of as many
    /// Sybil authors (numbered from 1000) as it takes, and more.
    fn flood(seen: &mut SeenRequests<(), u32>, per_author: u32, requests: u32) {
        for n in 0..requests {
            let author = 1000 + n / per_author;
            seen.insert(id(1_000_000 + n), (), author, NOW + 600, NOW * 1000);
        }
    }

    #[test]
    fn an_author_has_at_most_four_open_and_a_repeat_is_known() {
        let mut seen = SeenRequests::default();
        for n in 0..MAX_PER_AUTHOR as u32 {
            assert_eq!(
                seen.insert(id(n), (), 7u32, NOW + 60, NOW * 1000),
                Admission::Added
            );
        }
        assert_eq!(
            seen.insert(id(0), (), 7, NOW + 60, NOW * 1000),
            Admission::Known
        );
        assert!(matches!(
            seen.insert(id(99), (), 7, NOW + 60, NOW * 1000),
            Admission::Refused(_)
        ));
        assert_eq!(seen.len(), MAX_PER_AUTHOR);
    }

    #[test]
    fn expired_requests_make_room_for_new_ones() {
        let mut seen = SeenRequests::default();
        for n in 0..MAX_PER_AUTHOR as u32 {
            seen.insert(id(n), (), 7u32, NOW + 10, NOW * 1000);
        }
        assert_eq!(
            seen.insert(id(50), (), 7, NOW + 600, (NOW + 10) * 1000),
            Admission::Added
        );
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn a_sybil_flood_of_a_full_table_lets_an_honest_newcomer_in() {
        let mut seen = SeenRequests::default();
        flood(&mut seen, 4, 10 * MAX_SEEN as u32);
        assert_eq!(seen.len(), MAX_SEEN);
        assert_eq!(
            seen.insert(id(1), (), 1u32, NOW + 600, NOW * 1000),
            Admission::Added
        );
        // More Sybils keep arriving, holding more than the newcomer's one:
        // they evict each other.
        for n in 0..MAX_SEEN as u32 / 2 {
            seen.insert(id(5_000_000 + n), (), 90_000 + n / 4, NOW + 600, NOW * 1000);
        }
        assert!(seen.get(&id(1)).is_some(), "the honest request stays");
        assert_eq!(seen.len(), MAX_SEEN);
    }

    #[test]
    fn a_request_a_tick_found_valid_is_never_evicted() {
        let mut seen = SeenRequests::default();
        seen.insert(id(1), (), 1u32, NOW + 600, NOW * 1000);
        seen.mark_checked([id(1)]);
        // One announcement per Sybil: every share is as small as ours.
        flood(&mut seen, 1, 10 * MAX_SEEN as u32);
        assert!(seen.get(&id(1)).is_some());
        assert_eq!(seen.len(), MAX_SEEN);
    }

    #[test]
    fn a_table_of_checked_requests_refuses_newcomers() {
        let mut seen = SeenRequests::default();
        for n in 0..MAX_SEEN as u32 {
            seen.insert(id(n), (), n, NOW + 600, NOW * 1000);
        }
        seen.mark_checked((0..MAX_SEEN as u32).map(id));
        assert!(matches!(
            seen.insert(id(9_999), (), 9_999, NOW + 600, NOW * 1000),
            Admission::Refused(_)
        ));
        assert_eq!(seen.len(), MAX_SEEN);
    }

    #[test]
    fn a_request_joins_a_tick_only_if_it_arrived_a_settle_and_a_tenth_before() {
        let mut seen = SeenRequests::default();
        let arrived_ms = NOW * 1000;
        seen.insert(id(1), (), 1u32, NOW + 600, arrived_ms);
        let entry = seen.get(&id(1)).unwrap();
        let settle_ms = 2_000;
        // Its author, announcing it a moment earlier, ticks at arrival + 2 s.
        assert!(!entry.settled_for(arrived_ms + settle_ms, settle_ms));
        assert!(!entry.settled_for(arrived_ms + 2_199, settle_ms));
        assert!(entry.settled_for(arrived_ms + 2_200, settle_ms));
    }
}
