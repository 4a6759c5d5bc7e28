//! Commands from handles: each goes to the handler of its concern; the
//! connection policy, peer listing and stats are answered here.

use std::collections::BTreeMap;

use libp2p::{gossipsub::IdentTopic, PeerId};

use super::EventLoop;
use crate::{
    command::{Command, PolicyChange},
    error::NodeError,
    gate::Policy,
    peers::{PathKind, PeerInfo},
    stats::{NodeStats, TopicStats},
};

impl EventLoop {
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::WaitListening { reply } => {
                self.pending.wait_listening(reply);
                self.pending.answer_listening(self.local_listen_addrs());
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(Ok(self.local_listen_addrs()));
            }
            Command::Connect { addr, reply } => self.connect(addr, reply),
            Command::Disconnect { peer, reply } => self.disconnect(peer, reply),
            Command::Peers { reply } => {
                let mut peers: Vec<PeerInfo> = self
                    .peers
                    .keys()
                    .filter_map(|p| self.peer_info(p))
                    .collect();
                peers.sort_by_key(|p| p.peer_id.to_string());
                let _ = reply.send(Ok(peers));
            }
            Command::SendTo {
                peer,
                protocol,
                payload,
                reply,
            } => self.send_direct(peer, protocol, payload, reply),
            Command::Broadcast { topic, data, reply } => {
                let _ = reply.send(self.publish(&topic, data));
            }
            Command::Subscribe { topic, reply } => {
                let _ = reply.send(self.subscribe(&topic));
            }
            Command::Unsubscribe { topic, reply } => {
                let _ = reply.send(Ok(self.unsubscribe(&topic)));
            }
            Command::WaitTopicPeers {
                topic,
                count,
                reply,
            } => self.wait_topic_peers(topic, count, reply),
            Command::RegisterHandler { handler, reply } => {
                let _ = reply.send(self.register_handler(handler));
            }
            Command::UnregisterHandler { protocol, reply } => {
                let _ = reply.send(self.handlers.remove(&protocol).map_err(NodeError::from));
            }
            Command::PutRecord { record, reply } => self.put_record(record, reply),
            Command::GetRecord { key, reply } => self.get_record(key, reply),
            Command::StartProviding { key, reply } => self.start_providing(key, reply),
            Command::GetProviders { key, reply } => self.get_providers(key, reply),
            Command::UpdatePolicy { change, reply } => {
                let _ = reply.send(self.update_policy(change));
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
            Command::DhtStore { reply } => {
                let _ = reply.send(Ok(self.dht_store_stats()));
            }
            Command::Nat { reply } => {
                let _ = reply.send(Ok(self.nat.status()));
            }
            Command::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    /// Changes the connection policy, saves it and closes the connections it
    /// now refuses; returns the policy.
    fn update_policy(&mut self, change: PolicyChange) -> Result<Policy, NodeError> {
        let connected: Vec<PeerId> = self.peers.keys().copied().collect();
        let gate = &mut self.swarm.behaviour_mut().gate;
        gate.update(
            |policy| match change {
                PolicyChange::Allow(peer) => {
                    policy.deny.remove(&peer);
                    policy.allow.insert(peer);
                }
                PolicyChange::Deny(peer) => {
                    policy.allow.remove(&peer);
                    policy.deny.insert(peer);
                }
                PolicyChange::Unlist(peer) => {
                    policy.allow.remove(&peer);
                    policy.deny.remove(&peer);
                }
                PolicyChange::Private(private) => policy.private = private,
                PolicyChange::None => {}
            },
            connected.into_iter(),
        )
        .map_err(NodeError::Policy)?;
        Ok(gate.policy().clone())
    }

    fn stats(&mut self) -> NodeStats {
        let routing_table_size: usize = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum();
        let mut by_transport = BTreeMap::new();
        let mut by_path = BTreeMap::new();
        let mut connections = 0;
        for state in self.peers.values() {
            for (_, c) in &state.connections {
                connections += 1;
                *by_transport
                    .entry(c.transport.as_str().to_string())
                    .or_insert(0) += 1;
                let path = match c.path {
                    PathKind::Direct => "direct",
                    PathKind::Relayed => "relayed",
                };
                *by_path.entry(path.to_string()).or_insert(0) += 1;
            }
        }
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let topics = self
            .subscribed
            .iter()
            .map(|t| {
                let hash = IdentTopic::new(t).hash();
                TopicStats {
                    topic: t.clone(),
                    mesh_peers: gossipsub.mesh_peers(&hash).count(),
                    subscribed_peers: self.topic_peer_count(&hash),
                }
            })
            .collect();
        NodeStats {
            peer_id: *self.swarm.local_peer_id(),
            peers: self.peers.len(),
            connections,
            connections_by_transport: by_transport,
            connections_by_path: by_path,
            topics,
            routing_table_size,
            bytes_in: 0,
            bytes_out: 0,
            gossip_published: self.metrics.gossip_published.get(),
            gossip_received: self.metrics.gossip_received.get(),
            direct_sent: self.metrics.direct_sent.get(),
            direct_received: self.metrics.direct_received.get(),
            listen_addrs: self.local_listen_addrs(),
            external_addrs: self.swarm.external_addresses().cloned().collect(),
            handlers: self.handlers.protocols(),
            uptime_secs: 0,
        }
    }
}
