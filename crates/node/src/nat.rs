//! Reachability and relaying: what AutoNAT learned about our addresses, our
//! relay reservations, and hole-punch outcomes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use libp2p::{core::transport::ListenerId, multiaddr::Protocol, Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::clock::unix_ms;

/// Relays we hold reservations on at once, at most.
pub const MAX_RELAYS: usize = 2;
/// The circuit relay v2 hop protocol: peers speaking it can relay for us.
pub const RELAY_HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// Whether others can dial us directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Reachability {
    /// An address of ours was confirmed reachable by an AutoNAT server.
    Public,
    /// AutoNAT servers could not reach any of our addresses.
    Private,
    /// Not tested yet (no AutoNAT server, or no candidate address).
    Unknown,
}

/// Hole-punch (DCUtR) outcomes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HolePunchStats {
    /// Upgrades tried.
    pub attempts: u64,
    /// Upgrades that produced a direct connection.
    pub successes: u64,
    /// Upgrades that failed (the relayed connection stays).
    pub failures: u64,
}

/// AutoNAT probe outcomes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct AutonatStats {
    /// Addresses a server dialled back successfully.
    pub confirmed: u64,
    /// Probes where the dial-back failed.
    pub failed: u64,
}

/// The node's NAT status as reported to users and tools.
#[derive(Debug, Clone, Serialize)]
pub struct NatStatus {
    /// Public, private or unknown.
    pub reachability: Reachability,
    /// Addresses confirmed reachable from outside.
    pub confirmed_addrs: Vec<Multiaddr>,
    /// Relays we hold a reservation on.
    pub relays: Vec<PeerId>,
    /// Our addresses through those relays.
    pub relayed_addrs: Vec<Multiaddr>,
    /// Each reservation and when it became active, so a reservation made on a
    /// restarted relay can be told from one that is only not yet known lost.
    pub reservations: Vec<Reservation>,
    /// Hole-punch outcomes.
    pub hole_punch: HolePunchStats,
    /// AutoNAT probe outcomes.
    pub autonat: AutonatStats,
}

/// An active relay reservation.
#[derive(Debug, Clone, Serialize)]
pub struct Reservation {
    /// The relay.
    pub relay: PeerId,
    /// When the reservation became active (Unix milliseconds).
    pub active_since_ms: u64,
}

/// NAT state kept by the event loop.
#[derive(Debug, Default)]
pub(crate) struct NatState {
    confirmed: BTreeSet<Multiaddr>,
    /// Relay listeners: requested or active reservations.
    relay_listeners: HashMap<ListenerId, PeerId>,
    /// Relays whose reservation was accepted, with our circuit addresses.
    reserved: BTreeMap<PeerId, BTreeSet<Multiaddr>>,
    /// When each reservation in `reserved` became active (Unix milliseconds).
    reserved_since: BTreeMap<PeerId, u64>,
    /// Connected peers offering the relay hop protocol, with a dialable address.
    relay_candidates: BTreeMap<PeerId, Multiaddr>,
    pub hole_punch: HolePunchStats,
    pub autonat: AutonatStats,
}

impl NatState {
    pub fn reachability(&self) -> Reachability {
        if self.confirmed.iter().any(|a| !is_relayed(a)) {
            Reachability::Public
        } else if self.autonat.failed > 0 {
            Reachability::Private
        } else {
            Reachability::Unknown
        }
    }

    pub fn status(&self) -> NatStatus {
        NatStatus {
            reachability: self.reachability(),
            confirmed_addrs: self.confirmed.iter().cloned().collect(),
            relays: self.reserved.keys().copied().collect(),
            relayed_addrs: self.reserved.values().flatten().cloned().collect(),
            reservations: self
                .reserved_since
                .iter()
                .map(|(relay, since)| Reservation {
                    relay: *relay,
                    active_since_ms: *since,
                })
                .collect(),
            hole_punch: self.hole_punch,
            autonat: self.autonat,
        }
    }

    /// Records an AutoNAT result; returns the reachability if it changed.
    pub fn probe_result(&mut self, ok: bool) -> Option<Reachability> {
        let before = self.reachability();
        if ok {
            self.autonat.confirmed += 1;
        } else {
            self.autonat.failed += 1;
        }
        (self.reachability() != before).then(|| self.reachability())
    }

    /// An external address was confirmed or expired; returns the new
    /// reachability if it changed.
    pub fn external(&mut self, addr: Multiaddr, confirmed: bool) -> Option<Reachability> {
        let before = self.reachability();
        if confirmed {
            self.confirmed.insert(addr);
        } else {
            self.confirmed.remove(&addr);
        }
        (self.reachability() != before).then(|| self.reachability())
    }

    pub fn add_relay_candidate(&mut self, relay: PeerId, addr: Multiaddr) {
        self.relay_candidates.insert(relay, addr);
    }

