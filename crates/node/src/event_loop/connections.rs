//! Connections: listening, dialling on request, the connection floor kept by
//! dialling known peers, connection bookkeeping and round-trip times.

use std::time::Instant;

use libp2p::{
    core::{transport::ListenerId, ConnectedPoint},
    multiaddr::Protocol,
    ping,
    swarm::{
        dial_opts::{DialOpts, PeerCondition},
        ConnectionId, DialError,
    },
    Multiaddr, PeerId,
};

use super::EventLoop;
use crate::{
    command::Reply,
    error::ConnectionError,
    events::NodeEvent,
    nat::is_relayed,
    peers::{ConnectionInfo, PathKind, PeerState},
};

impl EventLoop {
    pub(super) fn on_new_listen_addr(&mut self, listener: ListenerId, address: Multiaddr) {
        tracing::info!(%address, "listening");
        // A relay server is run to be reached: its own listen addresses
        // are its external addresses (libp2p offers the relay service
        // only on nodes with one).
        if self.config.relay_server && !is_relayed(&address) {
            self.swarm.add_external_address(address.clone());
        }
        self.on_relay_listen_addr(listener, &address);
        self.pending.listener_ready(listener);
        self.pending.answer_listening(self.local_listen_addrs());
        self.emit(NodeEvent::ListenAddrAdded { addr: address });
    }

    /// A listener closed or failed: start-up fails if it was a configured one.
    pub(super) fn on_listener_failed(&mut self, listener: ListenerId, error: std::io::Error) {
        if self.pending.listener_failed(listener, error) {
            self.pending.answer_listening(self.local_listen_addrs());
        }
    }

