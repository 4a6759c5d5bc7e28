//! Discovery: what identify, mDNS and the DHT tell us about peers and their
//! addresses, kept in the address book and told to handlers and subscribers.

use std::collections::HashMap;

use libp2p::{
    identify, mdns,
    swarm::dial_opts::{DialOpts, PeerCondition},
    Multiaddr, PeerId,
};

use super::{
    address_book::{is_dialable, is_loopback},
    EventLoop,
};
use crate::{
    events::{DiscoverySource, NodeEvent},
    nat::RELAY_HOP_PROTOCOL,
};

impl EventLoop {
    /// Whether `addr`, reported for `peer`, is worth dialling from here (see
    /// [`is_dialable`]); loopback counts only for a peer we reach over it.
    pub(super) fn dialable(&self, peer: &PeerId, addr: &Multiaddr) -> bool {
        let on_loopback = self.peers.get(peer).is_some_and(|s| {
            s.connections
                .iter()
                .any(|(_, c)| is_loopback(&c.remote_addr))
        });
        is_dialable(addr, on_loopback)
    }

    /// Remembers the dialable `addrs` of `peer`; a peer new to the address
    /// book is announced to handlers and subscribers.
    pub(super) fn discovered(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        source: DiscoverySource,
    ) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        let addrs: Vec<Multiaddr> = addrs
            .into_iter()
            .filter(|a| self.dialable(&peer, a))
            .collect();
        if addrs.is_empty() {
            return;
        }
        let mut new = false;
        for a in &addrs {
            new |= self.book.remember(peer, a.clone());
        }
        if !new {
            return;
        }
        self.handlers.peer_discovered(peer, &addrs);
        self.emit(NodeEvent::PeerDiscovered {
            peer_id: peer,
            addrs,
            source,
        });
    }

    pub(super) fn on_identify_event(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        let offers_relay = info
            .protocols
            .iter()
            .any(|p| p.as_ref() == RELAY_HOP_PROTOCOL);
        tracing::debug!(%peer_id, offers_relay, protocols = ?info.protocols, "identified");
        if offers_relay {
            self.relay_offered(peer_id, &info.listen_addrs);
        }
        let kad_protocol = self.config.kad_protocol.as_str();
        let speaks_kad = info.protocols.iter().any(|p| p.as_ref() == kad_protocol);
        if speaks_kad {
            for addr in &info.listen_addrs {
                if self.dialable(&peer_id, addr) {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, addr.clone());
                }
            }
        }
        self.discovered(
            peer_id,
            info.listen_addrs.clone(),
            DiscoverySource::Identify,
        );
        if let Some(state) = self.peers.get_mut(&peer_id) {
            state.set_identify(
                info.agent_version,
                info.protocols.iter().map(|p| p.to_string()).collect(),
                info.listen_addrs,
            );
        }
        self.peer_changed(&peer_id);
    }

    pub(super) fn on_mdns_event(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(found) = event else {
            return;
        };
        let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for (peer, addr) in found {
            by_peer.entry(peer).or_default().push(addr);
        }
        for (peer, addrs) in by_peer {
            self.discovered(peer, addrs.clone(), DiscoverySource::Mdns);
            if !self.swarm.is_connected(&peer)
                && self.peers.len() < self.config.max_connections as usize
            {
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                let _ = self.swarm.dial(opts);
            }
        }
    }
}
