//! Wire cost arithmetic: bytes per delivered payload byte and duplicate
//! copies per delivered message. Pure.

use serde::Serialize;

/// Bytes gossipsub adds around a payload when it sends one message: the
/// author's peer id (~40 B), sequence number (~10 B), topic (~25 B),
/// Ed25519 signature (~66 B) and RPC framing (~6 B). Muxer and transport
/// framing are below libp2p's bandwidth counters and not included.
pub const GOSSIP_MESSAGE_OVERHEAD: usize = 140;

/// How the duplicate figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateMethod {
    /// From gossipsub's own counters of messages received before and after
    /// de-duplication (exact).
    GossipsubCounters,
    /// From the bytes received during the workload, less the idle
    /// network's background over the same time, divided by the size of one
    /// message copy: an upper bound, as gossip control traffic (IHAVE,
    /// IWANT) counts too.
    WireBytesEstimate,
}

impl DuplicateMethod {
    /// A sentence for the report.
    pub fn note(self) -> &'static str {
        match self {
            DuplicateMethod::GossipsubCounters => {
                "exact: gossipsub's received-before/after-dedup counters"
            }
            DuplicateMethod::WireBytesEstimate => {
                "estimate (upper bound): (bytes received - idle background) / (deliveries x one message copy) - 1; gossipsub's duplicate counters are not in the node's registry"
            }
        }
    }
}

/// Extra copies per first copy from gossipsub's counters (all nodes summed).
pub fn duplicates_from_counters(unfiltered: f64, filtered: f64) -> Option<f64> {
    (filtered > 0.0).then(|| ((unfiltered - filtered) / filtered).max(0.0))
}

/// Extra copies per delivery estimated from `bytes_in` (all nodes, during
/// the workload) for `deliveries` first copies of `size`-byte messages
/// (payload plus envelope, if any).
pub fn duplicates_from_bytes(bytes_in: u64, deliveries: u64, size: usize) -> Option<f64> {
    if deliveries == 0 {
        return None;
    }
    let copy = (size + GOSSIP_MESSAGE_OVERHEAD) as f64;
    Some((bytes_in as f64 / (deliveries as f64 * copy) - 1.0).max(0.0))
}

/// Bytes on the wire per payload byte delivered.
pub fn bytes_per_payload_byte(wire_bytes: u64, deliveries: u64, size: usize) -> Option<f64> {
    (deliveries > 0).then(|| wire_bytes as f64 / (deliveries as f64 * size as f64))
}

/// Bytes in and out summed over nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Received.
    pub bytes_in: u64,
    /// Sent.
    pub bytes_out: u64,
}

impl Totals {
    /// Adds one node's counters.
    pub fn add(&mut self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
    }

    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: Totals) -> Totals {
        Totals {
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_give_extra_copies_per_first_copy() {
        assert_eq!(duplicates_from_counters(30.0, 10.0), Some(2.0));
        assert_eq!(duplicates_from_counters(5.0, 0.0), None);
    }

    #[test]
    fn bytes_estimate_and_cost() {
        let copy = (1024 + GOSSIP_MESSAGE_OVERHEAD) as u64;
        assert_eq!(duplicates_from_bytes(copy * 40, 10, 1024), Some(3.0));
        assert_eq!(duplicates_from_bytes(0, 10, 1024), Some(0.0));
        assert_eq!(bytes_per_payload_byte(4096, 2, 1024), Some(2.0));
        assert_eq!(bytes_per_payload_byte(4096, 0, 1024), None);
    }

    #[test]
    fn totals_subtract() {
        let mut a = Totals::default();
        a.add(10, 20);
        a.add(1, 2);
        let b = Totals {
            bytes_in: 5,
            bytes_out: 30,
        };
        assert_eq!(
            a.since(b),
            Totals {
                bytes_in: 6,
                bytes_out: 0
            }
        );
    }
}
