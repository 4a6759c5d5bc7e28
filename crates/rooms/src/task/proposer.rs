//! The proposer's side of a task: publishes the proposal, takes bids inside
//! the window, ranks and awards, follows the executor's reports, watches
//! the lease and the timeout, reassigns or fails, and writes every step as
//! a signed entry of the task's record.

use std::sync::Arc;

use libp2p_identity::PeerId;

use super::{
    ranking, sign_entry, Action, Entry, EntryBody, Expiry, RankedBid, ReportKind, RoomView,
    TaskError, TaskMessage, TaskSpec, PROPOSAL_DOMAIN,
};
use crate::{
    a2a::{JsonBytes, Message, TaskState},
    ids::TaskId,
    room::Role,
    statement::{NoPins, Statement, StatementSigner},
    task::{track::Phase, Report, Track, BID_DOMAIN},
};

/// A task this node proposed.
pub struct Proposer {
    signer: Arc<dyn StatementSigner>,
    track: Track,
    entries: Vec<Statement>,
    /// The latest unrecorded sign of life (progress) of the executor.
    progress_life_ms: u64,
}

impl std::fmt::Debug for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposer")
            .field("task", &self.track.id())
            .field("phase", &self.track.phase())
            .finish_non_exhaustive()
    }
}

impl Proposer {
    /// Proposes `spec` (its proposer must be the signer): signs it, records
    /// entry 0 and publishes it to the room.
    pub fn new(
        spec: TaskSpec,
        signer: Arc<dyn StatementSigner>,
        now_ms: u64,
    ) -> Result<(Self, Vec<Action>), TaskError> {
        spec.check()?;
        if spec.proposer != signer.peer_id() {
            return Err(TaskError::InvalidSpec(
                "the proposer must be this node".into(),
            ));
        }
        let proposal = Statement::sign(&*signer, PROPOSAL_DOMAIN, &spec, spec.created_at_ms)?;
        let entry = Entry {
            task: spec.id(),
            seq: 0,
            prev: [0; 32],
            at_ms: now_ms.max(spec.created_at_ms),
            body: EntryBody::Proposed(proposal.clone()),
        };
        let signed = sign_entry(&*signer, &entry)?;
        let track = Track::from_entry(&entry, signed.id(), &NoPins)?;
        let this = Self {
            signer,
            track,
            entries: vec![signed.clone()],
            progress_life_ms: 0,
        };
        let actions = vec![
            Action::Record(signed.clone()),
            Action::Broadcast(TaskMessage::Proposal(proposal)),
            Action::Broadcast(TaskMessage::Entry(signed)),
            this.state_action(),
        ];
        Ok((this, actions))
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.track.id()
    }

    /// The task's state as entries so far define it.
    pub fn track(&self) -> &Track {
        &self.track
    }

    /// The record so far.
    pub fn entries(&self) -> &[Statement] {
        &self.entries
    }

    /// The A2A state.
    pub fn state(&self) -> TaskState {
        self.track.phase().a2a()
    }

    fn state_action(&self) -> Action {
        Action::State {
            state: self.track.phase().a2a(),
            phase: self.track.phase(),
        }
    }

    /// The next time [`Proposer::on_tick`] has work (none once over).
    pub fn deadline(&self) -> Option<u64> {
        let phase = self.track.phase();
        if phase == Phase::Bidding {
            return Some(self.track.spec().window_closes_at());
        }
        let attempt = self.track.current()?;
        if !phase.in_attempt() || phase == Phase::ResultIn {
            return None;
        }
        let spec = self.track.spec();
        let timeout = attempt
            .awarded_at_ms
            .saturating_add(spec.execution_timeout_ms);
        if phase.lease_runs() {
            let life = attempt.last_life_ms.max(self.progress_life_ms);
            Some(timeout.min(life.saturating_add(spec.lease_ms)))
        } else {
            Some(timeout)
        }
    }

    fn append(&mut self, body: EntryBody, now_ms: u64) -> Result<Statement, TaskError> {
        let entry = Entry {
            task: self.track.id(),
            seq: self.track.next_seq(),
            prev: self.track.last_id(),
            at_ms: now_ms.max(self.track.last_at_ms()),
            body,
        };
        let signed = sign_entry(&*self.signer, &entry)?;
        self.track.apply_entry(&entry, signed.id(), &NoPins)?;
        self.entries.push(signed.clone());
        Ok(signed)
    }

