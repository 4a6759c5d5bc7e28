//! Reachability: AutoNAT probes and confirmed external addresses, relay
//! reservations while we are not publicly reachable, and hole punching.
//! What was learned lives in [`NatState`](crate::nat::NatState).

use libp2p::{autonat, core::transport::ListenerId, dcutr, multiaddr::Protocol, Multiaddr, PeerId};

use super::EventLoop;
use crate::{
    events::NodeEvent,
    nat::is_relayed,
    peers::{Direction, PathKind},
};

impl EventLoop {
    /// A peer offers the relay hop protocol: a relay candidate, if we use
    /// relays and are not one.
    pub(super) fn relay_offered(&mut self, relay: PeerId, listen_addrs: &[Multiaddr]) {
        if !self.config.auto_relay || self.config.relay_server {
            return;
        }
        if let Some(addr) = self.relay_address(&relay, listen_addrs) {
            self.nat.add_relay_candidate(relay, addr);
            self.reserve_relays();
        }
    }

    /// An address to reach a relay at: the one we dialled it on, else a
    /// direct address it listens on.
    fn relay_address(&self, relay: &PeerId, listen_addrs: &[Multiaddr]) -> Option<Multiaddr> {
        let dialled = self.peers.get(relay).and_then(|state| {
            state
                .connections
                .iter()
                .find(|(_, c)| c.direction == Direction::Outbound && c.path == PathKind::Direct)
                .map(|(_, c)| c.remote_addr.clone())
        });
        let mut addr = dialled.or_else(|| listen_addrs.iter().find(|a| !is_relayed(a)).cloned())?;
        // Strip a trailing /p2p: the circuit address appends it.
        if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
            addr.pop();
        }
        Some(addr)
    }

    /// Asks relays for reservations while we are not publicly reachable.
    pub(super) fn reserve_relays(&mut self) {
        for (relay, addr) in self.nat.relays_to_reserve() {
            let circuit = addr.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    tracing::info!(%relay, %circuit, "requesting a relay reservation");
                    self.nat.relay_listening(listener, relay);
                }
                Err(e) => tracing::warn!(%relay, %e, "cannot listen through relay"),
            }
        }
    }

    /// A listener has an address: if it listens through a relay, the
    /// reservation is active.
    pub(super) fn on_relay_listen_addr(&mut self, listener: ListenerId, address: &Multiaddr) {
        if let Some(relay) = self.nat.listen_addr(listener, address) {
            tracing::info!(%relay, "relay reservation active");
            self.emit(NodeEvent::RelayReservation {
                relay,
                active: true,
            });
        }
    }

    /// A listener closed: if it listened through a relay, the reservation
    /// is lost.
    pub(super) fn on_relay_listener_closed(&mut self, listener: ListenerId) {
        if let Some(relay) = self.nat.listener_closed(listener) {
            tracing::info!(%relay, "relay reservation lost");
            self.emit(NodeEvent::RelayReservation {
                relay,
                active: false,
            });
        }
    }

    /// `peer`'s last connection closed: it is no relay candidate, and our
    /// listeners through it go.
    pub(super) fn on_relay_gone(&mut self, peer: PeerId) {
        self.nat.remove_relay_candidate(&peer);
        // A reservation lives on a connection to its relay. The relay client
        // keeps the listener open a while after that connection is gone,
        // which would stop us reserving again when the relay comes back
        // (e.g. after a restart).
        for listener in self.nat.listeners_through(&peer) {
            self.swarm.remove_listener(listener);
        }
    }

    pub(super) fn on_external_addr(&mut self, address: Multiaddr, confirmed: bool) {
        if let Some(reachability) = self.nat.external(address, confirmed) {
            self.emit(NodeEvent::ReachabilityChanged { reachability });
        }
    }

    pub(super) fn on_autonat_probe(&mut self, event: autonat::v2::client::Event) {
        tracing::debug!(addr = %event.tested_addr, ok = event.result.is_ok(), "autonat probe");
        let meaningful = !is_relayed(&event.tested_addr)
            && !matches!(
                event.tested_addr.iter().next(),
                Some(Protocol::P2p(_)) | None
            );
        if !meaningful {
            return;
        }
        if let Some(reachability) = self.nat.probe_result(event.result.is_ok()) {
            tracing::info!(?reachability, "reachability changed");
            self.emit(NodeEvent::ReachabilityChanged { reachability });
        }
    }

    pub(super) fn on_hole_punch(&mut self, event: dcutr::Event) {
        let success = event.result.is_ok();
        self.nat.hole_punch.attempts += 1;
        if success {
            self.nat.hole_punch.successes += 1;
        } else {
            self.nat.hole_punch.failures += 1;
        }
        tracing::info!(peer = %event.remote_peer_id, success, "hole punch");
        self.emit(NodeEvent::HolePunch {
            peer_id: event.remote_peer_id,
            success,
        });
    }
}
