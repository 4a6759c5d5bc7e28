//! The workload plan: who publishes what, when. Pure.
//!
//! Valid messages go out at a fixed network-wide rate from random honest
//! publishers. Byzantine nodes add invalid messages on top, each at the rate
//! of an average honest node, spread over the same period, alternating
//! malformed payloads and oversized ones.

use std::time::Duration;

use rand::{seq::index::sample, Rng};
use serde::Serialize;

/// What a planned message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    /// A well-formed payload with sequence number and timestamp.
    Valid,
    /// Bytes of the right size that are not a valid payload (with
    /// envelopes: an envelope with an invalid signature).
    Malformed,
    /// A payload larger than honest nodes accept.
    Oversized,
}

/// One planned publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Unique within the run; valid messages are numbered 0..messages.
    pub seq: u32,
    /// Offset from the start of the workload.
    pub at: Duration,
    /// Publishing node.
    pub publisher: usize,
    /// Valid or which kind of invalid.
    pub kind: SlotKind,
}

/// Chooses `count` Byzantine nodes among `nodes`; `true` marks one.
pub fn byzantine_nodes(nodes: usize, count: usize, rng: &mut impl Rng) -> Vec<bool> {
    let mut marks = vec![false; nodes];
    for i in sample(rng, nodes, count.min(nodes)) {
        marks[i] = true;
    }
    marks
}

/// Plans `messages` valid messages at `rate` per second from random honest
/// nodes, plus the Byzantine nodes' invalid messages, sorted by time.
pub fn plan(messages: usize, rate: f64, byzantine: &[bool], rng: &mut impl Rng) -> Vec<Slot> {
    let honest: Vec<usize> = (0..byzantine.len()).filter(|&i| !byzantine[i]).collect();
    let bad: Vec<usize> = (0..byzantine.len()).filter(|&i| byzantine[i]).collect();
    assert!(!honest.is_empty(), "a plan needs an honest publisher");
    let mut slots: Vec<Slot> = (0..messages)
        .map(|i| Slot {
            seq: i as u32,
            at: Duration::from_secs_f64(i as f64 / rate),
            publisher: honest[rng.gen_range(0..honest.len())],
            kind: SlotKind::Valid,
        })
        .collect();
    if !bad.is_empty() {
        let per_node = messages as f64 / honest.len() as f64;
        let invalid = (per_node * bad.len() as f64).round() as usize;
        let period = messages as f64 / rate;
        for k in 0..invalid {
            slots.push(Slot {
                seq: (messages + k) as u32,
                at: Duration::from_secs_f64(rng.gen_range(0.0..period.max(f64::MIN_POSITIVE))),
                publisher: bad[k % bad.len()],
                kind: if k % 2 == 0 {
                    SlotKind::Malformed
                } else {
                    SlotKind::Oversized
                },
            });
        }
    }
    slots.sort_by_key(|s| (s.at, s.seq));
    slots
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, SeedableRng};

    use super::*;

    #[test]
    fn valid_messages_are_evenly_spaced_and_from_honest_nodes() {
        let mut rng = StdRng::seed_from_u64(3);
        let byz = byzantine_nodes(10, 2, &mut rng);
        assert_eq!(byz.iter().filter(|b| **b).count(), 2);
        let slots = plan(50, 10.0, &byz, &mut rng);
        let valid: Vec<&Slot> = slots.iter().filter(|s| s.kind == SlotKind::Valid).collect();
        assert_eq!(valid.len(), 50);
        assert!(valid.iter().all(|s| !byz[s.publisher]));
        assert_eq!(valid[10].at, Duration::from_secs(1));
        let seqs: Vec<u32> = valid.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn byzantine_nodes_send_their_share_of_invalid_messages() {
        let mut rng = StdRng::seed_from_u64(4);
        let byz = byzantine_nodes(10, 2, &mut rng);
        let slots = plan(80, 10.0, &byz, &mut rng);
        let invalid: Vec<&Slot> = slots.iter().filter(|s| s.kind != SlotKind::Valid).collect();
        // 80 valid over 8 honest nodes: 10 each, so 20 invalid from two.
        assert_eq!(invalid.len(), 20);
        assert!(invalid.iter().all(|s| byz[s.publisher]));
        assert!(invalid.iter().all(|s| s.at < Duration::from_secs(8)));
        let oversized = invalid
            .iter()
            .filter(|s| s.kind == SlotKind::Oversized)
            .count();
        assert_eq!(oversized, 10);
        assert!(slots.windows(2).all(|w| w[0].at <= w[1].at), "sorted");
        let mut seqs: Vec<u32> = slots.iter().map(|s| s.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), slots.len(), "sequence numbers are unique");
    }

    #[test]
    fn no_byzantine_no_invalid() {
        let mut rng = StdRng::seed_from_u64(5);
        let slots = plan(5, 1000.0, &[false, false], &mut rng);
        assert!(slots.iter().all(|s| s.kind == SlotKind::Valid));
    }
}
