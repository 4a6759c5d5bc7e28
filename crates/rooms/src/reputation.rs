//! Local reputation per peer and skill, from how its tasks went.
//!
//! Each outcome adds a weight: tasks this node proposed count fully
//! (first-hand), tasks in other members' verified records count a quarter
//! (second-hand), at most [`MAX_SECOND_HAND_PER_REPORTER`] tasks per
//! reporter, peer and skill, so a proposer cannot talk a friend up with
//! invented tasks. The score is the mean of a Beta(1, 1) prior updated by
//! the weights: `(completed + 1) / (all + 2)`, per mille; an unknown peer
//! scores 500. A peer caught equivocating scores 0 for every skill.

use std::collections::{BTreeMap, BTreeSet};

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::{ids::TaskId, record::VerifiedRecord, task::track::AttemptOutcome};

/// Weight of a first-hand outcome.
pub const FIRST_HAND_WEIGHT: f64 = 1.0;
/// Weight of a second-hand outcome.
pub const SECOND_HAND_WEIGHT: f64 = 0.25;
/// Most second-hand tasks one reporter adds for one peer and skill.
pub const MAX_SECOND_HAND_PER_REPORTER: u32 = 4;
/// Most (peer, skill) tallies kept; new ones beyond are not tracked.
pub const MAX_TALLIES: usize = 65_536;
/// Most task ids remembered to count each task once.
pub const MAX_COUNTED_TASKS: usize = 65_536;

/// How a task went for its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Result accepted.
    Completed,
    /// The tool failed.
    Failed,
    /// Lease or timeout passed, or the executor vanished.
    Expired,
    /// The result was rejected.
    Rejected,
}

/// Weighted outcomes of one peer for one skill.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Tally {
    /// Completed weight.
    pub completed: f64,
    /// Failed weight.
    pub failed: f64,
    /// Expired weight.
    pub expired: f64,
    /// Rejected weight.
    pub rejected: f64,
}

impl Tally {
    fn add(&mut self, outcome: Outcome, weight: f64) {
        match outcome {
            Outcome::Completed => self.completed += weight,
            Outcome::Failed => self.failed += weight,
            Outcome::Expired => self.expired += weight,
            Outcome::Rejected => self.rejected += weight,
        }
    }

    /// The score, per mille.
    pub fn score(&self) -> u16 {
        let all = self.completed + self.failed + self.expired + self.rejected;
        (((self.completed + 1.0) / (all + 2.0)) * 1000.0).round() as u16
    }
}

/// The local reputation book.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Reputation {
    tallies: BTreeMap<(PeerId, String), Tally>,
    second_hand: BTreeMap<(PeerId, PeerId, String), u32>,
    counted: BTreeSet<TaskId>,
    equivocators: BTreeSet<PeerId>,
}

impl Reputation {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, peer: PeerId, skill: &str, outcome: Outcome, weight: f64) {
        let key = (peer, skill.to_string());
        if !self.tallies.contains_key(&key) && self.tallies.len() >= MAX_TALLIES {
            return;
        }
        self.tallies.entry(key).or_default().add(outcome, weight);
    }

    /// Counts the attempts of a task this node proposed (first-hand).
    pub fn count_own(&mut self, record: &VerifiedRecord) {
        if !self.first_count(record.task) {
            return;
        }
        for (peer, outcome) in outcomes(record) {
            self.add(peer, &record.spec.skill, outcome, FIRST_HAND_WEIGHT);
        }
    }

    /// Counts another member's verified record (second-hand, bounded per
    /// reporter). The reporter is the record's proposer.
    pub fn count_reported(&mut self, record: &VerifiedRecord) {
        if !self.first_count(record.task) {
            return;
        }
        let reporter = record.spec.proposer;
        for (peer, outcome) in outcomes(record) {
            if peer == reporter {
                continue;
            }
            let key = (reporter, peer, record.spec.skill.clone());
            let used = self.second_hand.get(&key).copied().unwrap_or(0);
            if used >= MAX_SECOND_HAND_PER_REPORTER
                || (used == 0 && self.second_hand.len() >= MAX_TALLIES)
            {
                continue;
            }
            self.second_hand.insert(key, used + 1);
            self.add(peer, &record.spec.skill, outcome, SECOND_HAND_WEIGHT);
        }
    }

    fn first_count(&mut self, task: TaskId) -> bool {
        if self.counted.contains(&task) || self.counted.len() >= MAX_COUNTED_TASKS {
            return false;
        }
        self.counted.insert(task)
    }

    /// Marks `peer` as caught equivocating: it scores zero from now on.
    pub fn mark_equivocation(&mut self, peer: PeerId) {
        self.equivocators.insert(peer);
    }

    /// Whether `peer` was caught equivocating (the app suggests denying it).
    pub fn is_equivocator(&self, peer: &PeerId) -> bool {
        self.equivocators.contains(peer)
    }

    /// The score of `peer` for `skill`, per mille.
    pub fn score(&self, peer: &PeerId, skill: &str) -> u16 {
        if self.equivocators.contains(peer) {
            return 0;
        }
        self.tallies
            .get(&(*peer, skill.to_string()))
            .map_or(500, Tally::score)
    }

    /// The tally of `peer` for `skill`.
    pub fn tally(&self, peer: &PeerId, skill: &str) -> Option<Tally> {
        self.tallies.get(&(*peer, skill.to_string())).copied()
    }
}

/// The executor outcomes a record shows (declines and cancellations count
/// for nobody).
fn outcomes(record: &VerifiedRecord) -> Vec<(PeerId, Outcome)> {
    record
        .attempts
        .iter()
        .filter_map(|a| {
            let outcome = match a.outcome {
                AttemptOutcome::Completed => Outcome::Completed,
                AttemptOutcome::Failed => Outcome::Failed,
                AttemptOutcome::Expired => Outcome::Expired,
                AttemptOutcome::Rejected => Outcome::Rejected,
                AttemptOutcome::Running | AttemptOutcome::Declined | AttemptOutcome::Canceled => {
                    return None
                }
            };
            Some((a.executor, outcome))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_move_with_outcomes_and_equivocation_zeroes_them() {
        let mut r = Reputation::new();
        let p = PeerId::random();
        assert_eq!(r.score(&p, "s"), 500);
        r.add(p, "s", Outcome::Completed, FIRST_HAND_WEIGHT);
        r.add(p, "s", Outcome::Completed, FIRST_HAND_WEIGHT);
        assert_eq!(r.score(&p, "s"), 750);
        r.add(p, "s", Outcome::Expired, FIRST_HAND_WEIGHT);
        r.add(p, "s", Outcome::Rejected, FIRST_HAND_WEIGHT);
        assert_eq!(r.score(&p, "s"), 500);
        assert_eq!(r.score(&p, "other"), 500, "skills are kept apart");
        r.mark_equivocation(p);
        assert_eq!(r.score(&p, "s"), 0);
        assert!(r.is_equivocator(&p));
    }
}
