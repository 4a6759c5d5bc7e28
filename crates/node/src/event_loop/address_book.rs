//! Where known peers can be reached: addresses per peer, addresses whose
//! last dial failed and when they may be tried again, and which reported
//! addresses are worth dialling at all. No I/O: the event loop dials.

use std::{
    collections::HashSet,
    num::NonZeroUsize,
    time::{Duration, Instant},
};

use libp2p::{multiaddr::Protocol, Multiaddr, PeerId};
use lru::LruCache;

use crate::nat::is_relayed;

/// Addresses kept per peer; the oldest goes first.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 8;

/// How long a failed address is left alone before it is dialled again: 5 s,
/// doubling with each further failure, at most 5 minutes.
pub(crate) fn dial_backoff(failures: u32) -> Duration {
    Duration::from_secs(5 * 2u64.saturating_pow(failures.saturating_sub(1)).min(60))
}

/// Whether an address names a loopback interface.
pub(crate) fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// Whether `addr`, reported for a peer, is worth dialling from here: not a
/// relay circuit (circuits are dialled on request, never redialled in
/// bulk), starting with a transport, and loopback only for a peer we reach
/// over loopback already (a stranger's 127.0.0.1 is ourselves elsewhere).
pub(crate) fn is_dialable(addr: &Multiaddr, peer_on_loopback: bool) -> bool {
    let has_transport = matches!(
        addr.iter().next(),
        Some(
            Protocol::Ip4(_)
                | Protocol::Ip6(_)
                | Protocol::Dns(_)
                | Protocol::Dns4(_)
                | Protocol::Dns6(_)
                | Protocol::Memory(_)
        )
    );
    if is_relayed(addr) || !has_transport {
        return false;
    }
    !is_loopback(addr) || peer_on_loopback
}

/// Known addresses of peers (bounded: least recently used peers forgotten
/// first) and the dial failures of addresses.
pub(crate) struct AddressBook {
    addrs: LruCache<PeerId, Vec<Multiaddr>>,
    /// Addresses whose last dial failed: when, and how many times in a row.
    failed: LruCache<Multiaddr, (Instant, u32)>,
}

impl AddressBook {
    /// A book of at most `peers` peers (and as many failed addresses).
    pub fn new(peers: usize) -> Self {
        let size = NonZeroUsize::new(peers).unwrap_or(NonZeroUsize::MIN);
        Self {
            addrs: LruCache::new(size),
            failed: LruCache::new(size),
        }
    }

    /// Records an address of `peer`; `true` if the peer was new to the book.
    pub fn remember(&mut self, peer: PeerId, addr: Multiaddr) -> bool {
        match self.addrs.get_mut(&peer) {
            Some(addrs) => {
                if !addrs.contains(&addr) {
                    if addrs.len() >= MAX_ADDRS_PER_PEER {
                        addrs.remove(0);
                    }
                    addrs.push(addr);
                }
                false
            }
            None => {
                self.addrs.put(peer, vec![addr]);
                true
            }
        }
    }

    /// The addresses known for `peer`, oldest first.
    pub fn addresses(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addrs.peek(peer).cloned().unwrap_or_default()
    }

    /// A dial to `addr` succeeded: it is out of back-off.
    pub fn dial_succeeded(&mut self, addr: &Multiaddr) {
        self.failed.pop(addr);
    }

    /// A dial to `addr` failed at `now`: its back-off grows.
    pub fn dial_failed(&mut self, addr: &Multiaddr, now: Instant) {
        let failures = self.failed.peek(addr).map_or(0, |(_, n)| *n) + 1;
        self.failed.put(addr.clone(), (now, failures));
    }

    /// Whether `addr` failed recently enough to be left alone at `now`.
    pub fn in_backoff(&self, addr: &Multiaddr, now: Instant) -> bool {
        self.failed
            .peek(addr)
            .is_some_and(|(at, n)| now.duration_since(*at) <= dial_backoff(*n))
    }