    /// Appends an entry and says so: recorded, published on the topic, and
    /// sent to the current executor if `to_executor`.
    fn publish(
        &mut self,
        body: EntryBody,
        now_ms: u64,
        to_executor: bool,
        actions: &mut Vec<Action>,
    ) -> Result<(), TaskError> {
        let signed = self.append(body, now_ms)?;
        actions.push(Action::Record(signed.clone()));
        actions.push(Action::Broadcast(TaskMessage::Entry(signed.clone())));
        if to_executor {
            if let Some(a) = self.track.current() {
                actions.push(Action::Send {
                    to: a.executor,
                    message: TaskMessage::Entry(signed),
                });
            }
        }
        Ok(())
    }

    /// Handles a message from `from` (its envelope verified by the node).
    pub fn handle_message(
        &mut self,
        from: PeerId,
        message: TaskMessage,
        now_ms: u64,
        room: &dyn RoomView,
    ) -> Result<Vec<Action>, TaskError> {
        match message {
            TaskMessage::Bid(statement) => self.on_bid(from, statement, now_ms, room),
            TaskMessage::Report(statement) => self.on_report(from, statement, now_ms, room),
            TaskMessage::Progress {
                task,
                attempt,
                progress,
                total,
                message,
            } => {
                room.check(&from, Role::Execute, now_ms)?;
                let current = self.track.current();
                if task != self.id()
                    || current.is_none_or(|a| a.executor != from || a.number != attempt)
                    || !self.track.phase().in_attempt()
                {
                    return Err(TaskError::Mismatch(format!(
                        "{from} does not run attempt {attempt} of this task"
                    )));
                }
                self.progress_life_ms = self.progress_life_ms.max(now_ms);
                let message = message.map(|m| m.chars().take(super::MAX_TEXT).collect());
                Ok(vec![Action::Progress {
                    progress,
                    total,
                    message,
                }])
            }
            other => Err(TaskError::Mismatch(format!(
                "a proposer takes no {} from {from}",
                other.name()
            ))),
        }
    }

    fn on_bid(
        &mut self,
        from: PeerId,
        statement: Statement,
        now_ms: u64,
        room: &dyn RoomView,
    ) -> Result<Vec<Action>, TaskError> {
        room.check(&from, Role::Execute, now_ms)?;
        if statement.signer != from {
            return Err(TaskError::ForeignSignature {
                what: "bid",
                sender: from,
            });
        }
        let closes = self.track.spec().window_closes_at();
        if now_ms > closes || self.track.phase() != Phase::Bidding {
            return Err(TaskError::LateBid {
                bidder: from,
                late_ms: now_ms.saturating_sub(closes),
            });
        }
        statement.verify(BID_DOMAIN)?;
        let mut actions = Vec::new();
        self.publish(
            EntryBody::BidAccepted(statement),
            now_ms,
            false,
            &mut actions,
        )?;
        Ok(actions)
    }

    fn on_report(
        &mut self,
        from: PeerId,
        statement: Statement,
        now_ms: u64,
        room: &dyn RoomView,
    ) -> Result<Vec<Action>, TaskError> {
        room.check(&from, Role::Execute, now_ms)?;
        if statement.signer != from {
            return Err(TaskError::ForeignSignature {
                what: "report",
                sender: from,
            });
        }
        let report: Report = statement.open(super::REPORT_DOMAIN)?;
        let mut actions = Vec::new();
        self.publish(EntryBody::Reported(statement), now_ms, false, &mut actions)?;
        actions.push(self.state_action());
        if matches!(
            report.kind,
            ReportKind::Declined { .. } | ReportKind::Failed { .. }
        ) {
            self.reassign_or_fail(now_ms, &mut actions)?;
        }
        Ok(actions)
    }

    /// Wakes the machine at `now_ms`: closes the window (rank and award),
    /// expires a lease or an attempt's timeout (and reassigns or fails).
    pub fn on_tick(&mut self, now_ms: u64, room: &dyn RoomView) -> Result<Vec<Action>, TaskError> {
        let mut actions = Vec::new();
        let phase = self.track.phase();
        let spec = self.track.spec().clone();
        if phase == Phase::Bidding {
            if now_ms < spec.window_closes_at() {
                return Ok(actions);
            }
            let in_arrival: Vec<RankedBid> = self
                .track
                .bids()
                .iter()
                .map(|b| RankedBid {
                    bid: b.id,
                    bidder: b.bidder,
                    price: b.bid.price,
                    reputation: room
                        .reputation(&b.bidder, &spec.skill)
                        .min(super::MAX_REPUTATION),
                })
                .collect();
            let ranked = ranking::rank(&in_arrival, &spec);
            self.publish(EntryBody::Ranked(ranked), now_ms, false, &mut actions)?;
            self.reassign_or_fail(now_ms, &mut actions)?;
            return Ok(actions);
        }
        let Some(attempt) = self.track.current().cloned() else {
            return Ok(actions);
        };
        if !phase.in_attempt() || phase == Phase::ResultIn {
            return Ok(actions);
        }
        let timeout_at = attempt
            .awarded_at_ms
            .saturating_add(spec.execution_timeout_ms);
        let life = attempt.last_life_ms.max(self.progress_life_ms);
        let reason = if now_ms >= timeout_at {
            Some(Expiry::Timeout)
        } else if phase.lease_runs() && now_ms >= life.saturating_add(spec.lease_ms) {
            Some(Expiry::Lease)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.expire(attempt.number, reason, now_ms, &mut actions)?;
        }
        Ok(actions)
    }