    pub(super) fn connect(&mut self, addr: Multiaddr, reply: Reply<PeerId>) {
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Some(peer),
            _ => None,
        };
        if peer == Some(*self.swarm.local_peer_id()) {
            let _ = reply.send(Err(ConnectionError::Dial {
                addr,
                reason: OWN_ADDRESS.into(),
            }
            .into()));
            return;
        }
        // Connected already: done, unless only through relays and a direct
        // address was asked for.
        let only_relayed = |state: &PeerState| {
            state
                .connections
                .iter()
                .all(|(_, c)| c.path == PathKind::Relayed)
        };
        if let Some(peer) = peer.filter(|p| self.swarm.is_connected(p)) {
            let wants_direct =
                !is_relayed(&addr) && self.peers.get(&peer).is_some_and(only_relayed);
            if !wants_direct {
                let _ = reply.send(Ok(peer));
                return;
            }
        }
        // A bare /p2p/ID: dial the addresses we know for the peer.
        let bare = addr.iter().count() == 1 && peer.is_some();
        let opts = match peer {
            Some(peer) if bare => DialOpts::peer_id(peer)
                .addresses(self.book.addresses(&peer))
                .extend_addresses_through_behaviour()
                .condition(PeerCondition::Always)
                .build(),
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => self.pending.add_dial(id, addr, reply),
            Err(e) => {
                let _ = reply.send(Err(ConnectionError::Dial {
                    addr,
                    reason: dial_error_text(&e),
                }
                .into()));
            }
        }
    }

    pub(super) fn disconnect(&mut self, peer: PeerId, reply: Reply<()>) {
        if !self.swarm.is_connected(&peer) {
            let _ = reply.send(Err(ConnectionError::NotConnected(peer).into()));
            return;
        }
        let _ = self.swarm.disconnect_peer_id(peer);
        self.pending.add_disconnect(peer, reply);
    }

    pub(super) fn on_connection_established(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        endpoint: &ConnectedPoint,
        num_established: u32,
    ) {
        let info = ConnectionInfo::new(endpoint);
        tracing::debug!(%peer_id, addr = %info.remote_addr, "connection established");
        if endpoint.is_dialer() && !endpoint.is_relayed() {
            self.book.remember(peer_id, info.remote_addr.clone());
            self.book.dial_succeeded(&info.remote_addr);
        }
        self.peers
            .entry(peer_id)
            .or_default()
            .connections
            .push((connection_id, info));
        self.metrics.connections.inc();
        if let Some((_, reply)) = self.pending.take_dial(connection_id) {
            let _ = reply.send(Ok(peer_id));
        }
        let Some(peer) = self.peer_info(&peer_id) else {
            return;
        };
        if num_established == 1 {
            self.send_pq_identity(peer_id);
            self.metrics.connected_peers.set(self.peers.len() as i64);
            self.handlers.peer_connected(&peer);
            self.emit(NodeEvent::PeerConnected(peer));
        } else {
            self.peer_updated(peer);
        }
    }

    pub(super) fn on_connection_closed(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        num_established: u32,
    ) {
        self.metrics.connections.dec();
        if let Some(state) = self.peers.get_mut(&peer_id) {
            state.connections.retain(|(id, _)| *id != connection_id);
        }
        if num_established > 0 {
            self.peer_changed(&peer_id);
            return;
        }
        self.peers.remove(&peer_id);
        self.on_relay_gone(peer_id);
        self.metrics.connected_peers.set(self.peers.len() as i64);
        for reply in self.pending.take_disconnects(&peer_id) {
            let _ = reply.send(Ok(()));
        }
        self.handlers.peer_disconnected(peer_id);
        self.emit(NodeEvent::PeerDisconnected { peer_id });
    }

    pub(super) fn on_dial_error(
        &mut self,
        connection_id: ConnectionId,
        peer_id: Option<PeerId>,
        error: &DialError,
    ) {
        self.metrics.dial_failures.inc();
        if let DialError::Transport(attempts) = error {
            let now = Instant::now();
            for (addr, _) in attempts {
                self.book.dial_failed(addr, now);
            }
        }
        let text = dial_error_text(error);
        tracing::debug!(?peer_id, error = %text, "dial failed");
        if let Some((addr, reply)) = self.pending.take_dial(connection_id) {
            let _ = reply.send(Err(ConnectionError::Dial {
                addr,
                reason: text.clone(),
            }
            .into()));
        }
        self.emit(NodeEvent::DialFailed {
            peer_id,
            error: text,
        });
    }

    pub(super) fn on_ping_event(&mut self, event: ping::Event) {
        if let ping::Event {
            peer,
            result: Ok(rtt),
            ..
        } = event
        {
            if let Some(state) = self.peers.get_mut(&peer) {
                state.rtt = Some(rtt);
            }
            self.peer_changed(&peer);
        }
    }

    /// Keeps relay reservations up, and the node at or above
    /// `min_connections` by dialling known peers out of dial back-off.
    pub(super) fn maintain(&mut self) {
        self.reserve_relays();
        let connected = self.peers.len();
        let floor = self.config.min_connections as usize;
        if connected >= floor {
            return;
        }
        let mut wanted = floor - connected;
        let me = *self.swarm.local_peer_id();
        let swarm = &self.swarm;
        let candidates =
            self.book
                .dial_candidates(&self.config.bootstrap, Instant::now(), |peer| {
                    *peer == me || swarm.is_connected(peer)
                });
        for (peer, addrs) in candidates {
            if wanted == 0 {
                break;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if self.swarm.dial(opts).is_ok() {
                wanted -= 1;
            }
        }
    }
}

/// Why a dial of our own peer id goes nowhere, and what to do.
const OWN_ADDRESS: &str = "that is this node's own address; dial another peer's";

/// A dial error in words a user can act on.
fn dial_error_text(error: &DialError) -> String {
    match error {
        DialError::Transport(attempts) => {
            let parts: Vec<String> = attempts
                .iter()
                .map(|(addr, e)| match attempts.len() {
                    // The one address is the one the message names already.
                    1 => crate::error::describe(e),
                    _ => format!("{addr}: {}", crate::error::describe(e)),
                })
                .collect();
            if parts.is_empty() {
                "no address of a transport this node speaks; give its QUIC or TCP address"
                    .to_string()
            } else {
                format!(
                    "{}; check that the peer is running and listens there",
                    parts.join("; ")
                )
            }
        }
        DialError::NoAddresses => {
            "no address known for the peer; connect with its full multiaddr".to_string()
        }
        DialError::LocalPeerId { .. } => OWN_ADDRESS.to_string(),
        // `ConnectionDenied` only says "connection denied"; the reason (such
        // as the connection limit) is its source.
        DialError::Denied { cause } => match std::error::Error::source(cause) {
            Some(reason) => format!("refused locally: {reason}"),
            None => format!("refused locally: {cause}"),
        },
        DialError::WrongPeerId { obtained, .. } => {
            format!("the peer at that address is {obtained}, not the one in the address; check the peer id at its end")
        }
        other => other.to_string(),
    }
}