    pub fn remove_relay_candidate(&mut self, relay: &PeerId) {
        self.relay_candidates.remove(relay);
    }

    /// Relays to reserve on now: candidates we have no listener on, while we
    /// are not publicly reachable and hold fewer than [`MAX_RELAYS`].
    pub fn relays_to_reserve(&self) -> Vec<(PeerId, Multiaddr)> {
        if self.reachability() == Reachability::Public {
            return Vec::new();
        }
        let held: BTreeSet<&PeerId> = self.relay_listeners.values().collect();
        let room = MAX_RELAYS.saturating_sub(held.len());
        self.relay_candidates
            .iter()
            .filter(|(peer, _)| !held.contains(peer))
            .take(room)
            .map(|(p, a)| (*p, a.clone()))
            .collect()
    }

    pub fn relay_listening(&mut self, listener: ListenerId, relay: PeerId) {
        self.relay_listeners.insert(listener, relay);
    }

    /// A listen address appeared; if it is a circuit address of one of our
    /// relay listeners, the reservation is active.
    pub fn listen_addr(&mut self, listener: ListenerId, addr: &Multiaddr) -> Option<PeerId> {
        let relay = *self.relay_listeners.get(&listener)?;
        self.reserved.entry(relay).or_default().insert(addr.clone());
        self.reserved_since.entry(relay).or_insert_with(unix_ms);
        Some(relay)
    }

    /// Our listeners through `relay` (requested or active reservations).
    pub fn listeners_through(&self, relay: &PeerId) -> Vec<ListenerId> {
        self.relay_listeners
            .iter()
            .filter(|(_, r)| *r == relay)
            .map(|(id, _)| *id)
            .collect()
    }

    /// A listener closed; if it was a relay listener, the reservation is gone.
    pub fn listener_closed(&mut self, listener: ListenerId) -> Option<PeerId> {
        let relay = self.relay_listeners.remove(&listener)?;
        if !self.relay_listeners.values().any(|r| *r == relay) {
            self.reserved.remove(&relay);
            self.reserved_since.remove(&relay);
        }
        Some(relay)
    }
}

/// Whether an address goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_follows_probes_and_confirmations() {
        let mut nat = NatState::default();
        assert_eq!(nat.reachability(), Reachability::Unknown);
        assert_eq!(nat.probe_result(false), Some(Reachability::Private));
        let addr: Multiaddr = "/ip4/198.51.100.20/udp/4001/quic-v1".parse().unwrap();
        assert_eq!(nat.external(addr.clone(), true), Some(Reachability::Public));
        assert_eq!(nat.external(addr, false), Some(Reachability::Private));
        let relayed: Multiaddr = "/ip4/198.51.100.1/udp/1/quic-v1/p2p/12D3KooWGBfK8wqydXUoqdmdB5vUuVuj6hsuFFDcW1jfsZqTmF3k/p2p-circuit".parse().unwrap();
        assert_eq!(
            nat.external(relayed, true),
            None,
            "a relayed address is not public reachability"
        );
    }

    #[test]
    fn reserves_on_at_most_two_relays_until_public() {
        let mut nat = NatState::default();
        let addr: Multiaddr = "/ip4/198.51.100.1/udp/1/quic-v1".parse().unwrap();
        let relays: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for r in &relays {
            nat.add_relay_candidate(*r, addr.clone());
        }
        let first = nat.relays_to_reserve();
        assert_eq!(first.len(), MAX_RELAYS);
        // Listening on two relays leaves no room.
        let ids: Vec<ListenerId> = (0..2).map(|_| ListenerId::next()).collect();
        for (id, (relay, _)) in ids.iter().zip(&first) {
            nat.relay_listening(*id, *relay);
        }
        assert!(nat.relays_to_reserve().is_empty());
        let circuit: Multiaddr = addr.clone().with(Protocol::P2pCircuit);
        assert_eq!(nat.listen_addr(ids[0], &circuit), Some(first[0].0));
        assert_eq!(nat.listeners_through(&first[0].0), vec![ids[0]]);
        assert_eq!(nat.status().relays, vec![first[0].0]);
        let reservations = nat.status().reservations;
        assert_eq!(reservations.len(), 1);
        assert_eq!(reservations[0].relay, first[0].0);
        assert!(reservations[0].active_since_ms > 0);
        // Losing one makes room again.
        assert_eq!(nat.listener_closed(ids[0]), Some(first[0].0));
        assert!(nat.status().relays.is_empty());
        assert!(nat.status().reservations.is_empty());
        assert_eq!(nat.relays_to_reserve().len(), 1);
        nat.external("/ip4/198.51.100.9/tcp/1".parse().unwrap(), true);
        assert!(
            nat.relays_to_reserve().is_empty(),
            "public nodes need no relay"
        );
    }
}