    /// Peers to dial to reach the connection floor, in order: `bootstrap`
    /// addresses (those ending in `/p2p/<id>`) first, then the book, most
    /// recently used first. Each peer appears once, with only the addresses
    /// out of back-off, and not at all if it has none or `skip` says so.
    pub fn dial_candidates(
        &self,
        bootstrap: &[Multiaddr],
        now: Instant,
        skip: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let from_bootstrap = bootstrap
            .iter()
            .filter_map(|addr| match addr.iter().last() {
                Some(Protocol::P2p(peer)) => Some((peer, vec![addr.clone()])),
                _ => None,
            });
        let from_book = self.addrs.iter().map(|(p, a)| (*p, a.clone()));
        let mut seen = HashSet::new();
        from_bootstrap
            .chain(from_book)
            .filter(|(peer, _)| !skip(peer) && seen.insert(*peer))
            .filter_map(|(peer, addrs)| {
                let usable: Vec<Multiaddr> = addrs
                    .into_iter()
                    .filter(|a| !self.in_backoff(a, now))
                    .collect();
                (!usable.is_empty()).then_some((peer, usable))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=9).map(|n| dial_backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(dial_backoff(u32::MAX), Duration::from_secs(300));
        assert_eq!(dial_backoff(0), Duration::from_secs(5));
    }

    #[test]
    fn a_failed_address_waits_out_its_backoff_and_success_clears_it() {
        let mut book = AddressBook::new(4);
        let a = addr("/ip4/10.0.0.1/udp/4001/quic-v1");
        let t0 = Instant::now();
        assert!(!book.in_backoff(&a, t0));
        book.dial_failed(&a, t0);
        assert!(book.in_backoff(&a, t0 + Duration::from_secs(5)));
        assert!(!book.in_backoff(&a, t0 + Duration::from_secs(6)));
        // A second failure in a row doubles the wait.
        book.dial_failed(&a, t0);
        assert!(book.in_backoff(&a, t0 + Duration::from_secs(9)));
        assert!(!book.in_backoff(&a, t0 + Duration::from_secs(11)));
        book.dial_succeeded(&a);
        assert!(!book.in_backoff(&a, t0), "a success resets the count");
        book.dial_failed(&a, t0);
        assert!(
            !book.in_backoff(&a, t0 + Duration::from_secs(6)),
            "back to 5 s"
        );
    }

    #[test]
    fn keeps_the_newest_addresses_per_peer_and_reports_new_peers() {
        let mut book = AddressBook::new(4);
        let peer = PeerId::random();
        let nth = |i: usize| addr(&format!("/ip4/10.0.0.{i}/tcp/4001"));
        assert!(book.remember(peer, nth(0)), "first address: a new peer");
        assert!(!book.remember(peer, nth(0)), "known peer");
        for i in 1..=MAX_ADDRS_PER_PEER {
            assert!(!book.remember(peer, nth(i)));
        }
        let kept = book.addresses(&peer);
        assert_eq!(kept.len(), MAX_ADDRS_PER_PEER);
        assert_eq!(kept.first(), Some(&nth(1)), "the oldest went first");
        assert_eq!(kept.last(), Some(&nth(MAX_ADDRS_PER_PEER)));
        assert!(book.addresses(&PeerId::random()).is_empty());
    }

    #[test]
    fn forgets_the_least_recently_used_peer_beyond_capacity() {
        let mut book = AddressBook::new(2);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        book.remember(a, addr("/ip4/10.0.0.1/tcp/1"));
        book.remember(b, addr("/ip4/10.0.0.2/tcp/1"));
        book.remember(a, addr("/ip4/10.0.0.1/tcp/2"));
        book.remember(c, addr("/ip4/10.0.0.3/tcp/1"));
        assert!(book.addresses(&b).is_empty(), "b was used least recently");
        assert_eq!(book.addresses(&a).len(), 2);
        assert_eq!(book.addresses(&c).len(), 1);
    }

    #[test]
    fn dialable_refuses_circuits_bare_ids_and_strangers_loopback() {
        let circuit = addr(
            "/ip4/10.0.0.1/udp/1/quic-v1/p2p/12D3KooWGBfK8wqydXUoqdmdB5vUuVuj6hsuFFDcW1jfsZqTmF3k/p2p-circuit",
        );
        let bare = addr("/p2p/12D3KooWGBfK8wqydXUoqdmdB5vUuVuj6hsuFFDcW1jfsZqTmF3k");
        let loopback = addr("/ip4/127.0.0.1/udp/4001/quic-v1");
        let loopback6 = addr("/ip6/::1/tcp/4001");
        for peer_on_loopback in [false, true] {
            assert!(!is_dialable(&circuit, peer_on_loopback));
            assert!(!is_dialable(&bare, peer_on_loopback));
            assert!(is_dialable(
                &addr("/ip4/10.0.0.1/tcp/4001"),
                peer_on_loopback
            ));
            assert!(is_dialable(
                &addr("/dns4/example.org/tcp/443/wss"),
                peer_on_loopback
            ));
            assert!(is_dialable(&addr("/memory/7"), peer_on_loopback));
        }
        assert!(
            !is_dialable(&loopback, false),
            "a stranger's 127.0.0.1 is not theirs"
        );
        assert!(!is_dialable(&loopback6, false));
        assert!(is_dialable(&loopback, true), "a peer met over loopback");
        assert!(is_dialable(&loopback6, true));
    }

    #[test]
    fn dial_candidates_put_bootstrap_first_once_and_skip_backoff() {
        let mut book = AddressBook::new(8);
        let boot = PeerId::random();
        let known = PeerId::random();
        let connected = PeerId::random();
        let failing = PeerId::random();
        let boot_addr = addr(&format!("/ip4/10.0.0.1/tcp/1/p2p/{boot}"));
        let t0 = Instant::now();
        book.remember(boot, addr("/ip4/10.0.0.1/tcp/2"));
        book.remember(known, addr("/ip4/10.0.0.2/tcp/1"));
        book.remember(connected, addr("/ip4/10.0.0.3/tcp/1"));
        let bad = addr("/ip4/10.0.0.4/tcp/1");
        book.remember(failing, bad.clone());
        book.dial_failed(&bad, t0);
        let no_id = addr("/ip4/10.0.0.9/tcp/1");

        let picked = book.dial_candidates(&[no_id, boot_addr.clone()], t0, |p| *p == connected);
        assert_eq!(
            picked,
            [
                (boot, vec![boot_addr]),
                (known, vec![addr("/ip4/10.0.0.2/tcp/1")])
            ]
        );

        let later =
            book.dial_candidates(&[], t0 + dial_backoff(1) + Duration::from_secs(1), |_| {
                false
            });
        assert!(
            later
                .iter()
                .any(|(p, a)| *p == failing && *a == [bad.clone()]),
            "{later:?}"
        );
        assert_eq!(later.len(), 4);
    }
}