    /// The executor's node went away (the driver saw it disconnect or fail
    /// to answer): the attempt expires and the task moves on.
    pub fn executor_gone(&mut self, peer: PeerId, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        let mut actions = Vec::new();
        let running = self
            .track
            .current()
            .filter(|a| a.executor == peer && self.track.phase().in_attempt())
            .map(|a| a.number);
        if let Some(number) = running {
            self.expire(number, Expiry::ExecutorGone, now_ms, &mut actions)?;
        }
        Ok(actions)
    }

    fn expire(
        &mut self,
        attempt: u8,
        reason: Expiry,
        now_ms: u64,
        actions: &mut Vec<Action>,
    ) -> Result<(), TaskError> {
        self.publish(
            EntryBody::Expired { attempt, reason },
            now_ms,
            true,
            actions,
        )?;
        self.reassign_or_fail(now_ms, actions)
    }

    fn reassign_or_fail(
        &mut self,
        now_ms: u64,
        actions: &mut Vec<Action>,
    ) -> Result<(), TaskError> {
        if self.track.can_reassign() {
            let next = self
                .track
                .next_candidate()
                .cloned()
                .expect("can_reassign implies a candidate");
            let attempt = self.track.attempts().len() as u8 + 1;
            self.progress_life_ms = 0;
            self.publish(
                EntryBody::Awarded {
                    attempt,
                    bid: next.bid,
                    executor: next.bidder,
                },
                now_ms,
                true,
                actions,
            )?;
        } else {
            let reason = if self.track.attempts().is_empty() {
                "no eligible bid".to_string()
            } else if self.track.attempts().len() >= usize::from(self.track.spec().attempts) {
                "every attempt was used".to_string()
            } else if self.track.next_candidate().is_none() {
                "no eligible bid is left".to_string()
            } else {
                "the tool started and is not idempotent, so it is not run again".to_string()
            };
            self.publish(EntryBody::Failed { reason }, now_ms, false, actions)?;
        }
        actions.push(self.state_action());
        Ok(())
    }

    /// Answers the executor's request for input.
    pub fn provide_input(
        &mut self,
        message: &Message,
        now_ms: u64,
    ) -> Result<Vec<Action>, TaskError> {
        let mut actions = Vec::new();
        self.publish(
            EntryBody::InputProvided(JsonBytes::encode(message)),
            now_ms,
            true,
            &mut actions,
        )?;
        actions.push(self.state_action());
        Ok(actions)
    }

    /// Accepts the result in.
    pub fn accept(&mut self, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        let mut actions = Vec::new();
        self.publish(EntryBody::Accepted, now_ms, true, &mut actions)?;
        actions.push(self.state_action());
        Ok(actions)
    }

    /// Rejects the result in; the next bid may be awarded (the tool ran,
    /// so only if it is idempotent).
    pub fn reject(&mut self, reason: &str, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        let mut actions = Vec::new();
        self.publish(
            EntryBody::Rejected {
                reason: reason.chars().take(super::MAX_TEXT / 4).collect(),
            },
            now_ms,
            true,
            &mut actions,
        )?;
        self.reassign_or_fail(now_ms, &mut actions)?;
        Ok(actions)
    }

    /// Cancels the task, at any point before it is over.
    pub fn cancel(&mut self, reason: &str, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        let mut actions = Vec::new();
        let to_executor = self.track.phase().in_attempt();
        self.publish(
            EntryBody::Canceled {
                reason: reason.chars().take(super::MAX_TEXT / 4).collect(),
            },
            now_ms,
            to_executor,
            &mut actions,
        )?;
        actions.push(self.state_action());
        Ok(actions)
    }
}
