//! What the UI receives where the node's own types (which derive
//! `specta::Type` for it, such as `PeerInfo`) are not the shape it needs:
//! plain, typed snapshots of the node's state.
//!
//! The TypeScript bindings are generated from these types and the core's.
//! Two rules keep values safe in JavaScript:
//! - Peer ids and multiaddrs travel as their canonical strings.
//! - **u64 becomes f64.** Byte and message counters are `u64` in the node;
//!   they are sent as `number` (f64), exact up to 2^53 (9 PiB, far beyond any
//!   counter here). Counts that fit in u32 (peers, connections, table sizes)
//!   are sent as u32 and saturate instead of wrapping.

use conclave_node::{
    gate::Policy,
    identity::NodeIdentity,
    nat::{NatStatus, Reachability},
    NodeStats,
};
use conclave_sim::sandbox::Sandbox;
use serde::{Deserialize, Serialize};
use specta::Type;

/// A u64 counter as a JavaScript-safe number (exact below 2^53).
pub fn counter(value: u64) -> f64 {
    value as f64
}

/// A usize count as u32, saturating at u32::MAX.
pub fn count(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// A named count, such as connections over QUIC.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq)]
pub struct NamedCount {
    /// What is counted.
    pub name: String,
    /// How many.
    pub count: u32,
}

/// Gossip figures for one subscribed topic.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq)]
pub struct TopicView {
    /// Topic name.
    pub topic: String,
    /// Peers in our mesh for the topic.
    pub mesh_peers: u32,
    /// Connected peers subscribed to it.
    pub subscribed_peers: u32,
}

/// A snapshot of the node for the Network health view.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq)]
pub struct StatsView {
    /// Connected peers.
    pub peers: u32,
    /// Open connections.
    pub connections: u32,
    /// Open connections by transport.
    pub connections_by_transport: Vec<NamedCount>,
    /// Open connections by path (direct, relayed).
    pub connections_by_path: Vec<NamedCount>,
    /// Subscribed topics and their mesh sizes.
    pub topics: Vec<TopicView>,
    /// Peers in the DHT routing table.
    pub routing_table_size: u32,
    /// Total bytes received (u64 as f64, see the module docs).
    pub bytes_in: f64,
    /// Total bytes sent.
    pub bytes_out: f64,
    /// Gossip and direct messages sent and received, in total.
    pub messages: f64,
    /// Addresses we listen on.
    pub listen_addrs: Vec<String>,
    /// Addresses others can reach us at, as confirmed.
    pub external_addrs: Vec<String>,
    /// Relays we hold a reservation on (peer ids).
    pub relays: Vec<String>,
    /// Our addresses through those relays.
    pub relay_addrs: Vec<String>,
    /// Reachability from outside (AutoNAT).
    pub reachability: Reachability,
    /// AutoNAT probes that confirmed an address.
    pub autonat_confirmed: f64,
    /// AutoNAT probes whose dial-back failed.
    pub autonat_failed: f64,
    /// Hole punches (DCUtR) tried.
    pub hole_punch_attempts: f64,
    /// Hole punches that gave a direct connection.
    pub hole_punch_successes: f64,
    /// Seconds since the node started.
    pub uptime_secs: f64,
}

impl StatsView {
    /// One view of the node's counters and its NAT status.
    pub fn new(s: &NodeStats, nat: &NatStatus) -> Self {
        let named = |m: &std::collections::BTreeMap<String, usize>| {
            m.iter()
                .map(|(name, n)| NamedCount {
                    name: name.clone(),
                    count: count(*n),
                })
                .collect()
        };
        let strings = |v: &[conclave_node::Multiaddr]| v.iter().map(ToString::to_string).collect();
        Self {
            peers: count(s.peers),
            connections: count(s.connections),
            connections_by_transport: named(&s.connections_by_transport),
            connections_by_path: named(&s.connections_by_path),
            topics: s
                .topics
                .iter()
                .map(|t| TopicView {
                    topic: t.topic.clone(),
                    mesh_peers: count(t.mesh_peers),
                    subscribed_peers: count(t.subscribed_peers),
                })
                .collect(),
            routing_table_size: count(s.routing_table_size),
            bytes_in: counter(s.bytes_in),
            bytes_out: counter(s.bytes_out),
            messages: counter(
                s.gossip_published
                    .saturating_add(s.gossip_received)
                    .saturating_add(s.direct_sent)
                    .saturating_add(s.direct_received),
            ),
            listen_addrs: strings(&s.listen_addrs),
            external_addrs: strings(&s.external_addrs),
            relays: nat.relays.iter().map(ToString::to_string).collect(),
            relay_addrs: strings(&nat.relayed_addrs),
            reachability: nat.reachability,
            autonat_confirmed: counter(nat.autonat.confirmed),
            autonat_failed: counter(nat.autonat.failed),
            hole_punch_attempts: counter(nat.hole_punch.attempts),
            hole_punch_successes: counter(nat.hole_punch.successes),
            uptime_secs: counter(s.uptime_secs),
        }
    }
}

/// One point of the live charts: rates over the last sampling interval.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq)]
pub struct RateSample {
    /// Unix time in milliseconds.
    pub at_ms: f64,
    /// Bytes received per second.
    pub bytes_in_per_sec: f64,
    /// Bytes sent per second.
    pub bytes_out_per_sec: f64,
    /// Messages (gossip and direct, both ways) per second.
    pub messages_per_sec: f64,
}

impl RateSample {
    /// Rates between two snapshots taken `secs` apart. Counters restart at
    /// zero when the node restarts; such a drop counts as zero, not negative.
    pub fn between(prev: &StatsView, next: &StatsView, secs: f64, at_ms: f64) -> Self {
        let rate = |a: f64, b: f64| {
            if secs > 0.0 && b >= a {
                (b - a) / secs
            } else {
                0.0
            }
        };
        Self {
            at_ms,
            bytes_in_per_sec: rate(prev.bytes_in, next.bytes_in),
            bytes_out_per_sec: rate(prev.bytes_out, next.bytes_out),
            messages_per_sec: rate(prev.messages, next.messages),
        }
    }
}

/// The node's identity as the Identity view shows it.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq)]
pub struct IdentityView {
    /// The libp2p PeerId (from the Ed25519 key).
    pub peer_id: String,
    /// Profile name.
    pub profile: String,
    /// Where the key is kept, in words.
    pub key_storage: String,
    /// Post-quantum key fingerprints, once the node has PQ keys.
    pub pq: Option<PqFingerprints>,
    /// Shortest passphrase a backup accepts.
    pub min_passphrase_len: u32,
}

/// Fingerprints (BLAKE3, first 16 bytes, hex) of the post-quantum keys bound
/// to the PeerId.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq)]
pub struct PqFingerprints {
    /// The PQ identity record's fingerprint (all its public keys).
    pub record: String,
    /// ML-DSA-65 public key fingerprint.
    pub ml_dsa_65: String,
    /// ML-KEM-768 public key fingerprint.
    pub ml_kem_768: String,
}

impl PqFingerprints {
    /// The fingerprints of `identity`'s PQ keys, if it has them.
    pub fn of(identity: &NodeIdentity) -> Option<Self> {
        let record = identity.record();
        let short = |bytes: &[u8]| hex::encode(&blake3::hash(bytes).as_bytes()[..16]);
        (!record.ml_dsa_public.is_empty()).then(|| Self {
            record: record.fingerprint(),
            ml_dsa_65: short(&record.ml_dsa_public),
            ml_kem_768: short(&record.ml_kem_public),
        })
    }
}

/// Who may connect, as the node's connection gate enforces it.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq)]
pub struct PolicyView {
    /// Peers always admitted (in private mode, the only ones).
    pub allowed: Vec<String>,
    /// Peers never admitted.
    pub denied: Vec<String>,
    /// Only allowed peers may connect.
    pub private_mode: bool,
    /// The file the node keeps the policy in.
    pub file: String,
}

impl PolicyView {
    /// The view of `policy`, kept in `file`.
    pub fn new(policy: &Policy, file: &std::path::Path) -> Self {
        Self {
            allowed: policy.allow.iter().map(ToString::to_string).collect(),
            denied: policy.deny.iter().map(ToString::to_string).collect(),
            private_mode: policy.private,
            file: file.display().to_string(),
        }
    }
}

/// Where this instance keeps its files.
#[derive(Debug, Clone, Serialize, Deserialize, Type, PartialEq)]
pub struct AppInfo {
    /// App version.
    pub version: String,
    /// Profile name.
    pub profile: String,
    /// The profile's config file.
    pub config_file: String,
    /// The profile's data folder.
    pub data_dir: String,
    /// The profile's log folder.
    pub log_dir: String,
}

/// What the sandbox runs, for the UI.
#[derive(Debug, Clone, Serialize, Type, PartialEq)]
pub struct SandboxView {
    /// Sandbox peers running.
    pub running: u32,
    /// Their peer ids.
    pub peer_ids: Vec<String>,
}

impl SandboxView {
    /// The view of `sandbox` now.
    pub fn of(sandbox: &Sandbox) -> Self {
        let peer_ids = sandbox.peer_ids();
        Self {
            running: count(peer_ids.len()),
            peer_ids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(bytes_in: f64, messages: f64) -> StatsView {
        StatsView {
            peers: 0,
            connections: 0,
            connections_by_transport: vec![],
            connections_by_path: vec![],
            topics: vec![],
            routing_table_size: 0,
            bytes_in,
            bytes_out: 0.0,
            messages,
            listen_addrs: vec![],
            external_addrs: vec![],
            relays: vec![],
            relay_addrs: vec![],
            reachability: Reachability::Unknown,
            autonat_confirmed: 0.0,
            autonat_failed: 0.0,
            hole_punch_attempts: 0.0,
            hole_punch_successes: 0.0,
            uptime_secs: 0.0,
        }
    }

    #[test]
    fn rates_are_per_second_and_never_negative() {
        let r = RateSample::between(&stats(100.0, 2.0), &stats(300.0, 6.0), 2.0, 0.0);
        assert_eq!(r.bytes_in_per_sec, 100.0);
        assert_eq!(r.messages_per_sec, 2.0);
        let after_restart = RateSample::between(&stats(300.0, 6.0), &stats(10.0, 0.0), 1.0, 0.0);
        assert_eq!(after_restart.bytes_in_per_sec, 0.0);
    }

    #[test]
    fn large_counters_stay_exact_below_2_pow_53() {
        let big = (1u64 << 53) - 1;
        assert_eq!(counter(big) as u64, big);
        assert_eq!(count(usize::MAX), u32::MAX);
    }
}
